// Wording of the workflows page: progress, titles, results, stages.

import type { Batch, BatchKind, BatchStatus, WorkflowStage } from "./api";
import type { Tone } from "./format";

const TONES: Record<BatchStatus, Tone> = {
  Running: "info",
  Completed: "ok",
  Failed: "bad",
  Cancelled: "muted",
};

export function batchTone(status: string): Tone {
  return TONES[status as BatchStatus] ?? "muted";
}

export interface Segment {
  name: "succeeded" | "failed" | "cancelled" | "pending";
  value: number;
  tone: Tone;
}

/** The parts of a record's progress bar, in drawing order (empty parts left out). */
export function progressSegments(b: Pick<Batch, "succeeded" | "failed" | "cancelled" | "pending">): Segment[] {
  const parts: Segment[] = [
    { name: "succeeded", value: b.succeeded, tone: "ok" },
    { name: "failed", value: b.failed, tone: "bad" },
    { name: "cancelled", value: b.cancelled, tone: "muted" },
    { name: "pending", value: b.pending, tone: "info" },
  ];
  return parts.filter((p) => p.value > 0);
}

/** "3 of 5 finished · 1 failed · 1 cancelled" (the failed and cancelled parts only when any). */
export function progressText(b: Pick<Batch, "total" | "succeeded" | "failed" | "cancelled" | "pending">): string {
  const finished = b.total - b.pending;
  const parts = [`${finished.toLocaleString("en-US")} of ${b.total.toLocaleString("en-US")} finished`];
  if (b.failed) parts.push(`${b.failed.toLocaleString("en-US")} failed`);
  if (b.cancelled) parts.push(`${b.cancelled.toLocaleString("en-US")} cancelled`);
  return parts.join(" · ");
}

const KIND_NAMES: Record<BatchKind, string> = {
  Batch: "batch",
  Workflow: "workflow",
  Group: "group",
  Compensation: "compensation",
};

/** A record's name, else its kind and the tail of its id: "workflow …3f2a9c1b7d4e". */
export function batchTitle(b: Pick<Batch, "name" | "kind" | "id">): string {
  if (b.name) return b.name;
  const kind = KIND_NAMES[b.kind] ?? b.kind.toLowerCase();
  return `${kind} ${idTail(b.id)}`;
}

/** The tail of an id: task and batch ids are UUIDv7, whose first blocks are a timestamp
 * shared by everything dispatched together, so the random last block tells them apart. */
export function idTail(id: string): string {
  return `…${id.slice(id.lastIndexOf("-") + 1)}`;
}

/** A result on one line, shortened to `max` characters ("—" when there is none). */
export function resultPreview(result: unknown, max = 60): string {
  if (result === null || result === undefined) return "—";
  const text = JSON.stringify(result);
  return text.length > max ? `${text.slice(0, max - 1)}…` : text;
}

/** A result as indented JSON. */
export function resultJson(result: unknown): string {
  return JSON.stringify(result, null, 2);
}

/** When a continuation runs, in words. */
export function continueWhenText(condition: string | null): string {
  switch (condition) {
    case "Succeeded":
      return "on success";
    case "Failed":
      return "on failure";
    case "Finished":
      return "either way";
    default:
      return condition ?? "—";
  }
}

/** "Stage 2 · 3 in parallel" or "Stage 1". */
export function stageTitle(stage: WorkflowStage): string {
  const size = stage.taskIds.length;
  return size > 1 || stage.group ? `Stage ${stage.index} · ${size} in parallel` : `Stage ${stage.index}`;
}

/** What the list shows for a kind filter (the API's default: batches and workflows). */
export const KIND_FILTERS = {
  All: ["Batch", "Workflow"],
  Workflows: ["Workflow"],
  Batches: ["Batch"],
} as const satisfies Record<string, readonly BatchKind[]>;

export type KindFilter = keyof typeof KIND_FILTERS;

/** The documentation's workflows page, or null when no docs URL is configured. */
export function workflowsDocsUrl(docsUrl: string | null | undefined, anchor?: string): string | null {
  if (!docsUrl) return null;
  return `${docsUrl.endsWith("/") ? docsUrl : `${docsUrl}/`}workflows/${anchor ? `#${anchor}` : ""}`;
}
