// verify.js checks Lineage's proofs in the browser, trusting nothing but the log key the auditor
// pinned. It uses WebCrypto alone (SHA-256, Ed25519) and mirrors the Go verifier rule for rule:
//
//   - checkpoints are C2SP signed notes, opened as ledger.OpenCheckpoint opens them
//     (ledger/proof.go: golang.org/x/mod/sumdb/note's Open, then transparency-dev/formats'
//     ParseCheckpoint with the key's name as the expected origin);
//   - inclusion and consistency proofs are RFC 6962 proofs, checked as transparency-dev/merkle's
//     proof package checks them (ledger/proof.go);
//   - a leaf is the canonical envelope of envelope.go, and the record shown must be the leaf's
//     (verify/record.go, verify/answer.go).
//
// web/jstest runs this module in headless Chromium against vectors the Go verifier produced and
// checked itself (web/jstest/vectors_test.go).

/** VerifyError is every failure of a check; reason is a short machine-readable code. */
export class VerifyError extends Error {
  constructor(reason, message) {
    super(message ? `${reason}: ${message}` : reason);
    this.name = 'VerifyError';
    this.reason = reason;
  }
}

function fail(reason, message) {
  throw new VerifyError(reason, message);
}

const utf8 = new TextEncoder();
const strictUTF8 = new TextDecoder('utf-8', { fatal: true });

// ---- bytes ----------------------------------------------------------------------------------

const B64 = 'ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789+/';
const B64_VALUE = new Int8Array(128).fill(-1);
for (let i = 0; i < B64.length; i++) B64_VALUE[B64.charCodeAt(i)] = i;

/**
 * b64decode decodes standard, padded base64 exactly as Go's base64.StdEncoding does (the
 * encoding of note signatures, checkpoint roots and JSON []byte): padding is required, CR and LF
 * are skipped, and non-zero trailing bits are accepted. Throws VerifyError('malformed').
 */
export function b64decode(s) {
  if (typeof s !== 'string') fail('malformed', 'base64: not a string');
  if (s.includes('\r') || s.includes('\n')) s = s.replace(/[\r\n]/g, '');
  if (s.length % 4 !== 0) fail('malformed', 'base64: length is not a multiple of 4');
  const pad = s.endsWith('==') ? 2 : s.endsWith('=') ? 1 : 0;
  const out = new Uint8Array((s.length / 4) * 3 - pad);
  let acc = 0;
  let bits = 0;
  let o = 0;
  for (let i = 0; i < s.length - pad; i++) {
    const c = s.charCodeAt(i);
    const v = c < 128 ? B64_VALUE[c] : -1;
    if (v < 0) fail('malformed', `base64: bad character at ${i}`);
    acc = ((acc << 6) | v) & 0xfff;
    bits += 6;
    if (bits >= 8) {
      bits -= 8;
      out[o++] = acc >> bits;
      acc &= (1 << bits) - 1;
    }
  }
  return out;
}

/** hex returns the lower-case hexadecimal of bytes. */
export function hex(bytes) {
  let s = '';
  for (const b of bytes) s += b.toString(16).padStart(2, '0');
  return s;
}

function equalBytes(a, b) {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

async function sha256(...parts) {
  let n = 0;
  for (const p of parts) n += p.length;
  const buf = new Uint8Array(n);
  n = 0;
  for (const p of parts) {
    buf.set(p, n);
    n += p.length;
  }
  return new Uint8Array(await crypto.subtle.digest('SHA-256', buf));
}

// ---- keys and checkpoints -------------------------------------------------------------------

// Go's unicode.IsSpace: a note key or signature name may hold none of these, nor '+'.
const SPACE = /[\t\n\v\f\r \u0085\u00a0\u1680\u2000-\u200a\u2028\u2029\u202f\u205f\u3000]/;

function validName(name) {
  return name !== '' && name.isWellFormed() && !SPACE.test(name) && !name.includes('+');
}

const ALG_ED25519 = 1;

/**
 * parseVerifierKey parses a note verifier key "<name>+<hex key hash>+<base64(0x01 || key)>" as
 * note.NewVerifier does. fingerprint is what the UI shows for the auditor to compare out of
 * band: the first 16 bytes of SHA-256 of the raw 32-byte key, in hex groups of four.
 * Throws VerifyError('bad-key').
 */
export async function parseVerifierKey(vkey) {
  if (typeof vkey !== 'string') fail('bad-key', 'not a string');
  vkey = vkey.trim();
  const plus1 = vkey.indexOf('+');
  const plus2 = plus1 < 0 ? -1 : vkey.indexOf('+', plus1 + 1);
  if (plus2 < 0) fail('bad-key', 'want <name>+<hash>+<key>');
  const name = vkey.slice(0, plus1);
  const hash16 = vkey.slice(plus1 + 1, plus2);
  let key;
  try {
    key = b64decode(vkey.slice(plus2 + 1));
  } catch {
    fail('bad-key', 'key is not base64');
  }
  if (!/^[0-9a-fA-F]{8}$/.test(hash16) || !validName(name) || key.length === 0) {
    fail('bad-key', 'malformed key');
  }
  const keyHash = (await sha256(utf8.encode(name + '\n'), key)).slice(0, 4);
  if (hex(keyHash) !== hash16.toLowerCase()) fail('bad-key', 'key hash does not match the key');
  if (key[0] !== ALG_ED25519) fail('bad-key', 'not an Ed25519 key');
  const raw = key.slice(1);
  if (raw.length !== 32) fail('bad-key', 'Ed25519 key is not 32 bytes');
  let cryptoKey;
  try {
    cryptoKey = await crypto.subtle.importKey('raw', raw, { name: 'Ed25519' }, false, ['verify']);
  } catch (e) {
    fail('bad-key', `WebCrypto refused the key: ${e.message}`);
  }
  const fp = hex((await sha256(raw)).slice(0, 16)).match(/.{4}/g).join(' ');
  return { name, keyHash, key: cryptoKey, fingerprint: fp, vkey };
}

const SIG_PREFIX = '\u2014 '; // "— "
const MAX_U64 = (1n << 64n) - 1n;

// Verified checkpoints, per key, by note text: the proofs of one page all name the same note.
const opened = new WeakMap();

/**
 * verifyCheckpoint opens a signed checkpoint note (a string, or its bytes) with the pinned key,
 * as ledger.OpenCheckpoint does: the note must be well formed, carry a valid signature of the key
 * (the first of its lines with the key's name and hash; later repeats are ignored), and its
 * origin line must be the key's name. Other signature lines (cosignatures) are listed, unverified.
 * Returns {origin, size: bigint, rootHash, cosigners, extensions, note}.
 * Throws VerifyError: 'malformed', 'no-signature', 'bad-signature', 'wrong-origin'.
 */
export async function verifyCheckpoint(noteText, key) {
  if (noteText instanceof Uint8Array) {
    try {
      noteText = strictUTF8.decode(noteText);
    } catch {
      fail('malformed', 'note is not UTF-8');
    }
  }
  if (typeof noteText !== 'string') fail('malformed', 'note is not text');
  let byNote = opened.get(key);
  if (!byNote) opened.set(key, (byNote = new Map()));
  let p = byNote.get(noteText);
  if (!p) {
    p = openCheckpoint(noteText, key);
    if (byNote.size > 64) byNote.clear();
    byNote.set(noteText, p);
  }
  return p;
}

async function openCheckpoint(text, key) {
  // note.Open: valid UTF-8 (a JS string always encodes to it) and no control character but LF.
  if (/[\u0000-\u0009\u000b-\u001f]/.test(text)) fail('malformed', 'control character in note');
  const split = text.lastIndexOf('\n\n');
  if (split < 0) fail('malformed', 'no signature block');
  const body = text.slice(0, split + 1);
  const block = text.slice(split + 2);
  if (block === '' || !block.endsWith('\n')) fail('malformed', 'signature block');
  const lines = block.slice(0, -1).split('\n');
  if (lines.length > 100) fail('malformed', 'too many signatures');

  let mine = null;
  const cosigners = [];
  for (const line of lines) {
    if (!line.startsWith(SIG_PREFIX)) fail('malformed', 'signature line');
    const rest = line.slice(SIG_PREFIX.length);
    const sp = rest.indexOf(' ');
    const name = sp < 0 ? rest : rest.slice(0, sp);
    const b64 = sp < 0 ? '' : rest.slice(sp + 1);
    const sig = b64decode(b64);
    if (!validName(name) || b64 === '' || sig.length < 5) fail('malformed', 'signature line');
    if (name === key.name && equalBytes(sig.subarray(0, 4), key.keyHash)) {
      mine ??= sig.subarray(4); // note.Open verifies the first and skips repeats
    } else if (!cosigners.includes(name)) {
      cosigners.push(name);
    }
  }
  if (!mine) fail('no-signature', `no signature by ${key.name}`);
  const ok =
    mine.length === 64 &&
    (await crypto.subtle.verify({ name: 'Ed25519' }, key.key, mine, utf8.encode(body)));
  if (!ok) fail('bad-signature', `invalid signature by ${key.name}`);

  // C2SP tlog-checkpoint body: origin, decimal size, base64 root hash, then extension lines.
  const l1 = body.indexOf('\n');
  const l2 = body.indexOf('\n', l1 + 1);
  const l3 = l2 < 0 ? -1 : body.indexOf('\n', l2 + 1);
  if (l3 < 0) fail('malformed', 'checkpoint has too few lines');
  const origin = body.slice(0, l1);
  const sizeText = body.slice(l1 + 1, l2);
  if (origin === '') fail('malformed', 'empty origin');
  if (!/^[0-9]+$/.test(sizeText) || BigInt(sizeText) > MAX_U64) fail('malformed', 'tree size');
  const rootHash = b64decode(body.slice(l2 + 1, l3));
  if (origin !== key.name) fail('wrong-origin', `checkpoint of ${origin}, want ${key.name}`);
  const extensions = body.slice(l3 + 1).split('\n').slice(0, -1);
  return { origin, size: BigInt(sizeText), rootHash, cosigners, extensions, note: text };
}

// ---- RFC 6962 proofs ------------------------------------------------------------------------

const LEAF_PREFIX = new Uint8Array([0]);
const NODE_PREFIX = new Uint8Array([1]);

/** leafHash is the RFC 6962 leaf hash SHA-256(0x00 || leaf). */
export async function leafHash(leaf) {
  return sha256(LEAF_PREFIX, leaf);
}

function hashChildren(l, r) {
  return sha256(NODE_PREFIX, l, r);
}

function u64(x, what) {
  if (typeof x === 'number' && Number.isSafeInteger(x)) x = BigInt(x);
  if (typeof x !== 'bigint' || x < 0n || x > MAX_U64) fail('malformed', `${what} is not a uint64`);
  return x;
}

function bitLength(x) {
  return x === 0n ? 0 : x.toString(2).length;
}

function onesCount(x) {
  let n = 0;
  for (const c of x.toString(2)) if (c === '1') n++;
  return n;
}

function trailingZeros(x) {
  let n = 0;
  while (x > 0n && (x & 1n) === 0n) {
    x >>= 1n;
    n++;
  }
  return n;
}

// decompInclProof splits the inclusion proof of index in a tree of size into the part below the
// point where the paths to index and size-1 diverge (inner) and the part above it (border).
function decompInclProof(index, size) {
  const inner = bitLength(index ^ (size - 1n));
  const border = onesCount(index >> BigInt(inner));
  return [inner, border];
}

async function chainInner(seed, proof, index) {
  for (let i = 0; i < proof.length; i++) {
    seed = ((index >> BigInt(i)) & 1n) === 0n ? await hashChildren(seed, proof[i]) : await hashChildren(proof[i], seed);
  }
  return seed;
}

async function chainInnerRight(seed, proof, index) {
  for (let i = 0; i < proof.length; i++) {
    if (((index >> BigInt(i)) & 1n) === 1n) seed = await hashChildren(proof[i], seed);
  }
  return seed;
}

async function chainBorderRight(seed, proof) {
  for (const h of proof) seed = await hashChildren(h, seed);
  return seed;
}

function checkProof(proof) {
  if (!Array.isArray(proof) || !proof.every((h) => h instanceof Uint8Array)) {
    fail('malformed', 'proof is not a list of byte arrays');
  }
}

/**
 * verifyInclusion checks that leafHash is the leaf at index in the tree of size with root.
 * Throws VerifyError: 'index-beyond-size', 'bad-proof-length', 'root-mismatch', 'malformed'.
 */
export async function verifyInclusion(index, size, leafHash, proof, root) {
  index = u64(index, 'index');
  size = u64(size, 'size');
  checkProof(proof);
  if (index >= size) fail('index-beyond-size', `index ${index} >= size ${size}`);
  if (leafHash.length !== 32) fail('malformed', 'leaf hash is not 32 bytes');
  const [inner, border] = decompInclProof(index, size);
  if (proof.length !== inner + border) {
    fail('bad-proof-length', `inclusion proof has ${proof.length} hashes, want ${inner + border}`);
  }
  let h = await chainInner(leafHash, proof.slice(0, inner), index);
  h = await chainBorderRight(h, proof.slice(inner));
  if (!equalBytes(h, root)) fail('root-mismatch', `leaf ${index} is not in the tree of size ${size}`);
}

/**
 * verifyConsistency checks that the tree of size1 with root1 is a prefix of the tree of size2
 * with root2. Throws VerifyError: 'bad-size', 'bad-proof-length', 'root-mismatch', 'malformed'.
 */
export async function verifyConsistency(size1, size2, proof, root1, root2) {
  size1 = u64(size1, 'size1');
  size2 = u64(size2, 'size2');
  checkProof(proof);
  if (size2 < size1) fail('bad-size', `size2 ${size2} < size1 ${size1}`);
  if (size1 === size2) {
    if (proof.length > 0) fail('bad-proof-length', 'equal sizes need an empty proof');
    if (!equalBytes(root1, root2)) fail('root-mismatch', 'same size, different roots');
    return;
  }
  if (size1 === 0n) {
    if (proof.length > 0) fail('bad-proof-length', 'size 0 needs an empty proof');
    return;
  }
  if (proof.length === 0) fail('bad-proof-length', 'empty proof');

  let [inner, border] = decompInclProof(size1 - 1n, size2);
  const shift = trailingZeros(size1);
  inner -= shift;
  // The proof starts with the root of the subtree of size 2^shift, unless size1 is that size.
  let seed = proof[0];
  let start = 1;
  if (size1 === 1n << BigInt(shift)) {
    seed = root1;
    start = 0;
  }
  if (proof.length !== start + inner + border) {
    fail('bad-proof-length', `consistency proof has ${proof.length} hashes, want ${start + inner + border}`);
  }
  const rest = proof.slice(start);
  const mask = (size1 - 1n) >> BigInt(shift);
  let h1 = await chainInnerRight(seed, rest.slice(0, inner), mask);
  h1 = await chainBorderRight(h1, rest.slice(inner));
  if (!equalBytes(h1, root1)) fail('root-mismatch', `proof does not lead to the root of size ${size1}`);
  let h2 = await chainInner(seed, rest.slice(0, inner), mask);
  h2 = await chainBorderRight(h2, rest.slice(inner));
  if (!equalBytes(h2, root2)) fail('root-mismatch', `proof does not lead to the root of size ${size2}`);
}

// ---- leaves and records ---------------------------------------------------------------------

/**
 * canonicalJSON writes a parsed JSON value in RFC 8785 form (canonical.go): members sorted by
 * UTF-16 code units, strings and numbers as JSON.stringify writes them. Unpaired surrogates and
 * non-finite numbers have no canonical form: VerifyError('malformed').
 */
export function canonicalJSON(v) {
  if (v === null) return 'null';
  switch (typeof v) {
    case 'boolean':
      return v ? 'true' : 'false';
    case 'number':
      if (!Number.isFinite(v)) break;
      return JSON.stringify(v);
    case 'string':
      if (!v.isWellFormed()) break;
      return JSON.stringify(v);
    case 'object': {
      if (Array.isArray(v)) return '[' + v.map(canonicalJSON).join(',') + ']';
      const keys = Object.keys(v).sort();
      return '{' + keys.map((k) => canonicalJSON(k) + ':' + canonicalJSON(v[k])).join(',') + '}';
    }
  }
  fail('malformed', 'value has no canonical JSON form');
}

const ENVELOPE_KEYS = 'received_at,record,source_verified,v';
const RFC3339_UTC = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}(\.\d*[1-9])?Z$/;

function isObject(v) {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

const ENVELOPE_V2_KEYS = 'received_at,record,sealed,source_verified,v';
const SEALED_FIELD_KEYS = 'c,k,m,p';
const B64URL = /^[A-Za-z0-9_-]*$/;
const SEALED_PREFIX = 'sealed:';
// The domain-separation tag of a sealed field's commitment (ledger/seal/crypto.go).
const TAG_COMMITMENT = new TextEncoder().encode('lineage/seal/v1 field commitment\0');

function b64urlEncode(bytes) {
  let s = '';
  for (const b of bytes) s += String.fromCharCode(b);
  return btoa(s).replace(/\+/g, '-').replace(/\//g, '_').replace(/=+$/, '');
}

// b64urlStrict decodes unpadded base64url as Go's RawURLEncoding.Strict() does (one spelling per
// value), of exactly n bytes. Throws VerifyError('bad-leaf').
function b64urlStrict(s, n, what) {
  if (typeof s !== 'string' || !B64URL.test(s) || s.length % 4 === 1) fail('bad-leaf', `${what} is not base64url`);
  const out = b64decode(s.replace(/-/g, '+').replace(/_/g, '/') + '='.repeat((4 - (s.length % 4)) % 4));
  if (b64urlEncode(out) !== s || (n >= 0 && out.length !== n)) fail('bad-leaf', `${what} is not ${n} bytes of strict base64url`);
  return out;
}

// pointerTokens splits an RFC 6901 JSON pointer.
function pointerTokens(p) {
  if (typeof p !== 'string' || !p.startsWith('/')) fail('bad-leaf', 'sealed path is not a JSON pointer');
  return p.slice(1).split('/').map((t) => t.replace(/~1/g, '/').replace(/~0/g, '~'));
}

// pointerParent returns the object holding the value p names, and its key (undefined if absent).
function pointerParent(doc, p) {
  const toks = pointerTokens(p);
  let cur = doc;
  for (let i = 0; i < toks.length - 1; i++) {
    if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, toks[i])) return [undefined, undefined];
    cur = cur[toks[i]];
  }
  if (cur === null || typeof cur !== 'object' || !Object.hasOwn(cur, toks[toks.length - 1])) return [undefined, undefined];
  return [cur, toks[toks.length - 1]];
}

/**
 * parseLeaf reads a ledger entry: the canonical envelope
 * {"received_at":…,"record":<record>,"source_verified":…,"v":1} of envelope.go, or the v2
 * envelope of an erasure-enabled log (ledger/seal/envelope.go, docs/ERASURE.md), whose record
 * holds "sealed:<commitment>" tokens in place of personal values and whose "sealed" list names
 * each sealed field (p), its subject key (k), commitment (m) and ciphertext (c). It checks what
 * DecodeEnvelope and DecodeEnvelopeV2 check about the envelope (exact members, version, UTC time,
 * canonical bytes; for v2 the sealed list sorted by path, strict sizes, each path holding its
 * token); the record's schema it leaves to the log, which only appends validated records.
 * Returns {record, receivedAt, sourceVerified, sealed}. Throws VerifyError('bad-leaf').
 */
export function parseLeaf(leaf) {
  let text;
  let env;
  try {
    text = strictUTF8.decode(leaf);
    env = JSON.parse(text);
  } catch {
    fail('bad-leaf', 'leaf is not JSON');
  }
  const keys = isObject(env) ? Object.keys(env).sort().join(',') : '';
  if (keys !== ENVELOPE_KEYS && keys !== ENVELOPE_V2_KEYS) fail('bad-leaf', 'not an envelope');
  const { received_at: receivedAt, record, source_verified: sourceVerified, v } = env;
  const version = keys === ENVELOPE_KEYS ? 1 : 2;
  if (v !== version || typeof receivedAt !== 'string' || !RFC3339_UTC.test(receivedAt) ||
      typeof sourceVerified !== 'boolean' || !isObject(record)) {
    fail('bad-leaf', `not a version ${version} envelope`);
  }
  let canonical;
  try {
    canonical = canonicalJSON(env);
  } catch {
    fail('bad-leaf', 'leaf has no canonical form');
  }
  if (canonical !== text) fail('bad-leaf', 'leaf is not canonical');
  const sealed = [];
  if (version === 2) {
    if (!Array.isArray(env.sealed)) fail('bad-leaf', 'sealed is not a list');
    let last = null;
    for (const f of env.sealed) {
      if (!isObject(f) || Object.keys(f).sort().join(',') !== SEALED_FIELD_KEYS) fail('bad-leaf', 'not a sealed field');
      if (typeof f.p !== 'string' || (last !== null && !(f.p > last))) fail('bad-leaf', 'sealed fields not sorted by path');
      last = f.p;
      const m = b64urlStrict(f.m, 32, 'commitment');
      b64urlStrict(f.k, 16, 'key id');
      b64urlStrict(f.c, -1, 'ciphertext');
      const [obj, key] = pointerParent(record, f.p);
      if (obj === undefined || obj[key] !== SEALED_PREFIX + f.m) fail('bad-leaf', `${f.p} does not hold its sealed token`);
      sealed.push({ path: f.p, keyId: f.k, commitment: f.m, m });
    }
  }
  return { record, receivedAt, sourceVerified, sealed };
}

function lengthPrefixed(s) {
  const b = new TextEncoder().encode(s);
  const out = new Uint8Array(4 + b.length);
  new DataView(out.buffer).setUint32(0, b.length);
  out.set(b, 4);
  return out;
}

/**
 * openLeaf puts the clear values an answer shows back into a v2 leaf's record, after checking
 * each opening ({p, v, n}: path, value, base64 nonce) against the field's commitment in the leaf
 * (SHA-256 of the tag, the tenant and the path length-prefixed, the nonce and the value: no key
 * is needed, and no other value matches). A sealed field without an opening keeps its token: it
 * is erased. Returns {record, fields: [{path, commitment, clear}]}. Throws VerifyError
 * ('bad-opening') for an opening that does not match or names no sealed field; a v1 leaf
 * with openings is refused too.
 */
export async function openLeaf(env, openings) {
  if (openings == null) openings = [];
  if (!Array.isArray(openings)) fail('malformed', 'openings is not a list');
  if (env.sealed.length === 0) {
    if (openings.length > 0) fail('bad-opening', 'openings for a leaf without sealed fields');
    return { record: env.record, fields: [] };
  }
  const record = structuredClone(env.record);
  const byPath = new Map(env.sealed.map((f) => [f.path, f]));
  const clear = new Set();
  for (const o of openings) {
    if (!isObject(o) || typeof o.p !== 'string' || typeof o.v !== 'string') fail('malformed', 'an opening is not {p, v, n}');
    const f = byPath.get(o.p);
    if (f === undefined || clear.has(o.p)) fail('bad-opening', `opening for ${o.p}, which is not a sealed field (or given twice)`);
    const nonce = b64decode(o.n ?? '');
    if (nonce.length !== 32) fail('bad-opening', `opening for ${o.p}: nonce is not 32 bytes`);
    const m = await sha256(TAG_COMMITMENT, lengthPrefixed(record.tenant), lengthPrefixed(o.p), nonce, new TextEncoder().encode(o.v));
    if (!equalBytes(m, f.m)) fail('bad-opening', `the value shown for ${o.p} does not match its commitment in the leaf`);
    const [obj, key] = pointerParent(record, o.p);
    obj[key] = o.v;
    clear.add(o.p);
  }
  return { record, fields: env.sealed.map((f) => ({ path: f.path, commitment: f.commitment, clear: clear.has(f.path) })) };
}

/** sameRecord says whether a record object (as displayed) is exactly the leaf's record. */
export function sameRecord(shown, leafRecord) {
  try {
    return canonicalJSON(shown) === canonicalJSON(leafRecord);
  } catch {
    return false;
  }
}

function decodeProof(list) {
  if (list == null) return [];
  if (!Array.isArray(list)) fail('malformed', 'inclusion_proof is not a list');
  return list.map(b64decode);
}

function jsonIndex(n, what) {
  if (!Number.isSafeInteger(n) || n < 0) fail('malformed', `${what} is not an index`);
  return BigInt(n);
}

/**
 * verifyRecordProof checks an answer of GET /v1/records/{id} as verify.VerifyRecordProof does
 * (verify/record.go): the checkpoint is signed by the key, the leaf is a canonical envelope whose
 * record is the one presented (when one is), and the inclusion proof places the leaf at the index
 * in the checkpoint's tree. Returns {checkpoint, record (the leaf's), index, receivedAt,
 * sourceVerified}. Throws VerifyError.
 */
export async function verifyRecordProof(answer, key) {
  if (!isObject(answer)) fail('malformed', 'answer is not an object');
  const checkpoint = await verifyCheckpoint(answer.checkpoint, key);
  const leaf = b64decode(answer.leaf ?? '');
  const index = jsonIndex(answer.index ?? 0, 'index');
  const env = parseLeaf(leaf);
  const opened = await openLeaf(env, answer.openings);
  if (answer.record != null && !sameRecord(answer.record, opened.record)) {
    fail('leaf-mismatch', `the record presented differs from the one in leaf ${index}`);
  }
  await verifyInclusion(index, checkpoint.size, await leafHash(leaf), decodeProof(answer.inclusion_proof), checkpoint.rootHash);
  return { checkpoint, record: opened.record, index, receivedAt: env.receivedAt, sourceVerified: env.sourceVerified, sealed: opened.fields };
}

// actionNodes lists the actions of any lineage answer (verify/answer.go): an agent's actions, a
// policy's examples, an action chain and its oversight, or a user's tree of agents.
function actionNodes(answer) {
  const out = [];
  const add = (list) => {
    if (Array.isArray(list)) for (const n of list) if (isObject(n)) out.push(n);
  };
  const walk = (agents) => {
    if (!Array.isArray(agents)) return;
    for (const a of agents) {
      if (!isObject(a)) continue;
      add(a.actions);
      walk(a.agents);
    }
  };
  add(answer.actions); // an agent answer's; a user answer's "actions" is a count
  add(answer.examples);
  add(answer.chain);
  add(answer.oversight);
  walk(answer.agents);
  return out;
}

// findingsEvidence lists the evidence records of a findings answer (GET /v1/findings) after the
// checks findingsNodes in verify/findings.go makes: every finding is the answer's tenant's, and
// every evidence record is the record its evidence names, at the log index it names. An answer
// without findings has none. Throws VerifyError: 'malformed', 'wrong-tenant', 'evidence-mismatch'.
function findingsEvidence(answer) {
  if (answer.findings == null) return [];
  if (!Array.isArray(answer.findings)) fail('malformed', 'findings is not a list');
  const out = [];
  for (const f of answer.findings) {
    if (!isObject(f)) fail('malformed', 'a finding is not an object');
    if (f.tenant !== answer.tenant) fail('wrong-tenant', `finding ${f.id} belongs to tenant ${f.tenant}, not ${answer.tenant}`);
    if (f.evidence == null) continue;
    if (!Array.isArray(f.evidence)) fail('malformed', `finding ${f.id}: evidence is not a list`);
    for (const e of f.evidence) {
      if (!isObject(e)) fail('malformed', `finding ${f.id}: evidence is not an object`);
      if (e.record == null) continue; // missing (retention, or beyond the checkpoint): nothing to verify
      if (!isObject(e.record)) fail('malformed', `finding ${f.id}: evidence record is not an object`);
      // Go reads an absent index as 0.
      if (e.record.id !== e.id || (e.record.log_index ?? 0) !== (e.log_index ?? 0)) {
        fail('evidence-mismatch', `finding ${f.id}: evidence ${e.id} at ${e.log_index} carries record ${e.record.id} at ${e.record.log_index}`);
      }
      out.push(e.record);
    }
  }
  return out;
}

// verifyNode checks one action as verifyNode in verify/answer.go does: a proof, a canonical leaf
// included at log_index, fields exactly the leaf record's, and the answer's tenant.
async function verifyNode(node, tenant, checkpoint) {
  if (!isObject(node.proof)) fail('no-proof', `action ${node.id} has no proof`);
  const leaf = b64decode(node.proof.leaf ?? '');
  const index = jsonIndex(node.log_index ?? 0, 'log_index');
  const env = parseLeaf(leaf);
  const opened = await openLeaf(env, node.proof.openings);
  await verifyInclusion(index, checkpoint.size, await leafHash(leaf), decodeProof(node.proof.inclusion_proof), checkpoint.rootHash);
  const r = opened.record;
  const want = {
    id: r.id, log_index: node.log_index, time: r.time, action: r.action, decision: r.decision,
    parent_id: r.parent_id, role: r.role, human_oversight: r.human_oversight,
    agent: r.agent?.id, user: r.user, tenant: r.tenant,
  };
  const got = { ...node };
  delete got.proof;
  for (const o of [want, got]) {
    // Absent and empty are the same to Go's omitempty.
    for (const k of ['parent_id', 'role', 'human_oversight']) if (o[k] === undefined || o[k] === '' || o[k] === null) delete o[k];
  }
  if (!sameRecord(got, want)) fail('leaf-mismatch', `action ${node.id} differs from the record in leaf ${index}`);
  if (r.tenant !== tenant) fail('wrong-tenant', `action ${node.id} belongs to tenant ${r.tenant}, not ${tenant}`);
  return { ok: true, record: r, index, sealed: opened.fields };
}

/**
 * verifyAnswerActions checks a lineage answer (GET /v1/lineage/{kind}/{subject}) or a findings
 * answer (GET /v1/findings, whose actions are the evidence records): its checkpoint once
 * (VerifyError thrown if it fails, if checkpoint_size is not the signed size, or if a finding
 * is another tenant's or names other evidence than the record it carries), then every
 * action's leaf and inclusion proof. Returns Map(action id → {ok: true, record, index} |
 * {ok: false, reason, message}); an id that appears twice keeps a failure.
 */
export async function verifyAnswerActions(answer, key) {
  if (!isObject(answer)) fail('malformed', 'answer is not an object');
  const checkpoint = await verifyCheckpoint(answer.checkpoint, key);
  if (!Number.isSafeInteger(answer.checkpoint_size) || BigInt(answer.checkpoint_size) !== checkpoint.size) {
    fail('size-mismatch', `answer says checkpoint size ${answer.checkpoint_size}, the signed checkpoint ${checkpoint.size}`);
  }
  const nodes = [...actionNodes(answer), ...findingsEvidence(answer)];
  const results = await Promise.all(
    nodes.map((n) =>
      verifyNode(n, answer.tenant, checkpoint).catch((e) => ({
        ok: false,
        reason: e instanceof VerifyError ? e.reason : 'error',
        message: e.message,
      })),
    ),
  );
  const out = new Map();
  nodes.forEach((n, i) => {
    if (!out.has(n.id) || out.get(n.id).ok) out.set(n.id, results[i]);
  });
  return out;
}

// ---- checkpoint monitor ---------------------------------------------------------------------

/**
 * CheckpointMonitor remembers, per log origin, the newest checkpoint this browser verified, in a
 * Storage-like object (getItem/setItem: localStorage in the UI), and checks that every newer
 * checkpoint extends it. Give observe only checkpoints verifyCheckpoint returned.
 */
export class CheckpointMonitor {
  constructor(storage, prefix = 'lineage.checkpoint.') {
    this.storage = storage;
    this.prefix = prefix;
  }

  /** latest returns {size: bigint, rootHash, note} last remembered for origin, or null. */
  latest(origin) {
    const raw = this.storage.getItem(this.prefix + origin);
    if (!raw) return null;
    try {
      const s = JSON.parse(raw);
      return { size: BigInt(s.size), rootHash: b64decode(s.root), note: s.note };
    } catch {
      return null; // unreadable state is forgotten, not trusted
    }
  }

  remember(cp) {
    let root = '';
    for (const b of cp.rootHash) root += String.fromCharCode(b);
    const s = { size: cp.size.toString(), root: btoa(root), note: cp.note };
    this.storage.setItem(this.prefix + cp.origin, JSON.stringify(s));
  }

  /**
   * observe compares cp with the newest remembered checkpoint of its log. A newer one must come
   * with a consistency proof, which fetchConsistency(from: bigint, to: bigint) returns (a list of
   * Uint8Array or base64 strings); errors of fetchConsistency propagate unchanged. Returns
   * {status: 'first'|'same'|'advanced', previous}. Throws VerifyError('rollback') for
   * a smaller tree than already seen and VerifyError('fork') for the same size with another
   * root or a proof that fails; the error carries previous and checkpoint, the evidence.
   */
  async observe(cp, fetchConsistency) {
    const previous = this.latest(cp.origin);
    const evidence = (e) => Object.assign(e, { previous, checkpoint: cp });
    if (!previous) {
      this.remember(cp);
      return { status: 'first', previous };
    }
    if (cp.size < previous.size) {
      throw evidence(new VerifyError('rollback', `checkpoint of size ${cp.size}, already saw ${previous.size}`));
    }
    if (cp.size === previous.size) {
      if (!equalBytes(cp.rootHash, previous.rootHash)) {
        throw evidence(new VerifyError('fork', `two roots for size ${cp.size}`));
      }
      return { status: 'same', previous };
    }
    const proof = await fetchConsistency(previous.size, cp.size);
    try {
      const nodes = (proof ?? []).map((h) => (typeof h === 'string' ? b64decode(h) : h));
      await verifyConsistency(previous.size, cp.size, nodes, previous.rootHash, cp.rootHash);
    } catch (e) {
      throw evidence(new VerifyError('fork', `size ${cp.size} does not extend size ${previous.size}: ${e.message}`));
    }
    this.remember(cp);
    return { status: 'advanced', previous };
  }
}
