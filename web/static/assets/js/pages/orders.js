// The customer's order history (GET /api/orders), newest first, in pages.

import { api, reasonShort } from "../api.js";
import { h, mount, money, when, shortId, status, alert, loading, every, changed } from "../dom.js";

const trail = [];

export async function render(root, { query, signal }) {
  const token = query.get("page_token") || "";
  if (!token) trail.length = 0;
  const list = h("div", {}, loading("Loading your orders…"));
  mount(root, h("h1", {}, "Your orders"), list);

  const params = new URLSearchParams({ limit: "10" });
  if (token) params.set("page_token", token);
  // Refresh while an order is still being processed, then stop.
  const poll = new AbortController();
  signal.addEventListener("abort", () => poll.abort());
  every(3000, async () => {
    const page = await api(`/api/orders?${params}`, { signal }).catch((err) => {
      if (err.name !== "AbortError") mount(list, alert("error", err.message));
      changed(list, null); // the next answer redraws, even the same as before
      return null;
    });
    if (!page || signal.aborted) return;
    if (changed(list, page)) draw(list, page, token);
    if (!page.items.some((o) => o.status === "PENDING")) poll.abort();
  }, poll.signal);
}

function draw(list, page, token) {
  if (!page.items.length) {
    mount(list, h("div", { class: "card empty" }, token ? "No more orders." : "You have not ordered anything yet. ", h("a", { href: "#/" }, "Browse the shop"), "."));
    return;
  }
  const rows = page.items.map((o) => h("tr", { class: "clickable", dataset: { order: o.id }, onclick: () => { location.hash = `/orders/${encodeURIComponent(o.id)}`; } },
    h("td", {}, h("a", { href: `#/orders/${encodeURIComponent(o.id)}`, class: "mono", title: o.id }, shortId(o.id))),
    h("td", {}, when(o.created_at)),
    h("td", { class: "num" }, String(o.lines.reduce((n, l) => n + l.quantity, 0))),
    h("td", { class: "num" }, money(o.total_cents, o.currency)),
    h("td", {}, status(o.status), o.status === "REJECTED" ? h("div", { class: "muted small" }, reasonShort(o.reason)) : null)));
  const pager = h("nav", { class: "pager" },
    token ? h("a", { class: "btn secondary", href: trail.length > 1 ? `#/orders?page_token=${encodeURIComponent(trail[trail.length - 2])}` : "#/orders", onclick: () => trail.pop() }, "← Newer") : null,
    page.next_page_token ? h("a", { class: "btn secondary", href: `#/orders?page_token=${encodeURIComponent(page.next_page_token)}`, onclick: () => trail.push(page.next_page_token) }, "Older →") : null);
  mount(list,
    h("div", { class: "table-wrap" }, h("table", { class: "table", id: "orders" },
      h("thead", {}, h("tr", {}, h("th", {}, "Order"), h("th", {}, "Placed"), h("th", { class: "num" }, "Items"), h("th", { class: "num" }, "Total"), h("th", {}, "Status"))),
      h("tbody", {}, rows))),
    pager);
}
