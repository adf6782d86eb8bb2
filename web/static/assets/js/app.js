// The app: a header, and one page at a time picked by the URL's hash
// (#/orders/123?x=1). Each page is a module whose render(root, ctx) fills
// root; ctx.signal aborts when the person leaves the page, which stops its
// polling and its requests.

import { h, mount, alert } from "./dom.js";
import * as cart from "./cart.js";
import * as session from "./session.js";
import * as shop from "./pages/shop.js";
import * as product from "./pages/product.js";
import * as cartPage from "./pages/cart.js";
import * as checkout from "./pages/checkout.js";
import * as orders from "./pages/orders.js";
import * as order from "./pages/order.js";
import * as account from "./pages/account.js";
import * as console_ from "./console/console.js";

// routes: pattern, page, and who may see it.
const routes = [
  [/^\/$/, shop.render, "shop"],
  [/^\/product\/([^/]+)$/, product.render, "shop"],
  [/^\/cart$/, cartPage.render, "cart"],
  [/^\/checkout$/, checkout.render, "cart", "signed-in"],
  [/^\/orders$/, orders.render, "orders", "signed-in"],
  [/^\/orders\/([^/]+)$/, order.render, "orders", "signed-in"],
  [/^\/login$/, account.renderLogin, "login"],
  [/^\/register$/, account.renderRegister, "login"],
  [/^\/console(?:\/(.*))?$/, console_.render, "console", "admin"],
];

const root = document.getElementById("app");
let current = null; // the AbortController of the page on screen

// go navigates to a hash route, e.g. go("/orders/123").
export function go(path) {
  if (location.hash === "#" + path) route();
  else location.hash = path;
}

function parse() {
  const raw = location.hash.replace(/^#/, "") || "/";
  const [path, qs = ""] = raw.split("?");
  return { path, query: new URLSearchParams(qs), raw };
}

async function route() {
  current?.abort();
  const ctl = new AbortController();
  current = ctl;
  const { path, query, raw } = parse();
  let match = null;
  let found = null;
  for (const r of routes) {
    match = r[0].exec(path);
    if (match) {
      found = r;
      break;
    }
  }
  markNav(found?.[2]);
  window.scrollTo(0, 0);
  if (!found) {
    mount(root, h("h1", {}, "Page not found"), h("p", {}, "There is nothing at this address. ", h("a", { href: "#/" }, "Back to the shop"), "."));
    return;
  }
  const [, render, , guard] = found;
  if (guard && !session.signedIn()) {
    go(`/login?next=${encodeURIComponent(raw)}`);
    return;
  }
  if (guard === "admin" && !session.isAdmin()) {
    mount(root, h("h1", {}, "Operations console"), alert("error", "The console is for administrators. Sign in with an admin account to see it."));
    return;
  }
  const ctx = {
    params: match.slice(1).map((p) => (p === undefined ? undefined : decodeURIComponent(p))),
    query,
    signal: ctl.signal,
    go,
    path,
  };
  try {
    await render(root, ctx);
  } catch (err) {
    if (err.name === "AbortError" || ctl.signal.aborted) return;
    console.error(err);
    mount(root, alert("error", err.message || "Something went wrong while showing this page. Please reload it."));
  }
}

function markNav(name) {
  for (const a of document.querySelectorAll("[data-nav]")) {
    a.classList.toggle("active", a.dataset.nav === name);
  }
}

function renderHeader() {
  document.getElementById("cart-count").textContent = String(cart.count());
  const me = session.currentUser();
  for (const el of document.querySelectorAll("[data-when]")) {
    el.hidden = el.dataset.when === "admin" ? !session.isAdmin() : !me;
  }
  const acct = document.getElementById("account");
  if (me) {
    mount(acct,
      h("span", { class: "who", title: me.email }, me.name || me.email),
      h("button", { class: "btn secondary small", type: "button", id: "logout", onclick: async () => {
        await session.logout();
        go("/");
      } }, "Sign out"));
  } else {
    const next = parse().path.startsWith("/login") || parse().path.startsWith("/register") ? "" : `?next=${encodeURIComponent(parse().raw)}`;
    mount(acct,
      h("a", { class: "navlink", href: `#/login${next}`, id: "login-link" }, "Sign in"),
      h("a", { class: "btn small", href: "#/register" }, "Register"));
  }
}

window.addEventListener("hashchange", () => {
  renderHeader();
  route();
});
// The cart on screen is the signed-in customer's (cart.js), so it follows
// the session; this listener comes first, so the header counts that cart.
window.addEventListener("microshop:session", () => cart.setOwner(session.currentUser()?.id));
window.addEventListener("microshop:cart", renderHeader);
window.addEventListener("microshop:session", renderHeader);
window.addEventListener("microshop:signed-out", () => {
  const { path, raw } = parse();
  if (!path.startsWith("/login")) go(`/login?next=${encodeURIComponent(raw)}&expired=1`);
});

await session.load();
renderHeader();
route();
