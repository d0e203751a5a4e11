// Trust in the browser: which log key this browser pinned, and the verification of every answer
// against it with the verifier module (./verify.js). The server's word that something is
// "verified" is never taken: a badge says verified only when verify.js checked the signature
// and the proof here, with the key the auditor pinned.
//
// The key is pinned on first use: the UI shows the key GET /v1/verifier names, with its
// fingerprint, and asks the auditor to compare it with the one they got out of band (the
// operator's data/keys/log.key.pub) before pinning it in localStorage. When the server later
// names another key, the UI warns loudly and keeps verifying against the pinned one, so every
// badge fails until the auditor decides.

import { get, apiURL } from "./api.js";
import { el, clear, append } from "./dom.js";

const PIN = "lineage.pinnedKey";
const SEEN = "lineage.checkpointsSeen";
const MONITOR = "lineage.checkpoint.";

let verifier = null; // the verify.js module, or null when it could not be loaded
let verifierError = "";
export const trust = { serverKey: "", pinned: "", key: null, serverParsed: null, mismatch: false, error: "" };

// loadVerifier imports verify.js; the rest of the UI works (badges stay pending) without it.
export async function loadVerifier() {
  try {
    verifier = await import("./verify.js");
  } catch (e) {
    verifier = null;
    verifierError = "verifier module not loaded: " + e.message;
  }
  return verifier;
}

// reasonOf is the text of a failure; VerifyError's message starts with its reason code.
function reasonOf(e) {
  return (e && (e.message || e.reason)) || String(e);
}

async function parse(vkey) {
  if (!verifier || !vkey) return null;
  try { return await verifier.parseVerifierKey(vkey); } catch (e) { return { error: reasonOf(e) }; }
}

// loadTrust reads the server's key and this browser's pin.
export async function loadTrust() {
  try {
    trust.serverKey = (await get("/v1/verifier", { json: false })).text.trim();
    trust.error = "";
  } catch (e) {
    trust.serverKey = "";
    trust.error = e.message;
  }
  trust.pinned = localStorage.getItem(PIN) || "";
  trust.serverParsed = await parse(trust.serverKey);
  trust.pinnedParsed = await parse(trust.pinned);
  const p = trust.pinnedParsed;
  trust.key = p && !p.error ? p : null;
  trust.mismatch = !!(trust.pinned && trust.serverKey && trust.pinned !== trust.serverKey);
}

export function pin(vkey) {
  localStorage.setItem(PIN, vkey);
}

export function unpin() {
  localStorage.removeItem(PIN);
}

function fingerprint(parsed, raw) {
  if (parsed && parsed.fingerprint) return String(parsed.fingerprint);
  return raw; // without verify.js the key itself is its own fingerprint
}

// renderTrust fills the trust banner: the pinning question, the key-change alarm, or the
// quiet line naming the pinned key.
export function renderTrust(box, rerender) {
  clear(box);
  box.className = "trust";
  if (!verifier) {
    append(box, el("p", { class: "warn", role: "status" }, "Proofs cannot be checked in this browser: ", verifierError));
  }
  if (trust.error && !trust.serverKey) {
    append(box, el("p", { class: "warn", role: "status" }, "The log key could not be read: ", trust.error));
    return;
  }
  if (trust.mismatch) {
    box.className = "trust alarm";
    const btn = el("button", { type: "button", id: "repin-key", class: "danger" }, "Replace the pinned key with the server's");
    btn.addEventListener("click", () => {
      if (confirm("Replace the pinned log key? Only do this if the log operator announced the new key and you checked its fingerprint out of band.")) {
        pin(trust.serverKey);
        loadTrust().then(rerender);
      }
    });
    append(box, el("div", { role: "alert", id: "key-changed" },
      el("strong", {}, "WARNING: the log's key changed."),
      el("p", {}, "This browser pinned ", el("code", { class: "key" }, fingerprint(trust.pinnedParsed, trust.pinned)),
        " but the server now names ", el("code", { class: "key" }, fingerprint(trust.serverParsed, trust.serverKey)), "."),
      el("p", {}, "Answers are still checked against the pinned key, so they will fail. A changed key can mean the log was replaced or the server is not the one you audit."),
      btn));
    return;
  }
  if (!trust.pinned) {
    box.className = "trust ask";
    const btn = el("button", { type: "button", id: "pin-key" }, "Pin this key");
    btn.addEventListener("click", () => {
      pin(trust.serverKey);
      loadTrust().then(rerender);
    });
    const p = trust.serverParsed;
    append(box, el("div", { id: "pin-ask", role: "region", "aria-label": "Pin the log key" },
      el("strong", {}, "Pin the log's public key"),
      el("p", {}, "Compare this key with the one the log operator gave you (data/keys/log.key.pub) before pinning it. Every proof is then checked in this browser against it."),
      el("dl", { class: "kv" },
        el("dt", {}, "key name"), el("dd", {}, p && p.name ? p.name : trust.serverKey.split("+")[0]),
        el("dt", {}, "fingerprint"), el("dd", {}, el("code", { id: "server-fingerprint" }, fingerprint(p, trust.serverKey))),
        el("dt", {}, "verifier key"), el("dd", {}, el("code", { class: "key" }, trust.serverKey))),
      btn));
    return;
  }
  const p = trust.key;
  append(box, el("p", { class: "pinned", id: "pinned-key" }, "Log key pinned: ",
    el("code", {}, p && p.name ? p.name : trust.pinned.split("+")[0]), " · ",
    el("code", {}, fingerprint(p, trust.pinned))));
}

// Verdicts are { state: "verified" | "failed" | "pending", reason }.
function pendingReason() {
  if (!verifier) return verifierError || "verifier not loaded";
  if (!trust.pinned) return "no pinned key";
  if (!trust.key) return "the pinned key is unreadable";
  return "";
}

// verifyRecord checks a GET /v1/records/{id} answer.
export async function verifyRecord(answer) {
  const why = pendingReason();
  if (why) return { state: "pending", reason: why };
  try {
    const r = await verifier.verifyRecordProof(answer, trust.key);
    return { state: "verified", result: r };
  } catch (e) {
    return { state: "failed", reason: reasonOf(e) };
  }
}

// verifyActions checks every action of a lineage answer: Map of record id to verdict.
export async function verifyActions(answer, ids) {
  const out = new Map();
  const why = pendingReason();
  if (why) {
    for (const id of ids) out.set(id, { state: "pending", reason: why });
    return out;
  }
  try {
    const m = await verifier.verifyAnswerActions(answer, trust.key);
    for (const id of ids) {
      const v = m.get(id);
      if (!v) out.set(id, { state: "failed", reason: "not covered by the verifier" });
      else if (v.ok) out.set(id, { state: "verified" });
      else out.set(id, { state: "failed", reason: v.reason || "failed" });
    }
  } catch (e) {
    for (const id of ids) out.set(id, { state: "failed", reason: reasonOf(e) });
  }
  return out;
}

// verifyNote checks a checkpoint note; it returns { state, cp }.
export async function verifyNote(note) {
  const why = pendingReason();
  if (why) return { state: "pending", reason: why };
  try {
    return { state: "verified", cp: await verifier.verifyCheckpoint(note, trust.key) };
  } catch (e) {
    return { state: "failed", reason: reasonOf(e) };
  }
}

// observe records a verified checkpoint in this browser's history and has the monitor check
// it is consistent with the ones seen before (a log that forks is caught here).
export async function observe(cp) {
  const root = cp.rootHash instanceof Uint8Array ? btoa(String.fromCharCode(...cp.rootHash)) : String(cp.rootHash);
  const seen = history();
  const last = seen[seen.length - 1];
  if (!last || last.size !== String(cp.size) || last.root !== root) {
    seen.push({ at: new Date().toISOString(), origin: cp.origin, size: String(cp.size), root });
    localStorage.setItem(SEEN, JSON.stringify(seen.slice(-100)));
  }
  if (!verifier || !verifier.CheckpointMonitor) return { state: "pending", reason: pendingReason() || "no monitor" };
  try {
    const m = new verifier.CheckpointMonitor(localStorage, MONITOR);
    await m.observe(cp, async (from, to) =>
      (await get(apiURL(["v1", "proofs", "consistency"], { from: String(from), to: String(to) }))).json.proof);
    return { state: "verified" };
  } catch (e) {
    return { state: "failed", reason: reasonOf(e) };
  }
}

// history lists the checkpoints this browser saw, oldest first.
export function history() {
  try { return JSON.parse(localStorage.getItem(SEEN) || "[]"); } catch (_) { return []; }
}

// badge shows a verdict: verified, failed (reason) or pending (reason).
export function badge(v) {
  const state = v ? v.state : "pending";
  const label = state === "failed" ? "failed: " + (v.reason || "") : state === "pending" && v && v.reason ? "pending" : state;
  const b = el("span", { class: "badge " + state, title: v && v.reason ? v.reason : state, "data-state": state }, label);
  return b;
}
