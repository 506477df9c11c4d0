// Operations: the shared circuit breakers (each can be closed by hand), the rate-limit buckets and the cron schedules.
import { get, post } from "../api.js";
import { badge, errorText, h, message, table, time } from "../dom.js";

function breakerRow(b, onReset) {
  const result = h("span", { "aria-live": "polite" });
  const reset = h("button", { type: "button", class: "small", disabled: b.state === "closed" }, "Reset");
  reset.addEventListener("click", async () => {
    reset.disabled = true;
    try {
      await post(`/api/circuit-breakers/${encodeURIComponent(b.name)}/reset`);
      await onReset();
    } catch (err) {
      result.replaceChildren(message("error", errorText(err)));
      reset.disabled = false;
    }
  });
  return h("tr", { "data-breaker": b.name },
    h("td", { class: "mono" }, b.name), h("td", {}, badge(b.state)),
    h("td", {}, String(b.failures)), h("td", {}, String(b.successes)), h("td", { class: "small" }, time(b.openUntil)),
    h("td", { class: "small" }, `${b.failureThreshold} failures / ${b.successThreshold} probes / ${b.timeoutMs} ms`),
    h("td", {}, reset, result));
}

async function breakerTable() {
  const holder = h("div", { id: "breakers-holder" });
  const load = async () => {
    const { items } = await get("/api/circuit-breakers");
    holder.replaceChildren(items.length
      ? table(["Breaker", "State", "Failures", "Probes ok", "Open until", "Thresholds", ""],
        items.map((b) => breakerRow(b, load)), { id: "breakers" })
      : h("p", { class: "muted" }, "No circuit breaker has been used yet."));
  };
  await load();
  return holder;
}

export async function operations() {
  const [breakers, buckets, schedules] = await Promise.all([
    breakerTable(), get("/api/rate-limits"), get("/api/schedules"),
  ]);
  const bucketRows = buckets.items.map((b) => h("tr", { "data-bucket": b.name },
    h("td", { class: "mono" }, b.name), h("td", {}, `${b.max} per ${b.perMs} ms`),
    h("td", {}, String(b.available)), h("td", {}, String(b.reserved))));
  const scheduleRows = schedules.items.map((s) => h("tr", { "data-schedule": s.workflowId },
    h("td", {}, h("a", { href: `#/workflows/${encodeURIComponent(s.workflowId)}` }, s.workflowId)),
    h("td", { class: "mono" }, s.cron), h("td", {}, s.timezone),
    h("td", { class: "small" }, time(s.nextRunAt)), h("td", { class: "small" }, time(s.lastRunAt)),
    h("td", { class: "mono small" }, s.lastExecutionId
      ? h("a", { href: `#/executions/${encodeURIComponent(s.lastExecutionId)}` }, s.lastExecutionId) : "")));
  const element = h("section", {}, h("h1", {}, "Operations"),
    h("h2", {}, "Circuit breakers"),
    h("p", { class: "muted small" }, "An open breaker defers its nodes (no attempt spent) until it may half-open. Reset closes it: they run at once."),
    breakers,
    h("h2", {}, "Rate limits"),
    bucketRows.length ? table(["Bucket", "Rate", "Available", "Waiting"], bucketRows, { id: "buckets" })
      : h("p", { class: "muted" }, "No rate limit has been used yet."),
    h("h2", {}, "Schedules"),
    scheduleRows.length ? table(["Workflow", "Cron", "Time zone", "Next run", "Last run", "Last execution"], scheduleRows,
      { id: "schedules" }) : h("p", { class: "muted" }, "No cron schedules."));
  return { title: "Operations", element };
}
