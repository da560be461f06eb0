// pbench-auth dashboard: the seed's "Pbench-Dashboard" in the browser.
//
//  1-2   GET /api/v1/endpoints: the broker (issuer, or server + realm) and the client id
//  3-8   "Log in": authorization code + PKCE S256 + state + nonce at the broker
//        (oidc-client-ts builds the request and keeps state, verifier and nonce
//        in this tab's sessionStorage); the broker sends the browser back here
//        with code and state
//  9-10  oidc-client-ts checks the state and POSTs the code and the verifier
//        to the broker's token endpoint as a public client; the ID token's
//        nonce is checked against the one sent
//  11-13 calls to this server with "Authorization: Bearer <access token>",
//        which validates it and answers 200, 401 or 403
//
// Tokens live in sessionStorage (this tab, gone when it closes), never in
// localStorage. The token goes only to this page's own origin.
import { UserManager, WebStorageStateStore, ErrorResponse, ErrorTimeout } from "./oidc.js";

const $ = (id) => document.getElementById(id);
const base = new URL(".", location.href); // …/dashboard/
const redirectURI = base.origin + base.pathname;
const LOGOUT_FLAG = "pbench-dashboard:logging-out";
const MAX_BODY_SHOWN = 64 * 1024;

let mgr = null; // the UserManager, once the server told us the broker
let user = null; // the logged-in oidc-client-ts User, or null
let renewals = 0;
let renewTimer = 0;
let tickTimer = 0;

// ---------------------------------------------------------------- messages

function say(kind, text, retry) {
  const box = $("message");
  box.className = "msg " + (kind === "error" ? "error" : kind === "ok" ? "ok" : "");
  box.setAttribute("role", kind === "error" ? "alert" : "status");
  $("message-text").textContent = text;
  const btn = $("message-retry");
  btn.hidden = !retry;
  btn.onclick = retry ? () => { box.hidden = true; retry(); } : null;
  box.hidden = false;
}

function unsay() {
  $("message").hidden = true;
}

// describe turns what oidc-client-ts or fetch threw into a sentence that says
// what happened and what to do.
function describe(err, what) {
  if (err instanceof ErrorResponse) {
    const detail = err.error_description ? ` (${err.error}: ${err.error_description})` : ` (${err.error})`;
    switch (err.error) {
      case "access_denied":
        return `Login cancelled or denied at the broker${detail}. Log in again to retry.`;
      case "login_required":
      case "interaction_required":
        return `The broker wants you to log in again${detail}.`;
      case "invalid_grant":
        return `The broker refused the token: your session there has ended or expired${detail}. Log in again.`;
      case "invalid_client":
      case "unauthorized_client":
        return `The broker does not accept this dashboard as its client${detail}: the operator must register ${redirectURI} for it (see the operator guide).`;
      default:
        return `${what} failed at the broker${detail}.`;
    }
  }
  if (err instanceof ErrorTimeout) {
    return `${what}: the broker did not answer in time. Check that it is running, then retry.`;
  }
  const msg = String((err && err.message) || err);
  if (err instanceof TypeError || /Failed to fetch|NetworkError|Network request failed|Load failed/i.test(msg)) {
    return `${what}: the broker at ${mgr ? mgr.settings.authority : "?"} cannot be reached (${msg}). ` +
      `Check that it is running and that it allows this origin (${location.origin}) as a web origin.`;
  }
  if (/No matching state/i.test(msg)) {
    return "This login answer does not belong to a login started in this tab (it is stale, or was opened in another tab). Log in again.";
  }
  return `${what} failed: ${msg}`;
}

// ---------------------------------------------------------------- server

class ServerDown extends Error {}

async function fetchJSON(path) {
  let resp;
  try {
    resp = await fetch(path, { cache: "no-store", credentials: "same-origin" });
  } catch (err) {
    throw new ServerDown(`the pbench-auth server cannot be reached (${err.message})`);
  }
  if (!resp.ok) {
    throw new ServerDown(`the server answered ${resp.status} to ${path}`);
  }
  return resp.json();
}

// authority is the broker's issuer: openid.issuer where the server gives it
// (any OpenID Provider), else Keycloak's <server>/realms/<realm>.
function authority(openid) {
  if (openid.issuer) return openid.issuer;
  if (openid.server && openid.realm) return openid.server.replace(/\/+$/, "") + "/realms/" + encodeURIComponent(openid.realm);
  return "";
}

async function start() {
  let endpoints, config;
  try {
    [endpoints, config] = await Promise.all([fetchJSON("/api/v1/endpoints"), fetchJSON("config.json")]);
  } catch (err) {
    $("server-id").textContent = "unreachable";
    say("error", `Cannot load the server's configuration: ${err.message}. Check that pbench-auth serve is running, then retry.`, start);
    return;
  }
  const openid = endpoints.openid || {};
  $("server-id").textContent = endpoints.identification || "(unnamed)";
  $("broker").textContent = openid.server || "—";
  $("realm").textContent = openid.realm || "—";
  $("client").textContent = openid.client || "—";
  $("issuer").textContent = openid.issuer || "—";
  for (const p of config.paths || []) {
    const o = document.createElement("option");
    o.value = p;
    $("call-paths").append(o);
  }
  const issuer = authority(openid);
  if (!issuer || !openid.client) {
    say("error", "The server's /api/v1/endpoints names no broker (openid.issuer, or openid.server and openid.realm) or no client: the dashboard cannot log in.");
    return;
  }
  mgr = new UserManager({
    authority: issuer,
    client_id: openid.client,
    redirect_uri: redirectURI,
    post_logout_redirect_uri: redirectURI,
    response_type: "code", // with PKCE S256, always, in oidc-client-ts 3
    scope: config.scope,
    userStore: new WebStorageStateStore({ store: sessionStorage }),
    stateStore: new WebStorageStateStore({ store: sessionStorage }), // its default is localStorage
    automaticSilentRenew: false, // renewal is scheduled below, with a margin that fits short tokens
    monitorSession: false, // no check-session iframe: the CSP allows no frames
    loadUserInfo: false,
    filterProtocolClaims: true,
  });
  $("login").disabled = false;

  const params = new URLSearchParams(location.search);
  let justLoggedIn = false;
  if (params.has("code") || params.has("error")) {
    justLoggedIn = await finishLogin();
  } else if (sessionStorage.getItem(LOGOUT_FLAG)) {
    await finishLogout(params.has("state"));
  }
  const stored = await mgr.getUser();
  if (stored && !stored.expired) {
    await show(stored);
    if (justLoggedIn) $("session-h").focus(); // keyboard and screen reader users land on the result
  } else if (stored && stored.refresh_token) {
    await renew("Your access token expired while the page was closed; renewing it");
  } else if (stored) {
    await mgr.removeUser();
    say("error", "Your access token has expired and the broker gave no refresh token. Log in again.");
  }
  await loadKeys();
}

// ---------------------------------------------------------------- login

async function login() {
  unsay();
  $("login").disabled = true;
  try {
    // The nonce binds the ID token to this request; state and the PKCE
    // verifier are made by oidc-client-ts.
    await mgr.signinRedirect({ nonce: randomString() });
  } catch (err) {
    $("login").disabled = false;
    say("error", describe(err, "Login"), login);
  }
}

async function finishLogin() {
  try {
    const u = await mgr.signinRedirectCallback(location.href);
    clearQuery();
    say("ok", `Logged in as ${u.profile.preferred_username || u.profile.name || u.profile.sub}.`);
    return true;
  } catch (err) {
    clearQuery();
    say("error", describe(err, "Login"), login);
    return false;
  }
}

function clearQuery() {
  // The code and state must not stay in the address bar or the history.
  history.replaceState(null, "", redirectURI);
}

function randomString() {
  const b = new Uint8Array(24);
  crypto.getRandomValues(b);
  return btoa(String.fromCharCode(...b)).replace(/\+/g, "-").replace(/\//g, "_").replace(/=+$/, "");
}

// ---------------------------------------------------------------- the logged-in state

async function show(u) {
  user = u;
  $("session").hidden = false;
  $("login").hidden = true;
  $("renewals").textContent = String(renewals);
  const claims = decodeJWT(u.access_token) || {};
  // What the token says, replaced below by what the server extracted from it.
  $("username").textContent = u.profile.preferred_username || claims.preferred_username || u.profile.sub;
  $("email").textContent = u.profile.email || claims.email || "—";
  $("roles").textContent = tokenRoles(claims, mgr.settings.client_id).join(", ") || "none";
  schedule();
  tick();
  clearInterval(tickTimer);
  tickTimer = setInterval(tick, 1000);
  const who = await callServer("/api/v1/user", true, false);
  if (who && who.status === 200 && who.json) {
    $("username").textContent = who.json.username || who.json.sub;
    $("email").textContent = who.json.email || "—";
    $("roles").textContent = (who.json.roles || []).join(", ") || "none";
  } else if (who) {
    // Logged in at the broker, but this server does not take the token:
    // most often an audience or client id that does not match serve's.
    say("error", `You are logged in at the broker, but this server refuses your token (${who.status}: ${messageOf(who)}). ` +
      "The identity shown is the token's own; ask the operator to check the client id and audience serve expects.");
  }
}

function tokenRoles(claims, client) {
  const roles = new Set(((claims.realm_access || {}).roles) || []);
  const ra = claims.resource_access || {};
  for (const c of [client].concat(Array.isArray(claims.aud) ? claims.aud : [claims.aud])) {
    for (const r of ((ra[c] || {}).roles || [])) roles.add(r);
  }
  return [...roles];
}

// decodeJWT reads a JWT's claims without checking them (the server does, and
// oidc-client-ts checked the ID token's): null for an opaque token.
function decodeJWT(token) {
  const parts = (token || "").split(".");
  if (parts.length !== 3) return null;
  try {
    const json = atob(parts[1].replace(/-/g, "+").replace(/_/g, "/"));
    return JSON.parse(decodeURIComponent(Array.from(json, (c) => "%" + c.charCodeAt(0).toString(16).padStart(2, "0")).join("")));
  } catch {
    return null;
  }
}

function left(seconds) {
  if (seconds <= 0) return "expired";
  const h = Math.floor(seconds / 3600);
  const m = Math.floor((seconds % 3600) / 60);
  const s = Math.floor(seconds % 60);
  const mmss = `${String(m).padStart(h ? 2 : 1, "0")}:${String(s).padStart(2, "0")}`;
  return (h ? `${h}:${mmss}` : mmss) + " left";
}

// tick shows the access token's and the session's remaining time. The
// session's end is the refresh token's exp when the broker issues it as a
// JWT (Keycloak: the SSO session's idle timeout).
function tick() {
  if (!user) return;
  const now = Date.now() / 1000;
  const tokenLeft = (user.expires_at || 0) - now;
  $("token-left").textContent = left(tokenLeft);
  if (tokenLeft <= 0 && !user.refresh_token) {
    $("token-note").textContent = "— log in again: the broker gave no refresh token";
  }
  const refresh = decodeJWT(user.refresh_token);
  if (!user.refresh_token) {
    $("session-left").textContent = "no refresh token: the session here ends with the access token";
  } else if (refresh && refresh.exp) {
    $("session-left").textContent = refresh.exp - now > 0 ? left(refresh.exp - now) + " (renewals keep it alive)" : "expired";
  } else {
    $("session-left").textContent = "as long as the broker's session (it does not say how long)";
  }
}

// schedule renews the access token with the refresh token before it expires:
// a quarter of its remaining life before, between 2 and 30 seconds. (oidc-client-ts's
// own timer fires a fixed number of seconds before expiry, which for the
// short tokens of a development broker means renewing every second.)
function schedule() {
  clearTimeout(renewTimer);
  if (!user || !user.refresh_token) return;
  const remaining = (user.expires_at || 0) - Date.now() / 1000;
  const margin = Math.min(30, Math.max(2, remaining / 4));
  renewTimer = setTimeout(() => renew(), Math.max(0, remaining - margin) * 1000);
  $("token-note").textContent = "";
}

let renewing = null;

async function renew(why) {
  if (renewing) return renewing;
  renewing = (async () => {
    try {
      const u = await mgr.signinSilent(); // the refresh grant, as the user has a refresh token
      renewals++;
      if (why) say("ok", `${why}: done.`);
      if (user) await showRenewed(u);
      else await show(u);
    } catch (err) {
      clearTimeout(renewTimer);
      if (err instanceof ErrorResponse) {
        // The broker refused the refresh token: the session is over.
        await mgr.removeUser();
        clearPage();
        say("error", describe(err, "Renewing the token"), login);
      } else {
        // The broker is unreachable: keep the token while it lasts, retry.
        say("error", describe(err, "Renewing the token") + " Retrying in 10 seconds.", () => renew());
        renewTimer = setTimeout(() => renew(), 10000);
      }
    } finally {
      renewing = null;
    }
  })();
  return renewing;
}

async function showRenewed(u) {
  user = u;
  $("renewals").textContent = String(renewals);
  schedule();
  tick();
}

function clearPage() {
  user = null;
  clearTimeout(renewTimer);
  clearInterval(tickTimer);
  $("session").hidden = true;
  $("login").hidden = false;
  $("login").disabled = !mgr;
  for (const id of ["username", "email", "roles", "token-left", "token-note", "session-left"]) $(id).textContent = "";
  $("call-result").hidden = true;
  $("key-new").hidden = true;
  $("key-value").value = "";
  $("keys").hidden = true;
  $("key-rows").replaceChildren();
}

// ---------------------------------------------------------------- logout

async function logout() {
  unsay();
  $("logout").disabled = true;
  let endSession = null;
  try {
    endSession = await mgr.metadataService.getEndSessionEndpoint();
  } catch (err) {
    // The broker is unreachable: forget the tokens here, say what remains.
    await mgr.removeUser();
    clearPage();
    $("logout").disabled = false;
    say("error", describe(err, "Logging out") + " You are logged out of this page, but your session at the broker may still be open.");
    return;
  }
  if (!endSession) {
    try {
      await mgr.revokeTokens(["refresh_token", "access_token"]);
    } catch {
      // No revocation endpoint either: said below.
    }
    await mgr.removeUser();
    clearPage();
    $("logout").disabled = false;
    say("ok", "Logged out of this page. The broker has no logout endpoint, so its session may still be open.");
    return;
  }
  sessionStorage.setItem(LOGOUT_FLAG, "1");
  clearPage();
  try {
    // RP-initiated logout: the broker ends the session (id_token_hint says
    // which), then sends the browser back here. The tokens are removed first.
    await mgr.signoutRedirect();
  } catch (err) {
    sessionStorage.removeItem(LOGOUT_FLAG);
    $("logout").disabled = false;
    say("error", describe(err, "Logging out"));
  }
}

async function finishLogout(hasState) {
  sessionStorage.removeItem(LOGOUT_FLAG);
  if (hasState) {
    try {
      await mgr.signoutRedirectCallback(location.href);
    } catch {
      // The state only carries the way back; nothing to check.
    }
  }
  clearQuery();
  await mgr.removeUser();
  say("ok", "You are logged out: the broker ended your session.");
}

// ---------------------------------------------------------------- calls

// callServer calls a path of this server, with the access token when
// withToken, shows the answer when display, and returns {status, text, json}
// or null when the server cannot be reached.
async function callServer(path, withToken, display = true, init = {}) {
  const url = new URL(path, location.origin);
  if (url.origin !== location.origin) {
    // The token goes to this server only, never elsewhere.
    say("error", "Only paths of this server can be called, such as /api/v1/user.");
    return null;
  }
  const headers = new Headers(init.headers || {});
  if (withToken && user) headers.set("Authorization", "Bearer " + user.access_token);
  let resp;
  try {
    resp = await fetch(url, { ...init, headers, cache: "no-store", credentials: "omit", redirect: "manual" });
  } catch (err) {
    if (display) showAnswer(0, "the server cannot be reached: " + err.message, "Check that pbench-auth serve is running, then call again.");
    else say("error", `The pbench-auth server cannot be reached (${err.message}). Check that it is running.`);
    return null;
  }
  let text = await resp.text();
  let json = null;
  try {
    json = JSON.parse(text);
    text = JSON.stringify(json, null, 2);
  } catch {
    // not JSON: shown as is
  }
  if (display) showAnswer(resp.status, resp.statusText, hint(resp.status, withToken), text);
  return { status: resp.status, text, json };
}

function hint(status, withToken) {
  if (status === 401) {
    if (!withToken || !user) return "no token was sent: log in first";
    return user.expired ? "the token has expired: renew it or log in again" : "the server refused the token";
  }
  if (status === 403) return "the token is valid, but your identity lacks a role this path needs";
  if (status === 503) return "the server cannot check tokens now (is the broker reachable from it?)";
  return "";
}

function showAnswer(status, statusText, note, body = "") {
  $("call-result").hidden = false;
  const s = $("call-status");
  s.textContent = status ? `${status} ${statusText}`.trim() : statusText;
  s.className = "status-" + String(status).charAt(0);
  $("call-hint").textContent = note ? "— " + note : "";
  $("call-body").textContent = body.length > MAX_BODY_SHOWN ? body.slice(0, MAX_BODY_SHOWN) + "\n… (cut)" : body;
}

async function onCall(ev) {
  ev.preventDefault();
  const path = $("call-path").value.trim();
  if (!path.startsWith("/") || path.startsWith("//")) {
    showAnswer(0, "not called", "give a path on this server, starting with / (e.g. /api/v1/user)");
    return;
  }
  const withToken = !$("call-notoken").checked;
  if (withToken && user && user.expired && user.refresh_token) await renew();
  await callServer(path, withToken);
}

// ---------------------------------------------------------------- API keys

async function keyRequest(method, path) {
  if (!user) return null;
  if (user.expired && user.refresh_token) await renew();
  return callServer(path, true, false, { method });
}

async function loadKeys() {
  if (!user) return;
  const r = await keyRequest("GET", "/api/v1/key");
  if (!r) return;
  if (r.status === 404 || r.status === 405) {
    $("keys").hidden = true; // this server has no API keys
    return;
  }
  $("keys").hidden = false;
  if (r.status !== 200 || !Array.isArray(r.json)) {
    $("key-status").textContent = `The server answered ${r.status} to the list of keys: ${messageOf(r)}`;
    return;
  }
  renderKeys(r.json);
}

function messageOf(r) {
  return (r.json && r.json.message) || r.text || "(no message)";
}

function when(v) {
  if (!v) return "—";
  const d = new Date(v);
  return isNaN(d) ? String(v) : d.toLocaleString();
}

function renderKeys(keys) {
  const rows = keys.map((k) => {
    const tr = document.createElement("tr");
    for (const v of [k.label || "(no label)", k.prefix ? k.prefix + "…" : "—", when(k.created), when(k.last_used), k.expires ? when(k.expires) : "never"]) {
      const td = document.createElement("td");
      td.textContent = v;
      tr.append(td);
    }
    const td = document.createElement("td");
    const del = document.createElement("button");
    del.type = "button";
    del.className = "danger";
    del.textContent = "Delete";
    del.dataset.keyId = String(k.id);
    del.setAttribute("aria-label", `Delete the key ${k.label || k.id}`);
    del.addEventListener("click", () => deleteKey(del, k));
    td.append(del);
    tr.append(td);
    return tr;
  });
  $("key-rows").replaceChildren(...rows);
  $("key-table").hidden = rows.length === 0;
  $("key-status").textContent = rows.length ? "" : "You have no API keys.";
}

async function createKey(ev) {
  ev.preventDefault();
  const label = $("key-label").value.trim();
  if (!label) return;
  $("key-create").disabled = true;
  // expires_in is pbench-auth's addition to Pbench's endpoint; Pbench ignores it.
  const expires = $("key-expires").value;
  const r = await keyRequest("POST", "/api/v1/key?label=" + encodeURIComponent(label) + (expires ? "&expires_in=" + expires : ""));
  $("key-create").disabled = false;
  if (!r) return;
  if (r.status !== 201 && r.status !== 200) {
    $("key-status").textContent = `The key was not created: the server answered ${r.status}: ${messageOf(r)}`;
    return;
  }
  $("key-label").value = "";
  $("key-value").value = (r.json && r.json.key) || "";
  $("key-copied").textContent = "";
  $("key-new").hidden = false;
  $("key-value").focus();
  $("key-value").select();
  await loadKeys();
}

async function copyKey() {
  const v = $("key-value");
  try {
    await navigator.clipboard.writeText(v.value);
    $("key-copied").textContent = "Copied to the clipboard.";
  } catch {
    // No clipboard access (a page on plain http that is not loopback): the
    // key is selected for the user to copy.
    v.focus();
    v.select();
    $("key-copied").textContent = "Press Ctrl+C (⌘C) to copy the selected key.";
  }
}

async function deleteKey(btn, k) {
  // Two steps, so that one stray click or keypress deletes nothing.
  if (btn.dataset.confirm !== "1") {
    btn.dataset.confirm = "1";
    btn.textContent = "Delete for good?";
    setTimeout(() => {
      btn.dataset.confirm = "";
      btn.textContent = "Delete";
    }, 8000);
    return;
  }
  btn.disabled = true;
  const r = await keyRequest("DELETE", "/api/v1/key/" + encodeURIComponent(k.id));
  if (r && r.status >= 200 && r.status < 300) {
    $("key-status").textContent = `Deleted the key ${k.label || k.id}.`;
  } else if (r) {
    $("key-status").textContent = `The key was not deleted: the server answered ${r.status}: ${messageOf(r)}`;
  }
  await loadKeys();
}

// ---------------------------------------------------------------- wiring

$("login").addEventListener("click", login);
$("logout").addEventListener("click", logout);
$("renew").addEventListener("click", () => renew());
$("call-form").addEventListener("submit", onCall);
$("key-form").addEventListener("submit", createKey);
$("key-copy").addEventListener("click", copyKey);
$("key-done").addEventListener("click", () => {
  $("key-new").hidden = true;
  $("key-value").value = "";
  $("key-label").focus();
});
$("message-close").addEventListener("click", unsay);
// Back from the broker with the browser's Back button: the page is restored
// as it was left, with Log in still disabled by the click.
window.addEventListener("pageshow", (ev) => {
  if (ev.persisted) $("login").disabled = !mgr;
});

start().catch((err) => say("error", "The dashboard failed to start: " + err.message, () => location.reload()));
