import { afterEach, describe, expect, it, vi } from "vitest";
import { apiUrl, wsUrl } from "./api";
import {
  formatDate,
  formatDuration,
  formatPercent,
  formatRelative,
  makeThrottle,
  prettyJson,
  runDuration,
  shortId,
  statusTone,
} from "./format";

describe("apiUrl", () => {
  it("resolves under the base and repeats array parameters", () => {
    const url = apiUrl("/tasks", { statuses: ["Failed", "Cancelled"], page: 2, taskType: "" }, "http://h/mon/");
    expect(url).toBe("http://h/mon/api/tasks?statuses=Failed&statuses=Cancelled&page=2");
  });

  it("builds the WebSocket URL next to the API", () => {
    expect(wsUrl(false, "https://h/evertask-monitoring/")).toBe("wss://h/evertask-monitoring/ws");
    expect(wsUrl(true, "http://h/m/")).toBe("ws://h/m/ws?logs=true");
  });
});

describe("format", () => {
  it("formats durations", () => {
    expect(formatDuration(null)).toBe("—");
    expect(formatDuration(12)).toBe("12 ms");
    expect(formatDuration(1500)).toBe("1.50 s");
    expect(formatDuration(125_000)).toBe("2 min 5 s");
  });

  it("formats times relative to now", () => {
    const now = Date.parse("2026-01-01T12:00:00Z");
    expect(formatRelative(null, now)).toBe("—");
    expect(formatRelative("2026-01-01T11:59:58Z", now)).toBe("2 s ago");
    expect(formatRelative("2026-01-01T11:57:00Z", now)).toBe("3 min ago");
    expect(formatRelative("2026-01-01T09:30:00Z", now)).toBe("2 h ago");
    expect(formatRelative("2025-12-28T12:00:00Z", now)).toBe("4 d ago");
    expect(formatRelative("2026-01-01T12:00:20Z", now)).toBe("in 20 s");
    expect(formatRelative("not a date", now)).toBe("not a date");
  });

  it("shortens ids to their first block", () => {
    expect(shortId("0f1e2d3c-4b5a-6978-8796-a5b4c3d2e1f0")).toBe("0f1e2d3c");
  });

  it("pretty-prints JSON and leaves other text alone", () => {
    expect(prettyJson('{"a":1}')).toBe('{\n  "a": 1\n}');
    expect(prettyJson("not json")).toBe("not json");
  });

  it("maps statuses to tones", () => {
    expect(statusTone("Failed")).toBe("bad");
    expect(statusTone("Completed")).toBe("ok");
    expect(statusTone("Whatever")).toBe("muted");
  });
});

describe("makeThrottle", () => {
  afterEach(() => {
    vi.useRealTimers();
  });

  it("runs the first trigger at once and coalesces the rest", () => {
    vi.useFakeTimers();
    let now = 0;
    const run = vi.fn();
    const throttle = makeThrottle(1000, run, () => now);
    throttle.trigger();
    expect(run).toHaveBeenCalledTimes(1);
    now = 100;
    throttle.trigger();
    throttle.trigger();
    expect(run).toHaveBeenCalledTimes(1);
    now = 1000;
    vi.advanceTimersByTime(900);
    expect(run).toHaveBeenCalledTimes(2);
  });
});

describe("runDuration", () => {
  const audit = (id: number, at: string, newStatus: "InProgress" | "ServiceStopped" | "Queued") => ({
    id,
    queuedTaskId: "t",
    updatedAtUtc: at,
    newStatus,
    exception: null,
  });

  it("keeps recorded durations and never shows a false zero for a stopped task", () => {
    const ran = { lastExecutionUtc: "2026-01-01T10:00:30Z", executionTimeMs: 0 };
    expect(runDuration({ ...ran, status: "Completed", executionTimeMs: 12 })).toBe(12);
    expect(runDuration({ ...ran, status: "ServiceStopped" })).toBeNull();
    expect(runDuration({ ...ran, status: "ServiceStopped", executionTimeMs: 30_000 })).toBe(30_000);
    expect(runDuration({ ...ran, status: "ServiceStopped", lastExecutionUtc: null })).toBeNull();
    const audits = [
      audit(1, "2026-01-01T10:00:00Z", "Queued"),
      audit(2, "2026-01-01T10:00:00Z", "InProgress"),
      audit(3, "2026-01-01T10:00:30Z", "ServiceStopped"),
    ];
    expect(runDuration({ ...ran, status: "ServiceStopped" }, audits)).toBe(30_000);
    expect(formatDuration(runDuration({ ...ran, status: "ServiceStopped" }))).toBe("—");
  });

  it("shows a dash for a success rate with nothing finished", () => {
    expect(formatPercent(null)).toBe("—");
    expect(formatPercent(75)).toBe("75.0%");
  });

  it("names the zone when asked", () => {
    expect(formatDate("2026-01-01T10:00:00Z", true)).not.toBe(formatDate("2026-01-01T10:00:00Z"));
  });
});
