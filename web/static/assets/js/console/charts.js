// Bar charts as inline SVG: no chart library, just rectangles and text.

import { svg } from "../dom.js";

// columns draws vertical bars, one per item {label, value, title}, with
// the value above each bar (format turns a value into text).
export function columns(items, { format = String, height = 220, id } = {}) {
  const w = 720;
  const top = 22;
  const bottom = 34;
  const left = 8;
  const max = Math.max(1, ...items.map((i) => i.value));
  const slot = (w - left * 2) / Math.max(1, items.length);
  const barW = Math.max(2, Math.min(56, slot * 0.7));
  const plotH = height - top - bottom;
  const every = Math.ceil(items.length / 14); // label at most ~14 columns
  return svg("svg", { class: "chart", viewBox: `0 0 ${w} ${height}`, role: "img", id, "aria-label": items.map((i) => `${i.label}: ${format(i.value)}`).join("; ") },
    svg("line", { class: "axis", x1: left, x2: w - left, y1: top + plotH + 0.5, y2: top + plotH + 0.5 }),
    items.map((it, i) => {
      const bh = Math.round((it.value / max) * plotH);
      const x = left + i * slot + (slot - barW) / 2;
      const cx = x + barW / 2;
      return svg("g", {},
        svg("rect", { class: "bar", x, y: top + plotH - bh, width: barW, height: Math.max(bh, it.value > 0 ? 1 : 0), rx: 2 },
          svg("title", {}, `${it.title || it.label}: ${format(it.value)}`)),
        it.value > 0 && slot > 26 ? svg("text", { class: "value", x: cx, y: top + plotH - bh - 5, "text-anchor": "middle" }, format(it.value)) : null,
        i % every === 0 ? svg("text", { x: cx, y: height - bottom + 16, "text-anchor": "middle" }, it.label) : null);
    }));
}

// rows draws horizontal bars, one per item, labels on the left.
export function rows(items, { format = String, id } = {}) {
  const w = 720;
  const rowH = 28;
  const labelW = 230;
  const valueW = 110;
  const height = Math.max(rowH, items.length * rowH) + 8;
  const max = Math.max(1, ...items.map((i) => i.value));
  const plotW = w - labelW - valueW;
  return svg("svg", { class: "chart", viewBox: `0 0 ${w} ${height}`, role: "img", id, "aria-label": items.map((i) => `${i.label}: ${format(i.value)}`).join("; ") },
    items.map((it, i) => {
      const y = 4 + i * rowH;
      const bw = Math.max(it.value > 0 ? 2 : 0, Math.round((it.value / max) * plotW));
      return svg("g", {},
        svg("text", { x: labelW - 10, y: y + rowH / 2 + 4, "text-anchor": "end" }, clip(it.label, 34)),
        svg("rect", { class: "bar", x: labelW, y: y + 5, width: bw, height: rowH - 10, rx: 2 }, svg("title", {}, `${it.title || it.label}: ${format(it.value)}`)),
        svg("text", { class: "value", x: labelW + bw + 6, y: y + rowH / 2 + 4 }, format(it.value)));
    }));
}

function clip(s, n) {
  s = String(s);
  return s.length > n ? s.slice(0, n - 1) + "…" : s;
}
