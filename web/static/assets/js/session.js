// Who is signed in. The profile comes from GET /api/users/me; the console
// shows only when its roles include "admin" (every admin route checks the
// role again on the server, so hiding it is a courtesy, not the wall).

import { api, setTokens, tokens } from "./api.js";

let me = null;

export function currentUser() {
  return me;
}

export function signedIn() {
  return me !== null;
}

export function isAdmin() {
  return Boolean(me?.roles?.includes("admin"));
}

function changed() {
  window.dispatchEvent(new CustomEvent("microshop:session"));
}

// load asks who the tokens belong to; without tokens, nobody.
export async function load() {
  if (!tokens()) {
    me = null;
  } else {
    try {
      me = await api("/api/users/me");
    } catch (err) {
      // A session that ended is nobody; users being down keeps whoever
      // was there (the page says what failed where it matters).
      if (err.status === 401) me = null;
    }
  }
  changed();
  return me;
}

export async function login(email, password) {
  const t = await api("/api/users/login", { method: "POST", body: { email, password }, auth: false });
  setTokens(t);
  return load();
}

export async function register(name, email, password) {
  await api("/api/users/register", { method: "POST", body: { name, email, password }, auth: false });
  return login(email, password);
}

export async function logout() {
  const t = tokens();
  setTokens(null);
  me = null;
  changed();
  if (t?.refresh_token) {
    // Revoke the refresh token; signing out locally does not wait for it.
    api("/api/users/logout", { method: "POST", body: { refresh_token: t.refresh_token }, auth: false }).catch(() => {});
  }
}

// The API ended the session (a refresh that failed): nobody.
window.addEventListener("microshop:signed-out", () => {
  me = null;
  changed();
});
