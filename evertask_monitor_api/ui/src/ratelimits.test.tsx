// @vitest-environment happy-dom
// The rate-limits page rendered to markup (react-dom/server) and read back through a DOM.

import { renderToStaticMarkup } from "react-dom/server";
import { MemoryRouter } from "react-router-dom";
import { describe, expect, it } from "vitest";
import type { RateLimitPolicy, RateLimits, ThrottledHandler } from "./api";
import { RateLimitsView } from "./pages/RateLimits";
import { formatPeriod, formatPolicy, parkingFill, taskIdTail, throttlingDocsUrl } from "./ratelimits";

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

function limits(extra: Partial<RateLimits> = {}): RateLimits {
  return {
    available: true,
    parkedTaskCount: 0,
    maxParkedTasks: 2000,
    trackedKeyCount: 0,
    failOpenCount: 0,
    parked: [],
    keys: [],
    handlers: [],
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
  });
});

describe("RateLimitsView", () => {
  it("says a standalone monitor needs a running host", () => {
    const root = render({ ...limits(), available: false });
    expect(byTestId(root, "ratelimits-unavailable")).toHaveLength(1);
    expect(root.textContent).toContain("Needs a running host");
    expect(byTestId(root, "kpi-parked")).toHaveLength(0);
  });

  it("explains how to declare a rate limit when no handler does", () => {
    const root = render(limits());
    const empty = byTestId(root, "ratelimits-empty")[0];
    expect(empty.textContent).toContain("rate_limit = RateLimitPolicy(10, timedelta(minutes=1))");
    expect(empty.textContent).toContain("max_concurrency = 2");
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
