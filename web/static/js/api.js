// The UI's client of the public query API (query/openapi.json). There are no private
// endpoints: every call here is one a script or lineagectl could make with the same key.
//
// Credentials: on loopback without authentication every call just works. With API keys, the
// auditor enters a key (Settings); it is kept in sessionStorage (gone when the tab closes) and
// sent as "Authorization: Bearer". With OIDC browser login (lineaged --oidc-client-id), the
// browser holds an HttpOnly session cookie, sent on these same-origin calls; state-changing
// calls then also send the session's CSRF token (X-CSRF-Token), which loadSession reads from
// GET /v1/auth/session (query/auth/login.go). A key, when set, wins: the server ignores the
// cookie of a call with an Authorization header.

const KEY = "lineage.apiKey";

export function apiKey() {
  try { return sessionStorage.getItem(KEY) || ""; } catch (_) { return ""; }
}

export function setAPIKey(k) {
  if (k) sessionStorage.setItem(KEY, k);
  else sessionStorage.removeItem(KEY);
}

// The browser session: { subject, roles, tenants, expires_at, csrf_token } or null, and
// whether the server offers the login at all (loginPath: "/v1/auth/login" or "").
let session = null;
let loginPath = "";

export function currentSession() { return session; }
export function loginAvailable() { return loginPath !== ""; }

// loadSession asks the server who the session cookie names. 401 means no session (its body
// says where to log in); 404 means the server has no browser login.
export async function loadSession() {
  session = null;
  loginPath = "";
  let resp;
  try {
    resp = await fetch("/v1/auth/session", { credentials: "same-origin", cache: "no-store", redirect: "error", headers: { Accept: "application/json" } });
  } catch (_) { return null; }
  let body = {};
  try { body = await resp.json(); } catch (_) { /* not JSON */ }
  if (resp.ok && body && typeof body.csrf_token === "string") {
    session = body;
    loginPath = "/v1/auth/login";
  } else if (resp.status === 401 && body && body.login === "/v1/auth/login") {
    loginPath = body.login; // a fixed path, never a URL taken from elsewhere
  }
  return session;
}

// loginHref is the link that starts the login and comes back to returnTo (a /ui/ page).
export function loginHref(returnTo) {
  return loginPath + "?" + new URLSearchParams({ return: returnTo || "/ui/" }).toString();
}

// logout ends the session on the server (CSRF-checked) and forgets it here.
export async function logout() {
  const headers = {};
  if (session) headers["X-CSRF-Token"] = session.csrf_token;
  const resp = await fetch("/v1/auth/logout", { method: "POST", headers, credentials: "same-origin", cache: "no-store", redirect: "error" });
  if (!resp.ok) throw new ApiError(resp.status, "logout failed (" + resp.status + ")");
  session = null;
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

// credentials adds the caller's credentials to headers: the API key, or for a state-changing
// method the session's CSRF token (the cookie itself goes with credentials: "same-origin").
function credentials(headers, method) {
  const k = apiKey();
  if (k) headers.Authorization = "Bearer " + k;
  else if (session && method !== "GET" && method !== "HEAD") headers["X-CSRF-Token"] = session.csrf_token;
  return headers;
}

async function failure(resp, text) {
  let msg = text;
  try { msg = JSON.parse(text).error || text; } catch (_) { /* plain text */ }
  if (resp.status === 401) {
    if (session && !apiKey()) session = null; // the session ended on the server
    msg += loginAvailable() ? " — log in or enter an API key in Settings" : " — enter an API key in Settings";
  }
  return new ApiError(resp.status, msg);
}

// get fetches an API path and returns { status, text, json } of a 2xx answer; it throws
// ApiError otherwise.
export async function get(path, { json = true } = {}) {
  const headers = credentials({ Accept: json ? "application/json" : "text/plain" }, "GET");
  let resp;
  try {
    resp = await fetch(path, { headers, credentials: "same-origin", cache: "no-store", redirect: "error" });
  } catch (e) {
    throw new ApiError(0, "network error: " + e.message);
  }
  const text = await resp.text();
  if (!resp.ok) throw await failure(resp, text);
  return { status: resp.status, text, json: json ? JSON.parse(text) : undefined };
}

// send makes a state-changing call (POST, PUT, DELETE) with an optional JSON body and returns
// { status, text, json } of a 2xx answer; it throws ApiError otherwise.
export async function send(method, path, body) {
  const headers = credentials({ Accept: "application/json" }, method);
  const init = { method, headers, credentials: "same-origin", cache: "no-store", redirect: "error" };
  if (body !== undefined) {
    headers["Content-Type"] = "application/json";
    init.body = JSON.stringify(body);
  }
  let resp;
  try {
    resp = await fetch(path, init);
  } catch (e) {
    throw new ApiError(0, "network error: " + e.message);
  }
  const text = await resp.text();
  if (!resp.ok) throw await failure(resp, text);
  let parsed;
  try { parsed = text ? JSON.parse(text) : undefined; } catch (_) { /* not JSON */ }
  return { status: resp.status, text, json: parsed };
}

// getBlob fetches an API path as a Blob (export files), with the same credentials as get.
export async function getBlob(path) {
  const headers = credentials({}, "GET");
  const resp = await fetch(path, { headers, credentials: "same-origin", cache: "no-store", redirect: "error" });
  if (!resp.ok) throw new ApiError(resp.status, (await resp.text()).slice(0, 500));
  return resp.blob();
}
