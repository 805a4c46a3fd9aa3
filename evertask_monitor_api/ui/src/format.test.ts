import { afterEach, describe, expect, it, vi } from "vitest";
import { apiUrl, wsUrl } from "./api";
import { formatDuration, makeThrottle, prettyJson, statusTone } from "./format";

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
