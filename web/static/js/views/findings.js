// The findings view: a tenant's findings (GET /v1/findings, query/findings_api.go), the
// agent-identity failures Lineage finds continuously in the log (docs/FINDINGS.md), most severe
// and newest first, filtered by kind, severity, agent, user and window, a page at a time ("More
// findings" follows next_cursor). Choosing a finding shows its evidence: each record with what it
// shows (its note), its proof checked in this browser (a findings answer has the checkpoint and
// per-record proofs of a lineage answer: verifyAnswerActions in verify.js), and links to the
// record and to its action chain. What each kind means comes from GET /v1/findings/kinds.
//
// The URL holds the whole screen: tenant and filters, the pages loaded ("pages"), the page size
// ("limit") and the chosen finding ("sel"), so a pasted link opens the same finding.

import { el, append, clear, shortTime, printable } from "../dom.js";
import { get, apiURL } from "../api.js";
import { link, href, navigate, replaceParams } from "../nav.js";
import { verifyActions, badge } from "../trust.js";
import { heading, section, kv, effectChip, errorBox, loading, count, shown, personLink } from "./common.js";

export const SEVERITIES = ["high", "medium", "info"];
const PAGE = 25;
const MAX_PAGES = 40; // pages a reloaded link loads at most before asking for a click
const TENANT = "lineage.lastTenant"; // app.js keeps the last tenant searched under this key

// The kinds' titles and meanings, fetched once; a failure leaves the kind ids as their titles.
let kindsPromise = null;
function kinds() {
  if (!kindsPromise) {
    kindsPromise = get("/v1/findings/kinds").then((r) => (Array.isArray(r.json) ? r.json : []), () => {
      kindsPromise = null; // try again on the next visit
      return [];
    });
  }
  return kindsPromise;
}

// severityChip shows a finding's severity; an unknown word is shown as text, unstyled.
export function severityChip(s) {
  const v = String(s || "");
  const known = SEVERITIES.includes(v) ? v : "other";
  return el("span", { class: "sev-badge " + known, "data-severity": v }, v || "?");
}

// filterForm is the view's own form: tenant, kind, severities, agent, user and window. It
// navigates to the filtered listing (a new history entry, so Back returns to the previous one).
function filterForm(params, kindList) {
  const p = params;
  const input = (name, label, attrs) => el("label", {}, label,
    el("input", { name, id: "fx-" + name, autocomplete: "off", value: p.get(name) || "", ...(attrs || {}) }));
  const kindSel = el("select", { name: "kind", id: "fx-kind" }, el("option", { value: "" }, "every kind"),
    kindList.map((k) => el("option", { value: k.kind }, k.title || k.kind)));
  const wanted = p.get("kind") || "";
  if (wanted && !kindList.some((k) => k.kind === wanted)) kindSel.append(el("option", { value: wanted }, wanted));
  kindSel.value = wanted;
  const sevs = new Set(p.getAll("severity"));
  const form = el("form", { class: "filters", id: "findings-filter", role: "search", "aria-label": "filter the findings" },
    input("tenant", "Tenant", { size: "14", placeholder: "acme-bank" }),
    el("label", {}, "Kind", kindSel),
    el("fieldset", { class: "effects" }, el("legend", {}, "Severity"),
      SEVERITIES.map((s) => el("label", {}, el("input", { type: "checkbox", name: "severity", value: s, checked: sevs.has(s) }), " " + s))),
    input("agent", "Agent", { size: "16" }),
    input("user", "User", { size: "16" }),
    input("from", "From", { size: "20", placeholder: "2026-11-01T00:00:00Z" }),
    input("to", "To", { size: "20", placeholder: "2026-12-01T00:00:00Z" }),
    el("button", { type: "submit", id: "fx-go" }, "Show findings"));
  form.addEventListener("submit", (e) => {
    e.preventDefault();
    const f = form.elements;
    const tenant = f.tenant.value.trim();
    if (tenant) localStorage.setItem(TENANT, tenant);
    const limit = params.get("limit");
    navigate(href("findings", "", {
      tenant, kind: f.kind.value, severity: [...form.querySelectorAll("input[name=severity]:checked")].map((c) => c.value),
      agent: f.agent.value.trim(), user: f.user.value.trim(), from: f.from.value.trim(), to: f.to.value.trim(), limit,
    }));
  });
  return form;
}

// query is the API query of the URL's filters.
function query(params, cursor, limit) {
  return {
    tenant: params.get("tenant"), kind: params.getAll("kind"), severity: params.getAll("severity"),
    agent: params.get("agent"), user: params.get("user"), from: params.get("from"), to: params.get("to"),
    limit: String(limit), cursor,
  };
}

// tallyOf counts a finding's evidence verdicts: { verified, failed, pending, missing }.
function tallyOf(f) {
  const t = { verified: 0, failed: 0, pending: 0, missing: 0 };
  for (const e of f.evidence || []) {
    if (!e.record) { t.missing++; continue; }
    const v = f.verdicts.get(e.id);
    t[v ? v.state : "pending"]++;
  }
  return t;
}

// evidenceBadge sums up a finding's evidence: failed wins, then pending, then verified.
function evidenceBadge(f) {
  const t = tallyOf(f);
  const n = (f.evidence || []).length;
  let v;
  if (t.failed) v = { state: "failed", reason: count(t.failed) + " of " + count(n) + " evidence records failed" };
  else if (t.pending) v = { state: "pending", reason: "checking the evidence in this browser" };
  else if (t.verified) v = { state: "verified", reason: count(t.verified) + " evidence records checked in this browser" };
  else v = { state: "pending", reason: "no evidence record to check" };
  return badge(v);
}

// row renders one finding of the list. Its title is a deep link to the finding (new tabs work);
// a plain click chooses it in place.
function row(f, info, params) {
  const sel = new URLSearchParams(params);
  sel.set("sel", f.id);
  const t = info ? info.title : f.kind;
  return el("li", { class: "finding", "data-id": f.id, "data-kind": f.kind, "data-severity": f.severity },
    el("div", { class: "finding-head" },
      severityChip(f.severity), " ",
      el("a", { class: "finding-open", href: href("findings", "", sel), "data-id": f.id }, t), " ",
      el("span", { class: "count", title: "occurrences" }, "× " + count(f.count || 0)), " ",
      el("span", { class: "ev-badge" }, evidenceBadge(f))),
    el("div", { class: "explanation prose" }, f.explanation),
    el("div", { class: "muted finding-meta" },
      f.agent ? ["agent ", el("span", { class: "agent" }, f.agent), " · "] : "",
      f.user ? ["user ", el("span", { class: "user" }, shown(f.user)), " · "] : "",
      el("span", { class: "time" }, shortTime(f.first_time)), " → ", el("span", { class: "time" }, shortTime(f.last_time))));
}

// evidenceItem renders one evidence record: its verdict, note, the action it records and the
// links to the record and to its chain.
function evidenceItem(e, f, tenant) {
  const r = e.record;
  if (!r) {
    return el("li", { class: "evidence missing", "data-id": e.id },
      badge({ state: "pending", reason: e.missing || "not served" }), " ",
      el("strong", { class: "note" }, e.note || "evidence"), " · record ", el("code", {}, e.id),
      " · log index " + String(e.log_index ?? ""),
      el("div", { class: "muted" }, "Not shown: ", e.missing || "the server sent no record"));
  }
  const d = r.decision || {};
  const a = r.action || {};
  return el("li", { class: "evidence", "data-id": e.id },
    el("div", {}, badge(f.verdicts.get(e.id)), " ", el("strong", { class: "note" }, e.note || "evidence"),
      " · log index " + String(e.log_index ?? "")),
    el("div", { class: "action-line" },
      effectChip(d.effect), " ", el("span", { class: "time" }, shortTime(r.time)), " ",
      el("span", { class: "atype" }, a.type), " ", el("span", { class: "target" }, shown(a.target)),
      " · agent ", link(r.agent, "agents", r.agent, { tenant }),
      r.user && r.user.id ? [" · user ", personLink(r.user.id, "users", { tenant })] : "",
      r.role ? " · role " + r.role : "",
      d.reason ? el("div", { class: "reason" }, d.reason) : null),
    el("div", { class: "evidence-links" },
      link("record " + e.id, "records", e.id, { tenant }, { class: "ev-record" }), " · ",
      link("action chain up to the authorizing person", "actions", e.id, { tenant }, { class: "ev-chain" })));
}

// detail renders the chosen finding.
function detail(f, info, tenant, params) {
  const only = (k, v) => {
    const p = new URLSearchParams(params);
    p.delete("sel"); p.delete("pages"); p.delete("cursor");
    p.set(k, v);
    return link("its findings", "findings", "", p, { class: "only-" + k });
  };
  const shown = (f.evidence || []).length;
  return el("div", { class: "finding-detail", "data-id": f.id },
    el("h2", {}, severityChip(f.severity), " ", info ? info.title : f.kind),
    info ? el("p", { class: "muted" }, info.pillar, " · ", info.summary) : null,
    el("p", { class: "prose explanation", id: "finding-explanation" }, f.explanation),
    kv([
      ["kind", el("code", {}, f.kind)],
      ["about", el("code", { class: "key" }, f.key)],
      ["agent", f.agent ? el("span", {}, link(f.agent, "agents", f.agent, { tenant }), " · ", only("agent", f.agent)) : ""],
      ["user", f.user ? el("span", {}, personLink(f.user, "users", { tenant }), " · ", only("user", f.user)) : ""],
      ["occurrences", count(f.count || 0)],
      ["first seen", f.first_time + " (log index " + String(f.first_log_index ?? "") + ")"],
      ["last seen", f.last_time + " (log index " + String(f.last_log_index ?? "") + ")"],
      ["finding id", el("code", {}, f.id)],
    ], { id: "finding-facts" }),
    section("Evidence",
      el("p", { class: "muted" }, (f.count || 0) > shown
        ? "The first " + count(shown - 1) + " and the latest of " + count(f.count) + " occurrences (a finding keeps at most " + count(shown) + " evidence records)."
        : count(shown) + (shown === 1 ? " evidence record." : " evidence records.") + " Each badge is this browser's check of the record's inclusion proof against the signed checkpoint."),
      el("ol", { class: "evidence-list", id: "evidence" }, (f.evidence || []).map((e) => evidenceItem(e, f, tenant)))));
}

// findingsView: GET /v1/findings for the URL's tenant and filters.
export async function findingsView(main, st) {
  const params = st.params;
  const tenant = params.get("tenant") || "";
  main.append(heading("Findings", tenant || "choose a tenant"));
  const kindList = await kinds();
  const kindInfo = new Map(kindList.map((k) => [k.kind, k]));
  main.append(filterForm(params, kindList));
  if (!tenant) {
    append(main, el("p", { class: "error", role: "alert" }, "Choose a tenant: findings are per tenant."));
    return;
  }
  const size = Math.min(999, Math.max(1, parseInt(params.get("limit") || "", 10) || PAGE));
  const want = Math.min(MAX_PAGES, Math.max(1, parseInt(params.get("pages") || "1", 10) || 1));
  let selected = params.get("sel") || "";
  const all = []; // findings in order, each with verdicts: Map(record id → verdict)
  const byID = new Map();
  let cursor = "", pages = 0, verifying = 0, failed = null;

  const status = el("p", { class: "status", id: "findings-status", "aria-live": "polite" });
  const list = el("ol", { class: "findings", id: "findings", "aria-label": "findings, most severe and newest first" });
  const more = el("button", { type: "button", id: "findings-more", hidden: true }, "More findings");
  const panel = el("section", { class: "finding-panel", id: "finding-detail", "aria-label": "the chosen finding", "aria-live": "polite" });
  const update = () => {
    const bySev = { high: 0, medium: 0, info: 0 };
    const t = { verified: 0, failed: 0, pending: 0, missing: 0 };
    for (const f of all) {
      if (f.severity in bySev) bySev[f.severity]++;
      const x = tallyOf(f);
      for (const k in t) t[k] += x[k];
    }
    const what = all.length === 0 && !cursor ? "No findings for tenant " + tenant + " with these filters."
      : "Showing " + count(all.length) + " findings (" + SEVERITIES.map((s) => count(bySev[s]) + " " + s).join(", ") + ")" +
        (cursor ? "; there are more: " : ": all that match") +
        " · evidence: " + count(t.verified) + " verified, " + count(t.failed) + " failed, " + count(t.pending) + " pending" +
        (t.missing ? ", " + count(t.missing) + " not served" : "");
    status.textContent = printable(what);
    if (failed) status.append(" ", errorBox(failed));
    Object.assign(status.dataset, { shown: all.length, complete: String(!cursor), verifying: String(verifying),
      verified: t.verified, failed: t.failed, pending: t.pending });
    more.hidden = !cursor;
  };
  const drawRow = (f) => {
    const r = row(f, kindInfo.get(f.kind), params);
    if (f.id === selected) r.classList.add("selected");
    const a = r.querySelector("a.finding-open");
    if (f.id === selected) a.setAttribute("aria-current", "true");
    const old = f.row;
    f.row = r;
    if (old && old.parentNode) old.replaceWith(r); else list.append(r);
  };
  const drawPanel = () => {
    clear(panel);
    const f = byID.get(selected);
    if (f) {
      panel.append(detail(f, kindInfo.get(f.kind), tenant, params));
    } else if (selected) {
      panel.append(el("p", { class: "muted", id: "finding-not-loaded" }, "The finding this link names is not among the findings loaded: ",
        cursor ? "load more, or " : "", "it does not match these filters."));
    } else if (all.length) {
      panel.append(el("p", { class: "muted" }, "Choose a finding to see its evidence records, each checked in this browser."));
    }
  };
  const choose = (id) => {
    const prev = byID.get(selected);
    selected = id;
    replaceParams({ sel: id });
    if (prev) drawRow(prev);
    const f = byID.get(id);
    if (f) drawRow(f);
    drawPanel();
    const h = panel.querySelector("h2");
    if (h) { h.setAttribute("tabindex", "-1"); h.focus({ preventScroll: false }); }
  };
  list.addEventListener("click", (e) => {
    const a = e.target.closest && e.target.closest("a.finding-open");
    if (!a || e.button !== 0 || e.metaKey || e.ctrlKey || e.shiftKey || e.altKey) return;
    e.preventDefault(); // before app.js's in-app navigation: choose in place, no reload of the list
    choose(a.dataset.id);
  });
  // apply adds one page: its findings (a repeat across pages keeps the first), then checks
  // the page's evidence in the background against the page's own checkpoint.
  const apply = (ans) => {
    pages++;
    cursor = ans.next_cursor || "";
    const fresh = [];
    for (const f of ans.findings || []) {
      if (!f || typeof f.id !== "string" || byID.has(f.id)) continue;
      f.verdicts = new Map();
      byID.set(f.id, f);
      all.push(f);
      fresh.push(f);
      drawRow(f);
    }
    const ids = [];
    for (const f of fresh) for (const e of f.evidence || []) if (e.record) ids.push(e.id);
    if (ids.length) {
      verifying++;
      verifyActions(ans, ids).then((m) => {
        for (const f of fresh) for (const e of f.evidence || []) if (e.record) f.verdicts.set(e.id, m.get(e.id));
      }).catch(() => {}).then(() => {
        verifying--;
        if (!list.isConnected) return;
        for (const f of fresh) drawRow(f);
        if (fresh.some((f) => f.id === selected)) drawPanel();
        update();
      });
    }
    drawPanel();
    update();
  };
  const fetchPage = async (at) => (await get(apiURL(["v1", "findings"], query(params, at, size)))).json;
  more.addEventListener("click", async () => {
    more.disabled = true;
    failed = null;
    try {
      apply(await fetchPage(cursor));
      replaceParams({ pages: String(pages) });
    } catch (e) { failed = e; update(); }
    more.disabled = false;
  });

  const wait = loading("findings");
  main.append(wait);
  let first;
  try {
    first = await fetchPage("");
  } catch (e) { wait.replaceWith(errorBox(e)); return; }
  wait.remove();
  main.append(status, el("div", { class: "findings-layout" },
    el("div", { class: "findings-col" }, list, more), panel));
  apply(first);
  // The pages a reloaded link had loaded, one after the other; a view the auditor left stops.
  try {
    while (cursor && pages < want && list.isConnected) apply(await fetchPage(cursor));
  } catch (e) { failed = e; }
  update();
}
