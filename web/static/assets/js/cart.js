// The cart lives in localStorage, so it survives reloads, one cart per
// customer on this browser: a signed-in customer's cart is kept under
// their user id, and someone not signed in has the anonymous cart. When a
// customer signs in, the anonymous cart is merged into theirs (what they
// picked before signing in is not lost) and emptied; when they sign out,
// their cart stays under their id, out of view, and the page shows the
// (empty) anonymous cart, so the next person on this browser sees nothing
// of theirs. It is a convenience kept in the browser, not a secret: anyone
// with this browser's storage can read it.
//
// A cart holds one currency: adding a product priced in another is refused
// with a sentence, so totals are never sums of different money.
// Prices here are for display: orders prices every line from inventory.

const PREFIX = "microshop.cart";
const ANONYMOUS = `${PREFIX}.anonymous`;
const LEGACY = PREFIX; // one cart for everyone, before carts were per customer

let owner = null; // the signed-in customer's id, or null

function keyOf(id) {
  return id ? `${PREFIX}.user.${id}` : ANONYMOUS;
}

function read(key) {
  try {
    const v = JSON.parse(localStorage.getItem(key) || "[]");
    return Array.isArray(v) ? v.filter((i) => i && i.sku && i.quantity > 0) : [];
  } catch {
    return [];
  }
}

function write(key, list) {
  if (list.length) localStorage.setItem(key, JSON.stringify(list));
  else localStorage.removeItem(key);
}

function changed() {
  window.dispatchEvent(new CustomEvent("microshop:cart"));
}

// setOwner shows the cart of the customer with this id (null: nobody
// signed in). Coming from nobody to a customer merges the anonymous cart
// into theirs, line by line, where the currency agrees.
export function setOwner(id) {
  id = id || null;
  if (id === owner) return;
  const before = owner;
  owner = id;
  if (before === null && id !== null) {
    const anonymous = read(ANONYMOUS);
    if (anonymous.length) {
      const mine = read(keyOf(id));
      for (const line of anonymous) {
        const same = mine.find((l) => l.sku === line.sku);
        if (same) same.quantity = Math.max(same.quantity, line.quantity);
        else if (!mine.length || mine[0].currency === line.currency) mine.push(line);
      }
      write(keyOf(id), mine);
      write(ANONYMOUS, []);
    }
  }
  changed();
}

export function items() {
  return read(keyOf(owner));
}

function save(list) {
  write(keyOf(owner), list);
  changed();
}

// CurrencyError says why a product cannot join the cart.
export class CurrencyError extends Error {
  constructor(have, want) {
    super(`Your cart is priced in ${have}, and this product in ${want}. One order is paid in one currency: check out or empty your cart first.`);
    this.name = "CurrencyError";
  }
}

// add puts quantity of product in the cart; it throws a CurrencyError when
// the cart holds products priced in another currency.
export function add(product, quantity = 1) {
  const list = items();
  const have = list[0]?.currency;
  if (have && product.currency && have !== product.currency) throw new CurrencyError(have, product.currency);
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

// currencies lists the currencies of the cart's lines: one, or none when
// it is empty. More than one only in a cart kept from before the rule (or
// whose products' prices changed currency): the pages then refuse to
// total it or check it out.
export function currencies() {
  return [...new Set(items().map((i) => i.currency).filter(Boolean))];
}

// total is the sum of the lines, or null when they are not in one currency.
export function total() {
  if (currencies().length > 1) return null;
  return items().reduce((n, i) => n + i.quantity * i.price_cents, 0);
}

export function currency() {
  return currencies()[0] || "USD";
}

// A cart from before carts were per customer becomes the anonymous cart.
if (localStorage.getItem(LEGACY) !== null) {
  if (!localStorage.getItem(ANONYMOUS)) localStorage.setItem(ANONYMOUS, localStorage.getItem(LEGACY));
  localStorage.removeItem(LEGACY);
}

// Another tab changed the cart on screen.
window.addEventListener("storage", (e) => {
  if (e.key === keyOf(owner)) changed();
});
