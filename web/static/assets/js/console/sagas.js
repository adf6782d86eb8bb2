// Sagas: the recent orders of every customer (GET /api/orders?all=true)
// and, for the one picked, its saga log (GET /api/orders/{id}/saga) as a
// timeline of steps: started, retrying, succeeded or failed.

import { api, reasonShort } from "../api.js";
import { h, mount, money, when, brief, clock, shortId, status, alert, loading, every, changed } from "../dom.js";

export function render(root, { params, query, signal }) {
  const [selected] = params;
  const token = query.get("page_token") || "";
  const list = h("div", {}, loading("Loading orders…"));
  const detail = h("div", { id: "saga" });
  mount(root,
    h("h1", {}, "Sagas"),
    h("p", { class: "muted" }, "Every checkout is a saga that orders runs across inventory and payments: reserve, authorize, commit, capture, or void and release to undo; a cancel refunds and returns the stock. Pick an order to see its steps."),
    h("div", { class: "split" }, list, detail));

  const params_ = new URLSearchParams({ all: "true", limit: "15" });
  if (token) params_.set("page_token", token);
  every(5000, async () => {
    let page;
    try {
      page = await api(`/api/orders?${params_}`, { signal });
    } catch (err) {
      if (err.name !== "AbortError") mount(list, alert("error", err.message));
      changed(list, null); // the next answer redraws, even the same as before
      return;
    }
    if (signal.aborted || !changed(list, page)) return;
    drawList(list, page, selected, token);
  }, signal);

  if (selected) {
    showSaga(detail, selected, signal);
  } else {
    mount(detail, h("div", { class: "card empty" }, "Pick an order on the left to see its saga."));
  }
}

function drawList(list, page, selected, token) {
  if (!page.items.length) {
    mount(list, h("div", { class: "card empty" }, "No orders yet."));
    return;
  }
  const q = token ? `?page_token=${encodeURIComponent(token)}` : "";
  mount(list,
    h("div", { class: "table-wrap" }, h("table", { class: "table", id: "saga-orders" },
      h("thead", {}, h("tr", {}, h("th", {}, "Order"), h("th", {}, "Placed"), h("th", { class: "num" }, "Total"), h("th", {}, "Status"))),
      h("tbody", {}, page.items.map((o) => h("tr", {
        class: `clickable${o.id === selected ? " selected" : ""}`,
        dataset: { order: o.id },
        onclick: () => { location.hash = `/console/sagas/${encodeURIComponent(o.id)}${q}`; },
      },
      h("td", { class: "nowrap" }, h("a", { class: "mono", href: `#/console/sagas/${encodeURIComponent(o.id)}${q}`, title: o.id }, shortId(o.id))),
      h("td", { class: "small nowrap", title: when(o.created_at) }, brief(o.created_at)),
      h("td", { class: "num" }, money(o.total_cents, o.currency)),
      h("td", {}, status(o.status), o.reason ? h("div", { class: "muted small" }, reasonShort(o.reason)) : null)))))),
    h("nav", { class: "pager" },
      token ? h("a", { class: "btn secondary small", href: "#/console/sagas" }, "Newest") : null,
      page.next_page_token ? h("a", { class: "btn secondary small", href: `#/console/sagas?page_token=${encodeURIComponent(page.next_page_token)}` }, "Older →") : null));
}

// showSaga draws one order's saga, and keeps it fresh while it runs.
function showSaga(detail, id, signal) {
  mount(detail, loading("Loading the saga…"));
  const poll = new AbortController();
  signal.addEventListener("abort", () => poll.abort());
  every(1000, async () => {
    let order, log;
    try {
      [order, log] = await Promise.all([
        api(`/api/orders/${encodeURIComponent(id)}`, { signal }),
        api(`/api/orders/${encodeURIComponent(id)}/saga`, { signal }),
      ]);
    } catch (err) {
      if (err.name === "AbortError") return;
      mount(detail, alert("error", err.status === 404 ? "There is no such order." : err.message));
      poll.abort();
      return;
    }
    if (changed(detail, [order, log])) drawSaga(detail, order, log.items || []);
    if (order.status !== "PENDING") poll.abort(); // final: nothing more will happen
  }, poll.signal);
}

// The order a saga's steps run in, compensations last.
const STEPS = ["create", "reserve", "authorize", "commit", "capture", "cancel", "void", "release", "refund", "return"];
const EVENTS = { started: 0, retrying: 1, succeeded: 2, failed: 2 };

// chronological sorts the log by time. The API orders it by an id that is
// time-ordered only to the millisecond, and a saga runs several steps in
// one: within a millisecond, the saga's own step order and "started before
// its outcome" decide.
function chronological(entries) {
  const rank = (list, v) => (list.indexOf(v) < 0 ? list.length : list.indexOf(v));
  return entries.map((e, i) => ({ e, i, t: new Date(e.at).getTime() })).sort((a, b) =>
    a.t - b.t ||
    rank(STEPS, a.e.step) - rank(STEPS, b.e.step) ||
    (EVENTS[a.e.event] ?? 1) - (EVENTS[b.e.event] ?? 1) ||
    a.i - b.i).map((x) => x.e);
}

function drawSaga(detail, order, entries) {
  entries = chronological(entries);
  const t0 = entries.length ? new Date(entries[0].at).getTime() : 0;
  mount(detail, h("div", { class: "card" },
    h("div", { class: "row between" },
      h("h2", { style: { margin: 0 } }, "Order ", h("span", { class: "mono small" }, order.id)),
      status(order.status)),
    h("dl", { class: "kv small", style: { margin: ".75rem 0 1rem" } },
      h("dt", {}, "Total"), h("dd", {}, money(order.total_cents, order.currency)),
      h("dt", {}, "Lines"), h("dd", {}, order.lines.map((l) => `${l.quantity} × ${l.sku}`).join(", ")),
      h("dt", {}, "Card"), h("dd", {}, `${order.card?.brand || "card"} ·· ${order.card?.last4 || "????"}`),
      order.reason ? [h("dt", {}, "Reason"), h("dd", {}, order.reason)] : null,
      h("dt", {}, "Placed"), h("dd", {}, when(order.created_at))),
    h("h3", {}, "Saga log"),
    entries.length
      ? h("ol", { class: "timeline", id: "saga-steps" }, entries.map((e) => h("li", { dataset: { step: e.step, event: e.event } },
        h("span", { class: `dot ${e.event}` }),
        h("div", { class: "row between" },
          h("span", {}, h("span", { class: "step" }, e.step), " ", status(e.event)),
          h("span", { class: "when", title: when(e.at) }, `${clock(e.at)} (+${Math.max(0, new Date(e.at).getTime() - t0)} ms)`)),
        e.detail ? h("div", { class: "detail" }, e.detail) : null)))
      : h("p", { class: "muted" }, "No saga steps recorded yet.")));
}
