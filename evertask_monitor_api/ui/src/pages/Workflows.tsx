import { useState } from "react";
import type { ReactNode } from "react";
import { Link, useParams, useSearchParams } from "react-router-dom";
import { api } from "../api";
import type { Batch, BatchDetail, BatchesPage, BatchMember, WorkflowStage } from "../api";
import { Badge, Card, ErrorBox, Page, Segmented, StatusBadge } from "../components";
import { formatDate, formatRelative } from "../format";
import { useApi, useSession } from "../state";
import {
  KIND_FILTERS,
  batchTitle,
  batchTone,
  continueWhenText,
  idTail,
  progressSegments,
  progressText,
  resultJson,
  resultPreview,
  stageTitle,
  workflowsDocsUrl,
} from "../workflows";
import type { KindFilter } from "../workflows";

const PAGE_SIZE = 20;

const EXAMPLE = `from evertask_abstractions import Step, Workflow

batch_id = await dispatcher.dispatch_batch(
    [ResizeImage(name=n) for n in names], name="thumbnails")

workflow_id = await dispatcher.dispatch_workflow(
    Workflow("order-42")
    .then(ReserveStock(order=42), compensate=ReleaseStock(order=42))
    .group(ShipFromA(order=42), ShipFromB(order=42))   # in parallel
    .then(NotifyCustomer(order=42)))`;

export function BatchStatusBadge({ status, testId = "batch-status" }: { status: string; testId?: string }) {
  return (
    <Badge tone={batchTone(status)} testId={testId}>
      {status}
    </Badge>
  );
}

/** A record's progress: completed, failed and cancelled members over the total (the rest
 * of the track is what has not finished), with the counts in words. */
export function ProgressBar({ batch, testId = "progress" }: { batch: Batch; testId?: string }) {
  const total = Math.max(batch.total, 1);
  const text = progressText(batch);
  let x = 0;
  return (
    <div className="progress" data-testid={testId}>
      <svg viewBox="0 0 100 8" preserveAspectRatio="none" className="progress-track" role="img" aria-label={text}>
        {progressSegments(batch)
          .filter((part) => part.name !== "pending")
          .map((part) => {
            const width = (part.value / total) * 100;
            const rect = (
              <rect
                key={part.name}
                x={x}
                y={0}
                width={width}
                height={8}
                className={`tone-${part.tone}`}
                data-part={part.name}
              />
            );
            x += width;
            return rect;
          })}
      </svg>
      <span className="progress-text" data-testid={`${testId}-text`}>
        {text}
      </span>
    </div>
  );
}

function When({ value }: { value: string | null }) {
  if (!value) return <span className="muted">—</span>;
  return (
    <div>
      {formatRelative(value)}
      <div className="muted small">{formatDate(value)}</div>
    </div>
  );
}

function Result({ value }: { value: unknown }) {
  if (value === null || value === undefined) return <span className="muted">—</span>;
  return (
    <details className="result" data-testid="member-result">
      <summary>
        <code>{resultPreview(value)}</code>
      </summary>
      <pre className="json">{resultJson(value)}</pre>
    </details>
  );
}

/** The tasks of a record (or the continuations after it), each linking to its page, where
 * a failed or cancelled one can be retried. */
export function MemberTable({
  members,
  continuations = false,
  compensations = false,
  testId,
}: {
  members: BatchMember[];
  continuations?: boolean;
  compensations?: boolean;
  testId: string;
}) {
  const rowId = continuations ? "continuation-row" : "member-row";
  return (
    <table className="table member-table" data-testid={testId}>
      <thead>
        <tr>
          <th className="col-task">Task</th>
          <th className="col-type">Type</th>
          {continuations && <th className="col-runs">Runs</th>}
          <th className="col-status">Status</th>
          <th>Result</th>
          <th>Error</th>
          {compensations && <th className="col-undo">Undone by</th>}
          <th className="col-action" />
        </tr>
      </thead>
      <tbody>
        {members.map((m) => (
          <tr key={m.id} data-testid={rowId} data-task-id={m.id}>
            <td title={m.id}>
              <Link to={`/tasks/${m.id}`} data-testid="member-link">
                <code>{idTail(m.id)}</code>
              </Link>
            </td>
            <td title={m.type}>{m.shortType}</td>
            {continuations && <td data-testid="continue-when">{continueWhenText(m.continueWhen)}</td>}
            <td>
              <StatusBadge status={m.status} />
            </td>
            <td>
              <Result value={m.result} />
            </td>
            <td className="member-error" title={m.exceptionSummary ?? undefined} data-testid="member-error">
              {m.exceptionSummary ?? ""}
            </td>
            {compensations && <td>{m.compensation ?? <span className="muted">—</span>}</td>}
            <td>
              {m.canRetry && (
                <Link
                  to={`/tasks/${m.id}`}
                  data-testid="retry-step"
                  title="Open the task's page to retry it: it runs again in place and the workflow goes on"
                >
                  Retry…
                </Link>
              )}
            </td>
          </tr>
        ))}
        {members.length === 0 && (
          <tr>
            <td colSpan={8} className="muted">
              {continuations ? "No task was dispatched after it." : "No task."}
            </td>
          </tr>
        )}
      </tbody>
    </table>
  );
}

function Stage({ stage, byId, saga }: { stage: WorkflowStage; byId: Map<string, BatchMember>; saga: boolean }) {
  const shown = stage.taskIds.map((id) => byId.get(id)).filter((m): m is BatchMember => m !== undefined);
  const hidden = stage.taskIds.length - shown.length;
  return (
    <div className="stage" data-testid="stage" data-stage={stage.index}>
      <div className="stage-head">
        <strong>{stageTitle(stage)}</strong>
        {stage.group && (
          <>
            <BatchStatusBadge status={stage.group.status} testId="stage-status" />
            <ProgressBar batch={stage.group} testId="stage-progress" />
            <Link to={`/workflows/${stage.group.id}`} className="small" data-testid="stage-group">
              group
            </Link>
          </>
        )}
      </div>
      <MemberTable members={shown} compensations={saga} testId="stage-steps" />
      {hidden > 0 && (
        <p className="muted small">
          {hidden.toLocaleString("en-US")} more steps are not shown here: open the{" "}
          {stage.group ? <Link to={`/workflows/${stage.group.id}`}>group</Link> : "group"}.
        </p>
      )}
    </div>
  );
}

function Field({ label, children, testId }: { label: string; children: ReactNode; testId: string }) {
  return (
    <>
      <dt>{label}</dt>
      <dd data-testid={testId}>{children}</dd>
    </>
  );
}

/** The record's content: summary with progress, stages (a workflow) or tasks, the
 * compensations of a failed saga and the continuations after it. */
export function BatchDetailView({ data }: { data: BatchDetail }) {
  const byId = new Map(data.members.map((m) => [m.id, m]));
  const saga = data.members.some((m) => m.compensation !== null);
  const truncated = data.memberCount > data.members.length;
  const kind = data.kind.toLowerCase();
  return (
    <>
      <div className="grid-2">
        <Card title={data.kind}>
          <dl className="fields">
            <Field label="Id" testId="batch-id">
              <code>{data.id}</code>
            </Field>
            <Field label="Name" testId="batch-name">
              {data.name ?? <span className="muted">—</span>}
            </Field>
            {data.workflowId && (
              <Field label="Workflow" testId="batch-workflow">
                <Link to={`/workflows/${data.workflowId}`}>
                  <code>{data.workflowId}</code>
                </Link>
              </Field>
            )}
            <Field label="Created" testId="batch-created">
              {formatDate(data.createdAtUtc)} <span className="muted">({formatRelative(data.createdAtUtc)})</span>
            </Field>
            <Field label="Finished" testId="batch-finished">
              {data.finishedAtUtc ? formatDate(data.finishedAtUtc) : <span className="muted">not yet</span>}
            </Field>
          </dl>
        </Card>
        <Card title="Progress">
          <ProgressBar batch={data} testId="batch-progress" />
          <dl className="fields compact progress-counts">
            <dt>Tasks</dt>
            <dd data-testid="batch-total">{data.total}</dd>
            <dt>Completed</dt>
            <dd data-testid="batch-succeeded">{data.succeeded}</dd>
            <dt>Failed</dt>
            <dd data-testid="batch-failed">{data.failed}</dd>
            <dt>Cancelled</dt>
            <dd data-testid="batch-cancelled">{data.cancelled}</dd>
            <dt>Not finished</dt>
            <dd data-testid="batch-pending">{data.pending}</dd>
          </dl>
        </Card>
      </div>
      {data.kind === "Workflow" ? (
        <Card title="Stages">
          <p className="muted small" data-testid="stages-note">
            A stage starts once every step of the stage before it has completed; a failed or cancelled step cancels the
            later stages{saga ? ", and the compensations of the completed steps run in reverse order" : ""}. Retrying a
            failed step (on its task's page) runs it again in place: the later stages it skipped wait for it again
            {saga ? " (not once a saga has failed: its compensations have run)" : ""}.
          </p>
          {data.stages.map((stage) => (
            <Stage key={stage.index} stage={stage} byId={byId} saga={saga} />
          ))}
        </Card>
      ) : (
        <Card title="Tasks">
          {truncated && (
            <p className="muted small" data-testid="members-truncated">
              The first {data.members.length.toLocaleString("en-US")} of {data.memberCount.toLocaleString("en-US")}{" "}
              tasks; the task list has them all.
            </p>
          )}
          <MemberTable members={data.members} testId="members" />
        </Card>
      )}
      {data.compensations.map((comp) => (
        <Card key={comp.id} title="Compensations" className="compensations">
          <div className="stage-head" data-testid="compensation" data-batch-id={comp.id}>
            <BatchStatusBadge status={comp.status} testId="compensation-status" />
            <ProgressBar batch={comp} testId="compensation-progress" />
          </div>
          <p className="muted small">
            The workflow failed: the compensations of its completed steps run one after another, last step first.
          </p>
          <MemberTable members={comp.members} testId="compensation-steps" />
        </Card>
      ))}
      <Card title="Continuations">
        <p className="muted small">
          Tasks dispatched to run after this {kind} (<code>after={kind}_id</code>): each runs when the {kind} ends as
          it asks, else it is cancelled
          {data.continuations.length >= data.continuationLimit
            ? ` (the first ${data.continuationLimit.toLocaleString("en-US")} are listed)`
            : ""}
          .
        </p>
        <MemberTable members={data.continuations} continuations testId="continuations" />
      </Card>
    </>
  );
}

export function WorkflowDetailPage() {
  const { id = "" } = useParams();
  const { config } = useSession();
  const detail = useApi<BatchDetail>(`/batches/${id}`);
  const [confirming, setConfirming] = useState(false);
  const [busy, setBusy] = useState(false);
  const [actionError, setActionError] = useState<string | null>(null);
  const [notice, setNotice] = useState<string | null>(null);
  const d = detail.data;

  const cancel = async () => {
    setBusy(true);
    setActionError(null);
    try {
      const result = await api.post<{ message: string }>(`/batches/${id}/cancel`);
      setNotice(result.message);
      detail.reload();
    } catch (e) {
      setActionError(e instanceof Error ? e.message : String(e));
    } finally {
      setBusy(false);
      setConfirming(false);
    }
  };

  const kind = d ? d.kind.toLowerCase() : "";
  const actions =
    d && !config.readOnly ? (
      confirming ? (
        <span className="confirm" data-testid="cancel-confirmation">
          Cancel the {d.pending.toLocaleString("en-US")} unfinished tasks of this {kind}?{" "}
          <button type="button" className="danger" data-testid="confirm-cancel" disabled={busy} onClick={cancel}>
            Yes, cancel
          </button>{" "}
          <button type="button" data-testid="keep-running" disabled={busy} onClick={() => setConfirming(false)}>
            Keep it
          </button>
        </span>
      ) : (
        <button
          type="button"
          className="danger"
          data-testid="cancel-batch"
          disabled={busy || !d.canCancel}
          onClick={() => setConfirming(true)}
        >
          Cancel {kind}
        </button>
      )
    ) : null;

  return (
    <Page
      title={
        <>
          <Link to="/workflows" className="muted">
            Workflows
          </Link>{" "}
          / {d ? batchTitle(d) : id} {d && <BatchStatusBadge status={d.status} />}
        </>
      }
      actions={actions}
    >
      <ErrorBox error={detail.error ?? actionError} />
      {notice && (
        <div className="notice" data-testid="notice">
          {notice}
        </div>
      )}
      {d && <BatchDetailView data={d} />}
    </Page>
  );
}

/** The list for one answer of `GET /batches`. */
export function WorkflowListView({ data, docsUrl }: { data: BatchesPage; docsUrl?: string | null }) {
  if (data.items.length === 0 && data.page === 1) {
    const url = workflowsDocsUrl(docsUrl);
    return (
      <Card title="No batch or workflow yet" className="empty-state">
        <div data-testid="workflows-empty">
          <p>
            Dispatch tasks as one unit with <code>dispatch_batch</code>, or a plan of stages with{" "}
            <code>dispatch_workflow</code>: they show up here with their progress, their steps and their results.
          </p>
          <pre className="json">{EXAMPLE}</pre>
          <p className="muted">
            See{" "}
            {url ? (
              <a href={url} target="_blank" rel="noreferrer">
                Workflows
              </a>
            ) : (
              <>
                the <em>Workflows</em> page of the EverTask documentation (<code>docs/workflows.md</code>)
              </>
            )}
            .
          </p>
        </div>
      </Card>
    );
  }
  return (
    <table className="table" data-testid="batch-table">
      <thead>
        <tr>
          <th>Name</th>
          <th>Kind</th>
          <th>Status</th>
          <th>Progress</th>
          <th>Created</th>
          <th>Finished</th>
        </tr>
      </thead>
      <tbody>
        {data.items.map((b) => (
          <tr key={b.id} data-testid="batch-row" data-batch-id={b.id}>
            <td title={b.id}>
              <Link to={`/workflows/${b.id}`} data-testid="batch-link">
                {batchTitle(b)}
              </Link>
            </td>
            <td>
              <Badge tone="muted" testId="batch-kind">
                {b.kind}
              </Badge>
            </td>
            <td>
              <BatchStatusBadge status={b.status} />
            </td>
            <td className="progress-cell">
              <ProgressBar batch={b} />
            </td>
            <td>
              <When value={b.createdAtUtc} />
            </td>
            <td>
              <When value={b.finishedAtUtc} />
            </td>
          </tr>
        ))}
        {data.items.length === 0 && (
          <tr>
            <td colSpan={6} className="muted">
              Nothing on this page.
            </td>
          </tr>
        )}
      </tbody>
    </table>
  );
}

export function WorkflowsPage() {
  const { config } = useSession();
  const [search, setSearch] = useSearchParams();
  const filter = (search.get("kind") as KindFilter | null) ?? "All";
  const kinds = KIND_FILTERS[filter] ?? KIND_FILTERS.All;
  const page = Number(search.get("page") ?? "1") || 1;
  const list = useApi<BatchesPage>("/batches", { kind: [...kinds], page, pageSize: PAGE_SIZE });

  const update = (changes: Record<string, string | null>) => {
    const next = new URLSearchParams(search);
    for (const [key, value] of Object.entries(changes)) {
      if (value) next.set(key, value);
      else next.delete(key);
    }
    setSearch(next);
  };

  const data = list.data;
  return (
    <Page
      title="Workflows"
      actions={
        <Segmented
          label="Kind"
          value={filter}
          options={Object.keys(KIND_FILTERS) as KindFilter[]}
          onChange={(value) => update({ kind: value === "All" ? null : value, page: null })}
        />
      }
    >
      <ErrorBox error={list.error} />
      {data && (
        <Card>
          <WorkflowListView data={data} docsUrl={config.docsUrl} />
          {(data.page > 1 || data.hasMore) && (
            <div className="pager">
              <button type="button" disabled={page <= 1} onClick={() => update({ page: String(page - 1) })}>
                ‹ Newer
              </button>
              <span data-testid="pager-info">Page {page}</span>
              <button type="button" disabled={!data.hasMore} onClick={() => update({ page: String(page + 1) })}>
                Older ›
              </button>
            </div>
          )}
        </Card>
      )}
    </Page>
  );
}
