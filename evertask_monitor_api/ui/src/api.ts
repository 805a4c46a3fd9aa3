// REST client of the monitoring API: token handling, typed responses, error messages.

export const STATUSES = [
  "WaitingQueue",
  "WaitingParent",
  "Queued",
  "InProgress",
  "Pending",
  "Completed",
  "Failed",
  "Cancelled",
  "ServiceStopped",
] as const;
export type Status = (typeof STATUSES)[number];

export type Range = "Today" | "Week" | "Month" | "All";
export const RANGES: Range[] = ["Today", "Week", "Month", "All"];

export interface Config {
  apiBasePath: string;
  uiBasePath: string;
  webSocketPath: string;
  requireAuthentication: boolean;
  uiEnabled: boolean;
  eventDebounceMs: number;
  readOnly: boolean;
  liveEvents: boolean;
  version: string;
  /** The published documentation's root (ends with "/"), if configured: help links point there. */
  docsUrl?: string | null;
}

export interface LoginResponse {
  token: string;
  expiresAt: string;
  username: string;
}

export interface TaskListItem {
  id: string;
  type: string;
  shortType: string;
  handler: string;
  status: Status;
  queueName: string;
  createdAtUtc: string;
  lastExecutionUtc: string | null;
  scheduledExecutionUtc: string | null;
  executionTimeMs: number;
  isRecurring: boolean;
  recurringInfo: string | null;
  currentRunCount: number | null;
  maxRuns: number | null;
  nextRunUtc: string | null;
  taskKey: string | null;
  retriedFrom: string | null;
  /** The cluster node that will run the task (null: any worker node may claim it). */
  ownerNode: string | null;
  hasException: boolean;
}

export interface TasksPage {
  items: TaskListItem[];
  totalCount: number;
  page: number;
  pageSize: number;
  totalPages: number;
}

export interface StatusAudit {
  id: number;
  queuedTaskId: string;
  updatedAtUtc: string;
  newStatus: Status;
  exception: string | null;
}

export interface RunsAudit {
  id: number;
  queuedTaskId: string;
  executedAt: string;
  executionTimeMs: number;
  status: Status;
  exception: string | null;
}

export interface TaskDetail extends TaskListItem {
  request: string;
  exception: string | null;
  auditLevel: string;
  runUntil: string | null;
  recurringTask: string | null;
  statusAudits: StatusAudit[];
  runsAudits: RunsAudit[];
  executionLogCount: number;
  canCancel: boolean;
  canRetry: boolean;
  /** The serving host's reserved rate-limit slot while the task is parked (or waits to retry). */
  throttledUntil?: string | null;
  /** The JSON result its handler returned (decoded), once Completed; null: none. */
  result?: unknown;
  /** A continuation's parent: a task, or a batch record (see `parentKind`). */
  parentTaskId?: string | null;
  /** "Task", or the parent record's kind ("Batch", "Workflow", "Group", "Compensation"). */
  parentKind?: string | null;
  /** A continuation's condition: Succeeded, Failed or Finished. */
  continueWhen?: string | null;
  /** The batch, workflow group or compensation record the task counts in. */
  batchId?: string | null;
  /** The workflow the task is a step of. */
  workflowId?: string | null;
}

export type BatchKind = "Batch" | "Group" | "Workflow" | "Compensation";
export type BatchStatus = "Running" | "Completed" | "Failed" | "Cancelled";

/** A batch, a workflow, one of its groups or its compensations, with its members' progress. */
export interface Batch {
  id: string;
  kind: BatchKind;
  name: string | null;
  status: BatchStatus;
  total: number;
  succeeded: number;
  failed: number;
  cancelled: number;
  /** Members not finished yet. */
  pending: number;
  createdAtUtc: string;
  finishedAtUtc: string | null;
  /** The workflow a group or a compensation record belongs to. */
  workflowId: string | null;
  /** Running, and the monitor may manage it. */
  canCancel: boolean;
}

/** `GET /batches`: newest first; `hasMore` says a next page exists. */
export interface BatchesPage {
  items: Batch[];
  page: number;
  pageSize: number;
  hasMore: boolean;
}

/** A task of a batch or a workflow, or a continuation dispatched after one. */
export interface BatchMember {
  id: string;
  type: string;
  shortType: string;
  status: Status;
  queueName: string;
  createdAtUtc: string;
  lastExecutionUtc: string | null;
  executionTimeMs: number;
  /** Its handler's JSON result (decoded), once Completed; null: none. */
  result: unknown;
  /** The first line of its exception. */
  exceptionSummary: string | null;
  parentTaskId: string | null;
  continueWhen: string | null;
  batchId: string | null;
  workflowId: string | null;
  retriedFrom: string | null;
  /** A saga step's compensating task (short type name). */
  compensation: string | null;
  canCancel: boolean;
  canRetry: boolean;
}

/** One stage of a workflow: a step, or a group of parallel steps with its record. */
export interface WorkflowStage {
  index: number;
  group: Batch | null;
  taskIds: string[];
}

export interface BatchRecord extends Batch {
  members: BatchMember[];
}

/** `GET /batches/{id}`: members (at most `memberLimit` of `memberCount`), a workflow's
 * stages and compensations, the continuations dispatched after the record. */
export interface BatchDetail extends Batch {
  members: BatchMember[];
  memberCount: number;
  memberLimit: number;
  stages: WorkflowStage[];
  compensations: BatchRecord[];
  continuations: BatchMember[];
  continuationLimit: number;
}

export interface ExecutionLog {
  id: string;
  timestampUtc: string;
  level: string;
  message: string;
  exceptionDetails: string | null;
  sequenceNumber: number;
}

export interface ExecutionLogs {
  logs: ExecutionLog[];
  totalCount: number;
  skip: number;
  take: number;
}

export interface TimeBucket {
  timestamp: string;
  completed: number;
  failed: number;
  total: number;
}

export interface QueueSummary {
  queueName: string;
  pendingCount: number;
  inProgressCount: number;
  completedCount: number;
  failedCount: number;
  paused: boolean;
}

export interface Overview {
  range: Range;
  totalTasksToday: number;
  totalTasksWeek: number;
  totalTasksInRange: number;
  successRate: number | null;
  failedCount: number;
  avgExecutionTimeMs: number | null;
  statusDistribution: Record<string, number>;
  tasksOverTime: TimeBucket[];
  queueSummaries: QueueSummary[];
}

export interface RecentActivity {
  taskId: string;
  type: string;
  shortType: string;
  status: Status;
  queueName: string;
  timestamp: string;
  message: string;
  isRecurring: boolean;
}

export interface QueueConfiguration {
  queueName: string;
  totalTasks: number;
  pendingTasks: number;
  inProgressTasks: number;
  completedTasks: number;
  failedTasks: number;
  cancelledTasks: number;
  avgExecutionTimeMs: number | null;
  successRate: number | null;
  paused: boolean;
  configured: boolean;
  maxDegreeOfParallelism: number | null;
  channelCapacity: number | null;
  queueFullBehavior: string | null;
  defaultTimeoutMs: number | null;
  waitingInMemory: number | null;
}

/** A host registered on the storage: a node of the cluster, alive while its lease is valid. */
export interface ClusterNode {
  id: string;
  hostName: string;
  pid: number;
  startedAtUtc: string;
  lastHeartbeatUtc: string;
  leaseExpiresUtc: string;
  queues: string[];
  runsWorkers: boolean;
  alive: boolean;
  isCurrent: boolean;
  /** Executions running now; known for this host's own node only. */
  running: number | null;
}

/** A run parked until its rate-limit slot (`untilUtc`: when it may start). */
export interface ParkedTask {
  taskId: string;
  taskType: string;
  shortType: string;
  queueName: string;
  rateLimitKey: string;
  untilUtc: string;
  parkedAtUtc: string;
}

/** The runs parked on one budget (task type and key). */
export interface ParkedKey {
  taskType: string;
  shortType: string;
  rateLimitKey: string;
  queueName: string;
  parkedCount: number;
  nextSlotUtc: string;
  lastSlotUtc: string;
}

export interface RateLimitPolicy {
  permits: number;
  periodMs: number;
  burst: number;
  throttleRetries: boolean;
  startEmpty: boolean;
  maxReservationHorizonMs: number;
  overflowBehavior: string;
}

/** A handler declaring `rate_limit` or `max_concurrency`; running/waiting are null without the latter. */
export interface ThrottledHandler {
  handler: string;
  shortHandler: string;
  taskType: string;
  shortType: string;
  queueName: string | null;
  rateLimit: RateLimitPolicy | null;
  maxConcurrency: number | null;
  running: number | null;
  waiting: number | null;
  parked: number;
}

/** Adaptive throttling of the serving host: `enabled` is false when no threshold is set
 * (every other field is then empty). `cpu` is in cores (1.0 = one core busy), memory in
 * bytes; `reason` is "cpu", "memory" or "cpu,memory" while paused, `since` when the pause
 * began; `pauses` counts the pauses since the host started. */
export interface AdaptiveThrottling {
  enabled: boolean;
  paused: boolean;
  reason: string | null;
  since: string | null;
  cpu: number | null;
  memoryBytes: number | null;
  cpuThreshold: number | null;
  memoryThresholdBytes: number | null;
  pauses: number;
}

/** `GET /ratelimits`: the serving host's limiter now; `available` is false without a host.
 * `clusterWide`: budgets and `max_concurrency` permits are shared by every node through the
 * database (else per host); parked and waiting runs and running counts are this host's. */
export interface RateLimits {
  available: boolean;
  clusterWide: boolean;
  parkedTaskCount: number;
  maxParkedTasks: number;
  trackedKeyCount: number;
  failOpenCount: number;
  parked: ParkedTask[];
  keys: ParkedKey[];
  handlers: ThrottledHandler[];
  adaptive: AdaptiveThrottling;
}

export interface SuccessRateTrend {
  period: string;
  timestamps: string[];
  successRates: (number | null)[];
  completed: number[];
  failed: number[];
}

export interface TaskTypes {
  range: Range;
  exact: boolean;
  sampleSize: number;
  types: { type: string; shortType: string; count: number }[];
}

export interface ExecutionTimePoint {
  timestamp: string;
  avgExecutionTimeMs: number | null;
  sampleSize: number;
}

export class ApiError extends Error {
  readonly status: number;
  readonly retryAfter: number | null;

  constructor(status: number, message: string, retryAfter: number | null = null) {
    super(message);
    this.status = status;
    this.retryAfter = retryAfter;
  }
}

const TOKEN_KEY = "evertask.monitor.token";
let unauthorizedHandler: () => void = () => undefined;

export function onUnauthorized(handler: () => void): void {
  unauthorizedHandler = handler;
}

export function getToken(): string | null {
  return sessionStorage.getItem(TOKEN_KEY);
}

export function setToken(token: string | null): void {
  if (token) sessionStorage.setItem(TOKEN_KEY, token);
  else sessionStorage.removeItem(TOKEN_KEY);
}

export type Params = Record<string, string | number | boolean | string[] | null | undefined>;

/** An absolute API URL; arrays become repeated parameters, empty values are left out. */
export function apiUrl(path: string, params: Params = {}, base: string = document.baseURI): string {
  const url = new URL(`api${path}`, base);
  for (const [name, value] of Object.entries(params)) {
    if (value === undefined || value === null || value === "") continue;
    if (Array.isArray(value)) value.forEach((v) => url.searchParams.append(name, v));
    else url.searchParams.set(name, String(value));
  }
  return url.toString();
}

/** The live-event WebSocket URL next to the API. */
export function wsUrl(includeLogs: boolean, base: string = document.baseURI): string {
  const url = new URL("ws", base);
  url.protocol = url.protocol === "https:" ? "wss:" : "ws:";
  if (includeLogs) url.searchParams.set("logs", "true");
  return url.toString();
}

async function errorOf(response: Response): Promise<ApiError> {
  let message = `${response.status} ${response.statusText}`;
  try {
    const body = (await response.json()) as { message?: string; detail?: unknown };
    if (body.message) message = body.message;
    else if (body.detail) message = JSON.stringify(body.detail);
  } catch {
    // not JSON: keep the status line
  }
  const retry = Number(response.headers.get("Retry-After"));
  return new ApiError(response.status, message, Number.isFinite(retry) && retry > 0 ? retry : null);
}

export async function request<T>(
  method: "GET" | "POST",
  path: string,
  options: { params?: Params; body?: unknown } = {},
): Promise<T> {
  const headers: Record<string, string> = { Accept: "application/json" };
  const token = getToken();
  if (token) headers.Authorization = `Bearer ${token}`;
  if (options.body !== undefined) headers["Content-Type"] = "application/json";
  const response = await fetch(apiUrl(path, options.params), {
    method,
    headers,
    body: options.body === undefined ? undefined : JSON.stringify(options.body),
  });
  if (!response.ok) {
    const error = await errorOf(response);
    if (response.status === 401 && path !== "/auth/login") {
      setToken(null);
      unauthorizedHandler();
    }
    throw error;
  }
  return (await response.json()) as T;
}

export const api = {
  get: <T>(path: string, params?: Params) => request<T>("GET", path, { params }),
  post: <T>(path: string, body?: unknown) => request<T>("POST", path, { body }),
};
