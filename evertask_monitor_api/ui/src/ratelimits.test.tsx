// @vitest-environment happy-dom
// The rate-limits page rendered to markup (react-dom/server) and read back through a DOM.

import { renderToStaticMarkup } from "react-dom/server";
import { MemoryRouter } from "react-router-dom";
import { describe, expect, it } from "vitest";
import type { AdaptiveThrottling, RateLimitPolicy, RateLimits, ThrottledHandler } from "./api";
import { RateLimitsView } from "./pages/RateLimits";
import {
  adaptiveReason,
  formatBytes,
  formatCores,
  formatPeriod,
  formatPolicy,
  measureTone,
  parkingFill,
  scopeLabel,
  summaryLine,
  taskIdTail,
  throttlingDocsUrl,
} from "./ratelimits";

const NOW = Date.parse("2026-03-02T09:00:00Z");

function policy(extra: Partial<RateLimitPolicy> = {}): RateLimitPolicy {
  return {
    permits: 2,
    periodMs: 60_000,
    burst: 2,
    throttleRetries: true,
    startEmpty: false,
    maxReservationHorizonMs: 3_600_000,
    overflowBehavior: "WAIT_FOR_CAPACITY",
    ...extra,
  };
}

function handler(extra: Partial<ThrottledHandler> = {}): ThrottledHandler {
  return {
    handler: "app.handlers:CallHandler",
    shortHandler: "CallHandler",
    taskType: "app.tasks.Call",
    shortType: "Call",
    queueName: null,
    rateLimit: policy(),
    maxConcurrency: null,
    running: null,
    waiting: null,
    parked: 0,
    ...extra,
  };
}

const OFF: AdaptiveThrottling = {
  enabled: false,
  paused: false,
  reason: null,
  since: null,
  cpu: null,
  memoryBytes: null,
  cpuThreshold: null,
  memoryThresholdBytes: null,
  pauses: 0,
};

function adaptive(extra: Partial<AdaptiveThrottling> = {}): AdaptiveThrottling {
  return {
    ...OFF,
    enabled: true,
    cpu: 0.42,
    memoryBytes: 300 * 1024 ** 2,
    cpuThreshold: 0.85,
    memoryThresholdBytes: 2 * 1024 ** 3,
    ...extra,
  };
}

/** A host on a SQL storage (budgets cluster-wide, the default there), adaptive throttling off. */
function limits(extra: Partial<RateLimits> = {}): RateLimits {
  return {
    available: true,
    clusterWide: true,
    parkedTaskCount: 0,
    maxParkedTasks: 2000,
    trackedKeyCount: 0,
    failOpenCount: 0,
    parked: [],
    keys: [],
    handlers: [],
    adaptive: OFF,
    ...extra,
  };
}

function render(data: RateLimits, docsUrl: string | null = null): HTMLElement {
  const html = renderToStaticMarkup(
    <MemoryRouter>
      <RateLimitsView data={data} now={NOW} docsUrl={docsUrl} />
    </MemoryRouter>,
  );
  const root = document.createElement("div");
  root.innerHTML = html;
  return root;
}

function byTestId(root: HTMLElement, id: string): HTMLElement[] {
  return [...root.querySelectorAll<HTMLElement>(`[data-testid="${id}"]`)];
}

describe("rate-limit formatting", () => {
  it("formats periods in the largest whole unit", () => {
    expect(formatPeriod(250)).toBe("250 ms");
    expect(formatPeriod(1000)).toBe("1 s");
    expect(formatPeriod(30_000)).toBe("30 s");
    expect(formatPeriod(60_000)).toBe("1 min");
    expect(formatPeriod(90_000)).toBe("1.5 min");
    expect(formatPeriod(3_600_000)).toBe("1 h");
    expect(formatPeriod(86_400_000)).toBe("1 d");
  });

  it("describes a policy, naming only what differs from the defaults", () => {
    expect(formatPolicy(policy())).toBe("2 per 1 min per key");
    expect(formatPolicy(policy({ permits: 10, burst: 20 }))).toBe("10 per 1 min per key, burst 20");
    expect(formatPolicy(policy({ overflowBehavior: "DISCARD", startEmpty: true, throttleRetries: false }))).toBe(
      "2 per 1 min per key, starts empty, retries not throttled, discard when spent",
    );
  });

  it("says how full the parking lot is, with a tone", () => {
    expect(parkingFill(0, 2000)).toEqual({ text: "0%", tone: "ok" });
    expect(parkingFill(4, 2000)).toEqual({ text: "0.2%", tone: "info" });
    expect(parkingFill(1, 5000)).toEqual({ text: "<0.1%", tone: "info" });
    expect(parkingFill(700, 2000)).toEqual({ text: "35%", tone: "info" });
    expect(parkingFill(1600, 2000)).toEqual({ text: "80%", tone: "warn" });
    expect(parkingFill(2000, 2000)).toEqual({ text: "100%", tone: "bad" });
    expect(parkingFill(3, 0)).toEqual({ text: "—", tone: "muted" });
  });

  it("shows the random tail of a UUIDv7 task id", () => {
    expect(taskIdTail("01a2417f-5c3e-7a01-8b2c-4d5e6f708192")).toBe("…4d5e6f708192");
  });

  it("links the throttling page of a configured docs site", () => {
    expect(throttlingDocsUrl(null)).toBeNull();
    expect(throttlingDocsUrl("https://docs.example.com/evertask/")).toBe("https://docs.example.com/evertask/throttling/");
    expect(throttlingDocsUrl("https://docs.example.com/evertask")).toBe("https://docs.example.com/evertask/throttling/");
    expect(throttlingDocsUrl("https://docs.example.com/evertask", "adaptive-throttling")).toBe(
      "https://docs.example.com/evertask/throttling/#adaptive-throttling",
    );
    expect(throttlingDocsUrl(null, "adaptive-throttling")).toBeNull();
  });

  it("formats bytes in binary units and CPU in cores", () => {
    expect(formatBytes(0)).toBe("0 B");
    expect(formatBytes(512)).toBe("512 B");
    expect(formatBytes(1536)).toBe("1.5 KiB");
    expect(formatBytes(300 * 1024 ** 2)).toBe("300 MiB");
    expect(formatBytes(812.44 * 1024 ** 2)).toBe("812 MiB");
    expect(formatBytes(12.34 * 1024 ** 2)).toBe("12.3 MiB");
    expect(formatBytes(2 * 1024 ** 3)).toBe("2 GiB");
    expect(formatCores(0.4219)).toBe("0.42 cores");
    expect(formatCores(1)).toBe("1 core");
    expect(formatCores(1.25)).toBe("1.25 cores");
    expect(formatCores(0)).toBe("0 cores");
  });

  it("says why adaptive throttling paused, and which measure is over", () => {
    expect(adaptiveReason("cpu")).toBe("CPU at or above its threshold");
    expect(adaptiveReason("memory")).toBe("memory at or above its threshold");
    expect(adaptiveReason("cpu,memory")).toBe("CPU and memory at or above their thresholds");
    expect(adaptiveReason(null)).toBe("—");
    expect(measureTone(0.9, 0.85)).toBe("bad");
    expect(measureTone(0.85, 0.85)).toBe("bad"); // at the threshold pauses
    expect(measureTone(0.5, 0.85)).toBe("ok");
    expect(measureTone(null, 0.85)).toBe("muted");
    expect(measureTone(100, null)).toBe("muted");
  });

  it("says in the header line where budgets live and what is this host's", () => {
    expect(scopeLabel(true)).toBe("cluster-wide budgets");
    expect(scopeLabel(false)).toBe("per-host budgets");
    expect(summaryLine(limits({ parkedTaskCount: 4, handlers: [handler(), handler()] }))).toBe(
      "cluster-wide budgets · this host: 4 parked · 2 throttled handlers",
    );
    expect(summaryLine(limits({ clusterWide: false, handlers: [handler()] }))).toBe(
      "per-host budgets · this host: 0 parked · 1 throttled handler",
    );
    expect(summaryLine(limits({ adaptive: adaptive({ paused: true, reason: "cpu" }) }))).toBe(
      "cluster-wide budgets · this host: 0 parked · 0 throttled handlers · paused by adaptive throttling",
    );
    expect(summaryLine(limits({ adaptive: adaptive() }))).not.toContain("paused");
  });
});

describe("RateLimitsView", () => {
  it("says a standalone monitor needs a running host", () => {
    const root = render({ ...limits(), available: false, clusterWide: false });
    expect(byTestId(root, "ratelimits-unavailable")).toHaveLength(1);
    expect(root.textContent).toContain("Needs a running host");
    expect(byTestId(root, "kpi-parked")).toHaveLength(0);
    expect(byTestId(root, "adaptive-state")).toHaveLength(0);
  });

  it("explains how to declare a rate limit when no handler does", () => {
    const root = render(limits());
    const empty = byTestId(root, "ratelimits-empty")[0];
    expect(empty.textContent).toContain("rate_limit = RateLimitPolicy(10, timedelta(minutes=1))");
    expect(empty.textContent).toContain("max_concurrency = 2");
    expect(empty.textContent).toContain("at most 2 at once across the cluster");
    const perHost = byTestId(render(limits({ clusterWide: false })), "ratelimits-empty")[0];
    expect(perHost.textContent).toContain("at most 2 at once on this host");
    expect(byTestId(root, "throttling-docs")[0].tagName).toBe("SPAN"); // no docs site configured
    expect(byTestId(root, "throttling-docs")[0].textContent).toContain("docs/throttling.md");
    expect(byTestId(root, "parked-table")).toHaveLength(0);
    const linked = render(limits(), "https://docs.example.com/evertask/");
    const link = byTestId(linked, "throttling-docs")[0] as HTMLAnchorElement;
    expect(link.getAttribute("href")).toBe("https://docs.example.com/evertask/throttling/");
  });

  it("shows the counters, the handlers, the parked keys and the parked tasks", () => {
    const root = render(
      limits({
        parkedTaskCount: 3,
        maxParkedTasks: 1000,
        trackedKeyCount: 2,
        failOpenCount: 4,
        parked: [
          {
            taskId: "0196a3c1-aaaa-7000-8000-000000000001",
            taskType: "app.tasks.Call",
            shortType: "Call",
            queueName: "default",
            rateLimitKey: "tenant-a",
            untilUtc: "2026-03-02T09:00:30Z",
            parkedAtUtc: "2026-03-02T08:59:48Z",
          },
        ],
        keys: [
          {
            taskType: "app.tasks.Call",
            shortType: "Call",
            rateLimitKey: "tenant-a",
            queueName: "default",
            parkedCount: 3,
            nextSlotUtc: "2026-03-02T09:00:30Z",
            lastSlotUtc: "2026-03-02T09:01:30Z",
          },
        ],
        handlers: [
          handler({ parked: 3 }),
          handler({
            handler: "app.handlers:RenderHandler",
            shortHandler: "RenderHandler",
            shortType: "Render",
            queueName: "reports",
            rateLimit: null,
            maxConcurrency: 2,
            running: 2,
            waiting: 5,
          }),
        ],
      }),
    );
    expect(byTestId(root, "kpi-parked")[0].textContent).toBe("3");
    expect(byTestId(root, "parking-fill")[0].textContent).toBe("0.3% of the maximum");
    expect(byTestId(root, "kpi-max-parked")[0].textContent).toBe("1,000");
    expect(byTestId(root, "kpi-tracked-keys")[0].textContent).toBe("2");
    expect(byTestId(root, "kpi-fail-open")[0].querySelector(".tone-warn")?.textContent).toBe("4");

    const [call, render_] = byTestId(root, "throttled-handler");
    expect(call.dataset.handler).toBe("CallHandler");
    expect(call.querySelector('[data-testid="handler-rate-limit"]')?.textContent).toBe("2 per 1 min per key");
    expect(call.querySelector('[data-testid="handler-running"]')?.textContent).toBe("—");
    expect(call.querySelector('[data-testid="handler-parked"]')?.textContent).toBe("3");
    expect(call.textContent).toContain("default");
    expect(render_.querySelector('[data-testid="handler-max-concurrency"]')?.textContent).toBe("2");
    expect(render_.querySelector('[data-testid="handler-running"]')?.textContent).toBe("2");
    expect(render_.querySelector('[data-testid="handler-waiting-badge"]')?.textContent).toBe("5");
    expect(render_.querySelector('[data-testid="handler-parked"]')?.textContent).toBe("—");

    const [key] = byTestId(root, "parked-key");
    expect(key.dataset.key).toBe("tenant-a");
    expect(key.querySelector('[data-testid="key-parked"]')?.textContent).toBe("3");
    expect(key.querySelector('[data-testid="key-next-slot"]')?.textContent).toContain("in 30 s");

    const [task] = byTestId(root, "parked-task");
    const link = task.querySelector<HTMLAnchorElement>('[data-testid="parked-link"]');
    expect(link?.getAttribute("href")).toBe("/tasks/0196a3c1-aaaa-7000-8000-000000000001");
    expect(link?.textContent).toBe("…000000000001");
    expect(task.querySelector('[data-testid="parked-key-name"]')?.textContent).toBe("tenant-a");
    expect(task.querySelector('[data-testid="parked-until"]')?.textContent).toContain("in 30 s");
    expect(task.querySelector('[data-testid="parked-since"]')?.textContent).toContain("12 s ago");
    expect(byTestId(root, "parked-summary")[0].textContent).toContain("The 1 earliest of 3 parked tasks.");
    expect(byTestId(root, "ratelimits-empty")).toHaveLength(0);
  });

  it("says budgets and permits are shared through the database when cluster-wide", () => {
    const root = render(limits({ handlers: [handler()] }));
    const scope = byTestId(root, "ratelimits-scope")[0].textContent ?? "";
    expect(scope).toContain("shared by every node through the database");
    expect(scope).toContain("max_concurrency permits");
    expect(scope).toContain("The parked, running and waiting runs shown are this host's.");
    expect(scope).not.toContain("per host");
    expect(root.textContent).toContain("keys this host drew from (budgets in the database)");
  });

  it("says budgets and permits are per host otherwise", () => {
    const root = render(limits({ clusterWide: false, handlers: [handler()] }));
    const scope = byTestId(root, "ratelimits-scope")[0].textContent ?? "";
    expect(scope).toContain("permits are per host");
    expect(scope).toContain("set_cluster_wide(False)");
    expect(scope).toContain("these are this host's figures");
    expect(scope).not.toContain("database");
    expect(root.textContent).toContain("budgets held in memory");
  });

  it("explains how to turn adaptive throttling on when it is not configured", () => {
    const root = render(limits());
    const off = byTestId(root, "adaptive-disabled")[0];
    expect(byTestId(root, "adaptive-state")[0].textContent).toBe("not configured");
    expect(off.textContent).toContain("configure_adaptive_throttling(...)");
    expect(off.textContent).toContain(".set_cpu_threshold(0.85)");
    expect(off.textContent).toContain(".set_memory_threshold_bytes(2 * 1024**3)");
    expect(byTestId(root, "adaptive-docs")[0].textContent).toContain("docs/throttling.md#adaptive-throttling");
    expect(byTestId(root, "adaptive-enabled")).toHaveLength(0);
    const linked = render(limits(), "https://docs.example.com/evertask/");
    expect(byTestId(linked, "adaptive-docs")[0].getAttribute("href")).toBe(
      "https://docs.example.com/evertask/throttling/#adaptive-throttling",
    );
  });

  it("shows adaptive throttling running, with its measures against the thresholds", () => {
    const root = render(limits({ adaptive: adaptive({ pauses: 2 }) }));
    expect(byTestId(root, "adaptive-disabled")).toHaveLength(0);
    expect(byTestId(root, "adaptive-state")[0].textContent).toBe("running");
    expect(byTestId(root, "adaptive-reason")).toHaveLength(0);
    expect(byTestId(root, "adaptive-since")).toHaveLength(0);
    const cpu = byTestId(root, "adaptive-cpu")[0];
    expect(cpu.textContent).toBe("0.42 cores · threshold 0.85 cores");
    expect(cpu.querySelector(".tone-ok")?.textContent).toBe("0.42 cores");
    expect(byTestId(root, "adaptive-memory")[0].textContent).toBe("300 MiB · threshold 2 GiB");
    expect(byTestId(root, "adaptive-pauses")[0].textContent).toBe("2");
  });

  it("shows adaptive throttling paused: why, since when, the measure over its threshold", () => {
    const root = render(
      limits({
        adaptive: adaptive({
          paused: true,
          reason: "cpu",
          since: "2026-03-02T08:59:15Z",
          cpu: 1.25,
          memoryBytes: 1536,
          memoryThresholdBytes: null,
          pauses: 1,
        }),
      }),
    );
    expect(byTestId(root, "adaptive-state")[0].textContent).toBe("paused");
    expect(byTestId(root, "adaptive-state")[0].className).toContain("tone-bg-bad");
    expect(byTestId(root, "adaptive-reason")[0].textContent).toBe("CPU at or above its threshold");
    const since = byTestId(root, "adaptive-since")[0].textContent ?? "";
    expect(since).toContain("45 s ago");
    expect(since).toContain("2026");
    expect(byTestId(root, "adaptive-cpu")[0].querySelector(".tone-bad")?.textContent).toBe("1.25 cores");
    expect(byTestId(root, "adaptive-memory")[0].textContent).toBe("1.5 KiB · not checked");
    expect(byTestId(root, "adaptive-pauses")[0].textContent).toBe("1");
  });

  it("puts a configured throttle before the parked runs, how to configure one after them", () => {
    const follows = (a: HTMLElement, b: HTMLElement) =>
      (a.compareDocumentPosition(b) & Node.DOCUMENT_POSITION_FOLLOWING) !== 0;
    const on = render(limits({ handlers: [handler()], adaptive: adaptive() }));
    expect(follows(byTestId(on, "handler-table")[0], byTestId(on, "adaptive-enabled")[0])).toBe(true);
    expect(follows(byTestId(on, "adaptive-enabled")[0], byTestId(on, "key-table")[0])).toBe(true);
    const off = render(limits({ handlers: [handler()] }));
    expect(follows(byTestId(off, "parked-table")[0], byTestId(off, "adaptive-disabled")[0])).toBe(true);
  });

  it("says when adaptive throttling has not sampled yet", () => {
    const root = render(limits({ adaptive: adaptive({ cpu: null, memoryBytes: null }) }));
    expect(byTestId(root, "adaptive-cpu")[0].textContent).toBe("not sampled yet · threshold 0.85 cores");
    expect(byTestId(root, "adaptive-memory")[0].textContent).toBe("not sampled yet · threshold 2 GiB");
  });

  it("says nothing is parked when every key is within its budget", () => {
    const root = render(limits({ handlers: [handler()] }));
    expect(byTestId(root, "no-parked")[0].textContent).toContain("every key is within its budget");
    expect(byTestId(root, "parked-task")).toHaveLength(0);
    expect(byTestId(root, "parked-summary")[0].textContent).not.toContain("earliest");
  });

  it("lists no parked sections for handlers with only a concurrency limit", () => {
    const root = render(limits({ handlers: [handler({ rateLimit: null, maxConcurrency: 1, running: 0, waiting: 0 })] }));
    expect(byTestId(root, "handler-table")).toHaveLength(1);
    expect(byTestId(root, "key-table")).toHaveLength(0);
    expect(byTestId(root, "handler-waiting")[0].textContent).toBe("0");
  });
});
