// The list of executions, filtered by workflow and status, a page at a time (newest first).
import { get, query } from "../api.js";
import { badge, h, table, time } from "../dom.js";

const STATUSES = ["", "scheduled", "running", "paused", "completed", "failed", "cancelled"];

export async function executionList(params) {
  const workflowId = params.get("workflowId") || "";
  const status = params.get("status") || "";
  const cursor = params.get("cursor") || "";
  const limit = 25;
  const [page, workflows] = await Promise.all([
    get(`/api/executions${query({ workflowId, status, cursor, limit })}`),
    get("/api/workflows"),
  ]);
  const wfSelect = h("select", { name: "workflowId", id: "filter-workflow" }, h("option", { value: "" }, "any"),
    workflows.items.map((w) => h("option", { value: w.workflowId, selected: w.workflowId === workflowId }, w.workflowId)));
  const stSelect = h("select", { name: "status", id: "filter-status" },
    STATUSES.map((s) => h("option", { value: s, selected: s === status }, s || "any")));
  const filters = h("form", { class: "filters", role: "search" },
    h("label", { for: "filter-workflow" }, "Workflow", wfSelect),
    h("label", { for: "filter-status" }, "Status", stSelect),
    h("button", { type: "submit" }, "Filter"));
  filters.addEventListener("submit", (e) => {
    e.preventDefault();
    location.hash = `#/executions${query({ workflowId: wfSelect.value, status: stSelect.value })}`;
  });
  const rows = page.items.map((e) => h("tr", { "data-execution": e.executionId },
    h("td", { class: "mono" }, h("a", { href: `#/executions/${encodeURIComponent(e.executionId)}` }, e.executionId)),
    h("td", {}, h("a", { href: `#/workflows/${encodeURIComponent(e.workflowId)}` }, e.workflowId), ` v${e.version}`),
    h("td", {}, badge(e.status)),
    h("td", { class: "small" }, time(e.startedAt)), h("td", { class: "small" }, time(e.finishedAt)),
    h("td", { class: "small" }, e.error ? e.error.message : "")));
  const pager = h("p", { class: "row" },
    cursor ? h("a", { href: `#/executions${query({ workflowId, status })}` }, "« Newest") : null,
    page.nextCursor ? h("a", { href: `#/executions${query({ workflowId, status, cursor: page.nextCursor })}`, id: "older" }, "Older »") : null);
  const element = h("section", {}, h("h1", {}, "Executions"), filters,
    rows.length ? table(["Execution", "Workflow", "Status", "Started", "Finished", "Error"], rows, { id: "executions" })
      : h("p", { class: "muted" }, "No executions match."),
    pager);
  return { title: "Executions", element };
}
