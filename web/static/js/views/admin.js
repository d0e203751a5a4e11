// The log view (the latest checkpoint, checked here, and the history this browser saw), the
// compliance exports list, the quarantine list (admin) and the settings (API key, pinned key).

import { el, append, clear, b64ToBytes, bytesToText, bytesToHex, shortTime } from "../dom.js";
import { get, getBlob, apiURL, apiKey, setAPIKey } from "../api.js";
import { link } from "../nav.js";
import { trust, verifyNote, observe, history, badge, unpin, loadTrust } from "../trust.js";
import { heading, section, kv, errorBox, loading, count } from "./common.js";

export async function logView(main) {
  main.append(heading("Log", "latest checkpoint"));
  const wait = loading("the checkpoint");
  main.append(wait);
  let note;
  try {
    note = (await get("/v1/checkpoint", { json: false })).text;
  } catch (e) { wait.replaceWith(errorBox(e)); return; }
  wait.remove();
  const v = await verifyNote(note);
  const pairs = [["signature", badge(v)]];
  if (v.state === "verified") {
    const cp = v.cp;
    const root = cp.rootHash instanceof Uint8Array ? bytesToHex(cp.rootHash) : String(cp.rootHash);
    pairs.push(["origin", cp.origin], ["size", count(cp.size)], ["root hash", el("code", {}, root)],
      ["cosigners", (cp.cosigners || []).length ? (cp.cosigners || []).map((c) => String(c.name || c)).join(", ") : "none"]);
    const m = await observe(cp);
    pairs.push(["consistency with what this browser saw", badge(m)]);
  } else if (v.reason) {
    pairs.push(["why", v.reason]);
  }
  const k = trust.key;
  pairs.push(["pinned key", k && k.name ? k.name : trust.pinned || "(none)"], ["key fingerprint", el("code", {}, k && k.fingerprint ? String(k.fingerprint) : "")]);
  const seen = history();
  main.append(kv(pairs, { id: "log-facts" }),
    section("Checkpoint (signed note)", el("pre", { class: "note" }, note)),
    section("Checkpoints this browser saw", el("table", { class: "history" },
      el("thead", {}, el("tr", {}, ["seen at", "origin", "size", "root hash (base64)"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, seen.slice().reverse().map((s) =>
        el("tr", {}, el("td", {}, shortTime(s.at)), el("td", {}, s.origin), el("td", { class: "num" }, s.size), el("td", {}, el("code", {}, s.root))))))));
}

export async function exportsView(main, st) {
  const tenant = st.params.get("tenant") || "";
  main.append(heading("Exports", tenant || "all tenants"));
  const wait = loading("export jobs");
  main.append(wait);
  let ans;
  try {
    ans = (await get(apiURL(["v1", "exports"], { tenant, limit: "100" }))).json;
  } catch (e) { wait.replaceWith(errorBox(e)); return; }
  wait.remove();
  const jobs = ans.exports || [];
  const rows = jobs.map((j) => el("tr", {},
    el("td", {}, j.id), el("td", {}, j.kind), el("td", {}, j.tenant), el("td", {}, j.ai_system || "all"),
    el("td", {}, (j.from || "") + " → " + (j.to || "")), el("td", {}, j.status, j.error ? ": " + j.error : ""),
    el("td", { class: "num" }, j.records === undefined ? "" : count(j.records)),
    el("td", {}, (j.files || []).map((f) => {
      const b = el("button", { type: "button", class: "linkish" }, f.name);
      b.addEventListener("click", async () => {
        try {
          const blob = await getBlob(apiURL(["v1", "exports", j.id, "files", f.name]));
          const a = el("a", {});
          a.href = URL.createObjectURL(blob);
          a.download = String(f.name).replace(/[^A-Za-z0-9._-]/g, "_");
          a.click();
          setTimeout(() => URL.revokeObjectURL(a.href), 10000);
        } catch (e) { main.append(errorBox(e)); }
      });
      return [b, " "];
    })),
    el("td", {}, j.record_id ? link("run record", "records", j.record_id, { tenant: j.tenant }) : "")));
  main.append(el("p", { class: "muted" }, count(jobs.length) + " jobs (newest first). Bundles verify offline with lineagectl verify BUNDLE.zip."),
    el("table", { class: "list", id: "exports" },
      el("thead", {}, el("tr", {}, ["id", "kind", "tenant", "AI system", "window", "status", "records", "files", "log"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows)));
}

export async function quarantineView(main, st) {
  const tenant = st.params.get("tenant") || "";
  main.append(heading("Quarantine", tenant || "all tenants"));
  const wait = loading("quarantined inputs");
  main.append(wait);
  let ans;
  try {
    ans = (await get(apiURL(["v1", "quarantine"], { tenant, after: st.params.get("after"), limit: "100" }))).json;
  } catch (e) { wait.replaceWith(errorBox(e)); return; }
  wait.remove();
  const entries = ans.entries || [];
  const last = entries.length ? entries[entries.length - 1].seq : null;
  main.append(el("p", { class: "muted" }, count(entries.length) + " entries", last !== null && entries.length >= 100 ? " · " : "",
    last !== null && entries.length >= 100 ? link("next page", "quarantine", "", { tenant, after: String(last) }) : ""),
  el("table", { class: "list", id: "quarantine" },
    el("thead", {}, el("tr", {}, ["seq", "received", "subject", "reason", "field", "detail", "payload (first 2,000 bytes)"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, entries.map((q) => {
      const r = q.reason || {};
      return el("tr", {}, el("td", { class: "num" }, String(q.seq)), el("td", {}, shortTime(q.received_at)), el("td", {}, q.subject),
        el("td", {}, r.code), el("td", {}, r.field), el("td", {}, r.detail),
        el("td", {}, el("code", { class: "payload" }, bytesToText(b64ToBytes(q.payload || "").slice(0, 2000)))));
    }))));
}

export function settingsView(main, st, rerender) {
  main.append(heading("Settings", ""));
  const input = el("input", { type: "password", id: "api-key", autocomplete: "off", "aria-describedby": "api-key-help" });
  const save = el("button", { type: "submit" }, "Use this key");
  const forget = el("button", { type: "button", id: "forget-key" }, "Forget the key");
  const form = el("form", { id: "key-form", class: "inline" }, el("label", { for: "api-key" }, "API key "), input, " ", save, " ", forget);
  const state = el("p", { id: "api-key-help", class: "muted" });
  const show = () => {
    state.textContent = apiKey() ? "An API key is set for this tab (sessionStorage; sent as Authorization: Bearer)." :
      "No API key: calls go without credentials, which works on a loopback server without authentication. OIDC sign-in is not available in the UI yet.";
  };
  form.addEventListener("submit", (e) => { e.preventDefault(); setAPIKey(input.value.trim()); input.value = ""; show(); loadTrust().then(rerender); });
  forget.addEventListener("click", () => { setAPIKey(""); show(); });
  show();
  const unpinBtn = el("button", { type: "button", id: "unpin" }, "Forget the pinned log key");
  unpinBtn.addEventListener("click", () => { unpin(); loadTrust().then(rerender); });
  main.append(section("API access", form, state),
    section("Pinned log key", kv([["pinned", el("code", { class: "key" }, trust.pinned || "(none)")],
      ["server names", el("code", { class: "key" }, trust.serverKey || "(unknown)")]]), unpinBtn));
}
