// A tiny DOM builder (no innerHTML, so no value from the API is ever parsed as markup) and formatting helpers.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (k.startsWith("on")) el.addEventListener(k.slice(2), v);
    else if (k === "class") el.className = v;
    else el.setAttribute(k, v === true ? "" : String(v));
  }
  append(el, children);
  return el;
}

function append(el, children) {
  for (const child of children.flat(Infinity)) {
    if (child === undefined || child === null || child === false) continue;
    el.append(child instanceof Node ? child : document.createTextNode(String(child)));
  }
}

export function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  for (const [k, v] of Object.entries(attrs || {})) if (v !== undefined && v !== null) el.setAttribute(k, String(v));
  append(el, children);
  return el;
}

export function badge(status) { return h("span", { class: `badge s-${status}` }, status); }
export function json(value) { return h("pre", {}, JSON.stringify(value, null, 2)); }
export function time(iso) { return iso ? iso.replace("T", " ").replace("Z", "") : ""; }
export function message(kind, text) {
  return h("div", { class: `message ${kind}`, role: kind === "error" ? "alert" : "status" }, text);
}
export function table(headers, rows, attrs) {
  return h("div", { class: "scroll" }, h("table", attrs || {},
    h("thead", {}, h("tr", {}, headers.map((t) => h("th", { scope: "col" }, t)))),
    h("tbody", {}, rows)));
}
export function errorText(error) {
  const lines = [error.message];
  for (const p of error.problems || []) lines.push(`${p.path}: ${p.message}`);
  return lines.join("\n");
}

// A JSON editor: a textarea whose content is checked as JSON before it is used; returns [element, read()].
export function jsonEditor(label, value, id) {
  const area = h("textarea", { id, spellcheck: "false", "aria-describedby": `${id}-error` });
  area.value = JSON.stringify(value === undefined ? {} : value, null, 2);
  const note = h("div", { id: `${id}-error`, class: "small", "aria-live": "polite" });
  const read = () => {
    try {
      const parsed = JSON.parse(area.value);
      area.removeAttribute("aria-invalid");
      note.textContent = "";
      note.className = "small";
      return { ok: true, value: parsed };
    } catch (e) {
      area.setAttribute("aria-invalid", "true");
      note.textContent = `Not valid JSON: ${e.message}`;
      note.className = "small message error";
      return { ok: false };
    }
  };
  area.addEventListener("input", () => { if (area.getAttribute("aria-invalid")) read(); });
  return [h("div", {}, h("label", { for: id }, label), area, note), read];
}
