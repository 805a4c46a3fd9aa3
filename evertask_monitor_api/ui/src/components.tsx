// Shared building blocks: layout, badges, cards, pager, messages.

import type { ReactNode } from "react";
import { NavLink, Outlet } from "react-router-dom";
import { statusTone } from "./format";
import type { Tone } from "./format";
import { useLive, useSession } from "./state";

const NAV = [
  { to: "/", label: "Overview", end: true },
  { to: "/tasks", label: "Tasks" },
  { to: "/workflows", label: "Workflows" },
  { to: "/queues", label: "Queues" },
  { to: "/rate-limits", label: "Rate limits" },
  { to: "/nodes", label: "Nodes" },
  { to: "/live", label: "Live" },
  { to: "/statistics", label: "Statistics" },
];

export function Layout() {
  const { config, logout } = useSession();
  const live = useLive();
  const state = !live.available ? "polling" : live.connected ? "live" : "reconnecting";
  return (
    <div className="layout">
      <nav className="sidebar">
        <div className="brand">
          EverTask<span>monitoring</span>
        </div>
        {NAV.map((item) => (
          <NavLink key={item.to} to={item.to} end={item.end} className="nav-link">
            {item.label}
          </NavLink>
        ))}
        <div className="sidebar-foot">
          <div className={`conn conn-${state}`} data-testid="connection" title="Refresh mode">
            ● {state === "live" ? "Live" : state === "polling" ? "Polling" : "Reconnecting… (polling)"}
          </div>
          {config.readOnly && <div className="badge tone-bg-warn">read-only</div>}
          {config.requireAuthentication && (
            <button type="button" className="link-button" onClick={logout}>
              Log out
            </button>
          )}
          <div className="version">v{config.version}</div>
        </div>
      </nav>
      <main className="content">
        <Outlet />
      </main>
    </div>
  );
}

export function Page({ title, actions, children }: { title: ReactNode; actions?: ReactNode; children: ReactNode }) {
  return (
    <section>
      <header className="page-head">
        <h1>{title}</h1>
        <div className="page-actions">{actions}</div>
      </header>
      {children}
    </section>
  );
}

export function Card({ title, children, className }: { title?: ReactNode; children: ReactNode; className?: string }) {
  return (
    <div className={`card ${className ?? ""}`}>
      {title && <h2>{title}</h2>}
      {children}
    </div>
  );
}

export function Badge({ tone, children, testId }: { tone: Tone; children: ReactNode; testId?: string }) {
  return (
    <span className={`badge tone-bg-${tone}`} data-testid={testId}>
      {children}
    </span>
  );
}

export function StatusBadge({ status }: { status: string }) {
  return (
    <Badge tone={statusTone(status)} testId="status">
      {status}
    </Badge>
  );
}

export function Kpi({ label, value, hint, testId }: { label: string; value: ReactNode; hint?: ReactNode; testId: string }) {
  return (
    <div className="kpi">
      <div className="kpi-label">{label}</div>
      <div className="kpi-value" data-testid={testId}>
        {value}
      </div>
      {hint && <div className="kpi-hint">{hint}</div>}
    </div>
  );
}

export function ErrorBox({ error }: { error: string | null }) {
  return error ? (
    <div className="error" role="alert">
      {error}
    </div>
  ) : null;
}

export function Pager({
  page,
  totalPages,
  totalCount,
  onPage,
}: {
  page: number;
  totalPages: number;
  totalCount: number;
  onPage(page: number): void;
}) {
  return (
    <div className="pager">
      <button type="button" disabled={page <= 1} onClick={() => onPage(page - 1)}>
        ‹ Previous
      </button>
      <span data-testid="pager-info">
        Page {page} of {totalPages} · {totalCount.toLocaleString()} total
      </span>
      <button type="button" disabled={page >= totalPages} onClick={() => onPage(page + 1)}>
        Next ›
      </button>
    </div>
  );
}

export function Segmented<T extends string>({
  value,
  options,
  onChange,
  label,
}: {
  value: T;
  options: readonly T[];
  onChange: (value: T) => void;
  label: string;
}) {
  return (
    <div className="segmented" role="group" aria-label={label}>
      {options.map((option) => (
        <button
          type="button"
          key={option}
          className={option === value ? "active" : ""}
          onClick={() => onChange(option)}
        >
          {option}
        </button>
      ))}
    </div>
  );
}
