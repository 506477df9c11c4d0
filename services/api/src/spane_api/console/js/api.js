// The JSON API from the browser: the token kept for the browser session, errors as ApiError with the problem detail.
const TOKEN_KEY = "spane.token";

export class ApiError extends Error {
  constructor(status, title, detail, problems) {
    super(detail || title || `HTTP ${status}`);
    this.status = status;
    this.title = title;
    this.problems = problems || [];
  }
}

export function token() { return sessionStorage.getItem(TOKEN_KEY); }
export function setToken(value) {
  if (value) sessionStorage.setItem(TOKEN_KEY, value); else sessionStorage.removeItem(TOKEN_KEY);
}

function headers(extra) {
  const all = { Accept: "application/json", ...extra };
  const t = token();
  if (t) all.Authorization = `Bearer ${t}`;
  return all;
}

async function problem(response) {
  let body = null;
  try { body = await response.json(); } catch { body = null; }
  if (body && typeof body === "object") {
    return new ApiError(response.status, body.title, body.detail, body.errors);
  }
  return new ApiError(response.status, response.statusText, "", []);
}

// Listeners told when the server answers 401, so that the page shows the login form.
const unauthorized = [];
export function onUnauthorized(fn) { unauthorized.push(fn); }

export async function call(method, path, body) {
  const init = { method, headers: headers(body === undefined ? {} : { "Content-Type": "application/json" }) };
  if (body !== undefined) init.body = JSON.stringify(body);
  const response = await fetch(path, init);
  if (response.status === 401) unauthorized.forEach((fn) => fn());
  if (!response.ok) throw await problem(response);
  if (response.status === 204) return null;
  const text = await response.text();
  return text ? JSON.parse(text) : null;
}

export const get = (path) => call("GET", path);
export const post = (path, body) => call("POST", path, body === undefined ? {} : body);
export const del = (path) => call("DELETE", path);

export function query(params) {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) if (v !== undefined && v !== null && v !== "") q.set(k, v);
  const s = q.toString();
  return s ? `?${s}` : "";
}

// Server-sent events over fetch (EventSource cannot send the Authorization header). Calls onEvent(type, data, id)
// for each event; resolves when the stream ends; rejects with ApiError (status 404 when the server has no stream).
export async function stream(path, onEvent, signal, lastEventId) {
  const extra = { Accept: "text/event-stream" };
  if (lastEventId) extra["Last-Event-ID"] = lastEventId;
  const response = await fetch(path, { headers: headers(extra), signal });
  if (!response.ok) throw await problem(response);
  const reader = response.body.pipeThrough(new TextDecoderStream()).getReader();
  let buffer = "";
  let event = { type: "message", data: [], id: null };
  for (;;) {
    const { value, done } = await reader.read();
    if (done) return;
    buffer += value;
    let newline;
    while ((newline = buffer.indexOf("\n")) >= 0) {
      const line = buffer.slice(0, newline).replace(/\r$/, "");
      buffer = buffer.slice(newline + 1);
      if (line === "") {
        if (event.data.length) {
          const data = JSON.parse(event.data.join("\n"));
          onEvent(event.type === "message" ? (data.type || "message") : event.type, data, event.id);
        }
        event = { type: "message", data: [], id: null };
      } else if (!line.startsWith(":")) {
        const at = line.indexOf(":");
        const field = at < 0 ? line : line.slice(0, at);
        const val = at < 0 ? "" : line.slice(at + 1).replace(/^ /, "");
        if (field === "event") event.type = val;
        else if (field === "data") event.data.push(val);
        else if (field === "id") event.id = val;
      }
    }
  }
}
