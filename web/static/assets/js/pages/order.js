// One order (GET /api/orders/{id}): polled while PENDING or cancelling;
// a CONFIRMED order can be cancelled (POST /api/orders/{id}/cancel), which
// refunds the payment and returns the stock.

import { api, request, rejection } from "../api.js";
import { h, mount, money, when, status, alert, loading, sleep } from "../dom.js";

export async function render(root, { params, query, signal }) {
  const [id] = params;
  const path = `/api/orders/${encodeURIComponent(id)}`;
  mount(root, loading("Loading the order…"));
  const names = new Map(); // sku -> product name, filled in as they come
  let notice = query.get("placed") ? alert("ok", h("strong", {}, "Thank you! "), "Your order is placed.") : null;
  let order;

  const draw = () => {
    const cancel = h("div", { id: "cancel-area" });
    if (order.status === "CONFIRMED") cancelButton(cancel);
    mount(root,
      h("p", {}, h("a", { href: "#/orders" }, "← All orders")),
      notice,
      h("div", { class: "card stack" },
        h("div", { class: "order-head" },
          h("div", {}, h("h1", { style: { marginBottom: ".25rem" } }, "Order ", h("span", { class: "mono" }, order.id)),
            h("div", { class: "muted small" }, `Placed ${when(order.created_at)} · last change ${when(order.updated_at)}`)),
          h("div", { id: "order-status" }, status(order.status))),
        explain(order),
        h("div", { class: "table-wrap" }, h("table", { class: "table" },
          h("thead", {}, h("tr", {}, h("th", {}, "Product"), h("th", { class: "num" }, "Quantity"), h("th", { class: "num" }, "Price"), h("th", { class: "num" }, "Total"))),
          h("tbody", {}, order.lines.map((l) => h("tr", {},
            h("td", {}, h("a", { href: `#/product/${encodeURIComponent(l.sku)}`, dataset: { name: l.sku } }, names.get(l.sku) || l.sku), h("div", { class: "muted small mono" }, l.sku)),
            h("td", { class: "num" }, String(l.quantity)),
            h("td", { class: "num" }, money(l.price_cents, order.currency)),
            h("td", { class: "num" }, money(l.price_cents * l.quantity, order.currency))))),
          h("tfoot", {}, h("tr", {}, h("th", { colspan: "3" }, "Total"), h("th", { class: "num" }, money(order.total_cents, order.currency)))))),
        h("div", { class: "grid2" },
          h("div", {}, h("h3", {}, "Shipping to"), address(order.shipping_address)),
          h("div", {}, h("h3", {}, "Paid with"),
            h("p", {}, `${cap(order.card?.brand || "Card")} ending in ${order.card?.last4 || "????"}`))),
        cancel));
  };

  const cancelButton = (area) => {
    mount(area, h("button", { class: "btn danger", type: "button", id: "cancel-order", onclick: () => {
      mount(area, alert("warn", `Cancel this order and refund ${money(order.total_cents, order.currency)} to your card?`,
        h("div", { class: "row", style: { marginTop: ".5rem" } },
          h("button", { class: "btn danger", type: "button", id: "confirm-cancel", onclick: doCancel }, "Yes, cancel the order"),
          h("button", { class: "btn secondary", type: "button", onclick: () => cancelButton(area) }, "Keep it"))));
    } }, "Cancel order"));
  };

  const doCancel = async () => {
    const area = document.getElementById("cancel-area");
    mount(area, loading("Cancelling and refunding…"));
    try {
      const r = await request(`${path}/cancel`, { method: "POST", signal });
      order = r.data;
      notice = null;
      while (order.status !== "CANCELLED" && !signal.aborted) {
        draw();
        mount(document.getElementById("cancel-area"), loading("Refunding your payment…"));
        await sleep(1000, signal);
        order = await api(path, { signal });
      }
      notice = alert("ok", "The order is cancelled and your payment refunded.");
      draw();
    } catch (err) {
      if (err.name === "AbortError") return;
      mount(area, alert("error", err.message));
    }
  };

  try {
    order = await api(path, { signal });
  } catch (err) {
    if (err.name === "AbortError") return;
    mount(root, h("p", {}, h("a", { href: "#/orders" }, "← All orders")),
      alert("error", err.status === 404 ? "There is no such order in your account." : err.message));
    return;
  }
  draw();

  // Product names, for people; the order itself keeps skus. They are
  // filled in where they stand: redrawing the page could take a button
  // away from under a click.
  for (const sku of new Set(order.lines.map((l) => l.sku))) {
    api(`/api/inventory/products/${encodeURIComponent(sku)}`, { signal, auth: false })
      .then((p) => {
        names.set(sku, p.name);
        for (const a of root.querySelectorAll("a[data-name]")) if (a.dataset.name === sku) a.textContent = p.name;
      })
      .catch(() => {});
  }

  while (order.status === "PENDING" && !signal.aborted) {
    await sleep(1000, signal);
    try {
      order = await api(path, { signal });
      draw();
    } catch (err) {
      if (err.name === "AbortError") return;
    }
  }
}

function explain(o) {
  switch (o.status) {
    case "PENDING":
      return alert("info", h("span", { class: "spinner" }), " The shop is reserving your items and charging your card. This page updates by itself.");
    case "CONFIRMED":
      return alert("ok", "Confirmed: your card was charged and your items are on their way.");
    case "REJECTED":
      return alert("error", h("strong", {}, "Not placed. "), rejection(o.reason));
    case "CANCELLED":
      return alert("info", "Cancelled: the payment was refunded in full.");
    default:
      return null;
  }
}

function address(a) {
  if (!a) return h("p", { class: "muted" }, "No address.");
  return h("p", {}, a.name, h("br"), a.street, h("br"), `${a.postal_code} ${a.city}`, h("br"), a.country);
}

function cap(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
