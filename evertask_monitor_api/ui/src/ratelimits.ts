// Formatting of the rate-limits page: policies, periods, how full the parking lot is and
// adaptive throttling's measures.

import type { RateLimitPolicy, RateLimits } from "./api";
import type { Tone } from "./format";

/** A period in the largest whole unit that fits: "30 s", "1 min", "1.5 min", "2 h", "1 d",
 * "250 ms". */
export function formatPeriod(ms: number): string {
  const units: [number, string][] = [
    [86_400_000, "d"],
    [3_600_000, "h"],
    [60_000, "min"],
    [1000, "s"],
  ];
  for (const [size, name] of units) {
    if (ms >= size) {
      const amount = Math.round((ms / size) * 100) / 100;
      return `${amount} ${name}`;
    }
  }
  return `${Math.round(ms)} ms`;
}

/** A declared rate limit in words: "10 per 1 min per key, burst 20, discard when spent". */
export function formatPolicy(policy: RateLimitPolicy): string {
  const parts = [`${policy.permits} per ${formatPeriod(policy.periodMs)} per key`];
  if (policy.burst !== policy.permits) parts.push(`burst ${policy.burst}`);
  if (policy.startEmpty) parts.push("starts empty");
  if (!policy.throttleRetries) parts.push("retries not throttled");
  if (policy.overflowBehavior === "DISCARD") parts.push("discard when spent");
  return parts.join(", ");
}

/** How full the parking lot is: "0.6%" and a tone (warn from 80%, bad when full: gated
 * lanes then pause until a slot frees room). */
export function parkingFill(count: number, max: number): { text: string; tone: Tone } {
  if (max <= 0) return { text: "—", tone: "muted" };
  const ratio = count / max;
  const percent = ratio * 100;
  const shown = percent > 0 && percent < 0.1 ? "<0.1" : percent.toFixed(percent >= 10 || percent === 0 ? 0 : 1);
  const tone: Tone = ratio >= 1 ? "bad" : ratio >= 0.8 ? "warn" : count > 0 ? "info" : "ok";
  return { text: `${shown}%`, tone };
}

/** The tail of a task id: task ids are UUIDv7, whose first blocks are a timestamp shared by
 * tasks dispatched together, so the random last block is what tells them apart. */
export function taskIdTail(id: string): string {
  return `…${id.slice(id.lastIndexOf("-") + 1)}`;
}

/** The link to the documentation's throttling page (at `anchor`, e.g. "adaptive-throttling"),
 * or null when no docs URL is configured. */
export function throttlingDocsUrl(docsUrl: string | null | undefined, anchor?: string): string | null {
  if (!docsUrl) return null;
  return `${docsUrl.endsWith("/") ? docsUrl : `${docsUrl}/`}throttling/${anchor ? `#${anchor}` : ""}`;
}

/** Bytes in binary units, as the thresholds are usually written (`2 * 1024**3`): "512 B",
 * "1.5 KiB", "812.4 MiB", "2 GiB". */
export function formatBytes(bytes: number): string {
  const units = ["B", "KiB", "MiB", "GiB", "TiB", "PiB"];
  let value = bytes;
  let unit = 0;
  while (Math.abs(value) >= 1024 && unit < units.length - 1) {
    value /= 1024;
    unit += 1;
  }
  if (unit === 0) return `${Math.round(value)} B`;
  const shown = Math.abs(value) >= 100 ? Math.round(value) : Math.round(value * 10) / 10;
  return `${shown} ${units[unit]}`;
}

/** CPU use in cores (1.0 = one core kept busy): "0.42 cores", "1 core". */
export function formatCores(cores: number): string {
  const shown = Math.round(cores * 100) / 100;
  return `${shown} ${shown === 1 ? "core" : "cores"}`;
}

/** Why adaptive throttling paused the node, from the API's "cpu", "memory" or "cpu,memory". */
export function adaptiveReason(reason: string | null | undefined): string {
  if (!reason) return "—";
  const names = reason
    .split(",")
    .map((r) => r.trim())
    .filter(Boolean)
    .map((r) => (r === "cpu" ? "CPU" : r));
  if (names.length === 0) return "—";
  return names.length === 1
    ? `${names[0]} at or above its threshold`
    : `${names.slice(0, -1).join(", ")} and ${names[names.length - 1]} at or above their thresholds`;
}

/** A measure against its threshold, and a tone: "bad" at or above it (that measure pauses
 * the node), "ok" below, "muted" when the measure is not checked or not sampled yet. */
export function measureTone(value: number | null, threshold: number | null): Tone {
  if (value === null || threshold === null) return "muted";
  return value >= threshold ? "bad" : "ok";
}

/** Where budgets and permits live: the header line's first part (budgets and permits are shared
 * through the database, or each host has its own). */
export function scopeLabel(clusterWide: boolean): string {
  return clusterWide ? "cluster-wide budgets" : "per-host budgets";
}

/** The header line: where budgets live, then this host's parked runs and throttled handlers,
 * and a pause of adaptive throttling. */
export function summaryLine(data: RateLimits): string {
  const handlers = data.handlers.length;
  const parts = [
    scopeLabel(data.clusterWide),
    `this host: ${data.parkedTaskCount} parked`,
    `${handlers} throttled ${handlers === 1 ? "handler" : "handlers"}`,
  ];
  if (data.adaptive.enabled && data.adaptive.paused) parts.push("paused by adaptive throttling");
  return parts.join(" · ");
}
