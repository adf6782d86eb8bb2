// Small helpers to build the page. Text always goes in as text nodes, never
// as HTML, so nothing the API returns can become markup.

// h builds an element: h("a", {href: "#/", class: "x", onclick: fn}, "text", child).
// Attributes that are null, undefined or false are left out; children that
// are null, undefined or false are skipped; arrays are flattened.
export function h(tag, attrs, ...children) {
  const el = document.createElement(tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

// svg builds an SVG element the same way.
export function svg(tag, attrs, ...children) {
  const el = document.createElementNS("http://www.w3.org/2000/svg", tag);
  setAttrs(el, attrs);
  append(el, children);
  return el;
}

function setAttrs(el, attrs) {
  for (const [k, v] of Object.entries(attrs || {})) {
    if (v === null || v === undefined || v === false) continue;
    if (k.startsWith("on") && typeof v === "function") {
      el.addEventListener(k.slice(2), v);
    } else if (k === "style" && typeof v === "object") {
      Object.assign(el.style, v); // CSSOM, allowed by the page's CSP
    } else if (k === "dataset") {
      Object.assign(el.dataset, v);
    } else if (k === "value" && "value" in el) {
      el.value = v;
    } else {
      el.setAttribute(k, v === true ? "" : String(v));
    }
  }
}

function append(el, children) {
  for (const c of children.flat(Infinity)) {
    if (c === null || c === undefined || c === false) continue;
    el.append(c instanceof Node ? c : document.createTextNode(String(c)));
  }
}

// mount replaces everything inside parent with children.
export function mount(parent, ...children) {
  parent.replaceChildren();
  append(parent, children);
  return parent;
}

// money formats integer minor units: money(1400, "USD") is "$14.00".
export function money(cents, currency = "USD") {
  const n = Number(cents || 0) / 100;
  try {
    return new Intl.NumberFormat(undefined, { style: "currency", currency }).format(n);
  } catch {
    return `${n.toFixed(2)} ${currency}`;
  }
}

// when formats a timestamp for people: "30 Nov 2026, 14:02:11".
export function when(t) {
  if (!t) return "";
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  return d.toLocaleString(undefined, { day: "numeric", month: "short", year: "numeric", hour: "2-digit", minute: "2-digit", second: "2-digit" });
}

// clock formats a timestamp's time of day to the millisecond, 24-hour,
// for timelines: "14:02:11.042".
export function clock(t) {
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t);
  const two = (n) => String(n).padStart(2, "0");
  return `${two(d.getHours())}:${two(d.getMinutes())}:${two(d.getSeconds())}.${String(d.getMilliseconds()).padStart(3, "0")}`;
}

// brief formats a timestamp compactly for narrow lists: the time of day
// when it is today, else the day and the time ("30 Nov, 14:02").
export function brief(t) {
  const d = new Date(t);
  if (Number.isNaN(d.getTime())) return String(t || "");
  const time = d.toLocaleTimeString(undefined, { hour: "2-digit", minute: "2-digit", second: "2-digit", hour12: false });
  if (d.toDateString() === new Date().toDateString()) return time;
  return `${d.toLocaleDateString(undefined, { day: "numeric", month: "short" })}, ${time.slice(0, 5)}`;
}

// shortId shows the end of a long id, which is the part that differs.
export function shortId(id) {
  id = String(id || "");
  return id.length > 12 ? "…" + id.slice(-8) : id;
}

export function status(s) {
  return h("span", { class: `status ${String(s).replace(/\s+/g, "-")}` }, s);
}

export function alert(kind, ...children) {
  return h("div", { class: `alert ${kind}`, role: kind === "error" ? "alert" : "status" }, ...children);
}

export function loading(text = "Loading…") {
  return h("p", { class: "loading" }, h("span", { class: "spinner" }), " ", text);
}

// tile is a product's picture: its initials on a colour drawn from its sku.
export function tile(product, big = false) {
  let hash = 0;
  for (const ch of product.sku || "") hash = (hash * 31 + ch.charCodeAt(0)) >>> 0;
  const hue = hash % 360;
  const words = (product.name || product.sku || "?").split(/\s+/).filter((w) => /^[A-Za-z]/.test(w));
  const initials = words.slice(0, 2).map((w) => w[0].toUpperCase()).join("") || "?";
  return h("div", {
    class: big ? "tile big" : "tile",
    style: { background: `linear-gradient(135deg, hsl(${hue} 55% 52%), hsl(${(hue + 40) % 360} 60% 40%))` },
    "aria-hidden": "true",
  }, initials);
}

// every calls fn now and then every ms milliseconds until signal aborts;
// a slow fn never overlaps itself.
export function every(ms, fn, signal) {
  let timer;
  const tick = async () => {
    if (signal.aborted) return;
    try { await fn(); } catch (err) { console.warn(err); }
    if (!signal.aborted) timer = setTimeout(tick, ms);
  };
  signal.addEventListener("abort", () => clearTimeout(timer));
  tick();
}

// changed reports whether value differs from what it was the last time
// changed was asked about el, so that polling redraws a list only when its
// data changed: a redraw replaces the rows, and a click landing on a row
// being replaced is lost.
const seen = new WeakMap();
export function changed(el, value) {
  const key = JSON.stringify(value);
  if (seen.get(el) === key) return false;
  seen.set(el, key);
  return true;
}

// sleep waits ms milliseconds, or less if signal aborts.
export function sleep(ms, signal) {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    signal?.addEventListener("abort", () => { clearTimeout(t); resolve(); });
  });
}
