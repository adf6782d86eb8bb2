// The cart (kept in localStorage by ../cart.js).

import { api } from "../api.js";
import * as cart from "../cart.js";
import * as session from "../session.js";
import { h, mount, money, alert } from "../dom.js";

export async function render(root, { signal }) {
  draw(root);
  // Bring names, prices and stock up to date; a product that left the
  // catalog is flagged, and orders would refuse it anyway.
  const lines = cart.items();
  if (!lines.length) return;
  const fresh = await Promise.all(lines.map((l) =>
    api(`/api/inventory/products/${encodeURIComponent(l.sku)}`, { signal, auth: false }).catch((err) => {
      if (err.status === 404) return { sku: l.sku, gone: true };
      return null;
    })));
  if (signal.aborted) return;
  cart.refresh(fresh.filter((p) => p && !p.gone));
  draw(root, new Set(fresh.filter((p) => p?.gone).map((p) => p.sku)));
  const redraw = () => draw(root);
  window.addEventListener("microshop:cart", redraw, { signal });
}

function draw(root, gone = new Set()) {
  const lines = cart.items();
  if (!lines.length) {
    mount(root, h("h1", {}, "Your cart"), h("div", { class: "card empty" }, "Your cart is empty. ", h("a", { href: "#/" }, "Browse the shop"), "."));
    return;
  }
  const rows = lines.map((l) => h("tr", { dataset: { sku: l.sku } },
    h("td", {}, h("a", { href: `#/product/${encodeURIComponent(l.sku)}` }, l.name || l.sku), h("div", { class: "muted small mono" }, l.sku),
      gone.has(l.sku) ? h("div", { class: "stock out" }, "No longer sold; please remove it.") : null,
      !gone.has(l.sku) && l.available !== undefined && l.quantity > l.available
        ? h("div", { class: "stock low" }, l.available > 0 ? `Only ${l.available} in stock.` : "Out of stock.") : null),
    h("td", { class: "num" }, money(l.price_cents, l.currency)),
    h("td", { class: "num" }, h("input", { type: "number", class: "qty", min: "1", value: String(l.quantity), "aria-label": `Quantity of ${l.name || l.sku}`,
      onchange: (e) => cart.setQuantity(l.sku, parseInt(e.target.value, 10)) })),
    h("td", { class: "num" }, money(l.price_cents * l.quantity, l.currency)),
    h("td", { class: "num" }, h("button", { class: "btn link", type: "button", onclick: () => cart.remove(l.sku) }, "Remove"))));
  const checkoutHref = session.signedIn() ? "#/checkout" : "#/login?next=%2Fcheckout";
  const mixed = cart.total() === null;
  mount(root,
    h("h1", {}, "Your cart"),
    h("div", { class: "table-wrap" }, h("table", { class: "table cart-table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Product"), h("th", { class: "num" }, "Price"), h("th", { class: "num" }, "Quantity"), h("th", { class: "num" }, "Total"), h("th", {}))),
      h("tbody", {}, rows))),
    h("div", { class: "card summary", style: { marginTop: "1.25rem" } },
      mixed
        ? alert("error", `Your cart holds products priced in ${cart.currencies().join(" and ")}. One order is paid in one currency: remove the products in all but one of them to check out.`)
        : h("div", { class: "line total" }, h("span", {}, "Total"), h("span", { id: "cart-total" }, money(cart.total(), cart.currency()))),
      h("p", { class: "muted small" }, "Prices are confirmed by the shop when you place the order."),
      session.signedIn() ? null : alert("info", "Sign in or register to check out; your cart stays as it is."),
      h("div", { class: "row between" },
        h("a", { href: "#/" }, "Continue shopping"),
        mixed ? null : h("a", { class: "btn", href: checkoutHref, id: "checkout" }, "Checkout"))));
}
