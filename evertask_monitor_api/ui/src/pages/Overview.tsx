import { useState } from "react";
import { Link } from "react-router-dom";
import { RANGES, STATUSES } from "../api";
import type { Overview, Range, RecentActivity } from "../api";
import { HBars, Legend, StackedBars } from "../charts";
import { Badge, Card, ErrorBox, Kpi, Page, Segmented, StatusBadge } from "../components";
import { bucketLabel, formatDuration, formatNumber, formatPercent, formatTime, statusTone } from "../format";
import { useApi } from "../state";

/** Newest first by the time each line shows (its last run, else its creation). */
function byTimeShown(items: RecentActivity[]): RecentActivity[] {
  return [...items].sort((a, b) => Date.parse(b.timestamp) - Date.parse(a.timestamp));
}

export function OverviewPage() {
  const [range, setRange] = useState<Range>("Today");
  const overview = useApi<Overview>("/dashboard/overview", { range });
  const activity = useApi<RecentActivity[]>("/dashboard/recent-activity", { limit: 12 });
  const data = overview.data;

  return (
    <Page title="Overview" actions={<Segmented<Range> label="Range" value={range} options={RANGES} onChange={setRange} />}>
      <ErrorBox error={overview.error} />
      {data && (
        <>
          <div className="kpis">
            <Kpi label={`Tasks (${range})`} value={formatNumber(data.totalTasksInRange)} testId="kpi-total" />
            <Kpi
              label="Today / 7 days"
              value={`${formatNumber(data.totalTasksToday)} / ${formatNumber(data.totalTasksWeek)}`}
              testId="kpi-today"
            />
            <Kpi label="Success rate" value={formatPercent(data.successRate)} hint="completed / finished" testId="kpi-success" />
            <Kpi label="Failed" value={formatNumber(data.failedCount)} testId="kpi-failed" />
            <Kpi label="Avg execution" value={formatDuration(data.avgExecutionTimeMs)} hint="recent completed tasks" testId="kpi-avg" />
          </div>
          <div className="grid-2">
            <Card title="Status distribution">
              <HBars
                testId="status-count"
                rows={STATUSES.map((status) => ({
                  label: status,
                  value: data.statusDistribution[status] ?? 0,
                  tone: statusTone(status),
                }))}
              />
            </Card>
            <Card title="Tasks over the last 24 hours">
              <StackedBars
                label="Tasks per hour"
                buckets={data.tasksOverTime.map((b) => ({
                  label: bucketLabel(b.timestamp, true),
                  parts: [
                    { name: "Completed", value: b.completed, tone: "ok" },
                    { name: "Failed", value: b.failed, tone: "bad" },
                    { name: "Other", value: Math.max(0, b.total - b.completed - b.failed), tone: "muted" },
                  ],
                }))}
              />
              <Legend
                items={[
                  { name: "Completed", tone: "ok" },
                  { name: "Failed", tone: "bad" },
                  { name: "Other", tone: "muted" },
                ]}
              />
            </Card>
          </div>
          <div className="grid-2">
            <Card title="Recent activity">
              <ErrorBox error={activity.error} />
              <ul className="activity">
                {byTimeShown(activity.data ?? []).map((a) => (
                  <li key={a.taskId} data-testid="activity" data-timestamp={a.timestamp}>
                    <Link to={`/tasks/${a.taskId}`}>{a.shortType}</Link>
                    <StatusBadge status={a.status} />
                    <span className="muted">{a.message}</span>
                    <span className="time" data-testid="activity-time">
                      {formatTime(a.timestamp, a.isRecurring)}
                    </span>
                  </li>
                ))}
                {activity.data?.length === 0 && <li className="muted">No tasks yet.</li>}
              </ul>
            </Card>
            <Card title="Queues">
              <div className="queue-cards">
                {data.queueSummaries.map((q) => (
                  <Link to={`/tasks?queueName=${encodeURIComponent(q.queueName)}`} className="queue-mini" key={q.queueName}>
                    <div className="queue-mini-head">
                      <strong>{q.queueName}</strong>
                      {q.paused && <Badge tone="warn">paused</Badge>}
                    </div>
                    <dl className="queue-mini-counts">
                      <dt>pending</dt>
                      <dd>{q.pendingCount}</dd>
                      <dt>running</dt>
                      <dd>{q.inProgressCount}</dd>
                      <dt className="ok">completed</dt>
                      <dd className="ok">{q.completedCount}</dd>
                      <dt className="bad">failed</dt>
                      <dd className="bad">{q.failedCount}</dd>
                    </dl>
                  </Link>
                ))}
              </div>
            </Card>
          </div>
        </>
      )}
    </Page>
  );
}
