// Dead letters: nodes that failed their last try. Each one's input is editable as JSON; "Retry" runs the node again
// on it and revives its execution; "Delete" drops the entry.
import { ApiError, del, get, post, query } from "../api.js";
import { errorText, h, jsonEditor, message, time } from "../dom.js";

function entry(d, onGone) {
  const id = `dlq-input-${d.id}`.replace(/[^A-Za-z0-9_-]/g, "_");
  const [editor, read] = jsonEditor("Input for the retry (JSON)", d.input, id);
  const result = h("div", { "aria-live": "polite" });
  const retry = h("button", { type: "button", class: "retry" }, "Retry");
  const remove = h("button", { type: "button", class: "danger delete" }, "Delete");
  const error = d.error && typeof d.error === "object" ? `${d.error.type || "Error"}: ${d.error.message}` : String(d.error || "");
  const card = h("article", { class: "card", "data-dead-letter": d.id, "aria-label": `dead letter ${d.id}` },
    h("p", { class: "row" }, h("strong", { class: "mono" }, d.nodeId), " in ",
      h("a", { class: "mono", href: `#/executions/${encodeURIComponent(d.executionId)}` }, d.executionId),
      h("span", { class: "muted small" }, `${d.workflowId} · ${d.attempts} attempts · ${time(d.failedAt)}`)),
    message("error", error), editor, h("p", { class: "row" }, retry, remove), result);
  retry.addEventListener("click", async () => {
    const input = read();
    if (!input.ok) return;
    retry.disabled = true;
    try {
      await post(`/api/dlq/${encodeURIComponent(d.id)}/retry`, { input: input.value });
      result.replaceChildren(message("ok", "Retried: the node runs again and its execution is revived."),
        h("a", { href: `#/executions/${encodeURIComponent(d.executionId)}` }, "Open the execution"));
    } catch (err) {
      result.replaceChildren(message("error", errorText(err)));
      retry.disabled = false;
    }
  });
  remove.addEventListener("click", async () => {
    try {
      await del(`/api/dlq/${encodeURIComponent(d.id)}`);
      onGone(card);
    } catch (err) {
      result.replaceChildren(message("error", errorText(err)));
    }
  });
  return card;
}

export async function deadLetters(params) {
  const workflowId = params.get("workflowId") || "";
  const executionId = params.get("executionId") || "";
  let page;
  try {
    page = await get(`/api/dlq${query({ workflowId, executionId, limit: 50 })}`);
  } catch (err) {
    if (err instanceof ApiError && err.status === 404) {
      return { title: "Dead letters", element: h("section", {}, h("h1", {}, "Dead letters"),
        message("error", "This server has no dead-letter API (/api/dlq).")) };
    }
    throw err;
  }
  const list = h("div", { id: "dead-letters" });
  const empty = h("p", { class: "muted" }, "No dead letters.");
  const gone = (card) => { card.remove(); if (!list.children.length) list.replaceChildren(empty); };
  list.replaceChildren(...(page.items.length ? page.items.map((d) => entry(d, gone)) : [empty]));
  const filter = workflowId || executionId ? h("p", { class: "small" }, `Filtered: ${workflowId || executionId} · `,
    h("a", { href: "#/dlq" }, "show all")) : null;
  return { title: "Dead letters", element: h("section", {}, h("h1", {}, "Dead letters"), filter, list) };
}
