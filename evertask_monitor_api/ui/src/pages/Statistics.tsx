import { useState } from "react";
import { RANGES } from "../api";
import type { ExecutionTimePoint, Range, SuccessRateTrend, TaskTypes } from "../api";
import { HBars, LineChart } from "../charts";
import { Card, ErrorBox, Page, Segmented } from "../components";
import { bucketLabel } from "../format";
import { useApi } from "../state";

const PERIODS = ["Last7Days", "Last30Days", "Last90Days"] as const;
type Period = (typeof PERIODS)[number];

export function StatisticsPage() {
  const [period, setPeriod] = useState<Period>("Last7Days");
  const [typesRange, setTypesRange] = useState<Range>("Week");
  const [timesRange, setTimesRange] = useState<Range>("Today");
  const trend = useApi<SuccessRateTrend>("/statistics/success-rate-trend", { period });
  const types = useApi<TaskTypes>("/statistics/task-types", { range: typesRange });
  const times = useApi<ExecutionTimePoint[]>("/statistics/execution-times", { range: timesRange });

  return (
    <Page title="Statistics">
      <Card title="Success rate">
        <div className="toolbar">
          <Segmented<Period> label="Period" value={period} options={PERIODS} onChange={setPeriod} />
        </div>
        <ErrorBox error={trend.error} />
        {trend.data && (
          <LineChart
            label="Success rate"
            unit="%"
            fixedMax={100}
            points={trend.data.timestamps.map((t, i) => ({
              label: bucketLabel(t, false),
              value: trend.data?.successRates[i] ?? null,
            }))}
          />
        )}
      </Card>
      <div className="grid-2">
        <Card title="Task types">
          <div className="toolbar">
            <Segmented<Range> label="Range" value={typesRange} options={RANGES} onChange={setTypesRange} />
          </div>
          <ErrorBox error={types.error} />
          {types.data && (
            <>
              <HBars
                testId="task-types"
                rows={types.data.types.map((t) => ({ label: t.shortType, value: t.count, tone: "info" as const }))}
              />
              {!types.data.exact && (
                <p className="muted small">Counted over the newest {types.data.sampleSize} tasks of the range.</p>
              )}
              {types.data.types.length === 0 && <p className="muted">No tasks in this range.</p>}
            </>
          )}
        </Card>
        <Card title="Execution time (completed tasks)">
          <div className="toolbar">
            <Segmented<Range> label="Range" value={timesRange} options={RANGES} onChange={setTimesRange} />
          </div>
          <ErrorBox error={times.error} />
          {times.data && (
            <LineChart
              label="Average execution time"
              unit=" ms"
              points={times.data.map((p) => ({
                label: bucketLabel(p.timestamp, timesRange === "Today"),
                value: p.avgExecutionTimeMs,
              }))}
            />
          )}
        </Card>
      </div>
    </Page>
  );
}
