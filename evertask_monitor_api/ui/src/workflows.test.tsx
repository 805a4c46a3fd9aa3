// @vitest-environment happy-dom
// The workflows page rendered to markup (react-dom/server) and read back through a DOM.

import { renderToStaticMarkup } from "react-dom/server";
import type { ReactElement } from "react";
import { MemoryRouter } from "react-router-dom";
import { describe, expect, it } from "vitest";
import type { Batch, BatchDetail, BatchMember } from "./api";
import { BatchDetailView, WorkflowListView } from "./pages/Workflows";
import {
  batchTitle,
  batchTone,
  continueWhenText,
  progressSegments,
  progressText,
  resultPreview,
  stageTitle,
  workflowsDocsUrl,
} from "./workflows";

const WF = "01a2417f-5c3e-7a01-8b2c-4d5e6f708192";
const GROUP = "01a2417f-5c3e-7a02-8b2c-00000000a0a0";

function batch(extra: Partial<Batch> = {}): Batch {
  return {
    id: WF,
    kind: "Workflow",
    name: "order-42",
    status: "Running",
    total: 4,
    succeeded: 1,
    failed: 0,
    cancelled: 0,
    pending: 3,
    createdAtUtc: "2026-03-02T09:00:00Z",
    finishedAtUtc: null,
    workflowId: null,
    canCancel: true,
    ...extra,
  };
}

function member(id: string, extra: Partial<BatchMember> = {}): BatchMember {
  return {
    id,
    type: "app.tasks.Ship",
    shortType: "Ship",
    status: "Completed",
    queueName: "default",
    createdAtUtc: "2026-03-02T09:00:00Z",
    lastExecutionUtc: "2026-03-02T09:00:01Z",
    executionTimeMs: 12,
    result: null,
    exceptionSummary: null,
    parentTaskId: null,
    continueWhen: null,
    batchId: null,
    workflowId: WF,
    retriedFrom: null,
    compensation: null,
    canCancel: false,
    canRetry: false,
    ...extra,
  };
}

const ids = ["a", "b", "c", "d"].map((x) => `01a2417f-5c3e-7a03-8b2c-00000000000${x}`);

function detail(extra: Partial<BatchDetail> = {}): BatchDetail {
  const group = batch({ id: GROUP, kind: "Group", name: null, total: 2, succeeded: 0, pending: 2, workflowId: WF });
  return {
    ...batch(),
    members: [
      member(ids[0], { result: { reserved: 3 }, compensation: "Release" }),
      member(ids[1], { status: "InProgress", batchId: GROUP, lastExecutionUtc: null }),
      member(ids[2], {
        status: "Failed",
        batchId: GROUP,
        exceptionSummary: "RuntimeError: carrier down",
        canRetry: true,
      }),
      member(ids[3], { status: "WaitingParent", parentTaskId: GROUP, continueWhen: "Succeeded" }),
    ],
    memberCount: 4,
    memberLimit: 1000,
    stages: [
      { index: 1, group: null, taskIds: [ids[0]] },
      { index: 2, group, taskIds: [ids[1], ids[2]] },
      { index: 3, group: null, taskIds: [ids[3]] },
    ],
    compensations: [],
    continuations: [
      member("01a2417f-5c3e-7a04-8b2c-0000000000ff", {
        type: "evertask.CompensateWorkflow",
        shortType: "CompensateWorkflow",
        status: "WaitingParent",
        parentTaskId: WF,
        continueWhen: "Failed",
        workflowId: null,
      }),
    ],
    continuationLimit: 100,
    ...extra,
  };
}

function render(element: ReactElement): HTMLElement {
  const root = document.createElement("div");
  root.innerHTML = renderToStaticMarkup(<MemoryRouter>{element}</MemoryRouter>);
  return root;
}

function byTestId(root: ParentNode, id: string): HTMLElement[] {
  return [...root.querySelectorAll<HTMLElement>(`[data-testid="${id}"]`)];
}

describe("workflow wording", () => {
  it("describes progress and draws only what finished", () => {
    expect(progressText(batch())).toBe("1 of 4 finished");
    expect(progressText(batch({ succeeded: 2, failed: 1, cancelled: 1, pending: 0 }))).toBe(
      "4 of 4 finished · 1 failed · 1 cancelled",
    );
    expect(progressSegments(batch({ succeeded: 2, failed: 1, pending: 1 })).map((s) => [s.name, s.tone])).toEqual([
      ["succeeded", "ok"],
      ["failed", "bad"],
      ["pending", "info"],
    ]);
  });

  it("names a record, with its kind and id tail when it has no name", () => {
    expect(batchTitle(batch())).toBe("order-42");
    expect(batchTitle(batch({ name: null, kind: "Batch" }))).toBe("batch …4d5e6f708192");
    expect(batchTone("Failed")).toBe("bad");
    expect(batchTone("Running")).toBe("info");
  });

  it("previews results on one line and says when continuations run", () => {
    expect(resultPreview(null)).toBe("—");
    expect(resultPreview({ a: 1 })).toBe('{"a":1}');
    expect(resultPreview("x".repeat(100), 10)).toBe(`"xxxxxxxx…`);
    expect(continueWhenText("Failed")).toBe("on failure");
    expect(continueWhenText("Finished")).toBe("either way");
    expect(stageTitle({ index: 2, group: null, taskIds: ["a", "b"] })).toBe("Stage 2 · 2 in parallel");
    expect(stageTitle({ index: 1, group: null, taskIds: ["a"] })).toBe("Stage 1");
    expect(workflowsDocsUrl(null)).toBeNull();
    expect(workflowsDocsUrl("https://docs.example/evertask")).toBe("https://docs.example/evertask/workflows/");
  });
});

describe("workflow detail", () => {
  it("shows the stages with their steps, statuses, results and errors", () => {
    const root = render(<BatchDetailView data={detail()} />);
    const stages = byTestId(root, "stage");
    expect(stages.map((s) => s.dataset.stage)).toEqual(["1", "2", "3"]);
    expect(byTestId(stages[1], "member-row").map((r) => r.dataset.taskId)).toEqual([ids[1], ids[2]]);
    expect(byTestId(stages[1], "stage-status")[0].textContent).toBe("Running");
    expect(byTestId(stages[1], "stage-progress-text")[0].textContent).toBe("0 of 2 finished");
    expect(byTestId(stages[0], "member-result")[0].textContent).toContain('{"reserved":3}');
    const failed = byTestId(stages[1], "member-row")[1];
    expect(byTestId(failed, "member-error")[0].textContent).toBe("RuntimeError: carrier down");
    // a failed step links to its page, where it can be retried
    expect(byTestId(failed, "retry-step")[0].getAttribute("href")).toBe(`/tasks/${ids[2]}`);
    expect(byTestId(root, "retry-step")).toHaveLength(1);
    expect(byTestId(root, "member-link").map((a) => a.getAttribute("href"))).toContain(`/tasks/${ids[3]}`);
    expect(byTestId(root, "stages-note")[0].textContent).toContain("compensations of the completed steps");
    expect(byTestId(root, "batch-pending")[0].textContent).toBe("3");
    expect(byTestId(root, "batch-progress-text")[0].textContent).toBe("1 of 4 finished");
    const [continuation] = byTestId(root, "continuation-row");
    expect(byTestId(continuation, "continue-when")[0].textContent).toBe("on failure");
    expect(byTestId(root, "compensation")).toHaveLength(0);
  });

  it("shows a failed saga's compensations and a batch's tasks without stages", () => {
    const comp = {
      ...batch({ id: "c0", kind: "Compensation", name: null, status: "Completed", total: 1, succeeded: 1, pending: 0 }),
      workflowId: WF,
      members: [member("u1", { shortType: "Release", result: "released" })],
    };
    const failed = render(<BatchDetailView data={detail({ status: "Failed", compensations: [comp] })} />);
    expect(byTestId(failed, "compensation-status")[0].textContent).toBe("Completed");
    expect(byTestId(failed, "compensation-steps")[0].textContent).toContain("Release");

    const plain = detail({
      kind: "Batch",
      name: "thumbs",
      stages: [],
      memberCount: 2500,
      members: [member(ids[0]), member(ids[1])],
      continuations: [],
    });
    const root = render(<BatchDetailView data={plain} />);
    expect(byTestId(root, "stage")).toHaveLength(0);
    expect(byTestId(root, "members")[0].querySelectorAll("[data-testid=member-row]")).toHaveLength(2);
    expect(byTestId(root, "members-truncated")[0].textContent).toContain("The first 2 of 2,500 tasks");
    expect(byTestId(root, "continuations")[0].textContent).toContain("No task was dispatched after it.");
  });
});

describe("workflow list", () => {
  it("lists records with progress, and explains how to dispatch one when there is none", () => {
    const root = render(
      <WorkflowListView
        data={{
          items: [batch(), batch({ id: "b2", kind: "Batch", name: null, status: "Failed", succeeded: 3, failed: 1, pending: 0 })],
          page: 1,
          pageSize: 20,
          hasMore: false,
        }}
      />,
    );
    const rows = byTestId(root, "batch-row");
    expect(rows.map((r) => r.dataset.batchId)).toEqual([WF, "b2"]);
    expect(byTestId(rows[0], "batch-link")[0].getAttribute("href")).toBe(`/workflows/${WF}`);
    expect(byTestId(rows[1], "batch-status")[0].textContent).toBe("Failed");
    expect(byTestId(rows[1], "progress-text")[0].textContent).toBe("4 of 4 finished · 1 failed");

    const empty = render(<WorkflowListView data={{ items: [], page: 1, pageSize: 20, hasMore: false }} />);
    expect(byTestId(empty, "workflows-empty")[0].textContent).toContain("dispatch_workflow");
    expect(byTestId(empty, "workflows-empty")[0].textContent).toContain("docs/workflows.md");
  });
});
