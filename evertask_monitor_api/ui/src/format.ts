// Formatting helpers shared by the pages.

import type { Status, StatusAudit } from "./api";

/** A date and time in the browser's zone; `zone` appends the zone's short name ("UTC",
 * "GMT+1"), for times shown next to a schedule that names its own zone. */
export function formatDate(value: string | null | undefined, zone = false): string {
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
    ...(zone ? { timeZoneName: "short" as const } : {}),
  });
}

export function formatTime(value: string, zone = false): string {
  const date = new Date(value);
  return date.toLocaleTimeString(undefined, {
    hour: "2-digit",
    minute: "2-digit",
    second: "2-digit",
    ...(zone ? { timeZoneName: "short" as const } : {}),
  });
}

/** How long ago (or, for a future time, in how long) `value` is from `now`: "12 s ago",
 * "3 min ago", "2 h ago", "4 d ago", "in 20 s". */
export function formatRelative(value: string | null | undefined, now: number = Date.now()): string {
  if (!value) return "—";
  const time = Date.parse(value);
  if (Number.isNaN(time)) return value;
  const seconds = Math.round((now - time) / 1000);
  const size = Math.abs(seconds);
  const amount =
    size < 60
      ? `${size} s`
      : size < 3600
        ? `${Math.floor(size / 60)} min`
        : size < 86_400
          ? `${Math.floor(size / 3600)} h`
          : `${Math.floor(size / 86_400)} d`;
  return seconds < 0 ? `in ${amount}` : `${amount} ago`;
}

/** The first block of a UUID, enough to tell nodes apart on screen. */
export function shortId(id: string): string {
  return id.split("-", 1)[0];
}

/** The duration of a task's last run in ms, or null when it is not known: a task stopped
 * by the service has no recorded duration (the engine does not pass one), so it is taken
 * from its status history (InProgress to ServiceStopped) when that is available. */
export function runDuration(
  task: { status: Status; executionTimeMs: number | null; lastExecutionUtc: string | null },
  audits: StatusAudit[] = [],
): number | null {
  if (!task.lastExecutionUtc) return null;
  if (task.status !== "ServiceStopped") return task.executionTimeMs;
  if (task.executionTimeMs) return task.executionTimeMs;
  const ordered = [...audits].sort((a, b) => Date.parse(a.updatedAtUtc) - Date.parse(b.updatedAtUtc) || a.id - b.id);
  let started: number | null = null;
  let stopped: number | null = null;
  for (const audit of ordered) {
    if (audit.newStatus === "InProgress") started = Date.parse(audit.updatedAtUtc);
    else if (audit.newStatus === "ServiceStopped" && started !== null) stopped = Date.parse(audit.updatedAtUtc) - started;
  }
  return stopped !== null && stopped >= 0 ? stopped : null;
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

/** A percentage; null (nothing to divide, e.g. no finished task) is shown as "—". */
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
  WaitingParent: "muted",
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
