// The catalog: search and pages of products (GET /api/inventory/products).

import { api } from "../api.js";
import * as cart from "../cart.js";
import { h, mount, money, tile, alert, loading } from "../dom.js";

const PAGE_SIZE = 12;

// The tokens of the pages before this one, per search, so "Previous"
// works; the API's tokens only go forward.
const trail = { q: null, tokens: [] };

export async function render(root, { query, signal, go }) {
  const q = query.get("q") || "";
  const token = query.get("page_token") || "";
  if (trail.q !== q || !token) {
    trail.q = q;
    trail.tokens = [];
  }

  const input = h("input", { type: "search", name: "q", value: q, placeholder: "Search products, e.g. mug or tea", "aria-label": "Search products" });
  const form = h("form", { class: "searchbar", role: "search", onsubmit: (e) => {
    e.preventDefault();
    const v = input.value.trim();
    trail.tokens = [];
    go(v ? `/?q=${encodeURIComponent(v)}` : "/");
  } }, input, h("button", { class: "btn", type: "submit" }, "Search"));
  const results = h("div", {}, loading("Loading products…"));
  mount(root, h("h1", {}, q ? `Results for “${q}”` : "Shop"), form, results);

  const params = new URLSearchParams({ limit: String(PAGE_SIZE) });
  if (q) params.set("q", q);
  if (token) params.set("page_token", token);
  let page;
  try {
    page = await api(`/api/inventory/products?${params}`, { signal, auth: false });
  } catch (err) {
    if (err.name === "AbortError") return;
    mount(results, alert("error", err.message));
    return;
  }
  const items = page.items || [];
  if (!items.length) {
    mount(results, h("p", { class: "empty" }, q ? `No products match “${q}”. Try another word.` : "The catalog is empty."));
    return;
  }

  const href = (t) => {
    const p = new URLSearchParams();
    if (q) p.set("q", q);
    if (t) p.set("page_token", t);
    const s = p.toString();
    return s ? `#/?${s}` : "#/";
  };
  const prev = trail.tokens.length ? trail.tokens[trail.tokens.length - 1] : null;
  const pager = h("nav", { class: "pager", "aria-label": "Pages" },
    token ? h("a", { class: "btn secondary", href: href(prev), id: "prev-page", onclick: () => { trail.tokens.pop(); } }, "← Previous") : null,
    h("span", { class: "muted small" }, `Page ${token ? trail.tokens.length + 1 : 1}`),
    page.next_page_token ? h("a", { class: "btn secondary", href: href(page.next_page_token), id: "next-page", onclick: () => { trail.tokens.push(token); } }, "Next →") : null);

  mount(results, h("div", { class: "products" }, items.map(card)), pager);
}

function card(p) {
  return h("article", { class: "card product", dataset: { sku: p.sku } },
    h("a", { href: `#/product/${encodeURIComponent(p.sku)}`, tabindex: "-1" }, tile(p)),
    h("h3", {}, h("a", { href: `#/product/${encodeURIComponent(p.sku)}` }, p.name)),
    h("p", { class: "desc" }, p.description),
    h("div", { class: "row between" },
      h("span", { class: "price" }, money(p.price_cents, p.currency)),
      availability(p)),
    addButton(p));
}

export function availability(p) {
  if (p.available <= 0) return h("span", { class: "stock out" }, "Out of stock");
  if (p.available < 10) return h("span", { class: "stock low" }, `Only ${p.available} left`);
  return h("span", { class: "stock" }, "In stock");
}

export function addButton(p, quantity = () => 1) {
  let refusal = null;
  const btn = h("button", { class: "btn add", type: "button", disabled: p.available <= 0, onclick: () => {
    refusal?.remove();
    refusal = null;
    try {
      cart.add(p, quantity());
    } catch (err) {
      if (err.name !== "CurrencyError") throw err;
      refusal = h("p", { class: "alert error small add-error", role: "alert" }, err.message);
      btn.after(refusal);
      return;
    }
    btn.textContent = "Added ✓";
    btn.classList.add("secondary");
    setTimeout(() => {
      btn.textContent = "Add to cart";
      btn.classList.remove("secondary");
    }, 1200);
  } }, "Add to cart");
  return btn;
}
