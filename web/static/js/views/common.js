// Pieces shared by the views: headings, key/value lists, action lines, errors.

import { el, shortTime } from "../dom.js";
import { link } from "../nav.js";
import { badge } from "../trust.js";

export function heading(kind, subject, ...extra) {
  return el("h1", {}, el("span", { class: "kind" }, kind), " ", el("span", { class: "subject", id: "subject" }, subject), ...extra);
}

export function section(title, ...children) {
  return el("section", { "aria-label": title }, el("h2", {}, title), ...children);
}

// kv renders [label, value] pairs as a definition list; values are nodes or strings.
export function kv(pairs, attrs) {
  const dl = el("dl", { class: "kv", ...(attrs || {}) });
  for (const [k, v] of pairs) {
    if (v === undefined || v === null || v === "") continue;
    dl.append(el("dt", {}, k), el("dd", {}, v));
  }
  return dl;
}

export function effectChip(effect) {
  const e = String(effect || "");
  const known = ["allow", "deny", "modify", "escalate"].includes(e) ? e : "other";
  return el("span", { class: "effect " + known }, e);
}

export function errorBox(e) {
  return el("p", { class: "error", role: "alert" }, "Error", e && e.status ? " " + e.status : "", ": ", e && e.message ? e.message : String(e));
}

export function loading(what) {
  return el("p", { class: "loading", role: "status" }, "Loading ", what, "…");
}

// actionLine shows one action of a lineage answer (verify.ActionNode) with its badge and a
// link to its record.
export function actionLine(a, verdict, tenant) {
  return el("div", { class: "action-line", "data-id": a.id },
    badge(verdict), " ", effectChip(a.decision && a.decision.effect), " ",
    el("span", { class: "time" }, shortTime(a.time)), " ",
    el("span", { class: "atype" }, a.action && a.action.type), " ",
    el("span", { class: "target" }, a.action && a.action.target), " ",
    link("record " + a.id, "records", a.id, { tenant }, { class: "rec" }),
    a.decision && a.decision.reason ? el("div", { class: "reason" }, a.decision.reason) : null);
}

// flagsList shows the answer's flags (shared agent ids, unbound users).
export function flagsList(flags) {
  if (!flags || !flags.length) return null;
  return el("ul", { class: "flags", "aria-label": "flags" },
    flags.map((f) => el("li", { class: "warn" }, el("strong", {}, f.kind), ": ", f.detail)));
}

// count formats a number with thousands separators.
export function count(n) {
  return Number(n).toLocaleString("en-US");
}
