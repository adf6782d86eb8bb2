// Sign in (POST /api/users/login) and register (POST /api/users/register).

import * as session from "../session.js";
import { h, mount, alert } from "../dom.js";

// next is where to go after signing in: a hash route of this app only.
function next(query) {
  const n = query.get("next") || "/";
  return n.startsWith("/") && !n.startsWith("//") ? n : "/";
}

export function renderLogin(root, { query, go }) {
  const email = h("input", { type: "email", name: "email", id: "login-email", autocomplete: "username", required: true });
  const password = h("input", { type: "password", name: "password", id: "login-password", autocomplete: "current-password", required: true });
  const messages = h("div", { "aria-live": "polite" },
    query.get("expired") ? alert("info", "Your session has ended. Please sign in again.") : null);
  const button = h("button", { class: "btn", type: "submit", id: "login-submit" }, "Sign in");
  const form = h("form", { class: "card auth", onsubmit: async (e) => {
    e.preventDefault();
    button.disabled = true;
    mount(messages);
    try {
      await session.login(email.value.trim(), password.value);
      go(next(query));
    } catch (err) {
      mount(messages, alert("error", err.message));
    } finally {
      button.disabled = false;
    }
  } },
  h("h1", {}, "Sign in"),
  messages,
  h("label", {}, h("span", {}, "Email"), email),
  h("label", {}, h("span", {}, "Password"), password),
  h("div", { class: "row between" }, button,
    h("span", { class: "small muted" }, "New here? ", h("a", { href: `#/register?next=${encodeURIComponent(next(query))}` }, "Create an account"))));
  mount(root, form);
  email.focus();
}

export function renderRegister(root, { query, go }) {
  const input = (name, type, label, auto, hint) => h("label", {}, h("span", {}, label),
    h("input", { type, name, id: `register-${name}`, autocomplete: auto, required: true }),
    hint ? h("small", { class: "muted" }, hint) : null);
  const messages = h("div", { "aria-live": "polite" });
  const button = h("button", { class: "btn", type: "submit", id: "register-submit" }, "Create account");
  const form = h("form", { class: "card auth", onsubmit: async (e) => {
    e.preventDefault();
    const f = e.target.elements;
    button.disabled = true;
    mount(messages);
    for (const el of form.querySelectorAll(".field-error")) el.remove();
    try {
      await session.register(f.name.value.trim(), f.email.value.trim(), f.password.value);
      go(next(query));
    } catch (err) {
      const fields = Object.entries(err.fields || {});
      for (const [name, text] of fields) f[name]?.after(h("span", { class: "field-error" }, text));
      mount(messages, alert("error", fields.length ? "Please check the form." : err.message));
    } finally {
      button.disabled = false;
    }
  } },
  h("h1", {}, "Create an account"),
  messages,
  input("name", "text", "Name", "name"),
  input("email", "email", "Email", "username"),
  input("password", "password", "Password", "new-password", "At least 12 characters."),
  h("div", { class: "row between" }, button,
    h("span", { class: "small muted" }, "Have an account? ", h("a", { href: `#/login?next=${encodeURIComponent(next(query))}` }, "Sign in"))));
  mount(root, form);
  form.elements.name.focus();
}
