// The lineage views: a user's tree (user → agents → sub-agents → actions), an agent's actions,
// an action's chain up to the authorizing person, and a policy's decisions. Each calls one
// public lineage endpoint (GET /v1/lineage/...) and checks every action's proof in the browser.

import { el, append, clear, shortTime, externalLink, printable } from "../dom.js";
import { get, apiURL } from "../api.js";
import { link, href, navigate, replaceParams, filterParams } from "../nav.js";
import { verifyActions, badge } from "../trust.js";
import { Tree, node } from "../tree.js";
import { heading, section, kv, effectChip, errorBox, loading, actionLine, flagsList, count } from "./common.js";

const SEP = "\n"; // joins agent ids into a path key; identifiers cannot hold control characters

function queryOf(params, extra) {
  return {
    tenant: params.get("tenant"), from: params.get("from"), to: params.get("to"),
    effect: params.getAll("effect"), action_type: params.getAll("action_type"), agent: params.get("agent"),
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
    el("span", { class: "target" }, a.action && a.action.target),
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

// pagedTree drives a Tree over an answer that pages with next_cursor: it loads as many pages as
// the URL's "pages" says (so a reloaded link shows what it showed), then more on demand.
async function pagedTree(main, st, { label, path, merge, roots, onActivate, describe }) {
  const params = st.params;
  const tenant = params.get("tenant");
  const status = el("p", { class: "status", id: "tree-status", "aria-live": "polite" });
  const more = el("button", { type: "button", id: "load-more", hidden: true }, "Load the next page");
  const actions = new Map();
  let cursor = "", pages = 0, complete = false;
  const tree = new Tree({
    label,
    renderRow: (n, r) => (n.kind === "action" ? actionRow(n, r, tenant) : describe(n, r)),
    onActivate,
    onChange: (t) => {
      const open = [];
      t.find((n) => { if (n.expanded && n.kind === "agent") open.push(n.key); return false; });
      replaceParams({ sel: t.activeNode ? t.activeNode.key : "", open });
    },
  });
  const update = () => {
    const shown = actions.size;
    status.textContent = printable((complete
      ? "Showing all " + count(shown) + " actions of the window"
      : "Showing " + count(shown) + " actions; the window holds more (cursor paging)") +
      " · " + count(tree.rows.length) + " rows open · " + tallyText(tally(actions.values())));
    more.hidden = complete;
  };
  const verifyPage = (ans, ids) => verifyActions(ans, ids).then((m) => {
    for (const [id, v] of m) { const n = actions.get(id); if (n) n.verdict = v; }
    tree.render();
    update();
  });
  const flagsBox = el("div", {});
  const load = async () => {
    more.disabled = true;
    const ans = (await get(apiURL(path, queryOf(params, { cursor })))).json;
    pages++;
    const fresh = merge(ans, actions);
    for (const f of ans.flags || []) flagsBox.append(flagsList([f]));
    cursor = ans.next_cursor || "";
    complete = !cursor;
    tree.setRoots(roots());
    update();
    more.disabled = false;
    verifyPage(ans, fresh);
    return ans;
  };
  more.addEventListener("click", async () => {
    try {
      await load();
      replaceParams({ pages: String(pages) });
    } catch (e) { main.append(errorBox(e)); }
  });
  const wait = loading("lineage");
  main.append(wait);
  let first;
  try {
    first = await load();
    const want = Math.min(50, Math.max(1, parseInt(params.get("pages") || "1", 10) || 1));
    while (pages < want && cursor) await load();
  } catch (e) {
    wait.replaceWith(errorBox(e));
    return null;
  }
  wait.remove();
  // Restore expansion and selection from the URL.
  const open = new Set(params.getAll("open"));
  tree.find((n) => { if (open.has(n.key)) n.expanded = true; return false; });
  tree.flatten();
  const sel = params.get("sel");
  const selNode = sel ? tree.find((n) => n.key === sel) : null;
  append(main, flagsBox, status, tree.element, more);
  update();
  if (selNode) tree.reveal(selNode);
  return { tree, first };
}

// userView: GET /v1/lineage/users/{user}.
export async function userView(main, st) {
  const user = st.subject;
  main.append(heading("User", user));
  if (needTenant(main, st.params)) return;
  const tenant = st.params.get("tenant");
  const root = node("user", "user", { id: user, issuer: "" }, []);
  root.expanded = true;
  const agents = new Map(); // path key → agent node
  const info = el("div", { class: "subhead" });
  main.append(info);
  const mergeAgents = (list, parent, prefix, actions, fresh) => {
    for (const a of list || []) {
      const key = prefix ? prefix + SEP + a.id : a.id;
      let n = agents.get(key);
      if (!n) {
        n = node("agent", key, { id: a.id, roles: new Set(), models: new Set(), delegations: new Set(), total: 0 }, []);
        n.subagents = [];
        n.acts = [];
        agents.set(key, n);
        parent.subagents ? parent.subagents.push(n) : parent.children.push(n);
      }
      for (const r of a.roles || []) n.data.roles.add(r);
      for (const m of a.models || []) n.data.models.add(m);
      for (const d of a.delegations || []) n.data.delegations.add(d);
      for (const x of a.actions || []) {
        if (actions.has(x.id)) continue;
        const an = node("action", x.id, x);
        actions.set(x.id, an);
        n.acts.push(an);
        fresh.push(x.id);
      }
      mergeAgents(a.agents, n, key, actions, fresh);
    }
  };
  const total = (n) => (n.data.total = n.acts.length + n.subagents.reduce((s, c) => s + total(c), 0));
  const got = await pagedTree(main, st, {
    label: "Lineage of " + printable(user),
    path: ["v1", "lineage", "users", user],
    merge: (ans, actions) => {
      if (ans.user) root.data = ans.user;
      const fresh = [];
      mergeAgents(ans.agents, root, "", actions, fresh);
      return fresh;
    },
    roots: () => {
      const fix = (n) => { n.children = [...n.subagents, ...n.acts]; n.subagents.forEach(fix); };
      root.children.forEach(fix);
      root.children.forEach(total);
      return [root];
    },
    onActivate: (n) => {
      if (n.kind === "action") navigate(href("records", n.key, { tenant }));
      else got.tree.toggle(n);
    },
    describe: (n, r) => {
      if (n.kind === "user") {
        append(r, el("span", { class: "node-user" }, "user ", n.data.id), " ",
          el("span", { class: "muted" }, n.data.issuer || "(no issuer)"));
        return;
      }
      const d = n.data;
      append(r, el("span", { class: "node-agent" }, "agent ", d.id),
        d.roles.size ? el("span", { class: "muted" }, " role " + [...d.roles].join(", ")) : null,
        d.models.size ? el("span", { class: "muted" }, " model " + [...d.models].join(", ")) : null,
        el("span", { class: "count" }, " " + count(d.total) + " actions"),
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
        usersBox.append(el("li", {}, link(u.id, "users", u.id, filterParams(st.params, ["tenant", "from", "to"])),
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
  const wait = loading("the action chain");
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
      overList.append(el("li", {}, "reviewer ", h.reviewer ? h.reviewer.id : "?", " · outcome ", h.outcome || "?",
        h.time ? " · " + h.time : "", actionLine(a, verdicts.get(a.id), tenant)));
    }
    if (!(ans.oversight || []).length) overList.append(el("li", { class: "muted" }, "no human oversight recorded on this chain"));
  };
  const p = ans.authorized_by || {};
  const d = ans.delegation;
  main.append(
    ans.complete ? null : el("p", { class: "warn", role: "status" }, "The chain is incomplete: a parent it names is not in the log (or not visible to you)."),
    flagsList(ans.flags),
    section("Authorized by", kv([["person", link(p.id, "users", p.id, { tenant })], ["issuer", externalLink(p.issuer)]])),
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
  const wait = loading("the policy's decisions");
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
