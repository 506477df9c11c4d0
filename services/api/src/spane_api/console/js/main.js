// The console's shell: the login gate, the navigation and a hash router (#/workflows, #/executions/ID, ...).
import { ApiError, get, onUnauthorized, setToken, token } from "./api.js";
import { h, message } from "./dom.js";
import { deadLetters } from "./views/dlq.js";
import { executionPage } from "./views/execution.js";
import { executionList } from "./views/executions.js";
import { operations } from "./views/operations.js";
import { workflowList, workflowPage } from "./views/workflows.js";

const main = document.getElementById("main");
const nav = document.getElementById("nav");
const logout = document.getElementById("logout");
let cleanup = null; // what the current page must stop (a live stream) when another one is shown
let signedIn = false;

const routes = [
  [/^\/workflows\/?$/, () => workflowList()],
  [/^\/workflows\/([^/]+)$/, (m, q) => workflowPage(decodeURIComponent(m[1]), q)],
  [/^\/executions\/?$/, (m, q) => executionList(q)],
  [/^\/executions\/([^/]+)$/, (m) => executionPage(decodeURIComponent(m[1]))],
  [/^\/dlq\/?$/, (m, q) => deadLetters(q)],
  [/^\/operations\/?$/, () => operations()],
];

function parseHash() {
  const raw = location.hash.replace(/^#/, "") || "/workflows";
  const [path, search] = raw.split("?");
  return { path, query: new URLSearchParams(search || "") };
}

function showLogin(reason) {
  signedIn = false;
  nav.hidden = true;
  if (cleanup) { cleanup(); cleanup = null; }
  const input = h("input", { id: "token", type: "password", autocomplete: "current-password", required: true });
  const form = h("form", { class: "card login", "aria-labelledby": "login-title" },
    h("h1", { id: "login-title" }, "Sign in"),
    h("p", { class: "muted" }, "This SPANE server needs its API token (SPANE_API_TOKEN). It is kept for this browser session only."),
    reason ? message("error", reason) : null,
    h("label", { for: "token" }, "API token"), input,
    h("p", {}, h("button", { type: "submit" }, "Sign in")));
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    setToken(input.value.trim());
    await start();
  });
  main.replaceChildren(form);
  input.focus();
}

async function render() {
  if (!signedIn) return;
  if (cleanup) { cleanup(); cleanup = null; }
  const { path, query } = parseHash();
  for (const a of nav.querySelectorAll("a")) {
    const section = a.getAttribute("href").slice(1);
    if (path.startsWith(section)) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const route = routes.find(([re]) => re.test(path));
  main.replaceChildren(h("p", { class: "muted" }, "Loading…"));
  try {
    if (!route) throw new Error(`no page ${path}`);
    const page = await route[1](path.match(route[0]), query);
    if (!signedIn) return;
    main.replaceChildren(page.element);
    cleanup = page.stop || null;
    document.title = `${page.title} · SPANE`;
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) return;
    main.replaceChildren(h("h1", {}, "Something went wrong"), message("error", e.message));
  }
}

async function start() {
  try {
    await get("/api/workflows");
  } catch (e) {
    if (e instanceof ApiError && e.status === 401) {
      showLogin(token() ? "That token was refused." : null);
      return;
    }
    main.replaceChildren(message("error", `The server did not answer: ${e.message}`));
    return;
  }
  signedIn = true;
  nav.hidden = false;
  logout.hidden = !token();
  await render();
}

onUnauthorized(() => { if (signedIn) showLogin("Your token is no longer accepted."); });
logout.addEventListener("click", () => { setToken(null); showLogin(null); });
window.addEventListener("hashchange", () => { render(); main.focus(); });
start();
