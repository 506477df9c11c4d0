// Workflows: the list, and one workflow's page (versions, triggers, DAG, definition, start an execution).
import { get, post, query } from "../api.js";
import { drawDag } from "../dag.js";
import { errorText, h, json, jsonEditor, message, table, time } from "../dom.js";

const wfLink = (id) => h("a", { href: `#/workflows/${encodeURIComponent(id)}` }, id);

function triggerText(t) {
  const c = t.config || t;
  if (t.type === "webhook") return `webhook ${c.method || "POST"} /api/webhooks/${c.path}`;
  if (t.type === "schedule") return `schedule ${c.cron}${c.timezone ? ` (${c.timezone})` : ""}`;
  return t.type;
}

const EXAMPLE = {
  id: "hello", name: "Hello",
  nodes: [
    { id: "start", type: "transform", outputs: ["greet"] },
    { id: "greet", type: "transform", config: { expression: "join(' ', ['hello', name])" } },
  ],
};

// Register a definition (a new workflow, or a new version of one): checked as JSON here, then by the server, whose
// problems are shown by path.
function definitionForm(initial, title, id) {
  const [editor, read] = jsonEditor("Definition (JSON)", initial, id);
  const result = h("div", { "aria-live": "polite" });
  const button = h("button", { type: "submit" }, "Register");
  const form = h("form", { class: "card", id: `${id}-form` }, h("h2", {}, title), editor, h("p", { class: "row" }, button),
    result);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const definition = read();
    if (!definition.ok) return;
    button.disabled = true;
    try {
      const saved = await post("/api/workflows", definition.value);
      location.hash = `#/workflows/${encodeURIComponent(saved.workflowId)}?version=${saved.version}`;
    } catch (err) {
      result.replaceChildren(message("error", errorText(err)));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

export async function workflowList() {
  const { items } = await get("/api/workflows");
  const rows = items.map((w) => h("tr", { "data-workflow": w.workflowId },
    h("td", {}, wfLink(w.workflowId)), h("td", {}, w.name), h("td", {}, `v${w.version}`),
    h("td", {}, (w.triggers || []).map(triggerText).join(", ") || h("span", { class: "muted" }, "none")),
    h("td", { class: "small" }, time(w.updatedAt)),
    h("td", {}, h("a", { href: `#/executions${query({ workflowId: w.workflowId })}` }, "executions"))));
  const element = h("section", {}, h("h1", {}, "Workflows"),
    items.length
      ? table(["Workflow", "Name", "Latest", "Triggers", "Updated", ""], rows, { id: "workflows" })
      : h("p", { class: "muted" }, "No workflows yet. Register one below, with `spane apply -f workflow.json` or POST /api/workflows."),
    h("details", { class: "card", open: !items.length }, h("summary", {}, "Register a workflow"),
      definitionForm(EXAMPLE, "A new workflow", "new-definition")));
  return { title: "Workflows", element };
}

export function startForm(workflowId, version) {
  const [editor, read] = jsonEditor("Input (JSON)", {}, "start-input");
  const result = h("div", { "aria-live": "polite" });
  const button = h("button", { type: "submit" }, "Start execution");
  const form = h("form", { class: "card", id: "start-form" }, h("h2", {}, "Start an execution"), editor,
    h("p", { class: "row" }, button), result);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    const input = read();
    if (!input.ok) return;
    button.disabled = true;
    try {
      const started = await post(`/api/workflows/${encodeURIComponent(workflowId)}/execute`, { input: input.value, version });
      location.hash = `#/executions/${encodeURIComponent(started.executionId)}`;
    } catch (err) {
      result.replaceChildren(message("error", errorText(err)));
    } finally {
      button.disabled = false;
    }
  });
  return form;
}

export async function workflowPage(workflowId, params) {
  const path = `/api/workflows/${encodeURIComponent(workflowId)}`;
  const wanted = params.get("version");
  const [wf, versions] = await Promise.all([get(path + query({ version: wanted })), get(`${path}/versions`)]);
  const definition = wf.definition;
  const picker = h("select", { id: "version", "aria-label": "Version" },
    versions.items.map((v) => h("option", { value: v.version, selected: v.version === wf.version },
      `v${v.version}${v.createdAt ? ` · ${time(v.createdAt)}` : ""}`)));
  picker.addEventListener("change", () => {
    location.hash = `#/workflows/${encodeURIComponent(workflowId)}?version=${picker.value}`;
  });
  const triggers = definition.triggers || [];
  const element = h("section", {},
    h("h1", {}, definition.name || workflowId, " ", h("span", { class: "muted small" }, workflowId)),
    h("div", { class: "row" }, h("label", { for: "version" }, "Version"), picker,
      h("a", { href: `#/executions${query({ workflowId })}` }, "Executions of this workflow")),
    h("h2", {}, "Graph"), drawDag(definition, null, null),
    h("div", { class: "grid2" },
      h("div", {}, h("h2", {}, "Triggers"),
        triggers.length ? h("ul", {}, triggers.map((t) => h("li", {}, triggerText(t)))) : h("p", { class: "muted" }, "None: started by the API only.")),
      startForm(workflowId, wf.version)),
    h("details", { class: "card" }, h("summary", {}, `Definition (v${wf.version}) as JSON`), json(definition)),
    h("details", { class: "card" }, h("summary", {}, "Edit: register a new version"),
      definitionForm(definition, `A new version of ${workflowId}`, "edit-definition")));
  return { title: workflowId, element };
}
