// The lineage views: a user's tree (user → agents → sub-agents → actions), an agent's actions,
// an action's chain up to the authorizing person, and a policy's decisions. Each calls one
// public lineage endpoint (GET /v1/lineage/...) and checks every action's proof in the browser.

import { el, append, clear, shortTime, externalLink, printable } from "../dom.js";
import { get, apiURL } from "../api.js";
import { link, href, navigate, replaceParams, filterParams } from "../nav.js";
import { verifyActions, badge } from "../trust.js";
import { Tree, node } from "../tree.js";
import { heading, section, kv, effectChip, errorBox, loading as loading_, actionLine, flagsList, count, shown, personLink } from "./common.js";
import { DelegationGraph } from "./graph.js";
import { Timeline } from "./timeline.js";

const SEP = "\n"; // joins agent ids into a path key; identifiers cannot hold control characters

function queryOf(params, extra) {
  return {
    tenant: params.get("tenant"), from: params.get("from"), to: params.get("to"),
    effect: params.getAll("effect"), action_type: params.getAll("action_type"),
    action_target: params.get("action_target"), agent: params.get("agent"),
    limit: params.get("limit"), ...(extra || {}),
  };
}

function needTenant(main, params) {
  if (params.get("tenant")) return false;
  append(main, el("p", { class: "error", role: "alert" }, "Choose a tenant: lineage queries are per tenant."));
  return true;
}

// actionRow renders an action in a tree row.
function actionRow(n, r, tenant) {
  const a = n.data;
  append(r, badge(n.verdict), effectChip(a.decision && a.decision.effect),
    el("span", { class: "time" }, shortTime(a.time)),
    el("span", { class: "atype" }, a.action && a.action.type),
    el("span", { class: "target" }, a.action && shown(a.action.target)),
    el("a", { class: "rec", tabindex: "-1", href: href("records", a.id, { tenant }) }, a.id));
}

// tally counts verdicts over action nodes.
function tally(nodes) {
  const t = { verified: 0, failed: 0, pending: 0 };
  for (const n of nodes) t[n.verdict ? n.verdict.state : "pending"]++;
  return t;
}

function tallyText(t) {
  return count(t.verified) + " verified, " + count(t.failed) + " failed, " + count(t.pending) + " pending";
}

// Paging. The first page is small, so the tree is interactive soon whatever the window holds;
// later pages are larger and load in the background, each while the previous one is verified,
// until the window is complete or AUTO_MAX actions are shown (then "Load the next page" goes
// on, one page a click). A "limit" in the URL sets every page's size.
const FIRST_PAGE = 200;
const PAGE = 2000;
const AUTO_MAX = 20000;

// mark records a performance mark for the benchmarks (web/ui_bench_test.go), replacing an
// earlier one of a previous view.
function mark(name) {
  try { performance.clearMarks(name); performance.mark(name); } catch (_) { /* no User Timing */ }
}

// pagedTree drives a Tree over an answer that pages with next_cursor. It shows the tree as soon
// as the first page is in (the view is then interactive), and goes on loading in the
// background: as many pages as the URL's "pages" says (so a reloaded link shows what it
// showed), or AUTO_MAX actions, whichever is more. merge(answer, actions) adds an answer's
// actions (Map id → node) and returns the ids it added; roots() gives the tree's roots;
// onPage(actions, state) follows every page; extra are nodes shown above the status line.
async function pagedTree(main, st, { label, path, merge, roots, onActivate, describe, onPage, extra }) {
  const params = st.params;
  const tenant = params.get("tenant");
  const status = el("p", { class: "status", id: "tree-status", "aria-live": "polite" });
  const more = el("button", { type: "button", id: "load-more", hidden: true }, "Load the next page");
  const actions = new Map();
  let cursor = "", pages = 0, complete = false, loading = false, failed = null, moved = false;
  let verifying = 0, verifyChain = Promise.resolve();
  const want = Math.min(1000, Math.max(1, parseInt(params.get("pages") || "1", 10) || 1));
  const open = new Set(params.getAll("open"));
  const sel = params.get("sel");
  const tree = new Tree({
    label,
    renderRow: (n, r) => (n.kind === "action" ? actionRow(n, r, tenant) : describe(n, r)),
    onActivate,
    onChange: (t) => {
      moved = true;
      const keys = [];
      t.find((n) => { if (n.expanded && n.kind === "agent") keys.push(n.key); return false; });
      replaceParams({ sel: t.activeNode ? t.activeNode.key : "", open: keys });
    },
  });
  const state = () => ({ complete, loading, pages, shown: actions.size });
  const update = () => {
    const shown = actions.size;
    const t = tally(actions.values());
    let what;
    if (complete) what = "Showing " + count(shown) + " of " + count(shown) + " actions: the whole window";
    else if (loading) what = "Showing " + count(shown) + " actions so far; loading the rest of the window (cursor paging)…";
    else what = "Showing " + count(shown) + " actions; the window holds more: load the next page, or narrow the window on the timeline";
    status.textContent = printable(what + " · " + count(tree.rows.length) + " rows open · " + tallyText(t));
    if (failed) status.append(" · ", errorBox(failed));
    Object.assign(status.dataset, { shown, complete: String(complete), loading: String(loading),
      verified: t.verified, failed: t.failed, pending: t.pending, rows: tree.rows.length });
    more.hidden = complete || loading;
    if (complete && !loading && verifying === 0 && !status.dataset.done) {
      status.dataset.done = "true";
      mark("lineage:tree-verified");
    }
  };
  const verifyPage = (ans, ids) => {
    verifying++;
    // One page at a time, in order: the first rows get their badges first.
    // A view the auditor left is not verified any further.
    verifyChain = verifyChain.then(() => (tree.element.isConnected ? verifyActions(ans, ids) : new Map())).then((m) => {
      for (const [id, v] of m) {
        const n = actions.get(id);
        if (n) { n.verdict = v; delete n.data.proof; } // the proof is no longer needed
      }
    }).catch(() => {}).then(() => {
      verifying--;
      if (tree.element.isConnected) tree.render();
      update();
    });
  };
  const flagsBox = el("div", {});
  // apply adds one answer to the tree: merge, reopen what the URL opened, reselect.
  const apply = (ans) => {
    pages++;
    const fresh = merge(ans, actions);
    for (const f of ans.flags || []) flagsBox.append(flagsList([f]));
    cursor = ans.next_cursor || "";
    complete = !cursor;
    tree.setRoots(roots());
    if (open.size) tree.find((n) => { if (n.kind === "agent" && open.has(n.key)) { n.expanded = true; open.delete(n.key); } return false; });
    tree.flatten();
    if (sel && !moved && (!tree.activeNode || tree.activeNode.key !== sel)) {
      const n = tree.find((x) => x.key === sel);
      if (n) tree.reveal(n);
    }
    verifyPage(ans, fresh);
    if (onPage) onPage(actions, state());
    update();
  };
  const fetchPage = async (at, size) =>
    (await get(apiURL(path, queryOf(params, { cursor: at, limit: params.get("limit") || String(size) })))).json;
  const alive = () => tree.element.isConnected;
  const sizeOf = (ans) => (typeof ans.actions === "number" ? ans.actions : (ans.actions || []).length);
  // background loads pages while the view is shown and there is more to load; each page is
  // asked for before the previous one is merged, so the server works while the page does.
  const background = async (untilPages) => {
    if (loading) return;
    loading = true;
    failed = null;
    update();
    try {
      let next = cursor && alive() && (actions.size < AUTO_MAX || pages < untilPages) ? fetchPage(cursor, PAGE) : null;
      while (next) {
        const ans = await next;
        const after = ans.next_cursor || "";
        next = after && alive() && (actions.size + sizeOf(ans) < AUTO_MAX || pages + 1 < untilPages) ? fetchPage(after, PAGE) : null;
        if (!alive()) break;
        apply(ans);
        await new Promise((r) => setTimeout(r, 0)); // let input and painting in between pages
      }
    } catch (e) {
      failed = e;
    }
    loading = false;
    if (onPage) onPage(actions, state());
    update();
  };
  more.addEventListener("click", async () => {
    await background(pages + 1);
    replaceParams({ pages: String(pages) });
  });
  const wait = loading_("lineage");
  main.append(wait);
  let first;
  try {
    first = await fetchPage("", FIRST_PAGE);
  } catch (e) {
    wait.replaceWith(errorBox(e));
    return null;
  }
  wait.remove();
  append(main, flagsBox, extra, status, tree.element, more);
  apply(first);
  mark("lineage:tree-interactive");
  background(want);
  return { tree, first, actions };
}

const EFFECT_KEYS = ["allow", "deny", "modify", "escalate"];
const noEffects = () => ({ allow: 0, deny: 0, modify: 0, escalate: 0 });

// userView: GET /v1/lineage/users/{user}: the tree, the delegation graph and the timeline. The
// graph's chosen agent ("focus") filters the tree and stays in the URL; a timeline bucket
// narrows the window (from, to in the URL, so the query itself narrows).
export async function userView(main, st) {
  const user = st.subject;
  main.append(heading("User", user));
  if (needTenant(main, st.params)) return;
  const tenant = st.params.get("tenant");
  const root = node("user", "user", { id: user, issuer: "", total: 0, effects: noEffects() }, []);
  root.expanded = true;
  root.subagents = [];
  const agents = new Map(); // path key → agent node
  const info = el("div", { class: "subhead" });
  main.append(info);
  let focus = st.params.get("focus") || "";
  let got = null;
  const mergeAgents = (list, parent, prefix, actions, fresh) => {
    for (const a of list || []) {
      const key = prefix ? prefix + SEP + a.id : a.id;
      let n = agents.get(key);
      if (!n) {
        n = node("agent", key, { id: a.id, roles: new Set(), models: new Set(), delegations: new Set(), total: 0, effects: noEffects() }, []);
        n.subagents = [];
        n.acts = [];
        n.own = noEffects();
        agents.set(key, n);
        parent.subagents.push(n);
      }
      for (const r of a.roles || []) n.data.roles.add(r);
      for (const m of a.models || []) n.data.models.add(m);
      for (const d of a.delegations || []) n.data.delegations.add(d);
      for (const x of a.actions || []) {
        if (actions.has(x.id)) continue;
        const an = node("action", x.id, x);
        actions.set(x.id, an);
        n.acts.push(an);
        const e = x.decision && x.decision.effect;
        if (e in n.own) n.own[e]++;
        fresh.push(x.id);
      }
      mergeAgents(a.agents, n, key, actions, fresh);
    }
  };
  // sum totals each node's subtree: actions and effects.
  const sum = (n) => {
    const d = n.data;
    d.total = n.acts ? n.acts.length : 0;
    d.effects = n.own ? { ...n.own } : noEffects();
    for (const c of n.subagents) {
      sum(c);
      d.total += c.data.total;
      for (const k of EFFECT_KEYS) d.effects[k] += c.data.effects[k];
    }
  };
  // children gives the tree's children of an agent under the focus: all of them inside the
  // chosen agent's subtree, only the sub-agents leading to it above it, none elsewhere.
  const leads = (n) => n.data.id === focus || n.subagents.some(leads);
  const fix = (n, inside) => {
    inside = inside || !focus || n.data.id === focus;
    const subs = inside ? n.subagents : n.subagents.filter(leads);
    for (const c of subs) fix(c, inside);
    n.children = inside ? [...subs, ...n.acts] : subs;
  };
  const rebuild = () => {
    root.children = focus ? root.subagents.filter(leads) : root.subagents;
    for (const c of root.children) fix(c, false);
    return [root];
  };

  // The graph and the timeline, above the tree.
  const graph = new DelegationGraph({
    label: "Delegation graph of " + printable(user) + ": choose an agent to filter the tree",
    onPick: (id) => {
      focus = id;
      replaceParams({ focus: id });
      if (!got) return;
      got.tree.setRoots(rebuild());
      drawGraph();
      focusNote();
    },
  });
  const timeline = new Timeline({
    label: "Actions of " + printable(user) + " over time, by effect: choose a bucket to narrow the window",
    onPick: (from, to) => {
      const p = new URLSearchParams(location.search);
      p.set("from", from);
      p.set("to", to);
      p.delete("pages");
      navigate(href("users", user, p));
    },
  });
  const graphNote = el("p", { class: "muted", id: "graph-note" });
  const timeNote = el("p", { class: "muted", id: "timeline-note" });
  const clearWindow = el("a", { id: "timeline-clear", href: href("users", user, (() => {
    const p = new URLSearchParams(location.search); p.delete("from"); p.delete("to"); p.delete("pages"); return p;
  })()) }, "show the whole window");
  const focusNote = () => {
    graphNote.textContent = printable(focus ? "The tree shows agent " + focus + " (its ancestors, it and its sub-agents). " +
      "Choose it again, or the user, to show every agent." : "Choose an agent to filter the tree to it.");
  };
  const drawGraph = () => graph.update(root, focus);
  let timer = 0, lastState = null, lastActions = null;
  const drawAll = () => {
    timer = 0;
    sum(root);
    drawGraph();
    const b = timeline.update((function* () { for (const n of lastActions.values()) yield n.data; })(),
      st.params.get("from"), st.params.get("to"));
    const s = lastState;
    const of = s.complete ? "all " + count(s.shown) + " actions of the window" :
      "the " + count(s.shown) + " actions loaded so far (the window holds more)";
    timeNote.textContent = printable("Over " + of + " · " + Timeline.describe(b) + ". ");
    if (st.params.get("from") || st.params.get("to")) timeNote.append(clearWindow);
    graphNote.dataset.actions = String(s.shown);
  };
  const viz = el("div", { class: "viz" },
    section("Delegation graph", el("div", { class: "graph-box" }, graph.element), graphNote),
    section("Timeline", el("div", { class: "timeline-box" }, timeline.element), timeNote));
  focusNote();

  got = await pagedTree(main, st, {
    label: "Lineage of " + printable(user),
    path: ["v1", "lineage", "users", user],
    extra: viz,
    merge: (ans, actions) => {
      if (ans.user) Object.assign(root.data, { id: ans.user.id, issuer: ans.user.issuer });
      const fresh = [];
      mergeAgents(ans.agents, root, "", actions, fresh);
      return fresh;
    },
    roots: () => { sum(root); return rebuild(); },
    onPage: (actions, state) => {
      lastActions = actions;
      lastState = state;
      // One redraw a frame at most, however fast pages arrive.
      if (!timer) timer = requestAnimationFrame(drawAll);
    },
    onActivate: (n) => {
      if (n.kind === "action") navigate(href("records", n.key, { tenant }));
      else got.tree.toggle(n);
    },
    describe: (n, r) => {
      if (n.kind === "user") {
        append(r, el("span", { class: "node-user" }, "user ", shown(n.data.id)), " ",
          el("span", { class: "muted" }, n.data.issuer || "(no issuer)"));
        return;
      }
      const d = n.data;
      append(r, el("span", { class: "node-agent" }, "agent ", d.id),
        d.roles.size ? el("span", { class: "muted" }, " role " + [...d.roles].join(", ")) : null,
        d.models.size ? el("span", { class: "muted" }, " model " + [...d.models].join(", ")) : null,
        el("span", { class: "count" }, " " + count(d.total) + " actions"),
        d.effects.deny ? el("span", { class: "effect deny" }, count(d.effects.deny) + " deny") : null,
        d.effects.escalate ? el("span", { class: "effect escalate" }, count(d.effects.escalate) + " escalate") : null,
        el("a", { class: "rec", tabindex: "-1", href: href("agents", d.id, filterParams(st.params)) }, "agent view"));
    },
  });
  if (!got) return;
  append(info, kv([["tenant", tenant], ["issuer", externalLink(root.data.issuer)],
    ["window", (st.params.get("from") || "beginning") + " → " + (st.params.get("to") || "now")],
    ["checkpoint size", got.first.checkpoint_size]]));
}

// agentView: GET /v1/lineage/agents/{agent}.
export async function agentView(main, st) {
  const agent = st.subject;
  main.append(heading("Agent", agent));
  if (needTenant(main, st.params)) return;
  const tenant = st.params.get("tenant");
  const users = new Map();
  const usersBox = el("ul", { class: "users", "aria-label": "users the agent acted for" });
  const list = [];
  let tree;
  main.append(section("Acted for", usersBox));
  const got = await pagedTree(main, st, {
    label: "Actions of " + printable(agent),
    path: ["v1", "lineage", "agents", agent],
    merge: (ans, actions) => {
      for (const u of ans.users || []) {
        const prev = users.get(u.id);
        users.set(u.id, { ...u, actions: (prev ? prev.actions : 0) + (u.actions || 0) });
      }
      clear(usersBox);
      for (const u of users.values()) {
        usersBox.append(el("li", {}, personLink(u.id, "users", filterParams(st.params, ["tenant", "from", "to"])),
          " ", el("span", { class: "muted" }, u.issuer), " · " + count(u.actions) + " actions"));
      }
      const fresh = [];
      for (const x of ans.actions || []) {
        if (actions.has(x.id)) continue;
        const n = node("action", x.id, x);
        actions.set(x.id, n);
        list.push(n);
        fresh.push(x.id);
      }
      return fresh;
    },
    roots: () => list,
    onActivate: (n) => navigate(href("records", n.key, { tenant })),
    describe: () => {},
  });
  if (got) tree = got.tree;
  return tree;
}

function lifetime(from, to) {
  const a = Date.parse(from), b = Date.parse(to);
  if (!isFinite(a) || !isFinite(b)) return "";
  const s = Math.round((b - a) / 1000);
  if (s < 0) return "expires before it was issued (" + s + " s)";
  const h = Math.floor(s / 3600), m = Math.floor((s % 3600) / 60);
  return (h ? h + " h " : "") + m + " min " + (s % 60) + " s";
}

// chainView: GET /v1/lineage/actions/{id}.
export async function chainView(main, st) {
  const id = st.subject;
  const tenant = st.params.get("tenant");
  main.append(heading("Action", id));
  if (needTenant(main, st.params)) return;
  const wait = loading_("the action chain");
  main.append(wait);
  let ans;
  try {
    ans = (await get(apiURL(["v1", "lineage", "actions", id], { tenant }))).json;
  } catch (e) { wait.replaceWith(errorBox(e)); return; }
  wait.remove();
  const all = [...(ans.chain || []), ...(ans.oversight || [])];
  const verdicts = new Map();
  const chainList = el("ol", { class: "chain", "aria-label": "action chain, from this action up to the root" });
  const overList = el("ul", { class: "oversight" });
  const draw = () => {
    clear(chainList);
    (ans.chain || []).forEach((a, i) => chainList.append(el("li", {},
      el("div", { class: "muted" }, i === 0 ? "this action" : i === ans.chain.length - 1 ? "root action" : "caused by",
        " · agent ", link(a.agent, "agents", a.agent, { tenant }), a.role ? " · role " + a.role : "",
        " · policy ", link(a.decision.policy.id + "@" + a.decision.policy.version, "policies", a.decision.policy.id, { tenant })),
      actionLine(a, verdicts.get(a.id), tenant))));
    clear(overList);
    for (const a of ans.oversight || []) {
      const h = a.human_oversight || {};
      overList.append(el("li", {}, "reviewer ", h.reviewer ? shown(h.reviewer.id) : "?", " · outcome ", h.outcome || "?",
        h.time ? " · " + h.time : "", actionLine(a, verdicts.get(a.id), tenant)));
    }
    if (!(ans.oversight || []).length) overList.append(el("li", { class: "muted" }, "no human oversight recorded on this chain"));
  };
  const p = ans.authorized_by || {};
  const d = ans.delegation;
  append(main, // skips the absent parts (the DOM's own append would show them as "null")
    ans.complete ? null : el("p", { class: "warn", role: "status" }, "The chain is incomplete: a parent it names is not in the log (or not visible to you)."),
    flagsList(ans.flags),
    section("Authorized by", kv([["person", personLink(p.id, "users", { tenant })], ["issuer", externalLink(p.issuer)]])),
    section("Delegation", d ? kv([
      ["token id", d.token_id], ["issuer", d.issuer ? externalLink(d.issuer) : ""], ["mechanism", d.mechanism],
      ["scope", (d.scope || []).length ? el("ul", {}, d.scope.map((s) => el("li", {}, s))) : ""],
      ["issued at", d.issued_at], ["expires at", d.expires_at], ["lifetime", lifetime(d.issued_at, d.expires_at)],
      ["actor chain", (d.actors || []).length ? el("ol", { class: "actors" }, d.actors.map((s) => el("li", {}, s))) : ""],
    ]) : el("p", { class: "muted" }, "The root action names no delegation.")),
    section("Chain", chainList),
    section("Human oversight", overList));
  draw();
  verifyActions(ans, all.map((a) => a.id)).then((m) => { for (const [k, v] of m) verdicts.set(k, v); draw(); });
}

function countsTable(caption, m) {
  const rows = Object.entries(m || {}).sort((a, b) => b[1] - a[1]);
  return el("table", { class: "counts" }, el("caption", {}, caption),
    el("thead", {}, el("tr", {}, el("th", { scope: "col" }, caption.split(" ").pop()), el("th", { scope: "col" }, "decisions"))),
    el("tbody", {}, rows.map(([k, v]) => el("tr", {}, el("td", {}, k), el("td", { class: "num" }, count(v))))));
}

// policyView: GET /v1/lineage/policies/{policy}.
export async function policyView(main, st) {
  const policy = st.subject;
  const tenant = st.params.get("tenant");
  main.append(heading("Policy", policy));
  if (needTenant(main, st.params)) return;
  const wait = loading_("the policy's decisions");
  main.append(wait);
  let ans;
  try {
    ans = (await get(apiURL(["v1", "lineage", "policies", policy], queryOf(st.params)))).json;
  } catch (e) { wait.replaceWith(errorBox(e)); return; }
  wait.remove();
  const s = ans.stats || {};
  const ex = el("div", { class: "examples" });
  const verdicts = new Map();
  const draw = () => { clear(ex); for (const a of ans.examples || []) ex.append(actionLine(a, verdicts.get(a.id), tenant)); };
  main.append(kv([["tenant", tenant], ["decisions", count(s.total || 0)],
    ["window", (st.params.get("from") || "beginning") + " → " + (st.params.get("to") || "now")]]),
  el("div", { class: "cols" }, countsTable("by effect", s.by_effect), countsTable("by version", s.by_version)),
  section("Examples", ex));
  draw();
  verifyActions(ans, (ans.examples || []).map((a) => a.id)).then((m) => { for (const [k, v] of m) verdicts.set(k, v); draw(); });
}
