// The Lineage auditors' UI: routing, the search form and the trust banner. Views live in
// views/*.js; every one is a function of the URL (nav.js), so a pasted link shows the same
// screen. The application is a client of the public API only (query/openapi.json).

import { el, append, clear } from "./dom.js";
import { current, href, navigate, setNavigateHandler, FILTERS } from "./nav.js";
import { loadVerifier, loadTrust, renderTrust } from "./trust.js";
import { userView, agentView, chainView, policyView } from "./views/lineage.js";
import { recordView } from "./views/record.js";
import { findingsView } from "./views/findings.js";
import { logView, exportsView, quarantineView, settingsView } from "./views/admin.js";
import { heading } from "./views/common.js";
import { initSession } from "./views/login.js";

const TENANT = "lineage.lastTenant";
const main = document.getElementById("main");
const form = document.getElementById("search");
let generation = 0;

function searchView(m) {
  m.append(heading("Search", ""),
    el("p", {}, "Pick a tenant and what to find: a user's lineage (everything their agents did, as a tree), an agent's actions, one record with its proof, the chain of an action up to the person who authorized it, or a policy's decisions. The time window and filters apply to lineage and policy queries."),
    el("p", { class: "muted" }, "Times are RFC 3339 (2026-11-01T00:00:00Z). Every view is a link you can share: the address holds the tenant, query, window, filters and selection."));
}

const routes = {
  search: searchView, users: userView, agents: agentView, actions: chainView, policies: policyView,
  records: recordView, findings: findingsView, log: logView, exports: exportsView, quarantine: quarantineView,
  settings: (m, st) => settingsView(m, st, render),
};

// fillForm puts the URL's state into the search form.
function fillForm(st) {
  const p = st.params;
  form.elements.tenant.value = p.get("tenant") || localStorage.getItem(TENANT) || "";
  if (["users", "agents", "records", "actions", "policies"].includes(st.view)) {
    form.elements.kind.value = st.view;
    form.elements.q.value = st.subject;
  }
  form.elements.from.value = p.get("from") || "";
  form.elements.to.value = p.get("to") || "";
  form.elements.action_type.value = p.get("action_type") || "";
  form.elements.action_target.value = p.get("action_target") || "";
  form.elements.agent.value = p.get("agent") || "";
  const effects = new Set(p.getAll("effect"));
  for (const c of form.querySelectorAll("input[name=effect]")) c.checked = effects.has(c.value);
}

form.addEventListener("submit", (e) => {
  e.preventDefault();
  const f = form.elements;
  const kind = f.kind.value;
  const q = f.q.value.trim();
  const tenant = f.tenant.value.trim();
  if (tenant) localStorage.setItem(TENANT, tenant);
  if (!q) { navigate(href("search", "", { tenant })); return; }
  const params = { tenant };
  if (kind === "users" || kind === "agents" || kind === "policies") {
    params.from = f.from.value.trim();
    params.to = f.to.value.trim();
    params.effect = [...form.querySelectorAll("input[name=effect]:checked")].map((c) => c.value);
    params.action_type = f.action_type.value.trim();
    params.action_target = f.action_target.value.trim();
    if (kind !== "agents") params.agent = f.agent.value.trim();
  }
  navigate(href(kind, q, params));
});

// In-app links open without a reload; anything else (downloads, other origins) is left alone.
document.addEventListener("click", (e) => {
  const a = e.target.closest("a[href]");
  if (!a || e.defaultPrevented || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey || a.target || a.hasAttribute("download")) return;
  const u = new URL(a.href, location.href);
  if (u.origin !== location.origin || !u.pathname.startsWith("/ui/")) return;
  e.preventDefault();
  navigate(u.pathname + u.search);
});
window.addEventListener("popstate", () => render());
setNavigateHandler(() => render());

// render draws the view of the current URL. A newer render supersedes an older one still
// waiting for the API (generation), so a slow answer never paints over a newer view.
async function render() {
  const g = ++generation;
  delete main.dataset.ready;
  const st = current();
  fillForm(st);
  renderTrust(document.getElementById("trust"), render);
  for (const a of document.querySelectorAll("nav a[data-nav]")) {
    if (a.dataset.nav === st.view) a.setAttribute("aria-current", "page"); else a.removeAttribute("aria-current");
  }
  const keep = new URLSearchParams();
  const t = st.params.get("tenant") || localStorage.getItem(TENANT) || "";
  if (t) keep.set("tenant", t);
  for (const a of document.querySelectorAll("nav a[data-nav]")) a.setAttribute("href", href(a.dataset.nav, "", keep));
  const view = routes[st.view];
  const m = el("div", { class: "view", "data-view": st.view });
  clear(main).append(m);
  document.title = "Lineage · " + st.view + (st.subject ? " · " + st.subject : "");
  if (!view) {
    append(m, el("p", { class: "error" }, "No such view."));
    return;
  }
  try {
    await view(m, st);
  } catch (e) {
    if (g === generation) append(m, el("p", { class: "error", role: "alert" }, "This view failed: ", e.message || String(e)));
  }
  if (g === generation) main.dataset.ready = st.view;
}

(async () => {
  await initSession(); // the browser login's session (if any) first: the API calls below use it
  await loadVerifier();
  await loadTrust();
  render();
})();
