// Mailbox: the mail that notifications sent to the built-in mail server of
// `microshop run` (GET /api/mailbox/messages, admins only). A message's
// HTML is shown in an iframe sandboxed with no permissions at all: no
// scripts, no forms, no navigation of this page, and an opaque origin that
// cannot read the shop's storage. Remote images stay blocked by the page's
// Content-Security-Policy, which the frame inherits.

import { api } from "../api.js";
import { h, mount, when, brief, alert, loading, every, changed } from "../dom.js";
import { unavailable } from "./console.js";

export function render(root, { params, query, signal }) {
  const [selected] = params;
  const to = query.get("to") || "";
  const list = h("div", { id: "mailbox" }, loading("Loading messages…"));
  const reader = h("div", { id: "mail-reader" });
  const filter = h("input", { type: "search", name: "to", value: to, placeholder: "Filter by recipient", "aria-label": "Filter by recipient" });
  mount(root,
    h("h1", {}, "Mailbox"),
    h("p", { class: "muted" }, "Email that the shop sent, caught by the mail server built into microshop run. Newest first."),
    h("form", { class: "searchbar", onsubmit: (e) => {
      e.preventDefault();
      const v = filter.value.trim();
      location.hash = `/console/mailbox${selected ? `/${encodeURIComponent(selected)}` : ""}${v ? `?to=${encodeURIComponent(v)}` : ""}`;
    } }, filter, h("button", { class: "btn secondary", type: "submit" }, "Filter")),
    h("div", { class: "split" }, list, reader));

  const qs = new URLSearchParams({ limit: "50" });
  if (to) qs.set("to", to);
  const suffix = to ? `?to=${encodeURIComponent(to)}` : "";
  every(5000, async () => {
    let page;
    try {
      page = await api(`/api/mailbox/messages?${qs}`, { signal });
    } catch (err) {
      if (err.name === "AbortError") return;
      changed(list, null); // the next answer redraws, even the same as before
      mount(list, err.unavailable ? unavailable("the mailbox", err, "The mailbox exists only under microshop run.") : alert("error", err.message));
      return;
    }
    const items = page.items || [];
    if (!changed(list, items)) return;
    mount(list, items.length
      ? h("div", { class: "table-wrap" }, h("table", { class: "table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Received"), h("th", {}, "Message"))),
        h("tbody", {}, items.map((m) => h("tr", {
          class: `clickable${String(m.id) === selected ? " selected" : ""}`,
          dataset: { message: m.id },
          onclick: () => { location.hash = `/console/mailbox/${m.id}${suffix}`; },
        }, h("td", { class: "small nowrap", title: when(m.received_at) }, brief(m.received_at)),
        h("td", { class: "wrap" }, h("a", { href: `#/console/mailbox/${m.id}${suffix}` }, m.subject || "(no subject)"),
          h("div", { class: "muted small" }, "to ", (m.to || []).join(", "))))))))
      : h("div", { class: "card empty", id: "mailbox-empty" }, to ? `No messages to “${to}”.` : "No messages yet. Mail appears here when the shop sends some, for example after a customer registers or orders."));
  }, signal);

  if (selected) {
    open(reader, selected, signal);
  } else {
    mount(reader, h("div", { class: "card empty" }, "Pick a message to read it."));
  }
}

async function open(reader, id, signal) {
  mount(reader, loading("Opening the message…"));
  let m;
  try {
    m = await api(`/api/mailbox/messages/${encodeURIComponent(id)}`, { signal });
  } catch (err) {
    if (err.name === "AbortError") return;
    mount(reader, alert("error", err.status === 404 ? "That message is no longer in the mailbox." : err.message));
    return;
  }
  const body = h("div", {});
  const show = (kind) => {
    for (const b of tabs.querySelectorAll("button")) b.classList.toggle("active", b.dataset.kind === kind);
    if (kind === "html") {
      const frame = h("iframe", { class: "mail-frame", sandbox: "", referrerpolicy: "no-referrer", title: "The message as HTML" });
      frame.srcdoc = m.html; // inert: the sandbox allows nothing
      mount(body, frame);
    } else {
      mount(body, h("pre", { class: "mail-text" }, m.text || "(This message has no text part.)"));
    }
  };
  const tabs = h("div", { class: "tabs", role: "tablist" },
    m.html ? h("button", { type: "button", dataset: { kind: "html" }, onclick: () => show("html") }, "HTML") : null,
    h("button", { type: "button", dataset: { kind: "text" }, onclick: () => show("text") }, "Text"));
  mount(reader, h("div", { class: "card", id: "mail-message" },
    h("h2", { style: { marginTop: 0 } }, m.subject || "(no subject)"),
    h("dl", { class: "kv small", style: { marginBottom: "1rem" } },
      h("dt", {}, "From"), h("dd", {}, m.from),
      h("dt", {}, "To"), h("dd", {}, (m.to || []).join(", ")),
      h("dt", {}, "Received"), h("dd", {}, when(m.received_at))),
    tabs, body));
  show(m.html ? "html" : "text");
}
