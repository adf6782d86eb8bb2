// Webhook deliveries: what notifications sent, or is still trying to send,
// for each event (GET /api/notifications/deliveries?event_type=&order_id=).
// notifications may not be running; the page then says so and keeps
// checking.

import { api } from "../api.js";
import { h, mount, when, brief, shortId, status, alert, loading, every, changed } from "../dom.js";
import { unavailable } from "./console.js";

const EVENT_TYPES = ["", "users.registered", "orders.confirmed", "orders.rejected", "payments.refunded", "inventory.low_stock"];

export function render(root, { query, signal }) {
  const eventType = query.get("event_type") || "";
  const orderId = query.get("order_id") || "";
  const list = h("div", { id: "deliveries" }, loading("Loading deliveries…"));
  const typeSel = h("select", { name: "event_type", "aria-label": "Event type" },
    EVENT_TYPES.map((t) => h("option", { value: t, selected: t === eventType }, t || "Every event type")));
  const orderIn = h("input", { type: "search", name: "order_id", value: orderId, placeholder: "Order id", "aria-label": "Order id" });
  mount(root,
    h("h1", {}, "Deliveries: email and webhooks"),
    h("p", { class: "muted" }, "Each event notifications handles becomes one delivery per channel (an email, or a signed webhook to each endpoint), retried with backoff until it is sent or given up."),
    h("form", { class: "searchbar", style: { maxWidth: "720px" }, onsubmit: (e) => {
      e.preventDefault();
      const p = new URLSearchParams();
      if (typeSel.value) p.set("event_type", typeSel.value);
      if (orderIn.value.trim()) p.set("order_id", orderIn.value.trim());
      location.hash = `/console/deliveries${p.size ? `?${p}` : ""}`;
    } }, typeSel, orderIn, h("button", { class: "btn secondary", type: "submit" }, "Filter")),
    list);

  const qs = new URLSearchParams();
  if (eventType) qs.set("event_type", eventType);
  if (orderId) qs.set("order_id", orderId);
  every(5000, async () => {
    let page;
    try {
      page = await api(`/api/notifications/deliveries${qs.size ? `?${qs}` : ""}`, { signal });
    } catch (err) {
      if (err.name === "AbortError") return;
      changed(list, null); // the next answer redraws, even the same as before
      mount(list, err.unavailable ? unavailable("notifications", err, "Deliveries are listed by the notifications service.") : alert("error", err.message));
      return;
    }
    const items = page.items || [];
    if (!changed(list, items)) return;
    if (!items.length) {
      mount(list, h("div", { class: "card empty" }, "No deliveries match."));
      return;
    }
    mount(list, h("div", { class: "table-wrap" }, h("table", { class: "table" },
      h("thead", {}, h("tr", {}, h("th", {}, "Event"), h("th", {}, "Order"), h("th", {}, "Channel"), h("th", {}, "Recipient"), h("th", {}, "Subject"), h("th", { class: "num" }, "Tries"), h("th", {}, "Status"))),
      h("tbody", {}, items.map((d) => h("tr", { dataset: { event: d.event_id } },
        h("td", { class: "nowrap" }, h("div", {}, d.event_type), h("div", { class: "muted small mono", title: d.event_id }, shortId(d.event_id)),
          d.created_at ? h("div", { class: "muted small", title: when(d.created_at) }, brief(d.created_at)) : null),
        h("td", { class: "nowrap" }, d.order_id ? h("a", { class: "mono small", href: `#/console/sagas/${encodeURIComponent(d.order_id)}`, title: d.order_id }, shortId(d.order_id)) : h("span", { class: "muted" }, "—")),
        h("td", { class: "small" }, d.channel),
        h("td", { class: "small" }, d.recipient),
        h("td", { class: "small" }, d.subject || ""),
        h("td", { class: "num" }, String(d.tries ?? 0)),
        h("td", {}, status(d.status), d.last_error ? h("div", { class: "muted small" }, d.last_error) : null)))))));
  }, signal);
}
