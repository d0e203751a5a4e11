// The UI's client of the public query API (query/openapi.json). There are no private
// endpoints: every call here is one a script or lineagectl could make with the same key.
//
// Credentials: on loopback without authentication every call just works. With API keys, the
// auditor enters a key (Settings); it is kept in sessionStorage (gone when the tab closes) and
// sent as "Authorization: Bearer". OIDC browser login is not implemented yet.

const KEY = "lineage.apiKey";

export function apiKey() {
  try { return sessionStorage.getItem(KEY) || ""; } catch (_) { return ""; }
}

export function setAPIKey(k) {
  if (k) sessionStorage.setItem(KEY, k);
  else sessionStorage.removeItem(KEY);
}

// ApiError is a failed call; message is the server's error text (untrusted: show it as text).
export class ApiError extends Error {
  constructor(status, message) {
    super(message);
    this.status = status;
  }
}

// url builds an API path: segments are percent-encoded (ids may hold "/"), params that are
// empty are left out, arrays repeat the parameter.
export function apiURL(segments, params) {
  const path = "/" + segments.map((s, i) => (i === 0 ? s : encodeURIComponent(s))).join("/");
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params || {})) {
    for (const x of Array.isArray(v) ? v : [v]) if (x !== undefined && x !== null && x !== "") q.append(k, x);
  }
  const qs = q.toString();
  return qs ? path + "?" + qs : path;
}

// get fetches an API path and returns { status, text, json } of a 2xx answer; it throws
// ApiError otherwise.
export async function get(path, { json = true } = {}) {
  const headers = { Accept: json ? "application/json" : "text/plain" };
  const k = apiKey();
  if (k) headers.Authorization = "Bearer " + k;
  let resp;
  try {
    resp = await fetch(path, { headers, credentials: "omit", cache: "no-store", redirect: "error" });
  } catch (e) {
    throw new ApiError(0, "network error: " + e.message);
  }
  const text = await resp.text();
  if (!resp.ok) {
    let msg = text;
    try { msg = JSON.parse(text).error || text; } catch (_) { /* plain text */ }
    if (resp.status === 401) msg += " — enter an API key in Settings";
    throw new ApiError(resp.status, msg);
  }
  return { status: resp.status, text, json: json ? JSON.parse(text) : undefined };
}

// getBlob fetches an API path as a Blob (export files), with the same credentials as get.
export async function getBlob(path) {
  const headers = {};
  const k = apiKey();
  if (k) headers.Authorization = "Bearer " + k;
  const resp = await fetch(path, { headers, credentials: "omit", cache: "no-store", redirect: "error" });
  if (!resp.ok) throw new ApiError(resp.status, (await resp.text()).slice(0, 500));
  return resp.blob();
}
