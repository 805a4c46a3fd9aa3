// Formatting of the rate-limits page: policies, periods and how full the parking lot is.

import type { RateLimitPolicy } from "./api";
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

/** The link to the documentation's throttling page, or null when no docs URL is configured. */
export function throttlingDocsUrl(docsUrl: string | null | undefined): string | null {
  if (!docsUrl) return null;
  return `${docsUrl.endsWith("/") ? docsUrl : `${docsUrl}/`}throttling/`;
}
