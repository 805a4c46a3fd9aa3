import { useState } from "react";
import { Link } from "react-router-dom";
import { api } from "../api";
import type { QueueConfiguration } from "../api";
import { GroupedBars, Legend } from "../charts";
import { Badge, Card, ErrorBox, Page } from "../components";
import { formatDuration, formatPercent } from "../format";
import { useApi, useSession } from "../state";

export function QueuesPage() {
  const { config } = useSession();
  const queues = useApi<QueueConfiguration[]>("/queues/configurations");
  const [error, setError] = useState<string | null>(null);
  const [busy, setBusy] = useState<string | null>(null);

  const toggle = async (q: QueueConfiguration) => {
    setBusy(q.queueName);
    setError(null);
    try {
      await api.post(`/queues/${encodeURIComponent(q.queueName)}/${q.paused ? "resume" : "pause"}`);
      queues.reload();
    } catch (e) {
      setError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(null);
    }
  };

  const data = queues.data ?? [];
  return (
    <Page title="Queues">
      <ErrorBox error={queues.error ?? error} />
      <div className="queue-grid">
        {data.map((q) => (
          <Card key={q.queueName} className="queue-card">
            <div className="queue-head" data-testid={`queue-${q.queueName}`}>
              <h2>
                <Link to={`/tasks?queueName=${encodeURIComponent(q.queueName)}`}>{q.queueName}</Link>
              </h2>
              {q.paused ? (
                <Badge tone="warn" testId={`queue-state-${q.queueName}`}>
                  paused
                </Badge>
              ) : (
                <Badge tone="ok" testId={`queue-state-${q.queueName}`}>
                  running
                </Badge>
              )}
            </div>
            <dl className="fields compact">
              <dt>Pending</dt>
              <dd data-testid={`queue-pending-${q.queueName}`}>{q.pendingTasks}</dd>
              <dt>Running</dt>
              <dd>{q.inProgressTasks}</dd>
              <dt>Completed</dt>
              <dd>{q.completedTasks}</dd>
              <dt>Failed</dt>
              <dd>{q.failedTasks}</dd>
              <dt>Success rate</dt>
              <dd data-testid={`queue-success-${q.queueName}`}>{formatPercent(q.successRate)}</dd>
              <dt>Avg execution (24 h)</dt>
              <dd>{formatDuration(q.avgExecutionTimeMs)}</dd>
            </dl>
            {q.configured ? (
              <dl className="fields compact config">
                <dt>Parallelism</dt>
                <dd>{q.maxDegreeOfParallelism}</dd>
                <dt>Capacity</dt>
                <dd>{q.channelCapacity}</dd>
                <dt>When full</dt>
                <dd>{q.queueFullBehavior ? q.queueFullBehavior.replace(/_/g, " ").toLowerCase() : "—"}</dd>
                <dt>Default timeout</dt>
                <dd>{q.defaultTimeoutMs ? formatDuration(q.defaultTimeoutMs) : "none"}</dd>
                <dt>In memory now</dt>
                <dd>{q.waitingInMemory}</dd>
              </dl>
            ) : (
              <p className="muted small">Not configured in this process.</p>
            )}
            {!config.readOnly && q.configured && (
              <button
                type="button"
                className={q.paused ? "primary" : ""}
                data-testid={`${q.paused ? "resume" : "pause"}-queue-${q.queueName}`}
                disabled={busy === q.queueName}
                onClick={() => toggle(q)}
              >
                {q.paused ? "Resume" : "Pause"}
              </button>
            )}
          </Card>
        ))}
      </div>
      {data.length > 0 && (
        <Card title="Comparison">
          <GroupedBars
            label="Tasks per queue"
            groups={data.map((q) => ({
              label: q.queueName,
              parts: [
                { name: "Pending", value: q.pendingTasks, tone: "muted" },
                { name: "Running", value: q.inProgressTasks, tone: "info" },
                { name: "Completed", value: q.completedTasks, tone: "ok" },
                { name: "Failed", value: q.failedTasks, tone: "bad" },
              ],
            }))}
          />
          <Legend
            items={[
              { name: "Pending", tone: "muted" },
              { name: "Running", tone: "info" },
              { name: "Completed", tone: "ok" },
              { name: "Failed", tone: "bad" },
            ]}
          />
        </Card>
      )}
    </Page>
  );
}
