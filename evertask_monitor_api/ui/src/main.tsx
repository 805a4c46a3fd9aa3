import { StrictMode, useEffect, useState } from "react";
import { createRoot } from "react-dom/client";
import { BrowserRouter, Navigate, Route, Routes } from "react-router-dom";
import { api } from "./api";
import type { Config } from "./api";
import { Layout } from "./components";
import { LoginPage } from "./pages/Login";
import { LivePage } from "./pages/Live";
import { NodesPage } from "./pages/Nodes";
import { OverviewPage } from "./pages/Overview";
import { QueuesPage } from "./pages/Queues";
import { RateLimitsPage } from "./pages/RateLimits";
import { StatisticsPage } from "./pages/Statistics";
import { TaskDetailPage } from "./pages/TaskDetail";
import { TasksPage } from "./pages/Tasks";
import { WorkflowDetailPage, WorkflowsPage } from "./pages/Workflows";
import { LiveProvider, SessionProvider, useSession } from "./state";
import "./styles.css";

/** The router base: the path of <base href> that the server writes into index.html. */
function basename(): string {
  return new URL(document.baseURI).pathname.replace(/\/$/, "") || "/";
}

function Routed() {
  const { authenticated } = useSession();
  if (!authenticated) return <LoginPage />;
  return (
    <LiveProvider>
      <Routes>
        <Route element={<Layout />}>
          <Route index element={<OverviewPage />} />
          <Route path="tasks" element={<TasksPage />} />
          <Route path="tasks/:id" element={<TaskDetailPage />} />
          <Route path="workflows" element={<WorkflowsPage />} />
          <Route path="workflows/:id" element={<WorkflowDetailPage />} />
          <Route path="queues" element={<QueuesPage />} />
          <Route path="rate-limits" element={<RateLimitsPage />} />
          <Route path="nodes" element={<NodesPage />} />
          <Route path="live" element={<LivePage />} />
          <Route path="statistics" element={<StatisticsPage />} />
          <Route path="*" element={<Navigate to="/" replace />} />
        </Route>
      </Routes>
    </LiveProvider>
  );
}

function App() {
  const [config, setConfig] = useState<Config | null>(null);
  const [error, setError] = useState<string | null>(null);
  useEffect(() => {
    api
      .get<Config>("/config")
      .then(setConfig)
      .catch((e: Error) => setError(e.message));
  }, []);
  if (error) return <div className="error boot">Cannot reach the monitoring API: {error}</div>;
  if (!config) return <div className="boot muted">Loading…</div>;
  return (
    <SessionProvider config={config}>
      <BrowserRouter basename={basename()}>
        <Routed />
      </BrowserRouter>
    </SessionProvider>
  );
}

createRoot(document.getElementById("root") as HTMLElement).render(
  <StrictMode>
    <App />
  </StrictMode>,
);
