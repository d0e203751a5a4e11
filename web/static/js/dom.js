// DOM helpers for hostile data. Every string a record holds is untrusted: it becomes a text
// node, never markup (no markup-parsing DOM sink is used anywhere in this application), and characters that could
// hide or reorder text are shown as visible escapes, the way lineage.Printable in text.go does.

// Characters made visible: controls (C0, DEL, C1), format characters (bidirectional marks,
// embeddings, overrides and isolates, zero-width characters, tag characters, the soft hyphen),
// line and paragraph separators, lone surrogates, and the rest of text.go's identForbidden set.
const HIDDEN = /[\p{Cc}\p{Cf}\p{Zl}\p{Zp}\p{Cs}\u180e\u2060-\u206f\ufff9-\ufffb\u{e0000}-\u{e007f}]/gu;

const hex = (n, w) => n.toString(16).padStart(w, "0");

// printable returns s with every hidden character replaced by a visible escape (\n, \t, \r,
// \xNN, \uNNNN, \UNNNNNNNN), as lineage.Printable does.
export function printable(s) {
  if (s === null || s === undefined) return "";
  s = String(s);
  return s.replace(HIDDEN, (c) => {
    if (c === "\n") return "\\n";
    if (c === "\t") return "\\t";
    if (c === "\r") return "\\r";
    const cp = c.codePointAt(0);
    if (cp < 0x80) return "\\x" + hex(cp, 2);
    if (cp <= 0xffff) return "\\u" + hex(cp, 4);
    return "\\U" + hex(cp, 8);
  });
}

// el builds an element. attrs are set as attributes (never event handlers: keys starting with
// "on" are refused); children are nodes or strings, strings become printable text nodes.
export function el(tag, attrs, ...children) {
  const e = document.createElement(tag);
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === undefined || v === null || v === false) continue;
    if (/^on/i.test(k)) throw new Error("el: event handler attributes are not allowed: " + k);
    if (k === "class") e.className = v;
    else if (k === "href") e.setAttribute("href", safeHref(v));
    else e.setAttribute(k, v === true ? "" : String(v));
  }
  append(e, ...children);
  return e;
}

// append adds children to a node; strings are shown through printable.
export function append(parent, ...children) {
  for (const c of children.flat(Infinity)) {
    if (c === undefined || c === null || c === false) continue;
    parent.appendChild(c instanceof Node ? c : document.createTextNode(printable(c)));
  }
  return parent;
}

// clear removes every child of a node.
export function clear(node) {
  while (node.firstChild) node.removeChild(node.firstChild);
  return node;
}

// safeHref returns href if it is a same-origin path or an http(s) URL, and "#" otherwise
// (javascript:, data:, vbscript: and the like never reach an href).
export function safeHref(href) {
  const s = String(href);
  if (s.startsWith("/") && !s.startsWith("//")) return s;
  try {
    const u = new URL(s);
    if (u.protocol === "http:" || u.protocol === "https:") return u.href;
  } catch (_) { /* not a URL */ }
  return "#";
}

// externalLink shows a record's URL-like value: a link only for http(s), plain text otherwise.
export function externalLink(value) {
  const s = String(value ?? "");
  let ok = false;
  try {
    const u = new URL(s);
    ok = (u.protocol === "http:" || u.protocol === "https:") && printable(s) === s;
  } catch (_) { /* plain text */ }
  if (!ok) return el("span", { class: "val" }, s);
  return el("a", { href: s, rel: "noopener noreferrer nofollow", target: "_blank", class: "ext" }, s);
}

// fmtTime shows an RFC 3339 time as written (it is data), shortened for tables when asked.
export function shortTime(t) {
  const s = String(t ?? "");
  const m = /^(\d{4}-\d\d-\d\d)T(\d\d:\d\d:\d\d)/.exec(s);
  return m ? m[1] + " " + m[2] : s;
}

// b64ToBytes decodes standard base64 (Go's encoding of []byte in JSON).
export function b64ToBytes(s) {
  const bin = atob(s || "");
  const out = new Uint8Array(bin.length);
  for (let i = 0; i < bin.length; i++) out[i] = bin.charCodeAt(i);
  return out;
}

// bytesToText decodes UTF-8, showing invalid bytes as \xNN like lineage.Printable.
export function bytesToText(b) {
  try {
    return new TextDecoder("utf-8", { fatal: true }).decode(b);
  } catch (_) {
    let s = "";
    for (const x of b) s += x >= 0x20 && x < 0x7f ? String.fromCharCode(x) : "\\x" + hex(x, 2);
    return s;
  }
}

// bytesToHex encodes bytes as lower-case hexadecimal.
export function bytesToHex(b) {
  return Array.from(b, (x) => hex(x, 2)).join("");
}
