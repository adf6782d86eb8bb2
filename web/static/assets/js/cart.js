// The cart lives in localStorage, so it survives reloads and signing in.
// Prices here are for display: orders prices every line from inventory.

const KEY = "microshop.cart";

export function items() {
  try {
    const v = JSON.parse(localStorage.getItem(KEY) || "[]");
    return Array.isArray(v) ? v.filter((i) => i && i.sku && i.quantity > 0) : [];
  } catch {
    return [];
  }
}

function save(list) {
  localStorage.setItem(KEY, JSON.stringify(list));
  window.dispatchEvent(new CustomEvent("microshop:cart"));
}

export function add(product, quantity = 1) {
  const list = items();
  const line = list.find((i) => i.sku === product.sku);
  if (line) {
    line.quantity += quantity;
    Object.assign(line, pick(product));
  } else {
    list.push({ ...pick(product), quantity });
  }
  save(list);
}

function pick(p) {
  return { sku: p.sku, name: p.name, price_cents: p.price_cents, currency: p.currency, available: p.available };
}

export function setQuantity(sku, quantity) {
  const list = items();
  const line = list.find((i) => i.sku === sku);
  if (!line) return;
  line.quantity = Math.max(1, Math.floor(quantity) || 1);
  save(list);
}

// refresh updates the names, prices and availability kept for display.
export function refresh(products) {
  const bySku = new Map(products.map((p) => [p.sku, p]));
  save(items().map((i) => (bySku.has(i.sku) ? { ...i, ...pick(bySku.get(i.sku)) } : i)));
}

export function remove(sku) {
  save(items().filter((i) => i.sku !== sku));
}

export function clear() {
  save([]);
}

export function count() {
  return items().reduce((n, i) => n + i.quantity, 0);
}

export function total() {
  return items().reduce((n, i) => n + i.quantity * i.price_cents, 0);
}

export function currency() {
  return items()[0]?.currency || "USD";
}

// Another tab changed the cart.
window.addEventListener("storage", (e) => {
  if (e.key === KEY) window.dispatchEvent(new CustomEvent("microshop:cart"));
});
