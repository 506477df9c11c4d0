// One execution: status, controls (pause / resume / cancel, with the 409 reason when refused), a form to send the
// signal each waiting `wait` node waits for, the DAG coloured by
// node status, each node's attempts, input, output and error, the timeline of its events, parent and children.
// Live: it follows the execution's SSE stream (polling the API instead where the server has none) until it ends.
import { ApiError, get, post, stream } from "../api.js";
import { drawDag, parentsOf } from "../dag.js";
import { badge, errorText, h, json, jsonEditor, message, table, time } from "../dom.js";

const FINAL = new Set(["completed", "failed", "cancelled"]);
const POLL_MS = 1000;
const exLink = (id) => h("a", { class: "mono", href: `#/executions/${encodeURIComponent(id)}` }, id);

// The execution options that differ from the defaults: priority, a scheduled start, a deadline, a rerun's origin.
function options(ex) {
  const parts = [];
  if (ex.priority !== undefined && ex.priority !== 5) parts.push(`priority ${ex.priority}`);
  if (ex.runAt) parts.push(`runs at ${time(ex.runAt)}`);
  if (ex.deadline) parts.push(`deadline ${time(ex.deadline)}`);
  const shown = parts.length ? [h("span", {}, parts.join(" · "))] : [];
  if (ex.rerunOf) shown.push(h("span", {}, shown.length ? " · rerun of " : "Rerun of "), exLink(ex.rerunOf));
  return shown.length ? h("p", { id: "options", class: "small" }, shown) : null;
}

// A node's input as the engine gives it: the execution input (entry node), its parent's output (one parent), or
// {parent: output} (several); an input edited on a dead-letter retry replaces it.
function nodeInputs(definition, execution, events) {
  const parents = parentsOf(definition);
  const inputs = {};
  for (const n of definition.nodes) {
    const ps = parents.get(n.id);
    const out = (p) => (execution.nodes[p] ? execution.nodes[p].output : null);
    if (!ps.length) inputs[n.id] = execution.input;
    else if (ps.length === 1) inputs[n.id] = out(ps[0]);
    else inputs[n.id] = Object.fromEntries(ps.map((p) => [p, out(p)]));
  }
  for (const e of events) if (e.type === "node.queued" && e.hasInputOverride) inputs[e.nodeId] = e.inputOverride;
  return inputs;
}

function describe(e) {
  const parts = [];
  if (e.attempt !== undefined) parts.push(`attempt ${e.attempt}`);
  if (e.error) parts.push(`${e.error.type || "Error"}: ${e.error.message}`);
  if (e.willRetry) parts.push(`retry at ${time(e.retryAt)}`);
  if (e.reason) parts.push(e.reason);
  if (e.until) parts.push(`until ${time(e.until)}`);
  return parts.join(", ");
}

function timeline(events) {
  const rows = events.map((e) => h("tr", { "data-seq": e.seq },
    h("td", { class: "small mono" }, time(e.at)), h("td", {}, `#${e.seq}`),
    h("td", {}, h("span", { class: `badge s-${e.type.split(".")[1]}` }, e.type)),
    h("td", { class: "mono" }, e.nodeId || ""), h("td", { class: "small" }, describe(e)),
    e.childExecutionId ? h("td", {}, exLink(e.childExecutionId)) : h("td", {})));
  return table(["At", "Seq", "Event", "Node", "Detail", ""], rows, { class: "timeline", id: "timeline" });
}

function nodeTable(definition, execution, events) {
  const inputs = nodeInputs(definition, execution, events);
  const rows = definition.nodes.map((n) => {
    const run = execution.nodes[n.id];
    const status = run ? run.status : "pending";
    const detail = run ? h("details", {}, h("summary", {}, "input, output"),
      h("div", { class: "small muted" }, "input"), json(inputs[n.id]),
      h("div", { class: "small muted" }, "output"), json(run.output)) : "";
    return h("tr", { id: `node-${n.id}`, "data-node": n.id, tabindex: -1 },
      h("td", { class: "mono" }, n.id), h("td", {}, n.type), h("td", {}, badge(status)),
      h("td", {}, run ? run.attempts : 0), h("td", { class: "small" }, run ? time(run.startedAt) : ""),
      h("td", { class: "small" }, run && run.error ? `${run.error.type}: ${run.error.message}` : ""), h("td", {}, detail));
  });
  return table(["Node", "Type", "Status", "Attempts", "Started", "Error", ""], rows, { id: "nodes" });
}

// A card per waiting `wait` node: the JSON to send as its signal's data, and Send. Cards are kept across updates
// (an edit in progress survives the events that arrive meanwhile) and shown while their node waits.
function signalCards(path, feedback, after) {
  const cards = new Map();
  const card = (node) => {
    const signal = node.config.signal;
    const [editor, read] = jsonEditor(`Data of the signal "${signal}" (JSON)`, {}, `signal-data-${node.id}`);
    const send = h("button", { type: "button", id: `signal-${node.id}` }, `Send ${signal}`);
    send.addEventListener("click", async () => {
      const data = read();
      if (!data.ok) return;
      send.disabled = true;
      try {
        const accepted = await post(`${path}/signals/${encodeURIComponent(signal)}`, data.value);
        feedback.replaceChildren(message("ok", `signal ${signal} sent: ${accepted.status}`));
      } catch (err) {
        feedback.replaceChildren(message("error", `signal refused: ${errorText(err)}`));
        send.disabled = false;
      }
      after();
    });
    return h("article", { class: "card", "data-signal-node": node.id },
      h("p", {}, h("strong", { class: "mono" }, node.id), ` waits for the signal "${signal}"`), editor, send);
  };
  // A failed execution may leave a wait node waiting, but takes no signal: no card then.
  const takesSignals = (execution) => execution.status === "running" || execution.status === "paused";
  return (definition, execution) => {
    const waiting = definition.nodes.filter((n) => n.type === "wait" && takesSignals(execution)
      && execution.nodes[n.id]?.status === "waiting");
    for (const n of waiting) if (!cards.has(n.id)) cards.set(n.id, card(n));
    return waiting.map((n) => cards.get(n.id));
  };
}

export async function executionPage(executionId) {
  const path = `/api/executions/${encodeURIComponent(executionId)}`;
  let execution = await get(path);
  const { definition } = await get(`/api/workflows/${encodeURIComponent(execution.workflowId)}?version=${execution.version}`);
  let events = (await get(`${path}/history`)).events;

  const head = h("div");
  const graph = h("div");
  const nodes = h("div");
  const events_ = h("div");
  const io = h("div", { class: "grid2" });
  const feedback = h("div", { "aria-live": "polite" });
  const live = h("span", { class: "small muted", id: "live" });
  const signals = h("div", { id: "signals" });
  const buttons = {};
  for (const [name, cls] of [["pause", "secondary"], ["resume", "secondary"], ["cancel", "danger"]]) {
    buttons[name] = h("button", { type: "button", class: cls, id: `${name}-button`,
      onclick: () => steer(name) }, name[0].toUpperCase() + name.slice(1));
  }
  // Re-run: a new execution linked to this one, from the start or from a node (the others keep their outputs).
  const fromNode = h("select", { id: "rerun-from", "aria-label": "Re-run from" },
    h("option", { value: "" }, "from the start"),
    (definition.nodes || []).map((n) => h("option", { value: n.id }, `from ${n.id}`)));
  const rerunButton = h("button", { type: "button", class: "secondary", id: "rerun-button", onclick: () => rerun() },
    "Re-run");
  async function rerun() {
    rerunButton.disabled = true;
    try {
      const started = await post(`${path}/rerun`, fromNode.value ? { fromNode: fromNode.value } : {});
      location.hash = `#/executions/${encodeURIComponent(started.executionId)}`;
    } catch (err) {
      feedback.replaceChildren(message("error", `re-run refused: ${errorText(err)}`));
      rerunButton.disabled = false;
    }
  }
  const select = (nodeId) => {
    const row = document.getElementById(`node-${nodeId}`);
    if (row) { row.scrollIntoView({ block: "center" }); row.focus(); }
  };

  function update() {
    const children = [...new Set(events.filter((e) => e.childExecutionId).map((e) => e.childExecutionId))];
    head.replaceChildren(h("div", {},
      h("p", { class: "row" }, badge(execution.status), " ",
        h("a", { href: `#/workflows/${encodeURIComponent(execution.workflowId)}?version=${execution.version}` },
          `${execution.workflowId} v${execution.version}`),
        h("span", { class: "small muted" }, `started ${time(execution.startedAt)}`),
        execution.finishedAt ? h("span", { class: "small muted" }, `finished ${time(execution.finishedAt)}`) : null, live),
      options(execution),
      execution.parentExecutionId ? h("p", {}, "Parent: ", exLink(execution.parentExecutionId)) : null,
      children.length ? h("p", {}, "Children: ", children.map((c) => [exLink(c), " "])) : null,
      execution.error ? message("error", `${execution.error.type}: ${execution.error.message}`) : null));
    signals.replaceChildren(...waitingCards(definition, execution));
    const statuses = Object.fromEntries(Object.entries(execution.nodes).map(([id, n]) => [id, n.status]));
    graph.replaceChildren(drawDag(definition, statuses, select));
    nodes.replaceChildren(nodeTable(definition, execution, events));
    events_.replaceChildren(timeline(events));
    io.replaceChildren(h("div", {}, h("h2", {}, "Input"), json(execution.input)),
      h("div", {}, h("h2", {}, "Output"), json(execution.output)));
    // The buttons stay enabled: the server decides, and a refusal shows its reason (409).
    document.getElementById("main")?.setAttribute("data-status", execution.status);
  }

  let stopped = false;
  async function refresh() {
    [execution, events] = await Promise.all([get(path), get(`${path}/history`).then((b) => b.events)]);
    if (!stopped) update();
  }
  // Many events arrive together: refresh once per burst.
  let pending = null;
  const soon = () => { if (!pending) pending = setTimeout(() => { pending = null; refresh().catch(() => {}); }, 150); };
  const waitingCards = signalCards(path, feedback, soon);

  async function steer(name) {
    try {
      const accepted = await post(`${path}/${name}`);
      feedback.replaceChildren(message("ok", `${name}: ${accepted.status}`));
    } catch (err) {
      feedback.replaceChildren(message("error", `${name} refused: ${errorText(err)}`));
    }
    soon();
  }

  const controller = new AbortController();
  async function follow() {
    if (FINAL.has(execution.status)) { live.textContent = ""; return; }
    live.textContent = "live";
    try {
      await stream(`${path}/events`, () => soon(), controller.signal);
      await refresh();
    } catch (err) {
      if (stopped) return;
      if (!(err instanceof ApiError) || err.status !== 404) console.warn("event stream ended", err.message);
      // No event stream on this server (or it broke): poll until the execution ends.
      live.textContent = "live (polling)";
      while (!stopped && !FINAL.has(execution.status)) {
        await new Promise((r) => setTimeout(r, POLL_MS));
        if (!stopped) await refresh().catch(() => {});
      }
    }
    if (!stopped && FINAL.has(execution.status)) live.textContent = "";
  }

  update();
  follow();
  const element = h("section", {}, h("h1", {}, "Execution ", h("span", { class: "mono" }, executionId)), head,
    h("div", { class: "row" }, buttons.pause, buttons.resume, buttons.cancel, fromNode, rerunButton), signals, feedback,
    h("h2", {}, "Graph"), graph, h("h2", {}, "Nodes"), nodes, io, h("h2", {}, "Timeline"), events_);
  return {
    title: `Execution ${executionId}`,
    element,
    stop: () => { stopped = true; controller.abort(); if (pending) clearTimeout(pending); },
  };
}
