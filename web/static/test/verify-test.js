// The test page of verify.js (web/static/test/verify.html). It runs every vector of
// /vectors.json (made and checked against the Go verifier by web/jstest/vectors_test.go) and
// publishes the outcomes on window.verifyTest = {done, results, error, ms}; web/jstest compares
// them with the expected ones. window.runBench() times the verification of /bench.json's record
// proofs for BenchmarkBrowserVerify1000.
import * as V from '../js/verify.js';

function b64(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s);
}

// outcome runs f and reports {got: 'ok', value} or {got: 'fail', reason, message}.
async function outcome(f) {
  try {
    return { got: 'ok', value: await f() };
  } catch (e) {
    const reason = e instanceof V.VerifyError ? e.reason : 'exception';
    return { got: 'fail', reason, message: String(e?.stack ?? e) };
  }
}

const keys = new Map();
function keyOf(vkey) {
  if (!keys.has(vkey)) keys.set(vkey, V.parseVerifierKey(vkey));
  return keys.get(vkey);
}

const proof = (list) => list.map(V.b64decode);

async function run(vs) {
  const results = [];
  const report = (kind, name, o, extra = {}) =>
    results.push({ kind, name, got: o.got, reason: o.reason ?? '', message: o.message ?? '', ...extra });

  for (const v of vs.keys) {
    const o = await outcome(() => V.parseVerifierKey(v.vkey));
    report('key', v.name, o, o.got === 'ok' ? { fingerprint: o.value.fingerprint, keyName: o.value.name } : {});
  }
  for (const v of vs.checkpoints) {
    const bytes = V.b64decode(v.note);
    const o = await outcome(async () => {
      const note = v.bytes ? bytes : new TextDecoder().decode(bytes);
      return V.verifyCheckpoint(note, await keyOf(v.vkey));
    });
    const extra = o.got === 'ok' ? { size: o.value.size.toString(), root: b64(o.value.rootHash), cosigners: o.value.cosigners } : {};
    report('checkpoint', v.name, o, extra);
  }
  for (const v of vs.inclusion) {
    const o = await outcome(async () =>
      V.verifyInclusion(BigInt(v.index), BigInt(v.size), await V.leafHash(V.b64decode(v.leaf)), proof(v.proof), V.b64decode(v.root)));
    report('inclusion', v.name, o);
  }
  for (const v of vs.consistency) {
    const o = await outcome(() =>
      V.verifyConsistency(BigInt(v.size1), BigInt(v.size2), proof(v.proof), V.b64decode(v.root1), V.b64decode(v.root2)));
    report('consistency', v.name, o);
  }
  for (const v of vs.records) {
    const o = await outcome(async () => V.verifyRecordProof(v.answer, await keyOf(v.vkey)));
    const extra = {};
    if (o.got === 'ok') {
      extra.recordId = o.value.record.id;
      extra.index = o.value.index.toString();
      // The record returned is the leaf's, and the presented one (when any) matches it.
      extra.same = v.answer.record == null || V.sameRecord(v.answer.record, o.value.record);
    }
    report('record', v.name, o, extra);
  }
  for (const v of vs.answers) {
    const o = await outcome(async () => V.verifyAnswerActions(v.answer, await keyOf(v.vkey)));
    const extra = {};
    if (o.got === 'ok') {
      extra.actions = {};
      for (const [id, r] of o.value) extra.actions[id] = r.ok ? 'ok' : r.reason;
    }
    report('answer', v.name, o, extra);
  }
  for (const v of vs.monitor) {
    const storage = new Map();
    const store = { getItem: (k) => storage.get(k) ?? null, setItem: (k, x) => storage.set(k, String(x)) };
    for (const [i, step] of v.steps.entries()) {
      const monitor = new V.CheckpointMonitor(store); // a new page load, the same storage
      const o = await outcome(async () => {
        const cp = await V.verifyCheckpoint(step.note, await keyOf(v.vkey));
        return monitor.observe(cp, async () => step.consistency ?? []);
      });
      report('monitor', `${v.name} step ${i}`, o.got === 'ok' ? { got: o.value.status } : { got: o.reason, message: o.message });
    }
  }
  return results;
}

let bench = null;

// runBench verifies every record proof of /bench.json with a freshly parsed key (so the checkpoint
// signature is checked once, as on a real page) and returns the milliseconds it took.
window.runBench = async () => {
  bench ??= await (await fetch('/bench.json')).json();
  const t0 = performance.now();
  const key = await V.parseVerifierKey(bench.vkey);
  const out = await Promise.all(bench.proofs.map((p) => V.verifyRecordProof(p, key)));
  const ms = performance.now() - t0;
  if (out.length !== bench.proofs.length) throw new Error('not every proof was verified');
  return ms;
};

async function main() {
  const t0 = performance.now();
  try {
    const vs = await (await fetch('/vectors.json')).json();
    const results = await run(vs);
    window.verifyTest = { done: true, results, ms: performance.now() - t0 };
  } catch (e) {
    window.verifyTest = { done: true, error: String(e?.stack ?? e) };
  }
  document.getElementById('status').textContent = window.verifyTest.error ?? `done: ${window.verifyTest.results.length} vectors`;
}

if (!new URLSearchParams(location.search).has('bench')) main();
