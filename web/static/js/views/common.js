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
    el("span", { class: "target" }, a.action && shown(a.action.target)), " ",
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

// Sealed personal fields (docs/ERASURE.md). With erasure on, the ledger entry holds
// "sealed:<commitment>" (43 base64url characters, ledger/seal/crypto.go) in place of each
// personal value; answers carry the clear value while the subject's key exists and the token
// once the key is destroyed. Findings name an erased subject "erased:<key id>"
// (internal/service/erasure.go). A record may hold such a string in a field that was never
// sealed: only the record view, which checks the leaf's list of sealed fields in this browser,
// says which fields are erased for certain; elsewhere the shape is shown as "erased".
const SEALED_TOKEN = /^sealed:[A-Za-z0-9_-]{43}$/;
const ERASED_KEY = /^erased:[A-Za-z0-9_-]{22}$/; // a 16-byte key id, base64url
// A sealed log refuses records holding either form (ingest/seal.go, reservedString).

export function isErased(v) {
  return typeof v === "string" && (SEALED_TOKEN.test(v) || ERASED_KEY.test(v));
}

// erasedText describes an erased value: "erased (commitment …)" or "erased (key …)".
export function erasedText(v) {
  return SEALED_TOKEN.test(v) ? "erased (commitment " + v.slice(7) + ")" : "erased (key " + v.slice(7) + ")";
}

// shown is v as the views show it: an erased value as its description, marked; anything else
// unchanged (always text).
export function shown(v) {
  if (!isErased(v)) return v;
  return el("span", { class: "erased", title: "the subject's key was destroyed (erasure, docs/ERASURE.md): the log keeps only the commitment" }, erasedText(v));
}

// personLink links a user id to its lineage, unless it is erased: there is nothing to look up.
export function personLink(id, view, params) {
  return isErased(id) ? shown(id) : link(id, view || "users", id, params);
}
