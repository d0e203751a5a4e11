// The browser login with the server's OIDC provider (query/auth/login.go): the session
// section of Settings (log in, who is logged in, log out) and the session link in the header.
// The login itself is a navigation to /v1/auth/login, which leads to the provider and back;
// the session is an HttpOnly cookie this script never sees, plus the CSRF token api.js sends.

import { el, clear, shortTime } from "../dom.js";
import { currentSession, loadSession, loginAvailable, loginHref, logout, apiKey } from "../api.js";
import { section, kv, errorBox } from "./common.js";

// Why a login came back without a session (the callback's ?login_error= codes).
const LOGIN_ERRORS = {
  state: "the login could not be matched to this browser (it took over 10 minutes, was started in another browser, or was forged). Try again.",
  denied: "the identity provider did not sign you in.",
  unavailable: "the identity provider could not be reached.",
  exchange: "the identity provider refused to complete the login.",
  token: "your account's tokens were refused: it may have no Lineage roles or tenants (ask an administrator).",
};

function here() {
  const p = new URLSearchParams(location.search);
  p.delete("login_error");
  const qs = p.toString();
  return location.pathname + (qs ? "?" + qs : "");
}

function loginLink(id, text) {
  return el("a", { id, href: loginHref(here()) }, text);
}

// renderHeaderSession shows, at the end of the page header, who is logged in (a link to
// Settings) or a "Log in" link; nothing when the server has no browser login.
export function renderHeaderSession() {
  const header = document.querySelector("header.top");
  if (!header) return;
  let slot = document.getElementById("session-status");
  if (!slot) {
    slot = el("span", { id: "session-status" });
    header.append(slot);
  }
  clear(slot);
  const s = currentSession();
  if (s) slot.append(el("a", { href: "/ui/settings", id: "session-user", title: "logged in; log out in Settings" }, s.subject));
  else if (loginAvailable()) slot.append(loginLink("header-login", "Log in"));
}

// initSession loads the session before the first view is drawn.
export async function initSession() {
  await loadSession();
  renderHeaderSession();
}

// sessionSection is the Settings section of the browser login.
export function sessionSection(st, rerender) {
  const out = [];
  const code = st.params.get("login_error");
  if (code) {
    out.push(el("p", { class: "error", role: "alert", id: "login-error" }, "Login failed: ", LOGIN_ERRORS[code] || code));
  }
  const s = currentSession();
  if (s) {
    const btn = el("button", { type: "button", id: "logout" }, "Log out");
    btn.addEventListener("click", async () => {
      btn.disabled = true;
      try {
        await logout();
      } catch (e) {
        btn.disabled = false;
        btn.after(errorBox(e));
        return;
      }
      await loadSession();
      renderHeaderSession();
      rerender();
    });
    out.push(kv([["logged in as", el("code", { id: "session-subject" }, s.subject)],
      ["roles", (s.roles || []).join(", ")], ["tenants", (s.tenants || []).join(", ")],
      ["session ends", shortTime(s.expires_at) + " UTC"]], { id: "session-facts" }), btn);
    if (apiKey()) out.push(el("p", { class: "muted" }, "An API key is also set: calls use the key, not the session."));
  } else if (loginAvailable()) {
    out.push(el("p", {}, loginLink("login", "Log in"), " with the organization's identity provider (the session is a cookie of this browser, ended by Log out or when the provider's token expires)."));
  } else {
    return null; // the server has no browser login
  }
  return section("Login", ...out);
}
