// One product (GET /api/inventory/products/{sku}).

import { api } from "../api.js";
import { h, mount, money, tile, alert, loading } from "../dom.js";
import { availability, addButton } from "./shop.js";

export async function render(root, { params, signal }) {
  const [sku] = params;
  mount(root, loading());
  let p;
  try {
    p = await api(`/api/inventory/products/${encodeURIComponent(sku)}`, { signal, auth: false });
  } catch (err) {
    if (err.name === "AbortError") return;
    mount(root, h("p", {}, h("a", { href: "#/" }, "← Back to the shop")),
      alert("error", err.status === 404 ? "This product is not in the catalog." : err.message));
    return;
  }
  const qty = h("input", { type: "number", class: "qty", min: "1", max: String(Math.max(1, p.available)), value: "1", name: "quantity", "aria-label": "Quantity" });
  mount(root,
    h("p", {}, h("a", { href: "#/" }, "← Back to the shop")),
    h("div", { class: "detail" },
      tile(p, true),
      h("div", { class: "stack" },
        h("div", {}, h("h1", {}, p.name), h("span", { class: "muted mono" }, p.sku)),
        h("p", {}, p.description),
        h("div", { class: "row" }, h("span", { class: "price" }, money(p.price_cents, p.currency)), availability(p)),
        h("div", { class: "row" }, qty, addButton(p, () => Math.max(1, parseInt(qty.value, 10) || 1)),
          h("a", { href: "#/cart" }, "Go to cart")))));
}
