// Deep links. The whole state of a screen lives in its URL: the view and its subject in the
// path (/ui/users/<user>, /ui/records/<id>, ...), tenant, window, filters and selection in the
// query string. A pasted or reloaded link therefore opens the same screen; the server answers
// every /ui/<view>/... path with index.html (web/web.go).

import { el } from "./dom.js";

// The filters shared by lineage views, as the API names them (query/openapi.json).
export const FILTERS = ["tenant", "from", "to", "effect", "action_type", "action_target", "agent"];

// current parses location into { view, subject, params }.
export function current() {
  const raw = location.pathname.replace(/^\/ui\/?/, "");
  const segs = raw === "" ? [] : raw.split("/").map((s) => {
    try { return decodeURIComponent(s); } catch (_) { return s; }
  });
  const view = segs[0] || "search";
  // A subject may itself hold "/" (SPIFFE ids): everything after the view is the subject.
  const subject = segs.slice(1).join("/");
  return { view, subject, params: new URLSearchParams(location.search) };
}

// href builds a UI link: view, subject, and parameters (arrays repeat, empty ones are dropped).
export function href(view, subject, params) {
  let p = "/ui/" + view;
  if (subject !== undefined && subject !== null && subject !== "") p += "/" + encodeURIComponent(subject);
  const q = new URLSearchParams();
  const add = (k, v) => { if (v !== undefined && v !== null && v !== "") q.append(k, v); };
  if (params instanceof URLSearchParams) params.forEach((v, k) => add(k, v));
  else for (const [k, v] of Object.entries(params || {})) for (const x of Array.isArray(v) ? v : [v]) add(k, x);
  const qs = q.toString();
  return qs ? p + "?" + qs : p;
}

// filterParams keeps the shared filters of params (to carry them from view to view).
export function filterParams(params, keep = FILTERS) {
  const out = new URLSearchParams();
  for (const k of keep) for (const v of params.getAll(k)) if (v) out.append(k, v);
  return out;
}

let onNavigate = () => {};
export function setNavigateHandler(f) { onNavigate = f; }

// navigate opens a UI URL without reloading the page.
export function navigate(url) {
  history.pushState(null, "", url);
  onNavigate();
}

// replaceParams rewrites the query string of the current URL (selection, expansion) without a
// new history entry and without re-rendering.
export function replaceParams(update) {
  const u = new URL(location.href);
  for (const [k, v] of Object.entries(update)) {
    u.searchParams.delete(k);
    for (const x of Array.isArray(v) ? v : [v]) if (x !== undefined && x !== null && x !== "") u.searchParams.append(k, x);
  }
  history.replaceState(null, "", u.pathname + u.search);
}

// link makes an in-app link element.
export function link(text, view, subject, params, attrs) {
  return el("a", { ...(attrs || {}), href: href(view, subject, params) }, text);
}
