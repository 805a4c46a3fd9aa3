import { useEffect } from "react";
import type { ClusterNode } from "../api";
import { Badge, Card, ErrorBox, Page } from "../components";
import { formatDate, formatRelative, shortId } from "../format";
import { useApi } from "../state";

/** Heartbeats change nothing that raises a task event, so the page also reloads on its own. */
const REFRESH_MS = 5000;

function When({ value, testId }: { value: string; testId?: string }) {
  return (
    <div data-testid={testId}>
      {formatRelative(value)}
      <div className="muted small">{formatDate(value, true)}</div>
    </div>
  );
}

export function NodesPage() {
  const nodes = useApi<ClusterNode[]>("/nodes");
  const { reload } = nodes;
  useEffect(() => {
    const timer = setInterval(reload, REFRESH_MS);
    return () => clearInterval(timer);
  }, [reload]);

  const data = nodes.data ?? [];
  const alive = data.filter((n) => n.alive).length;
  return (
    <Page
      title="Nodes"
      actions={
        <span className="muted" data-testid="node-summary">
          {data.length} {data.length === 1 ? "node" : "nodes"} · {alive} alive
        </span>
      }
    >
      <ErrorBox error={nodes.error} />
      <Card>
        <p className="muted small">
          The hosts sharing this database. A node is alive while its lease is valid; a dead node's pending tasks are
          taken over by the live worker nodes.
        </p>
        <table className="table" data-testid="node-table">
          <thead>
            <tr>
              <th>Node</th>
              <th>Host</th>
              <th>PID</th>
              <th>Role</th>
              <th>Queues</th>
              <th>Started</th>
              <th>Last heartbeat</th>
              <th>State</th>
              <th>Running</th>
            </tr>
          </thead>
          <tbody>
            {data.map((n) => (
              <tr key={n.id} data-testid="node-row" data-node-id={n.id}>
                <td title={n.id}>
                  <code>{shortId(n.id)}</code>{" "}
                  {n.isCurrent && (
                    <Badge tone="info" testId="node-current">
                      this host
                    </Badge>
                  )}
                </td>
                <td data-testid="node-host">{n.hostName}</td>
                <td>{n.pid}</td>
                <td data-testid="node-role">{n.runsWorkers ? "worker" : "dispatch-only"}</td>
                <td>{n.queues.length ? n.queues.join(", ") : "—"}</td>
                <td>
                  <When value={n.startedAtUtc} />
                </td>
                <td>
                  <When value={n.lastHeartbeatUtc} testId="node-heartbeat" />
                </td>
                <td>
                  {n.alive ? (
                    <Badge tone="ok" testId="node-state">
                      alive
                    </Badge>
                  ) : (
                    <Badge tone="bad" testId="node-state">
                      dead
                    </Badge>
                  )}
                </td>
                <td data-testid="node-running" title={n.running === null ? "Known for this host only" : undefined}>
                  {n.running ?? "—"}
                </td>
              </tr>
            ))}
            {nodes.data?.length === 0 && (
              <tr>
                <td colSpan={9} className="muted">
                  No node is registered (no host is running on this database).
                </td>
              </tr>
            )}
          </tbody>
        </table>
      </Card>
    </Page>
  );
}
