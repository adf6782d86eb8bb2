// Checkout: shipping address and card, then POST /api/orders.
//
// One submit has one Idempotency-Key, kept (in sessionStorage, with a
// fingerprint of what was sent, never the card number) across every retry
// of it: automatic retries when the network or a service fails, and the
// person pressing the button again, even after a reload. So a retry can
// never order twice. Changing the cart, the address or the card makes it a
// new submit with a new key. A 202 means the saga is still running: the
// page polls GET /api/orders/{id} until the order is final.

import { request, newKey, rejection, sentence } from "../api.js";
import * as cart from "../cart.js";
import * as session from "../session.js";
import { h, mount, money, alert, sleep } from "../dom.js";

const ATTEMPT = "microshop.checkout-attempt";

export const TEST_CARDS = [
  ["4242 4242 4242 4242", "approved"],
  ["4000 0000 0000 0002", "declined"],
  ["4000 0000 0000 9995", "declined: insufficient funds"],
  ["4000 0000 0000 0077", "answers slowly"],
];

const COUNTRIES = [
  ["US", "United States"], ["GB", "United Kingdom"], ["CA", "Canada"], ["DE", "Germany"], ["FR", "France"],
  ["NL", "Netherlands"], ["ES", "Spain"], ["IT", "Italy"], ["SE", "Sweden"], ["IE", "Ireland"],
  ["AU", "Australia"], ["JP", "Japan"], ["BR", "Brazil"], ["IN", "India"],
];

export function render(root, { signal, go }) {
  const lines = cart.items();
  if (!lines.length) {
    mount(root, h("h1", {}, "Checkout"), h("div", { class: "card empty" }, "Your cart is empty. ", h("a", { href: "#/" }, "Browse the shop"), "."));
    return;
  }
  if (cart.total() === null) {
    mount(root, h("h1", {}, "Checkout"), alert("error", `Your cart holds products priced in ${cart.currencies().join(" and ")}, and one order is paid in one currency.`),
      h("p", {}, h("a", { href: "#/cart" }, "Back to your cart"), " to remove the products in all but one of them."));
    return;
  }
  const me = session.currentUser();
  const year = new Date().getFullYear();
  const field = (name, label, attrs = {}, width = "w6") =>
    h("label", { class: width }, h("span", {}, label), h("input", { name, id: `f-${name.replace(/\./g, "-")}`, ...attrs }));
  const cardNumber = h("input", { name: "card.number", id: "f-card-number", value: TEST_CARDS[0][0], inputmode: "numeric", autocomplete: "cc-number" });

  const form = h("form", { class: "card", id: "checkout-form", novalidate: true },
    h("fieldset", {}, h("legend", {}, "Shipping address"),
      h("div", { class: "fields" },
        field("shipping_address.name", "Full name", { value: me?.name || "", autocomplete: "name" }),
        field("shipping_address.street", "Street and number", { autocomplete: "street-address" }),
        field("shipping_address.postal_code", "Postal code", { autocomplete: "postal-code" }, "w2"),
        field("shipping_address.city", "City", { autocomplete: "address-level2" }, "w4"),
        h("label", { class: "w6" }, h("span", {}, "Country"),
          h("select", { name: "shipping_address.country", id: "f-shipping_address-country" },
            COUNTRIES.map(([code, name]) => h("option", { value: code }, name)))))),
    h("fieldset", {}, h("legend", {}, "Card"),
      h("div", { class: "fields" },
        h("label", { class: "w6" }, h("span", {}, "Card number"), cardNumber),
        h("div", { class: "hints w6" }, "Test cards: ", TEST_CARDS.map(([n, what], i) => [
          i ? " · " : "",
          h("button", { type: "button", class: "btn link", title: "Use this card", onclick: () => { cardNumber.value = n; } }, n),
          ` ${what}`,
        ])),
        field("card.exp_month", "Expiry month", { value: "12", inputmode: "numeric", autocomplete: "cc-exp-month" }, "w2"),
        field("card.exp_year", "Expiry year", { value: String(year + 3), inputmode: "numeric", autocomplete: "cc-exp-year" }, "w2"),
        field("card.cvc", "CVC", { value: "123", inputmode: "numeric", autocomplete: "cc-csc" }, "w2"))));

  const messages = h("div", { id: "checkout-messages", "aria-live": "polite" });
  const button = h("button", { class: "btn", type: "submit", form: "checkout-form", id: "place-order" }, "Place order");
  const summary = h("aside", { class: "card" },
    h("h3", { style: { marginTop: 0 } }, "Order summary"),
    lines.map((l) => h("div", { class: "row between small", style: { padding: ".2rem 0" } },
      h("span", {}, `${l.quantity} × ${l.name || l.sku}`), h("span", {}, money(l.price_cents * l.quantity, l.currency)))),
    h("div", { class: "row between", style: { borderTop: "1px solid var(--line)", marginTop: ".6rem", paddingTop: ".6rem", fontWeight: "700" } },
      h("span", {}, "Total"), h("span", {}, money(cart.total(), cart.currency()))),
    h("p", { class: "muted small", style: { marginTop: ".5rem" } }, "The shop confirms prices and stock when you place the order."),
    button);
  const submit = async (e) => {
    e.preventDefault();
    if (button.disabled) return;
    button.disabled = true;
    try {
      await place(form, messages, button, signal, go);
    } finally {
      button.disabled = false;
      button.textContent = "Place order";
    }
  };
  form.addEventListener("submit", submit);

  mount(root, h("h1", {}, "Checkout"), messages, h("div", { class: "checkout" }, form, summary));
}

function read(form) {
  const v = (name) => form.elements[name].value.trim();
  const int = (name) => (/^\d+$/.test(v(name)) ? parseInt(v(name), 10) : 0);
  return {
    lines: cart.items().map((l) => ({ sku: l.sku, quantity: l.quantity })),
    shipping_address: {
      name: v("shipping_address.name"),
      street: v("shipping_address.street"),
      city: v("shipping_address.city"),
      postal_code: v("shipping_address.postal_code"),
      country: v("shipping_address.country"),
    },
    card: { number: v("card.number"), exp_month: int("card.exp_month"), exp_year: int("card.exp_year"), cvc: v("card.cvc") },
  };
}

// keyFor returns the Idempotency-Key of this submit: the stored one when
// the same order (by fingerprint) was submitted before without a final
// answer, else a fresh one.
function keyFor(body) {
  const digits = body.card.number.replace(/\D/g, "");
  const fingerprint = JSON.stringify([body.lines, body.shipping_address, digits.length, digits.slice(-4), body.card.exp_month, body.card.exp_year]);
  try {
    const stored = JSON.parse(sessionStorage.getItem(ATTEMPT) || "null");
    if (stored?.fingerprint === fingerprint) return stored.key;
  } catch { /* a bad entry is replaced */ }
  const key = newKey();
  sessionStorage.setItem(ATTEMPT, JSON.stringify({ key, fingerprint }));
  return key;
}

function forgetKey() {
  sessionStorage.removeItem(ATTEMPT);
}

async function place(form, messages, button, signal, go) {
  clearErrors(form);
  mount(messages);
  const body = read(form);
  let key = keyFor(body);
  button.textContent = "Placing order…";

  let res;
  for (let attempt = 1; ; attempt++) {
    try {
      res = await request("/api/orders", { method: "POST", body, headers: { "Idempotency-Key": key }, signal });
      break;
    } catch (err) {
      if (err.name === "AbortError") return;
      if (err.problem?.type?.endsWith("idempotency-key-reuse") && attempt === 1) {
        // The stored key was used for a different order: this is a new submit.
        forgetKey();
        key = keyFor(body);
        continue;
      }
      if (err.retryable && attempt < 4) {
        mount(messages, alert("warn", `${err.message} Trying again (attempt ${attempt + 1} of 4)…`));
        await sleep(attempt * 1000, signal);
        if (signal.aborted) return;
        continue;
      }
      showError(form, messages, err);
      return;
    }
  }

  // The order exists: whatever happens next, a new submit is a new order.
  forgetKey();
  let order = res.data;
  if (order.status === "PENDING") {
    button.textContent = "Waiting for payment…";
    mount(messages, alert("info", h("span", { class: "spinner" }), " Your order is being processed…"));
    order = await poll(order, res.headers, signal);
    if (!order) return;
  }
  if (order.status === "CONFIRMED") {
    cart.clear();
    go(`/orders/${encodeURIComponent(order.id)}?placed=1`);
    return;
  }
  if (order.status === "REJECTED") {
    mount(messages, alert("error", h("strong", {}, "Your order was not placed. "), rejection(order.reason), " ",
      h("a", { href: `#/orders/${encodeURIComponent(order.id)}` }, "See the order"), "."));
    reveal(messages);
    return;
  }
  go(`/orders/${encodeURIComponent(order.id)}`);
}

// poll waits for a PENDING order to become final, honouring Retry-After.
async function poll(order, headers, signal) {
  let wait = Math.min(5, Number(headers?.get("Retry-After")) || 1) * 1000;
  const deadline = Date.now() + 120_000;
  while (order.status === "PENDING" && Date.now() < deadline) {
    await sleep(wait, signal);
    if (signal.aborted) return null;
    try {
      const r = await request(`/api/orders/${encodeURIComponent(order.id)}`, { signal });
      order = r.data;
      wait = 1000;
    } catch (err) {
      if (err.name === "AbortError") return null;
      wait = Math.min(wait * 2, 5000); // orders is busy or down: keep asking, slower
    }
  }
  return order;
}

function clearErrors(form) {
  for (const el of form.querySelectorAll(".field-error")) el.remove();
  for (const el of form.querySelectorAll("[aria-invalid]")) el.removeAttribute("aria-invalid");
}

function showError(form, messages, err) {
  const listed = [];
  for (const [name, text] of Object.entries(err.fields)) {
    const input = form.elements[name];
    if (input) {
      input.setAttribute("aria-invalid", "true");
      input.after(h("span", { class: "field-error" }, text));
    }
    listed.push(text);
  }
  if (listed.length) {
    mount(messages, alert("error", h("strong", {}, "Please check the form."), h("ul", {}, listed.map((t) => h("li", {}, t)))));
  } else {
    mount(messages, alert("error", sentence(err.message)));
  }
  reveal(messages);
}

// reveal scrolls a message into view: the button is at the bottom of a
// long form, the message at the top.
function reveal(el) {
  window.scrollTo({ top: Math.max(0, el.getBoundingClientRect().top + window.scrollY - 80), behavior: "smooth" });
}
