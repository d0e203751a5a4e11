// The log view (the latest checkpoint, checked here, and the history this browser saw), the
// compliance exports (start one, follow it, read its findings, download its files), the
// quarantine list (admin) and the settings (API key, pinned key).

import { el, append, clear, b64ToBytes, bytesToText, bytesToHex, shortTime } from "../dom.js";
import { get, getBlob, send, apiURL, apiKey, setAPIKey } from "../api.js";
import { link, href, navigate } from "../nav.js";
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

// exportsView: the compliance exports (exporters/http.go, docs/EXPORTS.md). Without a subject
// it shows the form that starts one (POST /v1/exports, through api.js's send, which adds the
// session's CSRF token when the browser login is used) and the jobs; /ui/exports/<id> follows one
// job (GET /v1/exports/{id}, polled while it runs): progress, then its summary, findings and
// files. Every value shown is data of the job, set as text.
export async function exportsView(main, st) {
  if (st.subject) return exportJobView(main, st);
  const tenant = st.params.get("tenant") || "";
  main.append(heading("Exports", tenant || "all tenants"), section("Start an export", exportForm(tenant)));
  const wait = loading("export jobs");
  main.append(wait);
  let ans;
  try {
    ans = (await get(apiURL(["v1", "exports"], { tenant, limit: "100" }))).json;
  } catch (e) { wait.replaceWith(errorBox(e)); return; }
  wait.remove();
  const jobs = ans.exports || [];
  const rows = jobs.map((j) => el("tr", {},
    el("td", {}, link(j.id, "exports", j.id, { tenant: j.tenant })), el("td", {}, j.kind), el("td", {}, j.tenant), el("td", {}, j.ai_system || "all"),
    el("td", {}, (j.from || "") + " → " + (j.to || "")), el("td", {}, statusChip(j.status), j.error ? ": " + j.error : ""),
    el("td", { class: "num" }, j.records === undefined ? "" : count(j.records)),
    el("td", {}, (j.files || []).map((f) => [downloadButton(main, j, f), " "])),
    el("td", {}, j.record_id ? link("run record", "records", j.record_id, { tenant: j.tenant }) : "")));
  main.append(section("Jobs", el("p", { class: "muted" }, count(jobs.length) + " jobs (newest first). Bundles verify offline with lineagectl verify BUNDLE.zip."),
    el("table", { class: "list", id: "exports" },
      el("thead", {}, el("tr", {}, ["id", "kind", "tenant", "AI system", "window", "status", "records", "files", "log"].map((h) => el("th", { scope: "col" }, h)))),
      el("tbody", {}, rows))));
}

function statusChip(s) {
  const known = { succeeded: "verified", failed: "failed" }[s] || "pending";
  return el("span", { class: "badge " + known, "data-status": s }, s || "?");
}

// exportForm is the form of POST /v1/exports: {kind, tenant, ai_system?, from, to, formats?}.
function exportForm(tenant) {
  const kind = el("select", { id: "x-kind", name: "kind" },
    el("option", { value: "eu-ai-act" }, "EU AI Act (Art. 12, 14, 19)"), el("option", { value: "fannie-mae" }, "Fannie Mae LL-2026-04"));
  const input = (id, size, placeholder, value) => el("input", { id, size, placeholder, value, autocomplete: "off" });
  const t = input("x-tenant", 14, "acme-bank", tenant);
  const ai = input("x-ai-system", 26, "all AI systems", "");
  const from = input("x-from", 22, "2026-06-01", "");
  const to = input("x-to", 22, "2026-07-01", "");
  const formats = ["json", "csv", "html"].map((f) => el("input", { type: "checkbox", name: "format", value: f, checked: true }));
  const out = el("div", { id: "x-result", "aria-live": "polite" });
  const start = el("button", { type: "submit", id: "x-start" }, "Start the export");
  const form = el("form", { class: "export-form", id: "export-form" },
    el("label", {}, "Report", kind), el("label", {}, "Tenant", t), el("label", {}, "AI system (optional)", ai),
    el("label", {}, "From (inclusive)", from), el("label", {}, "To (exclusive)", to),
    el("fieldset", {}, el("legend", {}, "Report files"), formats.map((c) => el("label", {}, c, " " + c.value))),
    start);
  form.addEventListener("submit", async (e) => {
    e.preventDefault();
    clear(out);
    const body = { kind: kind.value, tenant: t.value.trim(), from: from.value.trim(), to: to.value.trim(),
      formats: formats.filter((c) => c.checked).map((c) => c.value) };
    if (ai.value.trim()) body.ai_system = ai.value.trim();
    start.disabled = true;
    try {
      const j = (await send("POST", "/v1/exports", body)).json;
      navigate(href("exports", j.id, { tenant: j.tenant }));
    } catch (err) {
      out.append(errorBox(err));
    } finally {
      start.disabled = false;
    }
  });
  return el("div", {}, form, out, el("p", { class: "muted" },
    "Times are RFC 3339 or YYYY-MM-DD (00:00 UTC); the period is [from, to) on the decision time. Needs the compliance role."));
}

// downloadButton downloads one file of a job and checks its SHA-256 against the job's listing.
function downloadButton(main, j, f, label) {
  const b = el("button", { type: "button", class: "linkish", "data-file": f.name }, label || f.name);
  const note = el("span", { class: "muted", "data-file-check": f.name });
  b.addEventListener("click", async () => {
    clear(note);
    try {
      const blob = await getBlob(apiURL(["v1", "exports", j.id, "files", f.name]));
      const sum = bytesToHex(new Uint8Array(await crypto.subtle.digest("SHA-256", await blob.arrayBuffer())));
      const ok = blob.size === f.size && sum === f.sha256;
      note.dataset.check = ok ? "ok" : "mismatch";
      note.textContent = ok ? " downloaded, " + count(blob.size) + " bytes, SHA-256 as listed" :
        " downloaded " + count(blob.size) + " bytes whose SHA-256 " + sum + " is NOT the listed " + String(f.sha256);
      const a = el("a", {});
      a.href = URL.createObjectURL(blob);
      a.download = String(f.name).replace(/[^A-Za-z0-9._-]/g, "_");
      a.click();
      setTimeout(() => URL.revokeObjectURL(a.href), 10000);
    } catch (e) { main.append(errorBox(e)); }
  });
  return el("span", {}, b, note);
}

const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

// exportJobView follows one job until it ends, then shows what it found.
async function exportJobView(main, st) {
  const id = st.subject;
  main.append(heading("Export", id), el("p", {}, link("all exports", "exports", "", { tenant: st.params.get("tenant") })));
  const box = el("div", { id: "export-job", "aria-live": "polite" });
  main.append(box);
  let delay = 300;
  for (;;) {
    let j;
    try {
      j = (await get(apiURL(["v1", "exports", id]))).json;
    } catch (e) { clear(box).append(errorBox(e)); return; }
    drawJob(main, box, j);
    if (j.status !== "queued" && j.status !== "running") return;
    await sleep(delay);
    delay = Math.min(2000, delay * 1.5);
    if (!box.isConnected) return; // the auditor went elsewhere
  }
}

function drawJob(main, box, j) {
  clear(box);
  box.dataset.status = j.status || "";
  const p = j.progress || {};
  box.append(kv([
    ["status", statusChip(j.status)], ["report", j.kind], ["tenant", j.tenant], ["AI system", j.ai_system || "all"],
    ["period", (j.from || "") + " → " + (j.to || "")], ["requested by", j.requested_by], ["trigger", j.trigger],
    ["created", shortTime(j.created)], ["started", shortTime(j.started)], ["finished", shortTime(j.finished)],
    ["records cited", j.status === "succeeded" ? count(j.records || 0) : ""],
    ["checkpoint size", j.checkpoint_size ? count(j.checkpoint_size) : ""],
    ["run record", j.record_id ? link(j.record_id, "records", j.record_id, { tenant: j.tenant }) : ""],
  ], { id: "export-facts" }));
  if (j.status === "queued" || j.status === "running") {
    const bar = el("progress", { id: "export-progress", max: String(Math.max(1, p.total || 0)), value: String(p.scanned || 0) });
    box.append(el("p", { role: "status" }, bar, " ", j.status === "queued" ? "waiting for the export before it" :
      "phase " + (p.phase || "?") + ": " + count(p.scanned || 0) + " of " + count(p.total || 0) + " log entries read, " +
      count(p.matched || 0) + " records in scope"));
    return;
  }
  if (j.status === "failed") {
    box.append(el("p", { class: "error", role: "alert" }, "The export failed: ", j.error || "no reason given"));
    return;
  }
  const files = j.files || [];
  const bundle = files.find((f) => f.name === j.bundle);
  box.append(
    section("Findings", findingsTable(j.findings || [])),
    section("Evidence bundle", bundle ? el("p", { id: "export-bundle" },
      downloadButton(main, j, bundle, "Download the evidence bundle " + bundle.name + " (" + count(bundle.size) + " bytes)"),
      el("br", {}), el("span", { class: "muted" }, "SHA-256 " + String(j.bundle_sha256 || bundle.sha256) +
        ". Check it offline, with the log's public key alone: lineagectl verify " + bundle.name + " --verifier-file log.key.pub")) :
      el("p", { class: "muted" }, "no bundle listed")),
    section("Reports", el("ul", { class: "files", id: "export-files" }, files.filter((f) => f !== bundle).map((f) =>
      el("li", {}, downloadButton(main, j, f), " ", el("span", { class: "muted" }, count(f.size) + " bytes"))))),
    section("Summary", summaryList(j.summary || {})));
}

function findingsTable(list) {
  if (!list.length) return el("p", { class: "muted", id: "export-findings" }, "No findings.");
  return el("table", { class: "list", id: "export-findings" },
    el("thead", {}, el("tr", {}, ["severity", "finding", "what", "examples"].map((h) => el("th", { scope: "col" }, h)))),
    el("tbody", {}, list.map((f) => el("tr", {},
      el("td", {}, el("span", { class: "sev " + (["high", "medium", "info"].includes(f.severity) ? f.severity : "info") }, f.severity)),
      el("td", {}, el("code", {}, f.code)), el("td", {}, f.message),
      el("td", {}, (f.items || []).length ? el("ul", {}, f.items.map((x) => el("li", {}, x))) : "")))));
}

// summaryList shows report.json's summary: numbers, and maps of numbers (effects, outcomes).
function summaryList(s) {
  const pairs = [];
  for (const [k, v] of Object.entries(s)) {
    const label = k.replace(/_/g, " ");
    if (typeof v === "number") pairs.push([label, count(v)]);
    else if (v && typeof v === "object") pairs.push([label, Object.entries(v).map(([a, b]) => a + " " + count(b)).join(" · ") || "none"]);
  }
  return kv(pairs, { id: "export-summary" });
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

export async function settingsView(main, st, rerender) {
  main.append(heading("Settings", ""));
  // The browser login (views/login.js); imported here so that this view alone depends on it.
  const { sessionSection } = await import("./login.js");
  const login = sessionSection(st, rerender);
  if (login) main.append(login);
  const input = el("input", { type: "password", id: "api-key", autocomplete: "off", "aria-describedby": "api-key-help" });
  const save = el("button", { type: "submit" }, "Use this key");
  const forget = el("button", { type: "button", id: "forget-key" }, "Forget the key");
  const form = el("form", { id: "key-form", class: "inline" }, el("label", { for: "api-key" }, "API key "), input, " ", save, " ", forget);
  const state = el("p", { id: "api-key-help", class: "muted" });
  const show = () => {
    state.textContent = apiKey() ? "An API key is set for this tab (sessionStorage; sent as Authorization: Bearer)." :
      "No API key: calls go without credentials (or with the login session above, if any), which works on a loopback server without authentication.";
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
