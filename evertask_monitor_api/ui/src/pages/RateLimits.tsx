import { useEffect } from "react";
import { Link } from "react-router-dom";
import type { RateLimits, ThrottledHandler } from "../api";
import { Badge, Card, ErrorBox, Kpi, Page } from "../components";
import { formatDate, formatRelative } from "../format";
import { formatPolicy, parkingFill, taskIdTail, throttlingDocsUrl } from "../ratelimits";
import { useApi, useSession } from "../state";

/** Slots come due and budgets refill without a task event: the page also reloads on its own. */
const REFRESH_MS = 5000;
/** Parked runs listed (the counts and the per-key summary cover all of them). */
const PARKED_LIMIT = 200;

const EXAMPLE = `from datetime import timedelta
from evertask_abstractions import EverTask, EverTaskHandler, RateLimitPolicy


class SyncInvoices(EverTask):
    tenant_id: str

    @property
    def rate_limit_key(self) -> str:    # the budget this task draws from
        return self.tenant_id


class SyncInvoicesHandler(EverTaskHandler[SyncInvoices]):
    rate_limit = RateLimitPolicy(10, timedelta(minutes=1))  # 10 starts a minute per tenant
    max_concurrency = 2                                    # at most 2 at once on this host

    async def handle(self, task, cancellation): ...`;

function When({ value, now, testId }: { value: string; now: number; testId?: string }) {
  return (
    <div data-testid={testId}>
      {formatRelative(value, now)}
      <div className="muted small">{formatDate(value, true)}</div>
    </div>
  );
}

function DocsLink({ docsUrl }: { docsUrl: string | null | undefined }) {
  const url = throttlingDocsUrl(docsUrl);
  return url ? (
    <a href={url} target="_blank" rel="noreferrer" data-testid="throttling-docs">
      Throttling: rate limits and concurrency limits
    </a>
  ) : (
    <span data-testid="throttling-docs">
      the <em>Throttling</em> page of the EverTask documentation (<code>docs/throttling.md</code>)
    </span>
  );
}

/** Shown when no handler of this host declares a rate limit or a concurrency limit. */
export function HowToDeclare({ docsUrl }: { docsUrl: string | null | undefined }) {
  return (
    <Card title="No throttled handler" className="empty-state">
      <div data-testid="ratelimits-empty">
        <p>
          No handler registered on this host declares a <code>rate_limit</code> or a <code>max_concurrency</code>, so
          nothing is ever parked or held back here. Declare them on the handler class; the task's{" "}
          <code>rate_limit_key</code> (or the handler's <code>get_rate_limit_key</code>) names the budget it draws from:
        </p>
        <pre className="json">{EXAMPLE}</pre>
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
          This monitor runs standalone over the database, without an EverTask host. Rate-limit budgets, parked tasks and
          concurrency permits are kept in the memory of the host that runs the tasks, so there is nothing to show here.
        </p>
        <p className="muted">
          Open the dashboard mounted in that application (<code>add_monitoring_api</code>) to see them; parked tasks
          show up in the task list here as <em>Queued</em>.
        </p>
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
          hint="budgets held in memory"
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
        <HowToDeclare docsUrl={docsUrl} />
      ) : (
        <Card title="Throttled handlers">
          <p className="muted small">
            Budgets and permits are per host: this host's figures. Running and waiting count the runs holding or
            waiting for a <code>max_concurrency</code> permit; waiting runs hold no queue lane.
          </p>
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
            this host · {limits.data.parkedTaskCount} parked · {limits.data.handlers.length} throttled{" "}
            {limits.data.handlers.length === 1 ? "handler" : "handlers"}
          </span>
        )
      }
    >
      <ErrorBox error={limits.error} />
      {limits.data && <RateLimitsView data={limits.data} now={Date.now()} docsUrl={config.docsUrl} />}
    </Page>
  );
}
