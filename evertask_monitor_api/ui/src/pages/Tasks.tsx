import { useNavigate, useSearchParams } from "react-router-dom";
import { STATUSES } from "../api";
import type { QueueConfiguration, TasksPage } from "../api";
import { Badge, Card, ErrorBox, Page, Pager, StatusBadge } from "../components";
import { formatDate, formatDuration, runDuration } from "../format";
import { useApi } from "../state";

const COLUMNS: { key: string; label: string; sortable: boolean }[] = [
  { key: "type", label: "Type", sortable: true },
  { key: "status", label: "Status", sortable: true },
  { key: "queueName", label: "Queue", sortable: true },
  { key: "createdAtUtc", label: "Created", sortable: true },
  { key: "scheduledExecutionUtc", label: "Scheduled", sortable: true },
  { key: "lastExecutionUtc", label: "Last run", sortable: true },
  { key: "executionTimeMs", label: "Duration", sortable: false },
];

const FILTER_KEYS = ["taskType", "queueName", "searchTerm", "isRecurring", "createdAfter", "createdBefore"];

function toIso(local: string): string {
  return local ? new Date(local).toISOString() : "";
}

function toLocal(iso: string | null): string {
  if (!iso) return "";
  const d = new Date(iso);
  const pad = (n: number) => String(n).padStart(2, "0");
  return `${d.getFullYear()}-${pad(d.getMonth() + 1)}-${pad(d.getDate())}T${pad(d.getHours())}:${pad(d.getMinutes())}`;
}

export function TasksPage() {
  const [search, setSearch] = useSearchParams();
  const navigate = useNavigate();
  const statuses = search.getAll("statuses");
  const page = Number(search.get("page") ?? "1") || 1;
  const pageSize = Number(search.get("pageSize") ?? "20") || 20;
  const sortBy = search.get("sortBy") ?? "createdAtUtc";
  const sortDescending = search.get("sortDescending") !== "false";
  const params: Record<string, unknown> = { statuses, page, pageSize, sortBy, sortDescending };
  for (const key of FILTER_KEYS) params[key] = search.get(key) ?? undefined;
  const tasks = useApi<TasksPage>("/tasks", params);
  const queues = useApi<QueueConfiguration[]>("/queues/configurations", {}, false);

  const update = (changes: Record<string, string | string[] | null>, resetPage = true) => {
    const next = new URLSearchParams(search);
    for (const [key, value] of Object.entries(changes)) {
      next.delete(key);
      if (Array.isArray(value)) value.forEach((v) => next.append(key, v));
      else if (value) next.set(key, value);
    }
    if (resetPage) next.delete("page");
    setSearch(next);
  };

  const toggleStatus = (status: string) =>
    update({ statuses: statuses.includes(status) ? statuses.filter((s) => s !== status) : [...statuses, status] });

  const sort = (key: string) => {
    if (key === sortBy) update({ sortDescending: sortDescending ? "false" : null }, false);
    else update({ sortBy: key, sortDescending: null }, false);
  };

  const data = tasks.data;
  return (
    <Page title="Tasks">
      <Card className="filters">
        <div className="chips" role="group" aria-label="Status filter">
          {STATUSES.map((status) => (
            <button
              type="button"
              key={status}
              data-testid={`filter-status-${status}`}
              className={`chip ${statuses.includes(status) ? "active" : ""}`}
              onClick={() => toggleStatus(status)}
            >
              {status}
            </button>
          ))}
          {statuses.length > 0 && (
            <button type="button" className="link-button" onClick={() => update({ statuses: [] })}>
              any status
            </button>
          )}
        </div>
        <div className="filter-row">
          <input
            placeholder="Type contains…"
            aria-label="Type contains"
            defaultValue={search.get("taskType") ?? ""}
            onKeyDown={(e) => e.key === "Enter" && update({ taskType: e.currentTarget.value })}
            onBlur={(e) => e.currentTarget.value !== (search.get("taskType") ?? "") && update({ taskType: e.currentTarget.value })}
          />
          <input
            placeholder="Search type, handler, key…"
            aria-label="Search"
            defaultValue={search.get("searchTerm") ?? ""}
            onKeyDown={(e) => e.key === "Enter" && update({ searchTerm: e.currentTarget.value })}
            onBlur={(e) =>
              e.currentTarget.value !== (search.get("searchTerm") ?? "") && update({ searchTerm: e.currentTarget.value })
            }
          />
          <select
            aria-label="Queue"
            value={search.get("queueName") ?? ""}
            onChange={(e) => update({ queueName: e.target.value })}
          >
            <option value="">All queues</option>
            {(queues.data ?? []).map((q) => (
              <option key={q.queueName} value={q.queueName}>
                {q.queueName}
              </option>
            ))}
          </select>
          <select
            aria-label="Recurring"
            value={search.get("isRecurring") ?? ""}
            onChange={(e) => update({ isRecurring: e.target.value })}
          >
            <option value="">One-shot and recurring</option>
            <option value="false">One-shot only</option>
            <option value="true">Recurring only</option>
          </select>
          <label className="inline">
            from
            <input
              type="datetime-local"
              value={toLocal(search.get("createdAfter"))}
              onChange={(e) => update({ createdAfter: toIso(e.target.value) })}
            />
          </label>
          <label className="inline">
            to
            <input
              type="datetime-local"
              value={toLocal(search.get("createdBefore"))}
              onChange={(e) => update({ createdBefore: toIso(e.target.value) })}
            />
          </label>
          <select aria-label="Page size" value={pageSize} onChange={(e) => update({ pageSize: e.target.value })}>
            {[10, 20, 50, 100, 200].map((n) => (
              <option key={n} value={n}>
                {n} / page
              </option>
            ))}
          </select>
        </div>
      </Card>
      <ErrorBox error={tasks.error} />
      <Card>
        <table className="table" data-testid="task-table">
          <thead>
            <tr>
              {COLUMNS.map((c) => (
                <th key={c.key}>
                  {c.sortable ? (
                    <button type="button" className="sort" data-testid={`sort-${c.key}`} onClick={() => sort(c.key)}>
                      {c.label}
                      {sortBy === c.key ? (sortDescending ? " ▼" : " ▲") : ""}
                    </button>
                  ) : (
                    c.label
                  )}
                </th>
              ))}
            </tr>
          </thead>
          <tbody>
            {(data?.items ?? []).map((t) => (
              <tr key={t.id} className="clickable" data-testid="task-row" onClick={() => navigate(`/tasks/${t.id}`)}>
                <td title={t.type}>
                  {t.shortType} {t.isRecurring && <Badge tone="info">recurring</Badge>}
                  {t.taskKey && <span className="muted small"> {t.taskKey}</span>}
                </td>
                <td>
                  <StatusBadge status={t.status} />
                </td>
                <td>{t.queueName}</td>
                <td>{formatDate(t.createdAtUtc, t.isRecurring)}</td>
                <td data-testid="scheduled">
                  {formatDate(
                    t.isRecurring ? (t.nextRunUtc ?? t.scheduledExecutionUtc) : (t.scheduledExecutionUtc ?? t.nextRunUtc),
                    t.isRecurring,
                  )}
                </td>
                <td>{formatDate(t.lastExecutionUtc, t.isRecurring)}</td>
                <td data-testid="duration">{formatDuration(runDuration(t))}</td>
              </tr>
            ))}
            {data?.items.length === 0 && (
              <tr>
                <td colSpan={COLUMNS.length} className="muted">
                  No task matches these filters.
                </td>
              </tr>
            )}
          </tbody>
        </table>
        {data && (
          <Pager
            page={data.page}
            totalPages={data.totalPages}
            totalCount={data.totalCount}
            onPage={(p) => update({ page: String(p) }, false)}
          />
        )}
      </Card>
    </Page>
  );
}
