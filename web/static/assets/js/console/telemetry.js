// Telemetry: the live service map and recent traces.
//
// TELEMETRY: these pages are written against the API that the built-in
// collector of `microshop run` is to serve through the gateway. Until it
// exists the endpoints answer 404 and the pages say "Telemetry is not
// available yet", checking again every few seconds. The shapes:
//
//   GET /api/telemetry/metrics
//     {"services": [{"name", "healthy", "rps", "error_rate", "p99_ms"}],
//      "edges":    [{"from", "to", "rps", "error_rate", "p99_ms"}]}
//     error_rate is a fraction (0.02 is 2 %); an edge with "async": true
//     is carried by events (NATS) rather than HTTP and is drawn dashed.
//   GET /api/telemetry/traces
//     {"items": [{"trace_id", "root_service", "root_name", "started_at",
//                 "duration_ms", "span_count", "services": [...], "errors"}]}
//   GET /api/telemetry/traces/{id}
//     {"trace_id", "spans": [{"span_id", "parent_span_id", "service", "name",
//      "kind", "start", "end", "status", "status_message", "attributes": {}}]}
//     start and end are RFC 3339 times (nanoseconds kept) or unix numbers
//     (seconds, milliseconds, microseconds or nanoseconds: told apart by size).

import { api } from "../api.js";
import { h, svg, mount, clock, when, alert, loading, every, changed } from "../dom.js";
import { unavailable } from "./console.js";

const NOT_YET = "Request rates, error rates and latencies per service and per call between services, and traces of single requests, will show here once the telemetry collector runs.";

// The order services are drawn in within one column of the map.
const ORDER = ["gateway", "users", "inventory", "orders", "payments", "notifications", "reports", "mailbox", "nats"];

// ---- service map --------------------------------------------------------

export function renderMap(root, { signal }) {
  const area = h("div", { id: "service-map" }, loading("Loading the service map…"));
  mount(root,
    h("h1", {}, "Service map"),
    h("p", { class: "muted" }, "Live, every 2 seconds: each box is a service, each arrow the calls one makes to another (dashed: carried by events), with requests a second, the share that failed, and the 99th percentile latency over the collector's recent window."),
    area);
  every(2000, async () => {
    let m;
    try {
      m = await api("/api/telemetry/metrics", { signal });
    } catch (err) {
      if (err.name === "AbortError") return;
      mount(area, err.unavailable ? unavailable("telemetry", err, NOT_YET) : alert("error", err.message));
      return;
    }
    mount(area, (m.services || []).length || (m.edges || []).length
      ? [serviceMap(m), table(m)]
      : h("div", { class: "card empty" }, "No traffic measured yet."));
  }, signal);
}

// serviceMap lays the services out in columns by how deep they are in
// the call graph (gateway first, then what it calls, ...), and draws boxes
// and arrows.
export function serviceMap(m) {
  const services = m.services || [];
  const edges = (m.edges || []).filter((e) => e.from !== e.to);
  const names = new Set(services.map((s) => s.name));
  for (const e of edges) { names.add(e.from); names.add(e.to); }

  // Depth: the longest call chain that reaches a service (cycles ignored).
  const depth = new Map([...names].map((n) => [n, 0]));
  for (let pass = 0; pass < names.size; pass++) {
    let moved = false;
    for (const e of edges) {
      if (depth.get(e.to) < depth.get(e.from) + 1 && depth.get(e.from) + 1 < names.size) {
        depth.set(e.to, depth.get(e.from) + 1);
        moved = true;
      }
    }
    if (!moved) break;
  }
  // A service with no calls in or out (nats, say) goes in the last column.
  const linked = new Set(edges.flatMap((e) => [e.from, e.to]));
  const last = Math.max(0, ...[...linked].map((n) => depth.get(n)));
  const cols = [];
  for (const n of names) (cols[linked.has(n) || !linked.size ? depth.get(n) : last] ||= []).push(n);
  const rank = (n) => (ORDER.includes(n) ? ORDER.indexOf(n) : ORDER.length) + n;
  for (const c of cols) c?.sort((a, b) => String(rank(a)).localeCompare(String(rank(b))));

  const boxW = 170, boxH = 66, gapX = 190, gapY = 34, pad = 30, top = 50;
  const ncols = cols.length || 1;
  const maxRows = Math.max(1, ...cols.map((c) => c?.length || 0));
  const W = pad * 2 + ncols * boxW + (ncols - 1) * gapX;
  const H = top + pad + maxRows * boxH + (maxRows - 1) * gapY;
  const pos = new Map();
  cols.forEach((c, ci) => (c || []).forEach((n, ri) => {
    const colH = c.length * boxH + (c.length - 1) * gapY;
    pos.set(n, { x: pad + ci * (boxW + gapX), y: top + (H - top - pad - colH) / 2 + ri * (boxH + gapY) });
  }));
  const byName = new Map(services.map((s) => [s.name, s]));

  // place moves a label down until it overlaps no label placed before.
  const placed = [];
  const place = (x, y, w) => {
    while (placed.some((p) => Math.abs(p.x - x) < (p.w + w) / 2 && Math.abs(p.y - y) < 13)) y += 13;
    placed.push({ x, y, w });
    return [x, y];
  };
  const col = new Map();
  cols.forEach((c, ci) => (c || []).forEach((n) => col.set(n, ci)));
  const maxRps = Math.max(1, ...edges.map((e) => e.rps || 0));
  const arrows = edges.map((e) => {
    const a = pos.get(e.from), b = pos.get(e.to);
    const span = col.get(e.to) - col.get(e.from);
    let d, lx, ly;
    if (span === 1) {
      // The next column: an S-curve from the right side to the left side.
      const x1 = a.x + boxW, y1 = a.y + boxH / 2, x2 = b.x - 3, y2 = b.y + boxH / 2;
      const mx = (x1 + x2) / 2;
      d = `M${x1},${y1} C${mx},${y1} ${mx},${y2} ${x2},${y2}`;
      [lx, ly] = [mx, (y1 + y2) / 2 - 6];
    } else if (span > 1) {
      // Over the columns between: an arc above every box, top to top.
      const x1 = a.x + boxW / 2, y1 = a.y, x2 = b.x + boxW / 2, y2 = b.y - 3;
      // Control points at c put the curve's peak, (y1 + y2)/8 + 3c/4, at 26.
      const c = (26 - (y1 + y2) / 8) / 0.75;
      d = `M${x1},${y1} C${x1},${c} ${x2},${c} ${x2},${y2}`;
      [lx, ly] = [(x1 + x2) / 2, 21];
    } else {
      // Backwards or within a column: a bow out to the right.
      const x1 = a.x + boxW, y1 = a.y + boxH / 2, x2 = b.x + boxW + 3, y2 = b.y + boxH / 2;
      const bow = Math.max(x1, x2) + 60;
      d = `M${x1},${y1} C${bow},${y1} ${bow},${y2} ${x2},${y2}`;
      [lx, ly] = [bow - 10, (y1 + y2) / 2];
    }
    const width = 1.2 + 3.5 * Math.log1p(e.rps || 0) / Math.log1p(maxRps);
    const bad = (e.error_rate || 0) >= 0.01;
    [lx, ly] = place(lx, ly, figures(e).length * 5.6);
    return svg("g", { class: "edge-group", dataset: { from: e.from, to: e.to } },
      svg("path", { class: `edge${bad ? " erroring" : ""}${e.async ? " async" : ""}`, d, "stroke-width": width.toFixed(2), "marker-end": bad ? "url(#arrow-bad)" : "url(#arrow)" },
        svg("title", {}, `${e.from} → ${e.to}${e.async ? " (events)" : ""}: ${figures(e)}`)),
      svg("text", { class: "edge-label", x: lx, y: ly, "text-anchor": "middle" }, figures(e)));
  });

  const boxes = [...names].map((n) => {
    const p = pos.get(n);
    const s = byName.get(n);
    const healthy = s ? s.healthy !== false : true;
    return svg("g", { class: `node${healthy ? "" : " unhealthy"}`, dataset: { service: n }, transform: `translate(${p.x},${p.y})` },
      svg("rect", { width: boxW, height: boxH, rx: 10 }),
      svg("text", { class: "name", x: 12, y: 21 }, n, healthy ? "" : " (down)"),
      s && (s.rps || s.count)
        ? [svg("text", { x: 12, y: 40 }, `${num(s.rps)} rps · ${pct(s.error_rate)} errors`), svg("text", { x: 12, y: 57 }, `p99 ${ms(s.p99_ms)}`)]
        : svg("text", { x: 12, y: 40, class: "idle" }, "no requests lately"));
  });

  return svg("svg", { class: "svcmap", viewBox: `0 0 ${W} ${H}`, role: "img", "aria-label": "Service map" },
    svg("defs", {},
      svg("marker", { id: "arrow", viewBox: "0 0 10 10", refX: "9", refY: "5", markerUnits: "userSpaceOnUse", markerWidth: "10", markerHeight: "10", orient: "auto-start-reverse" },
        svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#9aa3b5" })),
      svg("marker", { id: "arrow-bad", viewBox: "0 0 10 10", refX: "9", refY: "5", markerUnits: "userSpaceOnUse", markerWidth: "10", markerHeight: "10", orient: "auto-start-reverse" },
        svg("path", { d: "M0,0 L10,5 L0,10 z", fill: "#b42318" }))),
    arrows, boxes);
}

function table(m) {
  const rows = [
    ...(m.services || []).map((s) => ({ what: s.name, ...s })),
    ...(m.edges || []).map((e) => ({ what: `${e.from} → ${e.to}${e.async ? " (events)" : ""}`, ...e })),
  ];
  return h("div", { class: "table-wrap", style: { marginTop: "1rem" } }, h("table", { class: "table" },
    h("thead", {}, h("tr", {}, h("th", {}, "Service or call"), h("th", { class: "num" }, "Requests/s"), h("th", { class: "num" }, "Errors"), h("th", { class: "num" }, "p99"))),
    h("tbody", {}, rows.map((r) => h("tr", {},
      h("td", {}, r.what, r.healthy === false ? h("span", { class: "status unreachable", style: { marginLeft: ".5rem" } }, "down") : null),
      h("td", { class: "num" }, num(r.rps)), h("td", { class: "num" }, pct(r.error_rate)), h("td", { class: "num" }, ms(r.p99_ms)))))));
}

function figures(e) {
  return `${num(e.rps)} rps · ${pct(e.error_rate)} · p99 ${ms(e.p99_ms)}`;
}

function num(v) {
  v = Number(v || 0);
  return v >= 100 ? v.toFixed(0) : v >= 10 ? v.toFixed(1) : v.toFixed(2);
}

function pct(v) {
  v = Number(v || 0) * 100;
  return v === 0 ? "0%" : v < 0.1 ? "<0.1%" : `${v.toFixed(v < 10 ? 1 : 0)}%`;
}

function ms(v) {
  v = Number(v || 0);
  return v >= 1000 ? `${(v / 1000).toFixed(2)} s` : v >= 10 ? `${v.toFixed(0)} ms` : `${v.toFixed(1)} ms`;
}

// ---- traces ----------------------------------------------------------------

export function renderTraces(root, { params, query, signal }) {
  const [selected] = params;
  const service = query.get("service") || "";
  const showUI = query.get("ui") === "1";
  const list = h("div", { id: "traces" }, loading("Loading traces…"));
  const detail = h("div", { id: "trace" });
  const link = (o) => {
    const p = new URLSearchParams();
    const svc = o.service ?? service;
    if (svc) p.set("service", svc);
    if (o.ui ?? showUI) p.set("ui", "1");
    const id = o.id === undefined ? selected : o.id;
    return `#/console/traces${id ? `/${encodeURIComponent(id)}` : ""}${p.size ? `?${p}` : ""}`;
  };
  const serviceSel = h("select", { "aria-label": "Service", style: { width: "auto" }, onchange: (e) => { location.hash = link({ service: e.target.value, id: "" }).slice(1); } },
    h("option", { value: "" }, "Every service"),
    ORDER.filter((n) => n !== "nats" && n !== "mailbox").map((n) => h("option", { value: n, selected: n === service }, n)));
  const uiBox = h("input", { type: "checkbox", checked: showUI, style: { width: "auto" }, onchange: (e) => { location.hash = link({ ui: e.target.checked }).slice(1); } });
  mount(root,
    h("h1", {}, "Traces"),
    h("p", { class: "muted" }, "Recent requests followed across every service they touched. Pick one to see its spans on a timeline."),
    detail,
    h("div", { class: "row", style: { margin: "0 0 .75rem" } }, serviceSel,
      h("label", { class: "row small", style: { margin: 0, fontWeight: 400, gap: ".4rem" } }, uiBox, "Show the web UI's own page and asset requests")),
    list);

  const qs = new URLSearchParams({ limit: "200" });
  if (service) qs.set("service", service);
  every(5000, async () => {
    let page;
    try {
      page = await api(`/api/telemetry/traces?${qs}`, { signal });
    } catch (err) {
      if (err.name === "AbortError") return;
      changed(list, null); // the next answer redraws, even the same as before
      mount(list, err.unavailable ? unavailable("telemetry", err, NOT_YET) : alert("error", err.message));
      return;
    }
    // The UI's own files are most of the traffic when one person clicks
    // around; they say nothing about the services.
    const items = (page.items || []).filter((t) => showUI || !(t.root_service === "gateway" && /^(GET|HEAD) \/(assets\/\*|favicon\.ico|status)?$/.test(t.root_name))).slice(0, 50);
    if (!changed(list, items)) return;
    mount(list, items.length
      ? h("div", { class: "table-wrap scroll" }, h("table", { class: "table" },
        h("thead", {}, h("tr", {}, h("th", {}, "Started"), h("th", {}, "Request"), h("th", { class: "num" }, "Duration"), h("th", { class: "num" }, "Spans"), h("th", {}, "Services"), h("th", {}, "Errors"))),
        h("tbody", {}, items.map((t) => h("tr", {
          class: `clickable${t.trace_id === selected ? " selected" : ""}`,
          dataset: { trace: t.trace_id },
          onclick: () => { location.hash = link({ id: t.trace_id }).slice(1); },
        },
        h("td", { class: "small", title: when(t.started_at) }, clock(t.started_at)),
        h("td", {}, h("a", { href: link({ id: t.trace_id }) }, h("strong", {}, t.root_service), " ", t.root_name)),
        h("td", { class: "num" }, ms(t.duration_ms)),
        h("td", { class: "num" }, String(t.span_count ?? "")),
        h("td", { class: "small" }, (t.services || []).join(", ")),
        h("td", {}, t.errors ? h("span", { class: "status error" }, String(t.errors)) : h("span", { class: "muted small" }, "none")))))))
      : h("div", { class: "card empty" }, page.exported_elsewhere
        ? `No traces here: the services send their spans to ${page.exported_elsewhere}, as the OTEL_* variables given to microshop run say.`
        : "No traces yet."));
  }, signal);

  if (selected) showTrace(detail, selected, signal);
}

async function showTrace(detail, id, signal) {
  mount(detail, loading("Loading the trace…"));
  let t;
  try {
    t = await api(`/api/telemetry/traces/${encodeURIComponent(id)}`, { signal });
  } catch (err) {
    if (err.name === "AbortError") return;
    mount(detail, err.status === 404 ? alert("warn", "That trace is not (or no longer) kept by the collector.") : alert("error", err.message));
    return;
  }
  mount(detail, h("div", { class: "card", style: { marginBottom: "1.25rem" } },
    h("h2", { style: { marginTop: 0 } }, "Trace ", h("span", { class: "mono small" }, t.trace_id)),
    waterfall(t.spans || [])));
}

// waterfall draws one bar per span, indented under its parent, placed
// and sized by its start and end within the whole trace.
export function waterfall(spans) {
  if (!spans.length) return h("p", { class: "muted" }, "This trace has no spans.");
  const all = spans.map((s) => ({ ...s, t0: toMs(s.start), t1: toMs(s.end) }));
  const start = Math.min(...all.map((s) => s.t0));
  const end = Math.max(...all.map((s) => s.t1));
  const total = Math.max(end - start, 0.001);

  // Parents before children, siblings by start time.
  const ids = new Set(all.map((s) => s.span_id));
  const kids = new Map();
  for (const s of all) {
    const p = s.parent_span_id && ids.has(s.parent_span_id) ? s.parent_span_id : "";
    (kids.get(p) || kids.set(p, []).get(p)).push(s);
  }
  const ordered = [];
  const walk = (parent, depth) => {
    for (const s of (kids.get(parent) || []).sort((a, b) => a.t0 - b.t0)) {
      ordered.push({ s, depth });
      if (s.span_id) walk(s.span_id, depth + 1);
    }
  };
  walk("", 0);

  const services = [...new Set(all.map((s) => s.service))];
  const colour = (svc) => `hsl(${(services.indexOf(svc) * 67 + 235) % 360} 60% 52%)`;
  const info = h("div", { id: "span-detail" });
  const ticks = [0, 0.25, 0.5, 0.75, 1];
  return h("div", { class: "waterfall" },
    h("div", { class: "legend" }, services.map((svc) => h("span", {}, h("i", { style: { background: colour(svc) } }), svc))),
    h("div", { class: "wf-row muted small" }, h("span", {}, "Span"),
      h("div", { style: { position: "relative", height: "1rem" } }, ticks.map((f) => h("span", {
        style: { position: "absolute", whiteSpace: "nowrap", left: `${f * 100}%`, transform: f === 1 ? "translateX(-100%)" : f === 0 ? "none" : "translateX(-50%)" },
      }, ms(f * total)))),
      h("span", { class: "wf-dur" }, "Duration")),
    ordered.map(({ s, depth }) => {
      const failed = /error/i.test(String(s.status || ""));
      return h("div", { class: "wf-row clickable", dataset: { span: s.span_id }, title: `${s.service}: ${s.name}`, onclick: () => mount(info, spanInfo(s, start)) },
        h("span", { class: "wf-name", style: { paddingLeft: `${depth * 14}px` } }, h("strong", {}, s.service), " ", s.name),
        h("div", { class: "wf-track" }, h("div", {
          class: `wf-bar${failed ? " error" : ""}`,
          style: { left: `${((s.t0 - start) / total) * 100}%`, width: `${Math.max(((s.t1 - s.t0) / total) * 100, 0.3)}%`, background: failed ? "" : colour(s.service) },
        })),
        h("span", { class: "wf-dur" }, ms(s.t1 - s.t0)));
    }),
    info);
}

function spanInfo(s, start) {
  const attrs = Object.entries(s.attributes || {});
  return h("div", { class: "card", style: { marginTop: "1rem" } },
    h("h3", { style: { marginTop: 0 } }, `${s.service}: ${s.name}`),
    h("dl", { class: "kv small" },
      h("dt", {}, "Kind"), h("dd", {}, s.kind || ""),
      h("dt", {}, "Status"), h("dd", {}, s.status || "", s.status_message ? `: ${s.status_message}` : ""),
      h("dt", {}, "Starts at"), h("dd", {}, `+${ms(s.t0 - start)}`),
      h("dt", {}, "Duration"), h("dd", {}, ms(s.t1 - s.t0)),
      h("dt", {}, "Span id"), h("dd", { class: "mono" }, s.span_id || ""),
      attrs.map(([k, v]) => [h("dt", { class: "mono" }, k), h("dd", { class: "mono" }, typeof v === "string" ? v : JSON.stringify(v))])));
}

// toMs turns a span time into milliseconds, keeping sub-millisecond parts.
export function toMs(v) {
  if (typeof v === "number") {
    if (v > 1e17) return v / 1e6; // nanoseconds
    if (v > 1e14) return v / 1e3; // microseconds
    if (v > 1e11) return v; // milliseconds
    return v * 1000; // seconds
  }
  const m = /^(.*T\d\d:\d\d:\d\d)(\.\d+)?(.*)$/.exec(String(v || ""));
  if (!m) return Date.parse(v) || 0;
  return Date.parse(m[1] + m[3]) + (m[2] ? Number(m[2]) * 1000 : 0);
}
