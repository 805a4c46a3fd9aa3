// App-wide state: server config, login session, live events and the refresh tick.

import { createContext, useCallback, useContext, useEffect, useMemo, useRef, useState } from "react";
import type { ReactNode } from "react";
import { api, getToken, onUnauthorized, setToken, wsUrl } from "./api";
import type { Config, LoginResponse } from "./api";
import { makeThrottle } from "./format";

// -- config + session ---------------------------------------------------------------------
interface Session {
  config: Config;
  token: string | null;
  authenticated: boolean;
  login(username: string, password: string): Promise<void>;
  logout(): void;
}

const SessionContext = createContext<Session | null>(null);

export function useSession(): Session {
  const session = useContext(SessionContext);
  if (!session) throw new Error("useSession outside SessionProvider");
  return session;
}

export function SessionProvider({ config, children }: { config: Config; children: ReactNode }) {
  const [token, setTokenState] = useState<string | null>(getToken());

  useEffect(() => {
    onUnauthorized(() => setTokenState(null));
  }, []);

  const login = useCallback(async (username: string, password: string) => {
    const response = await api.post<LoginResponse>("/auth/login", { username, password });
    setToken(response.token);
    setTokenState(response.token);
  }, []);

  const logout = useCallback(() => {
    setToken(null);
    setTokenState(null);
  }, []);

  const value = useMemo(
    () => ({
      config,
      token,
      authenticated: !config.requireAuthentication || token !== null,
      login,
      logout,
    }),
    [config, token, login, logout],
  );
  return <SessionContext.Provider value={value}>{children}</SessionContext.Provider>;
}

// -- live events ----------------------------------------------------------------------------
export interface LiveEvent {
  taskId: string;
  eventDateUtc: string;
  severity: string;
  kind: string;
  taskType: string;
  taskHandlerType: string;
  taskParameters: string;
  message: string;
  queueName: string;
  exception: string | null;
  attempt: number | null;
  executionLogs?: { timestampUtc: string; level: string; message: string }[];
  seq: number;
}

interface Live {
  connected: boolean;
  available: boolean;
  events: LiveEvent[];
  dropped: number;
  tick: number;
  clear(): void;
}

const LiveContext = createContext<Live>({
  connected: false,
  available: false,
  events: [],
  dropped: 0,
  tick: 0,
  clear: () => undefined,
});

export function useLive(): Live {
  return useContext(LiveContext);
}

const MAX_EVENTS = 500;
const POLL_MS = 5000;

export function LiveProvider({ children }: { children: ReactNode }) {
  const { config, token, authenticated, logout } = useSession();
  const [connected, setConnected] = useState(false);
  const [events, setEvents] = useState<LiveEvent[]>([]);
  const [dropped, setDropped] = useState(0);
  const [tick, setTick] = useState(0);
  const seq = useRef(0);

  const throttle = useMemo(
    () => makeThrottle(config.eventDebounceMs, () => setTick((t) => t + 1)),
    [config.eventDebounceMs],
  );

  useEffect(() => {
    if (!authenticated || !config.liveEvents) return undefined;
    let socket: WebSocket | null = null;
    let retry: ReturnType<typeof setTimeout> | null = null;
    let delay = 500;
    let stopped = false;

    const connect = () => {
      const protocols = ["evertask.v1"];
      if (token) protocols.push(`bearer.${token}`);
      socket = new WebSocket(wsUrl(true), protocols);
      socket.onopen = () => {
        delay = 500;
        setConnected(true);
        throttle.trigger();
      };
      socket.onmessage = (message: MessageEvent<string>) => {
        const frame = JSON.parse(message.data) as { type: string; event?: LiveEvent; count?: number };
        if (frame.type === "event" && frame.event) {
          const event = { ...frame.event, seq: ++seq.current };
          setEvents((list) => [event, ...list].slice(0, MAX_EVENTS));
          throttle.trigger();
        } else if (frame.type === "dropped" && frame.count) {
          setDropped((n) => n + (frame.count ?? 0));
        }
      };
      socket.onclose = (close: CloseEvent) => {
        setConnected(false);
        socket = null;
        if (stopped) return;
        if (close.code === 4001 || close.code === 1008) {
          logout();
          return;
        }
        retry = setTimeout(connect, delay);
        delay = Math.min(delay * 2, 10_000);
      };
    };
    connect();
    return () => {
      stopped = true;
      if (retry !== null) clearTimeout(retry);
      socket?.close();
      throttle.cancel();
      setConnected(false);
    };
  }, [authenticated, config.liveEvents, token, throttle, logout]);

  // Polling fallback while the WebSocket is not connected.
  useEffect(() => {
    if (!authenticated || connected) return undefined;
    const timer = setInterval(() => setTick((t) => t + 1), POLL_MS);
    return () => clearInterval(timer);
  }, [authenticated, connected]);

  const clear = useCallback(() => {
    setEvents([]);
    setDropped(0);
  }, []);

  const value = useMemo(
    () => ({ connected, available: config.liveEvents, events, dropped, tick, clear }),
    [connected, config.liveEvents, events, dropped, tick, clear],
  );
  return <LiveContext.Provider value={value}>{children}</LiveContext.Provider>;
}

// -- data loading ---------------------------------------------------------------------------
export interface Loaded<T> {
  data: T | null;
  error: string | null;
  loading: boolean;
  reload(): void;
}

/** GET an API path; refetches when its parameters change and on every live refresh tick. */
export function useApi<T>(path: string | null, params: Record<string, unknown> = {}, live = true): Loaded<T> {
  const { tick } = useLive();
  const [state, setState] = useState<{ data: T | null; error: string | null; loading: boolean }>({
    data: null,
    error: null,
    loading: true,
  });
  const [reloads, setReloads] = useState(0);
  const key = `${path}?${JSON.stringify(params)}`;
  const refresh = live ? tick : 0;

  useEffect(() => {
    if (path === null) return undefined;
    let cancelled = false;
    setState((s) => ({ ...s, loading: true }));
    api
      .get<T>(path, params as never)
      .then((data) => !cancelled && setState({ data, error: null, loading: false }))
      .catch((error: Error) => !cancelled && setState((s) => ({ ...s, error: error.message, loading: false })));
    return () => {
      cancelled = true;
    };
    // eslint-disable-next-line react-hooks/exhaustive-deps
  }, [key, refresh, reloads]);

  const reload = useCallback(() => setReloads((n) => n + 1), []);
  return { ...state, reload };
}
