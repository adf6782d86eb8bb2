// Services: the gateway's view of every service's health (GET /status,
// which asks each service's /readyz), every two seconds.

import { api } from "../api.js";
import { h, mount, status, alert, every, clock } from "../dom.js";

export function render(root, { signal }) {
  const summary = h("div", { id: "services-summary" });
  const tiles = h("div", { class: "tiles", id: "services" });
  const checked = h("p", { class: "muted small", style: { marginTop: ".75rem" } });
  mount(root,
    h("h1", {}, "Services"),
    h("p", { class: "muted" }, "Each service's readiness as the gateway sees it, checked every 2 seconds. ",
      "Request rates, errors and latencies are on the ", h("a", { href: "#/console/map" }, "service map"), "."),
    summary, tiles, checked);
  every(2000, async () => {
    let st;
    try {
      st = await api("/status", { signal, auth: false });
    } catch (err) {
      if (err.name === "AbortError") return;
      mount(summary, alert("error", `The gateway did not answer: ${err.message}`));
      return;
    }
    const list = st.services || [];
    const down = list.filter((s) => s.status !== "ready");
    mount(summary, down.length
      ? alert("warn", `${list.length - down.length} of ${list.length} services are ready. Not ready: `,
        down.map((s, i) => [i ? ", " : "", h("strong", {}, s.service), ` (${s.status})`]), ".")
      : alert("ok", `All ${list.length} services are ready.`));
    mount(tiles, list.map((s) => h("div", { class: `card svc ${s.status.replace(/\s+/g, "-")}`, dataset: { service: s.service, status: s.status } },
      h("div", { class: "name" }, s.service),
      h("div", { style: { margin: ".2rem 0 .35rem" } }, status(s.status)),
      h("div", { class: "muted small" }, describe(s.status)),
      s.replicas > 1 ? h("div", { class: "small", style: { marginTop: ".3rem" } }, `${s.ready ?? 0} of ${s.replicas} replicas ready`) : null)));
    checked.textContent = `Last checked at ${clock(new Date())}.`;
  }, signal);
}

function describe(s) {
  switch (s) {
    case "ready": return "Answering and ready for traffic.";
    case "not ready": return "Running, but says it is not ready (starting, draining, or missing a dependency).";
    case "unreachable": return "Not answering: stopped, crashed, or not started.";
    default: return "";
  }
}
