import { useState } from "react";
import type { ReactNode } from "react";
import { Link, useNavigate, useParams } from "react-router-dom";
import { api } from "../api";
import type { ExecutionLogs, TaskDetail } from "../api";
import { Badge, Card, ErrorBox, Page, Pager, StatusBadge } from "../components";
import { formatDate, formatDuration, formatRelative, levelTone, prettyJson, runDuration, shortId } from "../format";
import { useApi, useSession } from "../state";
import { continueWhenText, idTail, resultJson, resultPreview } from "../workflows";

const LEVELS = ["", "Trace", "Debug", "Information", "Warning", "Error", "Critical"];
const LOG_PAGE = 100;

function Field({ label, children }: { label: string; children: ReactNode }) {
  return (
    <>
      <dt>{label}</dt>
      <dd data-testid={`field-${label.toLowerCase().replace(/ /g, "-")}`}>{children ?? "—"}</dd>
    </>
  );
}

function LogViewer({ taskId, zoned }: { taskId: string; zoned: boolean }) {
  const [level, setLevel] = useState("");
  const [page, setPage] = useState(1);
  const logs = useApi<ExecutionLogs>(`/tasks/${taskId}/execution-logs`, {
    skip: (page - 1) * LOG_PAGE,
    take: LOG_PAGE,
    level: level || undefined,
  });
  const data = logs.data;
  const download = () => {
    if (!data) return;
    const blob = new Blob([JSON.stringify(data.logs, null, 2)], { type: "application/json" });
    const link = document.createElement("a");
    link.href = URL.createObjectURL(blob);
    link.download = `task-${taskId}-logs-${page}.json`;
    link.click();
    URL.revokeObjectURL(link.href);
  };
  return (
    <div>
      <div className="toolbar">
        <select
          aria-label="Log level"
          data-testid="log-level"
          value={level}
          onChange={(e) => {
            setLevel(e.target.value);
            setPage(1);
          }}
        >
          {LEVELS.map((l) => (
            <option key={l} value={l}>
              {l || "All levels"}
            </option>
          ))}
        </select>
        <button type="button" onClick={download} disabled={!data?.logs.length}>
          Download JSON
        </button>
      </div>
      <ErrorBox error={logs.error} />
      <div className="terminal" data-testid="log-viewer">
        {(data?.logs ?? []).map((log) => (
          <div className="log-line" key={log.id} data-testid="log-line">
            <span className="muted">{formatDate(log.timestampUtc, zoned)}</span>{" "}
            <span className={`level tone-${levelTone(log.level)}`}>{log.level.padEnd(11)}</span> {log.message}
            {log.exceptionDetails && <pre className="log-exception">{log.exceptionDetails}</pre>}
          </div>
        ))}
        {data?.logs.length === 0 && <div className="muted">No captured log lines.</div>}
      </div>
      {data && data.totalCount > LOG_PAGE && (
        <Pager
          page={page}
          totalPages={Math.ceil(data.totalCount / LOG_PAGE)}
          totalCount={data.totalCount}
          onPage={setPage}
        />
      )}
    </div>
  );
}

export function TaskDetailPage() {
  const { id = "" } = useParams();
  const navigate = useNavigate();
  const { config } = useSession();
  const task = useApi<TaskDetail>(`/tasks/${id}`);
  const [tab, setTab] = useState<"status" | "runs" | "logs">("logs");
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const t = task.data;
  // a recurring schedule names its zone ("at 09:00 Europe/Rome"): say which zone the times are in
  const zoned = t?.isRecurring ?? false;

  const act = async (action: "cancel" | "retry") => {
    setBusy(true);
    setActionError(null);
    try {
      if (action === "cancel") {
        const result = await api.post<{ message: string }>(`/tasks/${id}/cancel`);
        setNotice(result.message);
        task.reload();
      } else {
        const result = await api.post<{ taskId: string; message: string }>(`/tasks/${id}/retry`);
        setNotice(result.message);
        navigate(`/tasks/${result.taskId}`);
      }
    } catch (e) {
      setActionError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  return (
    <Page
      title={
        <>
          <Link to="/tasks" className="muted">
            Tasks
          </Link>{" "}
          / {t ? t.shortType : id} {t && <StatusBadge status={t.status} />}
        </>
      }
      actions={
        t &&
        !config.readOnly && (
          <>
            <button
              type="button"
              className="danger"
              data-testid="cancel-task"
              disabled={busy || !t.canCancel}
              onClick={() => act("cancel")}
            >
              Cancel
            </button>
            <button
              type="button"
              className="primary"
              data-testid="retry-task"
              disabled={busy || !t.canRetry}
              onClick={() => act("retry")}
            >
              Retry
            </button>
          </>
        )
      }
    >
      <ErrorBox error={task.error ?? actionError} />
      {notice && (
        <div className="notice" data-testid="notice">
          {notice}
        </div>
      )}
      {t && (
        <>
          <div className="grid-2">
            <Card title="Task">
              <dl className="fields">
                <Field label="Id">
                  <code>{t.id}</code>
                </Field>
                <Field label="Type">{t.type}</Field>
                <Field label="Handler">{t.handler}</Field>
                <Field label="Queue">{t.queueName}</Field>
                <Field label="Owner node">
                  {t.ownerNode ? (
                    <Link to="/nodes" title={t.ownerNode}>
                      <code>{shortId(t.ownerNode)}</code>
                    </Link>
                  ) : (
                    <span className="muted">none (any worker node may run it)</span>
                  )}
                </Field>
                <Field label="Created">{formatDate(t.createdAtUtc, zoned)}</Field>
                <Field label="Scheduled">
                  {formatDate(t.isRecurring ? (t.nextRunUtc ?? t.scheduledExecutionUtc) : t.scheduledExecutionUtc, zoned)}
                </Field>
                {t.throttledUntil && (
                  <Field label="Throttled until">
                    {formatDate(t.throttledUntil, zoned)} <span className="muted">({formatRelative(t.throttledUntil)})</span>{" "}
                    <Link to="/rate-limits">
                      <Badge tone="warn">rate-limited</Badge>
                    </Link>
                  </Field>
                )}
                <Field label="Last execution">{formatDate(t.lastExecutionUtc, zoned)}</Field>
                <Field label="Duration">{formatDuration(runDuration(t, t.statusAudits))}</Field>
                <Field label="Audit level">{t.auditLevel}</Field>
                {t.taskKey && <Field label="Task key">{t.taskKey}</Field>}
                {t.retriedFrom && (
                  <Field label="Retry of">
                    <Link to={`/tasks/${t.retriedFrom}`}>{t.retriedFrom}</Link>
                  </Field>
                )}
                {t.workflowId && (
                  <Field label="Workflow">
                    <Link to={`/workflows/${t.workflowId}`}>
                      <code>{t.workflowId}</code>
                    </Link>
                  </Field>
                )}
                {t.batchId && (
                  <Field label="Batch">
                    <Link to={`/workflows/${t.batchId}`}>
                      <code>{t.batchId}</code>
                    </Link>
                    {t.workflowId && <span className="muted"> (a parallel group or the compensations)</span>}
                  </Field>
                )}
                {t.parentTaskId && (
                  <Field label="Runs after">
                    <Link to={`${!t.parentKind || t.parentKind === "Task" ? "/tasks" : "/workflows"}/${t.parentTaskId}`}>
                      {t.parentKind && t.parentKind !== "Task" ? `${t.parentKind.toLowerCase()} ` : "task "}
                      <code>{idTail(t.parentTaskId)}</code>
                    </Link>{" "}
                    <span className="muted">{continueWhenText(t.continueWhen ?? null)}</span>
                  </Field>
                )}
                {t.isRecurring && (
                  <>
                    <Field label="Schedule">
                      {t.recurringInfo} <Badge tone="info">recurring</Badge>
                    </Field>
                    <Field label="Runs">
                      {t.currentRunCount ?? 0}
                      {t.maxRuns ? ` of ${t.maxRuns}` : ""}
                    </Field>
                    <Field label="Next run">{formatDate(t.nextRunUtc, zoned)}</Field>
                    {t.runUntil && <Field label="Run until">{formatDate(t.runUntil, zoned)}</Field>}
                  </>
                )}
              </dl>
            </Card>
            <Card title="Payload">
              <pre className="json" data-testid="task-payload">
                {prettyJson(t.request)}
              </pre>
              {t.result !== null && t.result !== undefined && (
                <details className="result result-block" data-testid="task-result">
                  <summary>
                    Result <code>{resultPreview(t.result)}</code>
                  </summary>
                  <pre className="json">{resultJson(t.result)}</pre>
                </details>
              )}
            </Card>
          </div>
          {t.exception && (
            <Card title="Exception" className="exception-card">
              <pre className="exception" data-testid="task-exception">
                {t.exception}
              </pre>
            </Card>
          )}
          <Card>
            <div className="tabs" role="tablist">
              <button type="button" role="tab" className={tab === "logs" ? "active" : ""} onClick={() => setTab("logs")}>
                Execution logs ({t.executionLogCount})
              </button>
              <button type="button" role="tab" className={tab === "status" ? "active" : ""} onClick={() => setTab("status")}>
                Status history ({t.statusAudits.length})
              </button>
              <button type="button" role="tab" className={tab === "runs" ? "active" : ""} onClick={() => setTab("runs")}>
                Runs history ({t.runsAudits.length})
              </button>
            </div>
            {tab === "logs" && <LogViewer taskId={t.id} zoned={zoned} />}
            {tab === "status" && (
              <table className="table" data-testid="status-history">
                <thead>
                  <tr>
                    <th>When</th>
                    <th>Status</th>
                    <th>Exception</th>
                  </tr>
                </thead>
                <tbody>
                  {t.statusAudits.map((a) => (
                    <tr key={a.id}>
                      <td>{formatDate(a.updatedAtUtc, zoned)}</td>
                      <td>
                        <StatusBadge status={a.newStatus} />
                      </td>
                      <td className="pre-cell">{a.exception ?? ""}</td>
                    </tr>
                  ))}
                </tbody>
              </table>
            )}
            {tab === "runs" && (
              <table className="table" data-testid="runs-history">
                <thead>
                  <tr>
                    <th>Executed</th>
                    <th>Status</th>
                    <th>Duration</th>
                    <th>Exception</th>
                  </tr>
                </thead>
                <tbody>
                  {t.runsAudits.map((a) => (
                    <tr key={a.id}>
                      <td>{formatDate(a.executedAt, zoned)}</td>
                      <td>
                        <StatusBadge status={a.status} />
                      </td>
                      <td>{formatDuration(a.status === "ServiceStopped" && !a.executionTimeMs ? null : a.executionTimeMs)}</td>
                      <td className="pre-cell">{a.exception ?? ""}</td>
                    </tr>
                  ))}
                  {t.runsAudits.length === 0 && (
                    <tr>
                      <td colSpan={4} className="muted">
                        {t.isRecurring ? "No run yet." : "Runs history is kept for recurring tasks."}
                      </td>
                    </tr>
                  )}
                </tbody>
              </table>
            )}
          </Card>
        </>
      )}
    </Page>
  );
}
