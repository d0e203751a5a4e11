// The record view: every field of one record, the exact ledger entry that holds it, its log
// index, the checkpoint and the proof's status, checked here in the browser. The download is
// the raw answer of GET /v1/records/{id}, byte for byte: `lineagectl verify --proof FILE`
// accepts it offline (internal/verifycmd/verifycmd.go, verify.DecodeRecordProof).

import { el, append, clear, b64ToBytes, bytesToText, bytesToHex, externalLink } from "../dom.js";
import { get, apiURL } from "../api.js";
import { link } from "../nav.js";
import { verifyRecord, badge, observe } from "../trust.js";
import { heading, section, kv, effectChip, errorBox, loading, shown, personLink } from "./common.js";

// fieldRows flattens a JSON value into [path, value] rows: every field, nothing hidden.
function fieldRows(v, path, out) {
  if (v !== null && typeof v === "object") {
    const entries = Array.isArray(v) ? v.map((x, i) => [String(i), x]) : Object.entries(v);
    if (!entries.length) out.push([path, Array.isArray(v) ? "[]" : "{}"]);
    for (const [k, x] of entries) fieldRows(x, path ? path + (Array.isArray(v) ? "[" + k + "]" : "." + k) : k, out);
  } else {
    out.push([path, v === null ? "null" : typeof v === "string" ? v : JSON.stringify(v)]);
  }
  return out;
}

const URLISH = /(^|\.)(issuer|url|uri|href)$/;

// showSealed lists the entry's sealed personal fields as the verifier in this browser found
// them (verify.js openLeaf): each clear value shown was checked against its commitment in the
// leaf; a field without an opening is erased, its key destroyed (docs/ERASURE.md).
function showSealed(box, v) {
  const old = box.querySelector("#sealed-fields");
  if (v.state !== "verified" || !v.result) {
    old.replaceWith(el("p", { class: "muted", id: "sealed-fields", "data-state": "unchecked" },
      "Not checked: " + (v.reason || "the proof did not verify")));
    return;
  }
  const fields = v.result.sealed || [];
  if (!fields.length) {
    old.replaceWith(el("p", { class: "muted", id: "sealed-fields", "data-state": "none" },
      "This entry seals no field (erasure is off for this log, or the record names no person)."));
    return;
  }
  old.replaceWith(el("ul", { id: "sealed-fields", "data-state": "checked" }, fields.map((f) =>
    el("li", { "data-path": f.path, "data-clear": String(!!f.clear) }, el("code", {}, f.path), ": ",
      f.clear ? "clear, checked against its commitment in the leaf"
        : el("span", { class: "erased" }, "erased (commitment " + f.commitment + ")")))));
}

export async function recordView(main, st) {
  const id = st.subject;
  const tenant = st.params.get("tenant") || "";
  main.append(heading("Record", id));
  const wait = loading("the record and its proof");
  main.append(wait);
  let resp;
  try {
    resp = await get(apiURL(["v1", "records", id], { tenant }));
  } catch (e) { wait.replaceWith(errorBox(e)); return; }
  wait.remove();
  const ans = resp.json;
  const rec = ans.record || {};
  const t = ans.tenant || tenant;
  const status = el("div", { class: "verdict", id: "record-verdict", "aria-live": "polite" }, badge(null), " checking the proof in this browser…");
  const dl = el("button", { type: "button", id: "download" }, "Download record + proof (JSON)");
  dl.addEventListener("click", () => {
    // The answer exactly as received: the leaf, proof and checkpoint bytes are what count.
    const blob = new Blob([resp.text], { type: "application/json" });
    const a = el("a", {});
    a.href = URL.createObjectURL(blob);
    a.download = "record-" + String(id).replace(/[^A-Za-z0-9._-]/g, "_") + ".proof.json";
    document.body.append(a);
    a.click();
    a.remove();
    setTimeout(() => URL.revokeObjectURL(a.href), 10000);
  });

  const leaf = b64ToBytes(ans.leaf);
  const proofBox = el("div", {});
  const sealedBox = section("Personal fields sealed in the log",
    el("p", { class: "muted", id: "sealed-fields", "data-state": "pending" }, "checking the sealed fields in this browser…"));
  const d = rec.decision || {};
  const p = (d.policy) || {};
  main.append(status,
    el("p", { class: "actions" }, dl, " ", el("span", { class: "muted" }, "verify offline: lineagectl verify --proof FILE --verifier-file log.key.pub")),
    section("Summary", kv([
      ["tenant", t],
      ["time", rec.time],
      ["user", rec.user ? personLink(rec.user.id, "users", { tenant: t }) : ""],
      ["agent", rec.agent ? link(rec.agent.id, "agents", rec.agent.id, { tenant: t }) : ""],
      ["action", rec.action ? [rec.action.type, " → ", shown(rec.action.target)] : ""],
      ["decision", el("span", {}, effectChip(d.effect), " ", link(p.id + "@" + p.version, "policies", p.id, { tenant: t }))],
      ["reason", d.reason ? el("span", { class: "prose", id: "reason" }, d.reason) : ""],
      ["chain", link("action chain up to the authorizing person", "actions", id, { tenant: t })],
      ["parent", rec.parent_id ? link(rec.parent_id, "records", rec.parent_id, { tenant: t }) : ""],
    ])),
    section("Every field", el("table", { class: "fields", id: "fields" },
      el("thead", {}, el("tr", {}, el("th", { scope: "col" }, "field"), el("th", { scope: "col" }, "value"))),
      el("tbody", {}, fieldRows(rec, "", []).map(([k, v]) =>
        el("tr", {}, el("th", { scope: "row" }, k), el("td", {}, URLISH.test(k) ? externalLink(v) : shown(v))))))),
    sealedBox,
    section("Position in the log", kv([
      ["log index", String(ans.index)],
      ["leaf SHA-256 (hex)", el("code", { id: "leaf-sha" }, "…")],
      ["inclusion proof", (ans.inclusion_proof || []).length + " hashes"],
    ]), proofBox),
    section("Checkpoint (signed note, as served)", el("pre", { class: "note", id: "checkpoint-note" }, ans.checkpoint)),
    section("Ledger entry (exact bytes)", el("pre", { class: "leaf", id: "leaf" }, bytesToText(leaf))));

  crypto.subtle.digest("SHA-256", leaf).then((h) => {
    const c = main.querySelector("#leaf-sha");
    if (c) c.textContent = bytesToHex(new Uint8Array(h));
  });
  const v = await verifyRecord(ans);
  clear(status);
  append(status, badge(v), " ", v.state === "verified"
    ? "The signature of the checkpoint and the inclusion proof of this entry were checked in this browser with the pinned key."
    : v.state === "failed" ? "Verification failed: " + v.reason : "Not verified yet: " + v.reason);
  showSealed(sealedBox, v);
  if (v.state === "verified" && v.result && v.result.checkpoint) {
    const cp = v.result.checkpoint;
    const root = cp.rootHash instanceof Uint8Array ? bytesToHex(cp.rootHash) : String(cp.rootHash);
    proofBox.append(kv([["checkpoint origin", cp.origin], ["checkpoint size", String(cp.size)], ["root hash", el("code", {}, root)]]));
    observe(cp);
  }
}
