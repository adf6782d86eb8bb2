// The one way the UI calls the API: same origin, through the gateway.
//
// Tokens live in sessionStorage (one tab's session; closing it signs out).
// An access token that has expired is refreshed once with the refresh
// token (POST /api/users/refresh) and the call is repeated; if that fails
// the session ends and the page asks the person to sign in again.
//
// Errors come back as ApiError, whose message is a sentence for people,
// made from the problem+json the API answers (detail, errors[].reason).

const TOKENS = "microshop.tokens";

export class ApiError extends Error {
  constructor(message, { status = 0, problem = null, network = false } = {}) {
    super(message);
    this.name = "ApiError";
    this.status = status;
    this.problem = problem;
    this.network = network;
    // fields maps a request field ("card.number") to its sentence.
    this.fields = {};
    for (const e of problem?.errors || []) {
      if (e.field) this.fields[e.field] = fieldSentence(e.field, e.reason);
    }
  }

  // unavailable says the service behind the route is not there: down
  // (503 naming it), not routed by the gateway at all, or without the
  // route yet (404). Pages for optional services show a note instead.
  get unavailable() {
    return this.network || this.status === 404 || this.status === 502 || this.status === 503 || this.status === 504;
  }

  get retryable() {
    return this.network || this.status === 502 || this.status === 503 || this.status === 504 || this.status === 429;
  }
}

// ---- tokens -----------------------------------------------------------

export function tokens() {
  try {
    return JSON.parse(sessionStorage.getItem(TOKENS) || "null");
  } catch {
    return null;
  }
}

export function setTokens(t) {
  if (t) {
    sessionStorage.setItem(TOKENS, JSON.stringify({ access_token: t.access_token, refresh_token: t.refresh_token }));
  } else {
    sessionStorage.removeItem(TOKENS);
  }
  window.dispatchEvent(new CustomEvent("microshop:tokens"));
}

// expiresSoon reads the access token's own expiry (the JWT's exp claim),
// so a token about to lapse is refreshed before the call, not after a 401.
function expiresSoon(token) {
  try {
    const body = token.split(".")[1].replace(/-/g, "+").replace(/_/g, "/");
    const { exp } = JSON.parse(atob(body));
    return typeof exp === "number" && exp * 1000 < Date.now() + 10_000;
  } catch {
    return false;
  }
}

let refreshing = null;

// refresh trades the refresh token for new tokens, once for all callers
// that need it at the same moment (refresh tokens rotate: a second use of
// the same one would end the session).
export function refresh() {
  refreshing ??= (async () => {
    const t = tokens();
    if (!t?.refresh_token) return false;
    try {
      const res = await fetch("/api/users/refresh", {
        method: "POST",
        headers: { "Content-Type": "application/json", Accept: "application/json" },
        body: JSON.stringify({ refresh_token: t.refresh_token }),
      });
      if (!res.ok) {
        if (res.status === 401 || res.status === 422) setTokens(null);
        return false;
      }
      setTokens(await res.json());
      return true;
    } catch {
      return false; // offline: keep the tokens, the next call tries again
    }
  })().finally(() => { refreshing = null; });
  return refreshing;
}

// ---- calls ------------------------------------------------------------

// request calls the API and answers {status, headers, data}. Options:
// method, body (sent as JSON), headers, signal, auth (send the access
// token; default true when there is one).
export async function request(path, opts = {}) {
  const { method = "GET", body, headers = {}, signal, auth = true } = opts;
  let t = auth ? tokens() : null;
  if (t && expiresSoon(t.access_token)) {
    await refresh();
    t = tokens();
    if (!t) sessionEnded(null);
  }
  let res = await send(path, method, body, headers, signal, t);
  if (res.status === 401 && t) {
    const p = await readBody(res.clone());
    if (/expired/i.test(p?.detail || "") && (await refresh())) {
      res = await send(path, method, body, headers, signal, tokens());
    } else {
      sessionEnded(p);
    }
  }
  const data = await readBody(res);
  if (res.status === 401 && auth) {
    // A route that needs a token, called without one: say so in words,
    // not with the API's "Authorization: Bearer" hint for programmers.
    throw new ApiError("Please sign in to continue.", { status: 401, problem: data });
  }
  if (!res.ok) throw errorFrom(res.status, data);
  return { status: res.status, headers: res.headers, data };
}

function sessionEnded(problem) {
  setTokens(null);
  window.dispatchEvent(new CustomEvent("microshop:signed-out"));
  throw new ApiError("Your session has ended. Please sign in again.", { status: 401, problem });
}

// api is request for callers that want only the answer's body.
export async function api(path, opts) {
  return (await request(path, opts)).data;
}

async function send(path, method, body, headers, signal, t) {
  const h = { Accept: "application/json", ...headers };
  if (body !== undefined) h["Content-Type"] = "application/json";
  if (t?.access_token) h.Authorization = `Bearer ${t.access_token}`;
  try {
    return await fetch(path, { method, headers: h, body: body === undefined ? undefined : JSON.stringify(body), signal, cache: "no-store" });
  } catch (err) {
    if (err.name === "AbortError") throw err;
    throw new ApiError("The shop cannot be reached right now. Check your connection and try again.", { network: true });
  }
}

async function readBody(res) {
  if (res.status === 204) return null;
  const text = await res.text();
  if (!text) return null;
  if (/json/.test(res.headers.get("Content-Type") || "")) {
    try {
      return JSON.parse(text);
    } catch {
      return null;
    }
  }
  return null; // never show a body we do not understand
}

// ---- sentences ------------------------------------------------------------

const FIELD_NAMES = {
  email: "Email",
  password: "Password",
  name: "Name",
  "shipping_address.name": "Name",
  "shipping_address.street": "Street",
  "shipping_address.city": "City",
  "shipping_address.postal_code": "Postal code",
  "shipping_address.country": "Country",
  "card.number": "Card number",
  "card.exp_month": "Expiry month",
  "card.exp_year": "Expiry year",
  "card.cvc": "CVC",
  lines: "Your cart",
  q: "The search",
  limit: "The page size",
  page_token: "The page link",
};

export function fieldSentence(field, reason) {
  const name = FIELD_NAMES[field] || humanize(field.split(".").pop() || "This field");
  return sentence(`${name} ${reason || "is not valid"}`);
}

function humanize(s) {
  s = s.replace(/[_-]+/g, " ").replace(/\[\d+\]/g, "");
  return s.charAt(0).toUpperCase() + s.slice(1);
}

// sentence makes a problem's detail read as a sentence: a capital first
// letter and a full stop.
export function sentence(s) {
  s = String(s || "").trim();
  if (!s) return "";
  s = s.charAt(0).toUpperCase() + s.slice(1);
  return /[.!?]$/.test(s) ? s : s + ".";
}

const BY_STATUS = {
  400: "The request was not understood.",
  401: "Please sign in first.",
  403: "You do not have access to this.",
  404: "That could not be found.",
  409: "That cannot be done in the current state.",
  413: "That is too large to send.",
  422: "Some of what you entered is not valid.",
  429: "Too many requests. Please wait a moment and try again.",
};

function errorFrom(status, p) {
  let msg;
  const reasons = (p?.errors || []).filter((e) => e.field || e.reason).map((e) => fieldSentence(e.field || "", e.reason));
  if (reasons.length) {
    msg = reasons.join(" ");
  } else if (p?.detail) {
    msg = sentence(p.detail);
  } else if (status >= 500) {
    msg = p?.service
      ? `The ${p.service} service is not available right now. Please try again shortly.`
      : "Something went wrong on our side. Please try again in a moment.";
  } else {
    msg = BY_STATUS[status] || "The request failed. Please try again.";
  }
  return new ApiError(msg, { status, problem: p });
}

// rejection says, for a customer, why an order was REJECTED.
export function rejection(reason) {
  switch (reason) {
    case "payment_declined":
      return "Your card was declined, so nothing was charged. Please try another card.";
    case "out_of_stock":
      return "Some of the items are no longer in stock, so nothing was charged. Please change your cart and try again.";
    case "payment_unavailable":
      return "The payment could not be completed in time, so nothing was charged. Please try again in a moment.";
    case "inventory_unavailable":
      return "The stock could not be checked in time, so nothing was charged. Please try again in a moment.";
    case "reservation_expired":
      return "The items were held too long before payment, so nothing was charged. Please place the order again.";
    case "interrupted":
      return "The order was interrupted before your card was charged, so nothing was charged. Please place it again.";
    default:
      return `The order could not be completed${reason ? ` (${reason.replace(/_/g, " ")})` : ""}, and nothing was charged.`;
  }
}

// reasonShort names a rejection reason in a few words, for tables.
export function reasonShort(reason) {
  return {
    payment_declined: "Card declined",
    out_of_stock: "Out of stock",
    payment_unavailable: "Payment timed out",
    inventory_unavailable: "Stock check timed out",
    reservation_expired: "Reservation expired",
    interrupted: "Interrupted",
  }[reason] || (reason || "").replace(/_/g, " ");
}

// newKey makes an Idempotency-Key. crypto.randomUUID needs a secure
// context (https or localhost); on plain http elsewhere, build a v4 UUID
// from getRandomValues, which is always there.
export function newKey() {
  if (crypto.randomUUID) return crypto.randomUUID();
  const b = crypto.getRandomValues(new Uint8Array(16));
  b[6] = (b[6] & 0x0f) | 0x40;
  b[8] = (b[8] & 0x3f) | 0x80;
  const hex = [...b].map((x) => x.toString(16).padStart(2, "0")).join("");
  return `${hex.slice(0, 8)}-${hex.slice(8, 12)}-${hex.slice(12, 16)}-${hex.slice(16, 20)}-${hex.slice(20)}`;
}
