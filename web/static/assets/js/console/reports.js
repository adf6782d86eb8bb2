// Reports: sales by day and the best sellers, from the reports service's
// read model (GET /api/reports/summary, /sales?bucket=day, /top-products).
// reports may not be running; each part then says so.

import { api } from "../api.js";
import { h, mount, money, alert, loading, every } from "../dom.js";
import { unavailable } from "./console.js";
import { columns, rows } from "./charts.js";

export function render(root, { signal }) {
  const summary = h("div", { id: "reports-summary" });
  const sales = h("div", { id: "reports-sales" }, loading());
  const top = h("div", { id: "reports-top" }, loading());
  const charts = h("div", {},
    h("div", { class: "card", style: { marginTop: "1rem" } }, h("h2", { style: { marginTop: 0 } }, "Sales by day"), sales),
    h("div", { class: "card", style: { marginTop: "1rem" } }, h("h2", { style: { marginTop: 0 } }, "Top products"), top));
  mount(root,
    h("h1", {}, "Reports"),
    h("p", { class: "muted" }, "Built by the reports service only from events, so it may trail the orders by a moment."),
    summary,
    charts);

  const names = new Map();
  every(10000, async () => {
    const [sum, s, t] = await Promise.allSettled([
      api("/api/reports/summary", { signal }),
      api("/api/reports/sales?bucket=day", { signal }),
      api("/api/reports/top-products", { signal }),
    ]);
    if (signal.aborted) return;
    const failed = [sum, s, t].find((r) => r.status === "rejected")?.reason;
    if (failed?.unavailable && s.status === "rejected" && t.status === "rejected") {
      mount(summary, unavailable("reports", failed, "Sales figures come from the reports service."));
      charts.hidden = true;
      return;
    }
    charts.hidden = false;
    mount(summary, sum.status === "fulfilled" ? figures(sum.value) : null);
    drawSales(sales, s);
    await drawTop(top, t, names, signal);
  }, signal);
}

function figures(v) {
  const cur = v.currency || "USD";
  const tile = (label, value) => h("div", { class: "card svc" }, h("div", { class: "muted small" }, label), h("div", { class: "price" }, value));
  return h("div", {},
    v.rebuilding ? alert("warn", "The reports are being rebuilt from the event streams; figures are partial until it ends.") : null,
    h("div", { class: "tiles" },
      tile("Orders confirmed", String(v.orders_confirmed ?? 0)),
      tile("Orders rejected", String(v.orders_rejected ?? 0)),
      tile("Orders cancelled", String(v.orders_cancelled ?? 0)),
      tile("Revenue", money(v.revenue_cents, cur)),
      tile("Refunds", money(v.refunds_cents, cur)),
      tile("Net", money(v.net_cents, cur))));
}

function drawSales(el, r) {
  if (r.status === "rejected") {
    mount(el, r.reason.unavailable ? unavailable("reports", r.reason, "") : alert("error", r.reason.message));
    return;
  }
  const v = r.value;
  const cur = v.currency || "USD";
  const buckets = v.buckets || [];
  if (!buckets.length) {
    mount(el, h("p", { class: "empty" }, "No sales in this range yet."));
    return;
  }
  const day = (b) => new Date(b.start).toLocaleDateString(undefined, { day: "numeric", month: "short", timeZone: "UTC" });
  mount(el,
    h("h3", {}, `Revenue (${cur})`),
    columns(buckets.map((b) => ({ label: day(b), value: b.revenue_cents || 0 })), { format: (c) => money(c, cur).replace(/\.00$/, ""), id: "chart-revenue" }),
    h("h3", {}, "Orders confirmed"),
    columns(buckets.map((b) => ({ label: day(b), value: b.orders || 0 })), { height: 160, id: "chart-orders" }),
    v.totals ? h("p", { class: "muted small" }, `In this range: ${v.totals.orders} orders, ${money(v.totals.revenue_cents, cur)} revenue, ${money(v.totals.refunds_cents, cur)} refunded.`) : null);
}

async function drawTop(el, r, names, signal) {
  if (r.status === "rejected") {
    mount(el, r.reason.unavailable ? unavailable("reports", r.reason, "") : alert("error", r.reason.message));
    return;
  }
  const items = (r.value.items || []).slice(0, 10);
  if (!items.length) {
    mount(el, h("p", { class: "empty" }, "Nothing sold in this range yet."));
    return;
  }
  // Names come from the catalog; reports keeps skus.
  await Promise.all(items.filter((i) => !names.has(i.sku)).map((i) =>
    api(`/api/inventory/products/${encodeURIComponent(i.sku)}`, { signal, auth: false })
      .then((p) => names.set(i.sku, p.name)).catch(() => names.set(i.sku, i.sku))));
  const cur = r.value.currency || "USD";
  mount(el,
    h("h3", {}, "Units sold"),
    rows(items.map((i) => ({ label: names.get(i.sku) || i.sku, title: i.sku, value: i.units || 0 })), { id: "chart-top-units" }),
    h("h3", {}, `Revenue (${cur})`),
    rows(items.map((i) => ({ label: names.get(i.sku) || i.sku, title: i.sku, value: i.revenue_cents || 0 })), { format: (c) => money(c, cur), id: "chart-top-revenue" }));
}
