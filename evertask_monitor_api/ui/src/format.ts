// Formatting helpers shared by the pages.

import type { Status } from "./api";

export function formatDate(value: string | null | undefined): string {
  if (!value) return "—";
  const date = new Date(value);
  if (Number.isNaN(date.getTime())) return value;
  return date.toLocaleString(undefined, {
    year: "numeric",
    month: "short",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
  });
}

export function formatTime(value: string): string {
  const date = new Date(value);
  return date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

export function formatDuration(ms: number | null | undefined): string {
  if (ms === null || ms === undefined) return "—";
  if (ms < 1) return `${ms.toFixed(2)} ms`;
  if (ms < 1000) return `${ms.toFixed(0)} ms`;
  if (ms < 60_000) return `${(ms / 1000).toFixed(2)} s`;
  const minutes = Math.floor(ms / 60_000);
  const seconds = Math.round((ms % 60_000) / 1000);
  return `${minutes} min ${seconds} s`;
}

export function formatNumber(value: number): string {
  return value.toLocaleString();
}

export function formatPercent(value: number | null | undefined): string {
  return value === null || value === undefined ? "—" : `${value.toFixed(1)}%`;
}

/** Short bucket label: hour for intra-day buckets, day otherwise. */
export function bucketLabel(value: string, hourly: boolean): string {
  const date = new Date(value);
  return hourly
    ? date.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit" })
    : date.toLocaleDateString(undefined, { month: "short", day: "numeric" });
}

/** Pretty-print JSON text; non-JSON text comes back unchanged. */
export function prettyJson(text: string): string {
  try {
    return JSON.stringify(JSON.parse(text), null, 2);
  } catch {
    return text;
  }
}

export type Tone = "ok" | "bad" | "warn" | "info" | "muted";

const TONES: Record<Status, Tone> = {
  Completed: "ok",
  Failed: "bad",
  Cancelled: "muted",
  ServiceStopped: "warn",
  InProgress: "info",
  Queued: "info",
  Pending: "info",
  WaitingQueue: "muted",
};

export function statusTone(status: string): Tone {
  return TONES[status as Status] ?? "muted";
}

export function severityTone(severity: string): Tone {
  if (severity === "Error") return "bad";
  if (severity === "Warning") return "warn";
  return "info";
}

export function levelTone(level: string): Tone {
  const l = level.toLowerCase();
  if (l === "error" || l === "critical") return "bad";
  if (l === "warning") return "warn";
  if (l === "debug" || l === "trace") return "muted";
  return "info";
}

/** "Last 200" style throttle: first call runs now, then at most once per interval. */
export function makeThrottle(interval: number, run: () => void, now: () => number = Date.now) {
  let last = -Infinity;
  let timer: ReturnType<typeof setTimeout> | null = null;
  return {
    trigger(): void {
      const elapsed = now() - last;
      if (elapsed >= interval) {
        last = now();
        run();
      } else if (timer === null) {
        timer = setTimeout(() => {
          timer = null;
          last = now();
          run();
        }, interval - elapsed);
      }
    },
    cancel(): void {
      if (timer !== null) clearTimeout(timer);
      timer = null;
    },
  };
}
