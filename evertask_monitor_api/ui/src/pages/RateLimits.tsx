import { type ReactNode, useEffect } from "react";
import { Link } from "react-router-dom";
import type { AdaptiveThrottling, RateLimits, ThrottledHandler } from "../api";
import { Badge, Card, ErrorBox, Kpi, Page } from "../components";
import { formatDate, formatRelative } from "../format";
import {
  adaptiveReason,
  formatBytes,
  formatCores,
  formatPolicy,
  measureTone,
  parkingFill,
  summaryLine,
  taskIdTail,
  throttlingDocsUrl,
} from "../ratelimits";
import { useApi, useSession } from "../state";

/** Slots come due and budgets refill without a task event: the page also reloads on its own. */
const REFRESH_MS = 5000;
/** Parked runs listed (the counts and the per-key summary cover all of them). */
const PARKED_LIMIT = 200;

/** The handler example; its \`max_concurrency\` comment says where the limit holds. */
const example = (clusterWide: boolean) => `from datetime import timedelta
from evertask_abstractions import EverTask, EverTaskHandler, RateLimitPolicy


class SyncInvoices(EverTask):
    tenant_id: str

    @property
    def rate_limit_key(self) -> str:    # the budget this task draws from
        return self.tenant_id


class SyncInvoicesHandler(EverTaskHandler[SyncInvoices]):
    rate_limit = RateLimitPolicy(10, timedelta(minutes=1))  # 10 starts a minute per tenant
    max_concurrency = 2                                    # at most 2 at once ${clusterWide ? "across the cluster" : "on this host"}

    async def handle(self, task, cancellation): ...`;

const ADAPTIVE_EXAMPLE = `add_evertask(container, lambda opt: opt
    .register_tasks_from_module(my_app.tasks)
    .configure_adaptive_throttling(lambda a: a
        .set_cpu_threshold(0.85)                    # 85 % of one core
        .set_memory_threshold_bytes(2 * 1024**3)))  # 2 GiB resident`;

function When({ value, now, testId }: { value: string; now: number; testId?: string }) {
  return (
    <div data-testid={testId}>
      {formatRelative(value, now)}
      <div className="muted small">{formatDate(value, true)}</div>
    </div>
  );
}

function DocsLink({
  docsUrl,
  anchor,
  testId = "throttling-docs",
}: {
  docsUrl: string | null | undefined;
  anchor?: string;
  testId?: string;
}) {
  const url = throttlingDocsUrl(docsUrl, anchor);
  const title = anchor ? "Adaptive throttling" : "Throttling: rate limits and concurrency limits";
  return url ? (
    <a href={url} target="_blank" rel="noreferrer" data-testid={testId}>
      {title}
    </a>
  ) : (
    <span data-testid={testId}>
      the <em>{title}</em> {anchor ? "section" : "page"} of the EverTask documentation (
      <code>docs/throttling.md{anchor ? `#${anchor}` : ""}</code>)
    </span>
  );
}

/** What the handler figures mean: shared budgets and permits, this host's runs. */
function ScopeNote({ clusterWide }: { clusterWide: boolean }) {
  return (
    <p className="muted small" data-testid="ratelimits-scope">
      {clusterWide ? (
        <>
          Budgets and <code>max_concurrency</code> permits are shared by every node through the database: a key's rate
          and a handler's concurrency hold across the cluster. The parked, running and waiting runs shown are this
          host's.
        </>
      ) : (
        <>
          Budgets and <code>max_concurrency</code> permits are per host (the memory storage, or{" "}
          <code>set_cluster_wide(False)</code>): every node has its own, and these are this host's figures.
        </>
      )}{" "}
      Running and waiting count the runs holding or waiting for a permit; waiting runs hold no queue lane.
    </p>
  );
}

/** Shown when no handler of this host declares a rate limit or a concurrency limit. */
export function HowToDeclare({ docsUrl, clusterWide }: { docsUrl: string | null | undefined; clusterWide: boolean }) {
  return (
    <Card title="No throttled handler" className="empty-state">
      <div data-testid="ratelimits-empty">
        <p>
          No handler registered on this host declares a <code>rate_limit</code> or a <code>max_concurrency</code>, so
          nothing is ever parked or held back here. Declare them on the handler class; the task's{" "}
          <code>rate_limit_key</code> (or the handler's <code>get_rate_limit_key</code>) names the budget it draws from:
        </p>
        <pre className="json">{example(clusterWide)}</pre>
        <p className="muted">
          A start over budget is parked until its reserved slot, without holding a queue lane; see{" "}
          <DocsLink docsUrl={docsUrl} />.
        </p>
      </div>
    </Card>
  );
}

/** Standalone monitor: budgets, parked runs and permits live in a running host's memory. */
export function NeedsHost() {
  return (
    <Card title="Needs a running host" className="empty-state">
      <div data-testid="ratelimits-unavailable">
        <p>
          This monitor runs standalone over the database, without an EverTask host. Parked tasks, runs waiting for a
          concurrency permit and adaptive throttling are kept in the memory of the hosts that run the tasks (and so are
          budgets and permits, unless they are shared cluster-wide through the database), so there is nothing to show
          here.
        </p>
        <p className="muted">
          Open the dashboard mounted in that application (<code>add_monitoring_api</code>) to see them; parked tasks
          show up in the task list here as <em>Queued</em>.
        </p>
      </div>
    </Card>
  );
}

function Field({ label, children }: { label: string; children: ReactNode }) {
  return (
    <>
      <dt>{label}</dt>
      <dd>{children}</dd>
    </>
  );
}

/** A measure against its threshold: "1.25 cores · threshold 0.85 cores". */
function Measure({
  value,
  threshold,
  format,
  testId,
}: {
  value: number | null;
  threshold: number | null;
  format: (v: number) => string;
  testId: string;
}) {
  return (
    <span data-testid={testId}>
      {value === null ? (
        <span className="muted">not sampled yet</span>
      ) : (
        <span className={`tone-${measureTone(value, threshold)}`}>{format(value)}</span>
      )}
      <span className="muted"> · {threshold === null ? "not checked" : `threshold ${format(threshold)}`}</span>
    </span>
  );
}

/** Adaptive throttling of this host: off (how to turn it on), or running / paused with why,
 * since when, the last CPU and memory sample against their thresholds and the pauses so far. */
export function AdaptiveCard({
  adaptive,
  now,
  docsUrl,
}: {
  adaptive: AdaptiveThrottling;
  now: number;
  docsUrl: string | null | undefined;
}) {
  if (!adaptive.enabled) {
    return (
      <Card title="Adaptive throttling">
        <div data-testid="adaptive-disabled">
          <p>
            <Badge tone="muted" testId="adaptive-state">
              not configured
            </Badge>{" "}
            This host takes new work whatever its CPU and memory. Set a threshold with{" "}
            <code>configure_adaptive_throttling(...)</code> and the node stops starting runs while its process is above
            it (running ones finish; in a cluster the other nodes take the work):
          </p>
          <pre className="json">{ADAPTIVE_EXAMPLE}</pre>
          <p className="muted">
            See <DocsLink docsUrl={docsUrl} anchor="adaptive-throttling" testId="adaptive-docs" />.
          </p>
        </div>
      </Card>
    );
  }
  return (
    <Card title="Adaptive throttling">
      <div data-testid="adaptive-enabled">
        <p className="muted small">
          {adaptive.paused ? (
            <Badge tone="bad" testId="adaptive-state">
              paused
            </Badge>
          ) : (
            <Badge tone="ok" testId="adaptive-state">
              running
            </Badge>
          )}{" "}
          {adaptive.paused
            ? "This host starts no new run while its process is overloaded: running ones finish, dispatches are still accepted and wait in their queues, and in a cluster the other nodes take the work. It resumes once every measure is back under its resume ratio (90 % of the threshold by default)."
            : "This host takes new work; it pauses when its process's CPU or memory reaches a threshold."}
        </p>
        <dl className="fields">
          {adaptive.paused && (
            <>
              <Field label="Reason">
                <span data-testid="adaptive-reason">{adaptiveReason(adaptive.reason)}</span>
              </Field>
              <Field label="Since">
                {adaptive.since ? <When value={adaptive.since} now={now} testId="adaptive-since" /> : "—"}
              </Field>
            </>
          )}
          <Field label="CPU">
            <Measure value={adaptive.cpu} threshold={adaptive.cpuThreshold} format={formatCores} testId="adaptive-cpu" />
            <div className="muted small">CPU seconds per second of this process: 1.0 = one core busy</div>
          </Field>
          <Field label="Memory">
            <Measure
              value={adaptive.memoryBytes}
              threshold={adaptive.memoryThresholdBytes}
              format={formatBytes}
              testId="adaptive-memory"
            />
            <div className="muted small">resident set of this process</div>
          </Field>
          <Field label="Pauses">
            <span data-testid="adaptive-pauses">{adaptive.pauses.toLocaleString("en-US")}</span>{" "}
            <span className="muted">since the host started</span>
          </Field>
        </dl>
      </div>
    </Card>
  );
}

function HandlerRow({ h }: { h: ThrottledHandler }) {
  return (
    <tr data-testid="throttled-handler" data-handler={h.shortHandler}>
      <td title={h.handler}>{h.shortHandler}</td>
      <td title={h.taskType}>
        <Link to={`/tasks?taskType=${encodeURIComponent(h.shortType)}`}>{h.shortType}</Link>
      </td>
      <td>{h.queueName ?? <span className="muted">default</span>}</td>
      <td data-testid="handler-rate-limit">{h.rateLimit ? formatPolicy(h.rateLimit) : "—"}</td>
      <td data-testid="handler-max-concurrency">{h.maxConcurrency ?? "—"}</td>
      <td data-testid="handler-running">{h.running ?? "—"}</td>
      <td data-testid="handler-waiting">
        {h.waiting ? (
          <Badge tone="warn" testId="handler-waiting-badge">
            {h.waiting}
          </Badge>
        ) : (
          (h.waiting ?? "—")
        )}
      </td>
      <td data-testid="handler-parked">{h.rateLimit ? h.parked : "—"}</td>
    </tr>
  );
}

/** The page's content for one answer of `GET /ratelimits` (rendered at `now`). */
export function RateLimitsView({
  data,
  now,
  docsUrl,
}: {
  data: RateLimits;
  now: number;
  docsUrl?: string | null;
}) {
  if (!data.available) return <NeedsHost />;
  const fill = parkingFill(data.parkedTaskCount, data.maxParkedTasks);
  const rateLimited = data.handlers.some((h) => h.rateLimit !== null);
  // configured, its state comes right after the handlers; not configured, how to turn it on
  // comes last, after what is parked
  const adaptiveCard = (configured: boolean) =>
    data.adaptive.enabled === configured && <AdaptiveCard adaptive={data.adaptive} now={now} docsUrl={docsUrl} />;
  return (
    <>
      <div className="kpis">
        <Kpi
          label="Parked tasks"
          value={data.parkedTaskCount.toLocaleString("en-US")}
          hint={
            <span className={`tone-${fill.tone}`} data-testid="parking-fill">
              {fill.text} of the maximum
            </span>
          }
          testId="kpi-parked"
        />
        <Kpi
          label="Max parked tasks"
          value={data.maxParkedTasks.toLocaleString("en-US")}
          hint="beyond it, gated lanes pause"
          testId="kpi-max-parked"
        />
        <Kpi
          label="Tracked keys"
          value={data.trackedKeyCount.toLocaleString("en-US")}
          hint={data.clusterWide ? "keys this host drew from (budgets in the database)" : "budgets held in memory"}
          testId="kpi-tracked-keys"
        />
        <Kpi
          label="Fail-open starts"
          value={
            data.failOpenCount > 0 ? (
              <span className="tone-warn">{data.failOpenCount.toLocaleString("en-US")}</span>
            ) : (
              "0"
            )
          }
          hint="let through past max_tracked_keys"
          testId="kpi-fail-open"
        />
      </div>
      {data.handlers.length === 0 ? (
        <HowToDeclare docsUrl={docsUrl} clusterWide={data.clusterWide} />
      ) : (
        <Card title="Throttled handlers">
          <ScopeNote clusterWide={data.clusterWide} />
          <table className="table" data-testid="handler-table">
            <thead>
              <tr>
                <th>Handler</th>
                <th>Task type</th>
                <th>Queue</th>
                <th>Rate limit</th>
                <th>Max concurrency</th>
                <th>Running</th>
                <th>Waiting</th>
                <th>Parked</th>
              </tr>
            </thead>
            <tbody>
              {data.handlers.map((h) => (
                <HandlerRow key={h.handler} h={h} />
              ))}
            </tbody>
          </table>
        </Card>
      )}
      {adaptiveCard(true)}
      {(rateLimited || data.parkedTaskCount > 0) && (
        <>
          <Card title="Parked keys">
            <table className="table" data-testid="key-table">
              <thead>
                <tr>
                  <th>Task type</th>
                  <th>Key</th>
                  <th>Queue</th>
                  <th>Parked</th>
                  <th>Next slot</th>
                  <th>Last slot</th>
                </tr>
              </thead>
              <tbody>
                {data.keys.map((k) => (
                  <tr key={`${k.taskType}\u0000${k.rateLimitKey}`} data-testid="parked-key" data-key={k.rateLimitKey}>
                    <td title={k.taskType}>{k.shortType}</td>
                    <td>
                      <code>{k.rateLimitKey}</code>
                    </td>
                    <td>{k.queueName}</td>
                    <td data-testid="key-parked">{k.parkedCount}</td>
                    <td>
                      <When value={k.nextSlotUtc} now={now} testId="key-next-slot" />
                    </td>
                    <td>
                      <When value={k.lastSlotUtc} now={now} />
                    </td>
                  </tr>
                ))}
                {data.keys.length === 0 && (
                  <tr>
                    <td colSpan={6} className="muted" data-testid="no-parked">
                      Nothing is parked: every key is within its budget.
                    </td>
                  </tr>
                )}
              </tbody>
            </table>
          </Card>
          <Card title="Parked tasks">
            <p className="muted small" data-testid="parked-summary">
              {data.parked.length < data.parkedTaskCount
                ? `The ${data.parked.length.toLocaleString("en-US")} earliest of ${data.parkedTaskCount.toLocaleString("en-US")} parked tasks. `
                : ""}
              A parked task stays Queued in the storage and starts at its reserved slot; cancelling it drops it.
            </p>
            <table className="table" data-testid="parked-table">
              <thead>
                <tr>
                  <th>Task</th>
                  <th>Type</th>
                  <th>Key</th>
                  <th>Queue</th>
                  <th>Throttled until</th>
                  <th>Parked since</th>
                </tr>
              </thead>
              <tbody>
                {data.parked.map((p) => (
                  <tr key={p.taskId} data-testid="parked-task" data-task-id={p.taskId}>
                    <td title={p.taskId}>
                      <Link to={`/tasks/${p.taskId}`} data-testid="parked-link">
                        <code>{taskIdTail(p.taskId)}</code>
                      </Link>
                    </td>
                    <td title={p.taskType}>{p.shortType}</td>
                    <td data-testid="parked-key-name">
                      <code>{p.rateLimitKey}</code>
                    </td>
                    <td>{p.queueName}</td>
                    <td>
                      <When value={p.untilUtc} now={now} testId="parked-until" />
                    </td>
                    <td>
                      <When value={p.parkedAtUtc} now={now} testId="parked-since" />
                    </td>
                  </tr>
                ))}
                {data.parked.length === 0 && (
                  <tr>
                    <td colSpan={6} className="muted">
                      No task is parked now.
                    </td>
                  </tr>
                )}
              </tbody>
            </table>
          </Card>
        </>
      )}
      {adaptiveCard(false)}
    </>
  );
}

export function RateLimitsPage() {
  const { config } = useSession();
  const limits = useApi<RateLimits>("/ratelimits", { limit: PARKED_LIMIT });
  const { reload } = limits;
  const available = limits.data?.available ?? true;
  useEffect(() => {
    if (!available) return undefined; // standalone: nothing will change
    const timer = setInterval(reload, REFRESH_MS);
    return () => clearInterval(timer);
  }, [reload, available]);

  return (
    <Page
      title="Rate limits"
      actions={
        limits.data?.available && (
          <span className="muted" data-testid="ratelimits-summary">
            {summaryLine(limits.data)}
          </span>
        )
      }
    >
      <ErrorBox error={limits.error} />
      {limits.data && <RateLimitsView data={limits.data} now={Date.now()} docsUrl={config.docsUrl} />}
    </Page>
  );
}
