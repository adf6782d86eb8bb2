// The operations console, for admins: a menu on the left, one section on
// the right, picked by the path after #/console/.

import { h, mount } from "../dom.js";
import * as services from "./services.js";
import * as sagas from "./sagas.js";
import * as mailbox from "./mailbox.js";
import * as deliveries from "./deliveries.js";
import * as reports from "./reports.js";
import * as telemetry from "./telemetry.js";

const sections = [
  { group: "System" },
  { path: "services", title: "Services", render: services.render },
  { path: "map", title: "Service map", render: telemetry.renderMap },
  { path: "traces", title: "Traces", render: telemetry.renderTraces },
  { group: "Orders" },
  { path: "sagas", title: "Sagas", render: sagas.render },
  { path: "reports", title: "Reports", render: reports.render },
  { group: "Messages" },
  { path: "mailbox", title: "Mailbox", render: mailbox.render },
  { path: "deliveries", title: "Deliveries", render: deliveries.render },
];

export async function render(root, ctx) {
  const rest = ctx.params[0] || "services";
  const [name, ...more] = rest.split("/");
  const section = sections.find((s) => s.path === name) || sections[1];
  const main = h("section", { class: "console-main", id: `console-${section.path}` });
  mount(root, h("div", { class: "console" },
    h("nav", { class: "console-nav", "aria-label": "Console" },
      sections.map((s) => s.group
        ? h("div", { class: "group" }, s.group)
        : h("a", { href: `#/console/${s.path}`, class: s === section ? "active" : null }, s.title))),
    main));
  await section.render(main, { ...ctx, params: more.map(decodeURIComponent) });
}

// unavailable is the note a section shows when its service is not there.
export function unavailable(service, err, what) {
  const why = err?.network ? "cannot be reached" : err?.status === 404 ? "is not available yet" : "is not running";
  return h("div", { class: "placeholder", dataset: { unavailable: service } },
    h("strong", {}, `${cap(service)} ${why}.`), " ",
    what, " This page checks again every few seconds and fills in once it answers.");
}

export function cap(s) {
  return s.charAt(0).toUpperCase() + s.slice(1);
}
