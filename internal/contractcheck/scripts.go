package contractcheck

import (
	"context"
	"fmt"
	"net/http"
	"strings"
	"time"
)

// scripts walk each service's routes the way a client would, so that the
// routes that need real data (an order id, a payment, a reservation) get
// it from the routes before them, and so that the calls cause the events
// the service must publish. A script only uses the service under check
// (and users, to log in), and only through its documented routes.
var scripts = map[string]func(context.Context, *run){
	"users":         scriptUsers,
	"inventory":     scriptInventory,
	"orders":        scriptOrders,
	"payments":      scriptPayments,
	"notifications": scriptNotifications,
	"reports":       scriptReports,
}

// step calls operation key as case name, with the operation's template
// adjusted by mod. It does nothing when the document lacks the operation.
func (r *run) step(ctx context.Context, key, name string, mod func(q *request), w want) (*response, *request, bool) {
	o := r.op(key)
	if o == nil {
		return nil, nil, false
	}
	q := r.template(o)
	if mod != nil {
		mod(q)
	}
	res, passed := r.call(ctx, name, q, w)
	return res, q, passed
}

// verify records a check of what an answer says, beyond its shape.
func (r *run) verify(key, name string, good bool, detail string) {
	if good {
		r.record(key, name, Pass, 0, "")
	} else {
		r.record(key, name, Fail, 0, detail)
	}
}

func str(m map[string]any, k string) string {
	s, _ := m[k].(string)
	return s
}

func num(v any) int64 {
	f, _ := v.(float64)
	return int64(f)
}

// --- users ---

func scriptUsers(ctx context.Context, r *run) {
	r.step(ctx, "GET /.well-known/jwks.json", "the key set", nil, ok(200))
	r.step(ctx, "GET /api/users/.well-known/jwks.json", "the key set", nil, ok(200))

	const reg = "POST /api/users/register"
	res, q, registered := r.step(ctx, reg, "register a new account", nil, ok(201))
	if q == nil {
		return
	}
	email, password := q.str("email"), q.str("password")
	userID := ""
	if registered {
		userID = res.str("id")
		r.verify(reg, "the answer is the new account", strings.EqualFold(res.str("email"), email) && userID != "",
			fmt.Sprintf("answered id %q and email %q for %q", userID, res.str("email"), email))
		r.expectEvent("users.registered", reg+" (201)", true, field("email", email))
	} else {
		r.cannotCause("users.registered", "the registration failed")
	}
	r.call(ctx, "the same email again", q.clone(), refused(409))
	// The cases made from the document erase an account as the admin and
	// the customer's own (DELETE /api/users/me): each gets a real user_id
	// naming an account that nothing else erases first.
	if _, given := r.cfg.Set["user_id"]; !given {
		for _, f := range []struct{ key, name string }{
			{"DELETE /api/users/accounts/{user_id}", "an account for the admin to erase"},
			{"*", "an account for the other cases naming a user_id"},
		} {
			other := func(q *request) { q.set("email", "contract-check-"+r.gen.uniq()+"@example.com") }
			if res, _, passed := r.step(ctx, reg, f.name, other, ok(201)); passed {
				r.setFixture(f.key, "user_id", res.str("id"))
			}
		}
	}

	const login = "POST /api/users/login"
	res, _, loggedIn := r.step(ctx, login, "log in", func(q *request) { q.set("email", email).set("password", password) }, ok(200))
	access, refresh := res.str("access_token"), res.str("refresh_token")
	if loggedIn && access != "" {
		r.tokens[credCustomer] = access
	}
	r.step(ctx, login, "a wrong password", func(q *request) { q.set("email", email).set("password", "wrong "+password) }, refused(401))

	const rotate = "POST /api/users/refresh"
	if refresh != "" {
		res, _, _ := r.step(ctx, rotate, "rotate the refresh token", func(q *request) { q.set("refresh_token", refresh) }, ok(200))
		if rotated := res.str("refresh_token"); rotated != "" {
			r.step(ctx, "POST /api/users/logout", "log out", func(q *request) { q.set("refresh_token", rotated) }, ok(204))
			r.step(ctx, rotate, "a refresh token after logout", func(q *request) { q.set("refresh_token", rotated) }, refused(401))
		}
		r.step(ctx, rotate, "a spent refresh token", func(q *request) { q.set("refresh_token", refresh) }, refused(401))
	}
	r.step(ctx, rotate, "a refresh token nobody issued", nil, refused(401))

	const me = "GET /api/users/me"
	if res, _, passed := r.step(ctx, me, "the caller's profile", nil, ok(200)); passed && userID != "" {
		r.verify(me, "the profile is the caller's", res.str("id") == userID, fmt.Sprintf("id %q, registered %q", res.str("id"), userID))
	}
	name := "Contract Check " + r.gen.uniq()
	if res, _, passed := r.step(ctx, "PATCH /api/users/me", "change the name", func(q *request) { q.body = map[string]any{"name": name} }, ok(200)); passed {
		r.verify("PATCH /api/users/me", "the profile has the new name", res.str("name") == name, fmt.Sprintf("name %q, want %q", res.str("name"), name))
	}
}

// --- inventory ---

func scriptInventory(ctx context.Context, r *run) {
	const list = "GET /api/inventory/products"
	res, _, _ := r.step(ctx, list, "the first page", nil, ok(200))
	items := res.items()
	if _, given := r.cfg.Set["sku"]; !given && len(items) > 0 {
		r.setFixture("*", "sku", str(items[0], "sku"))
	}
	res, _, _ = r.step(ctx, list, "a page of one", func(q *request) { q.query.Set("limit", "1") }, ok(200))
	if tok := res.str("next_page_token"); tok != "" {
		r.step(ctx, list, "the next page", func(q *request) { q.query.Set("limit", "1"); q.query.Set("page_token", tok) }, ok(200))
	}
	if len(items) > 0 {
		word := strings.Fields(str(items[0], "name"))
		if len(word) > 0 {
			res, _, passed := r.step(ctx, list, "search", func(q *request) { q.query.Set("q", word[0]) }, ok(200))
			if passed {
				found := false
				for _, it := range res.items() {
					found = found || str(it, "sku") == str(items[0], "sku")
				}
				r.verify(list, "search finds the product named", found, fmt.Sprintf("q=%s did not list %s", word[0], str(items[0], "sku")))
			}
		}
	}

	const create = "POST /api/inventory/products"
	sku := "CC-" + strings.ToUpper(r.gen.uniq())
	res, q, created := r.step(ctx, create, "add a product", func(q *request) {
		q.set("sku", sku).set("name", "Contract Check "+sku).set("description", "made by microshop contract").
			set("price_cents", 1234.0).set("currency", "USD").set("stock", 3.0)
	}, ok(201))
	if created {
		r.setFixture("*", "sku", sku)
		r.verify(create, "the new product has its stock", num(res.get("available")) == 3, fmt.Sprintf("available %v, want 3", res.get("available")))
		r.call(ctx, "the same sku again", q.clone(), refused(409))
	}
	const one = "GET /api/inventory/products/{sku}"
	r.step(ctx, "PATCH /api/inventory/products/{sku}", "rename it", func(q *request) { q.body = map[string]any{"name": "Contract Check renamed"} }, ok(200))
	r.step(ctx, "POST /api/inventory/products/{sku}/restock", "receive units", func(q *request) { q.body = map[string]any{"quantity": 5.0} }, ok(200))
	res, _, _ = r.step(ctx, one, "one product", nil, ok(200))
	available := num(res.get("available"))
	r.step(ctx, "GET /api/inventory/stock", "every product's stock", nil, ok(200))

	r.step(ctx, "POST /internal/quotes", "price a line", nil, ok(200))
	// Reserving all but two units of the checker's own product takes it
	// below the default low-stock threshold (5).
	qty := 1.0
	if created && available > 2 {
		qty = float64(available - 2)
	}
	const reserve = "POST /internal/reservations"
	orderID := "cc-" + r.gen.uniq()
	lines := func(n float64) []any {
		s, _ := r.fixture("*", "sku")
		return []any{map[string]any{"sku": s, "quantity": n}}
	}
	_, q, reserved := r.step(ctx, reserve, "reserve stock for an order", func(q *request) { q.set("order_id", orderID).set("lines", lines(qty)) }, ok(201))
	if !reserved {
		why := "no reservation could be made"
		if has, w := r.have(credService); !has {
			why = w
		}
		r.cannotCause("inventory.reserved", why)
		r.cannotCause("inventory.released", why)
		r.cannotCause("inventory.low_stock", why)
		return
	}
	r.expectEvent("inventory.reserved", reserve+" (201)", true, field("order_id", orderID))
	if created {
		r.expectEvent("inventory.low_stock", reserve+" below the low-stock threshold", false, field("sku", sku))
	} else {
		r.cannotCause("inventory.low_stock", "no product of the checker's own to take below the threshold (needs an admin token)")
	}
	r.call(ctx, "the same order again", q.clone(), ok(200))
	other := q.clone()
	other.set("lines", lines(qty+1))
	r.call(ctx, "the same order with other lines", other, refused(409))
	if created {
		r.step(ctx, reserve, "more than is available", func(q *request) { q.set("lines", lines(1000)) }, refused(409))
	}
	commit, release := "POST /internal/reservations/{order_id}/commit", "POST /internal/reservations/{order_id}/release"
	r.setFixture(commit, "order_id", orderID)
	r.setFixture(release, "order_id", orderID)
	r.step(ctx, commit, "commit the reservation", nil, ok(200))
	r.step(ctx, commit, "commit it again", nil, ok(200))
	if _, _, passed := r.step(ctx, release, "release the committed reservation", nil, ok(200)); passed {
		r.expectEvent("inventory.released", release+" (200)", true, field("order_id", orderID))
	}
	r.step(ctx, release, "release it again", nil, ok(200))
	held := "cc-" + r.gen.uniq()
	if _, _, passed := r.step(ctx, reserve, "reserve for another order", func(q *request) { q.set("order_id", held).set("lines", lines(1)) }, ok(201)); passed {
		r.step(ctx, release, "release a held reservation", func(q *request) { q.path["order_id"] = held }, ok(200))
		r.step(ctx, commit, "commit a released reservation", func(q *request) { q.path["order_id"] = held }, refused(409))
	}
}

// --- orders ---

func scriptOrders(ctx context.Context, r *run) {
	const place, list = "POST /api/orders", "GET /api/orders"
	const get, saga, cancel = "GET /api/orders/{id}", "GET /api/orders/{id}/saga", "POST /api/orders/{id}/cancel"
	r.step(ctx, list, "the caller's orders", nil, ok(200))
	if has, _ := r.have(credAdmin); has {
		res, _, _ := r.step(ctx, list, "every customer's orders, as an admin", func(q *request) { q.query.Set("all", "true"); q.cred = credAdmin }, ok(200))
		if _, known := r.fixture("*", "sku"); !known {
			for _, o := range res.items() {
				if ls, _ := o["lines"].([]any); len(ls) > 0 {
					if l, _ := ls[0].(map[string]any); str(l, "sku") != "" {
						r.setFixture("*", "sku", str(l, "sku"))
						break
					}
				}
			}
		}
	}
	r.step(ctx, list, "every customer's orders, as a customer", func(q *request) { q.query.Set("all", "true"); q.cred = credCustomer }, refused(403))

	types := []string{"orders.confirmed", "orders.rejected", "orders.cancelled"}
	if _, known := r.fixture("*", "sku"); !known {
		why := "no sku known to order: give one with --set sku=<a product in stock>"
		r.positive[place] = true
		r.record(place, "place an order", Skip, 0, why)
		for _, t := range types {
			r.cannotCause(t, why)
		}
		return
	}
	if has, why := r.have(r.credentialFor(r.op(place))); !has {
		for _, t := range types {
			r.cannotCause(t, why)
		}
	}
	settle := func(id string, done func(status string) bool) *response {
		o := r.op(get)
		if o == nil || id == "" {
			return nil
		}
		q := r.template(o)
		q.path["id"] = id
		return r.poll(ctx, q, 15*time.Second, func(res *response) bool { return res.status == 200 && done(res.str("status")) })
	}
	final := func(s string) bool { return s != "PENDING" }

	confirmed, rejected := "", ""
	res, q, placed := r.step(ctx, place, "place an order, paid with the card that succeeds", nil, ok(201, 202))
	if placed {
		id := res.str("id")
		end := settle(id, final)
		switch status := end.str("status"); status {
		case "CONFIRMED":
			confirmed = id
			r.expectEvent("orders.confirmed", "an order that ended CONFIRMED", true, field("order_id", id))
		case "REJECTED":
			rejected = id
			r.record(place, "the order ends CONFIRMED", Warn, 0, "it ended REJECTED ("+end.str("reason")+"): is the product in stock?")
			r.expectEvent("orders.rejected", "an order that ended REJECTED", true, field("order_id", id))
		default:
			r.record(place, "the order ends CONFIRMED or REJECTED", Fail, 0, fmt.Sprintf("still %q after 15s", status))
		}
		again, _ := r.call(ctx, "the same Idempotency-Key again", q.clone(), ok(201, 202))
		if again != nil {
			r.verify(place, "the same key answers the same order", again.str("id") == id, fmt.Sprintf("first %q, then %q", id, again.str("id")))
		}
	}
	res, _, placed = r.step(ctx, place, "place an order, paid with the card that is declined", func(q *request) {
		if card, ok := q.body.(map[string]any)["card"].(map[string]any); ok {
			card["number"] = "4000 0000 0000 0002"
		}
	}, ok(201, 202))
	if placed {
		id := res.str("id")
		end := settle(id, final)
		r.verify(place, "the declined card's order ends REJECTED, payment_declined",
			end.str("status") == "REJECTED" && end.str("reason") == "payment_declined",
			fmt.Sprintf("ended %s %s", end.str("status"), end.str("reason")))
		if end.str("status") == "REJECTED" {
			rejected = id
			r.expectEvent("orders.rejected", "an order paid with the declined card", true, field("order_id", id))
		}
	}

	id := confirmed
	if id == "" {
		id = rejected
	}
	if id != "" {
		r.setFixture("*", "id", id)
		r.step(ctx, get, "the order", nil, ok(200))
		r.step(ctx, get, "another customer's order", func(q *request) { q.cred = credOther }, refused(404))
		r.step(ctx, saga, "the order's saga log", nil, ok(200))
		r.step(ctx, saga, "another customer's saga log", func(q *request) { q.cred = credOther }, refused(404))
		res, _, _ := r.step(ctx, list, "a page of one", func(q *request) { q.query.Set("limit", "1") }, ok(200))
		if tok := res.str("next_page_token"); tok != "" {
			r.step(ctx, list, "the next page", func(q *request) { q.query.Set("limit", "1"); q.query.Set("page_token", tok) }, ok(200))
		}
	}
	if rejected != "" {
		r.step(ctx, cancel, "cancel a rejected order", func(q *request) { q.path["id"] = rejected }, refused(409))
	}
	if confirmed == "" {
		r.cannotCause("orders.cancelled", "no order ended CONFIRMED to cancel")
		return
	}
	r.step(ctx, cancel, "another customer's order", func(q *request) { q.path["id"] = confirmed; q.cred = credOther }, refused(404))
	if res, _, passed := r.step(ctx, cancel, "cancel a confirmed order", func(q *request) { q.path["id"] = confirmed }, ok(200, 202)); passed {
		end := res
		if res.status == http.StatusAccepted {
			end = settle(confirmed, func(s string) bool { return s == "CANCELLED" })
		}
		r.verify(cancel, "the order ends CANCELLED", end.str("status") == "CANCELLED", fmt.Sprintf("it is %s", end.str("status")))
		r.expectEvent("orders.cancelled", cancel+" of a confirmed order", true, field("order_id", confirmed))
	}
}

// --- payments ---

func scriptPayments(ctx context.Context, r *run) {
	const authorize, capture, refund = "POST /internal/payments/authorize", "POST /internal/payments/{id}/capture", "POST /internal/payments/{id}/refund"
	const void, byOrder = "POST /internal/payments/void", "GET /internal/payments"
	const list, ledger, one = "GET /api/payments", "GET /api/payments/ledger", "GET /api/payments/{id}"
	types := []string{"payments.captured", "payments.refunded", "payments.failed"}

	order := "cc-" + r.gen.uniq()
	paymentID := ""
	res, q, authorized := r.step(ctx, authorize, "authorize a payment", func(q *request) { q.set("order_id", order) }, ok(201))
	if !authorized {
		why := "no payment could be authorized"
		if has, w := r.have(credService); !has {
			why = w
		}
		for _, t := range types {
			r.cannotCause(t, why)
		}
	} else {
		paymentID = res.str("id")
		r.setFixture("*", "id", paymentID)
		r.setFixture("*", "order_id", order)
		again, _ := r.call(ctx, "the same Idempotency-Key again", q.clone(), ok(201))
		if again != nil {
			r.verify(authorize, "the same key answers the same payment, marked replayed",
				again.str("id") == paymentID && again.header.Get("Idempotent-Replayed") == "true",
				fmt.Sprintf("id %q (first %q), Idempotent-Replayed %q", again.str("id"), paymentID, again.header.Get("Idempotent-Replayed")))
		}
		other := q.clone()
		other.set("amount_cents", 1600.0)
		r.call(ctx, "the same key with another request", other, refused(422))

		if _, _, passed := r.step(ctx, capture, "capture it", nil, ok(200)); passed {
			r.expectEvent("payments.captured", capture+" (200)", true, field("payment_id", paymentID))
			r.step(ctx, capture, "capture it again under another key", nil, refused(409))
			if _, _, passed := r.step(ctx, refund, "refund part of it", func(q *request) { q.body = map[string]any{"amount_cents": 500.0} }, ok(200)); passed {
				r.expectEvent("payments.refunded", refund+" (200)", true, field("payment_id", paymentID))
			}
			r.step(ctx, refund, "refund more than was captured", func(q *request) { q.body = map[string]any{"amount_cents": 1000000.0} }, refused(422))
		}
		declined := "cc-" + r.gen.uniq()
		if _, _, passed := r.step(ctx, authorize, "authorize the card that is declined", func(q *request) {
			q.set("order_id", declined)
			if card, ok := q.body.(map[string]any)["card"].(map[string]any); ok {
				card["number"] = "4000 0000 0000 0002"
			}
		}, ok(402)); passed {
			r.expectEvent("payments.failed", authorize+" declined (402)", true, field("order_id", declined))
		}
		res, _, passed := r.step(ctx, byOrder, "an order's payments", func(q *request) { q.query.Set("order_id", order) }, ok(200))
		if passed {
			found := false
			for _, p := range res.items() {
				found = found || str(p, "id") == paymentID
			}
			r.verify(byOrder, "the order's payments list the payment", found, "payment "+paymentID+" is not listed")
		}
		voided := "cc-" + r.gen.uniq()
		if _, _, passed := r.step(ctx, authorize, "authorize another order", func(q *request) { q.set("order_id", voided) }, ok(201)); passed {
			r.step(ctx, void, "void the order's payments", func(q *request) { q.set("order_id", voided) }, ok(200))
			r.step(ctx, authorize, "authorize a voided order", func(q *request) { q.set("order_id", voided) }, refused(409))
		}
	}

	res, _, _ = r.step(ctx, list, "the newest payments", nil, ok(200))
	if paymentID == "" {
		if items := res.items(); len(items) > 0 {
			paymentID = str(items[0], "id")
			r.setFixture("*", "id", paymentID)
			r.setFixture("*", "order_id", str(items[0], "order_id"))
		}
	}
	res, _, _ = r.step(ctx, list, "a page of one", func(q *request) { q.query.Set("limit", "1") }, ok(200))
	if tok := res.str("next_page_token"); tok != "" {
		r.step(ctx, list, "the next page", func(q *request) { q.query.Set("limit", "1"); q.query.Set("page_token", tok) }, ok(200))
	}
	if o, ok2 := r.fixture("*", "order_id"); ok2 {
		r.step(ctx, list, "one order's payments", func(q *request) { q.query.Set("order_id", o) }, ok(200))
	}
	res, _, passed := r.step(ctx, ledger, "the ledger", nil, ok(200))
	if passed {
		r.verify(ledger, "the books balance", res.get("balanced") == true, fmt.Sprintf("balanced %v, total_cents %v", res.get("balanced"), res.get("total_cents")))
	}
	if paymentID != "" {
		r.step(ctx, ledger, "one payment's entries", func(q *request) { q.query.Set("payment_id", paymentID) }, ok(200))
		r.step(ctx, one, "one payment", nil, ok(200))
	}
}

// --- notifications ---

func scriptNotifications(ctx context.Context, r *run) {
	const hooks, hook = "POST /api/notifications/webhooks", "DELETE /api/notifications/webhooks/{id}"
	const listHooks, deliveries = "GET /api/notifications/webhooks", "GET /api/notifications/deliveries"
	const delivery, replay = "GET /api/notifications/deliveries/{id}", "POST /api/notifications/deliveries/{id}/replay"
	if _, given := r.cfg.Set["event_type"]; !given {
		r.setFixture("*", "event_type", "users.registered")
	}
	res, _, created := r.step(ctx, hooks, "register a webhook endpoint", func(q *request) {
		q.set("event_types", []any{"users.registered", "orders.confirmed"}).set("description", "microshop contract check")
	}, ok(201))
	if created {
		id := res.str("id")
		r.verify(hooks, "the answer shows the signing secret", res.str("secret") != "", "no secret in the answer to POST")
		if res, _, passed := r.step(ctx, listHooks, "the endpoints", nil, ok(200)); passed {
			found, secret := false, false
			for _, h := range res.items() {
				if str(h, "id") == id {
					found, secret = true, str(h, "secret") != ""
				}
			}
			r.verify(listHooks, "the list has the endpoint, without its secret", found && !secret, fmt.Sprintf("listed %v, secret shown %v", found, secret))
		}
		r.setFixture(hook, "id", id)
		r.step(ctx, hook, "delete it", nil, ok(204))
		r.step(ctx, hook, "delete it again", nil, refused(404))
	} else {
		r.step(ctx, listHooks, "the endpoints", nil, ok(200))
	}

	// Deliveries come from events: wait a little for one that has been
	// tried (the customer the checker registered makes one).
	var items []map[string]any
	if o := r.op(deliveries); o != nil {
		if has, _ := r.have(credAdmin); has {
			r.poll(ctx, r.template(o), 5*time.Second, func(res *response) bool {
				for _, d := range res.items() {
					if str(d, "status") != "pending" {
						return true
					}
				}
				return false
			})
		}
	}
	res, _, _ = r.step(ctx, deliveries, "the deliveries", nil, ok(200))
	items = res.items()
	res, _, _ = r.step(ctx, deliveries, "a page of one", func(q *request) { q.query.Set("limit", "1") }, ok(200))
	if tok := res.str("next_page_token"); tok != "" {
		r.step(ctx, deliveries, "the next page", func(q *request) { q.query.Set("limit", "1"); q.query.Set("page_token", tok) }, ok(200))
	}
	r.step(ctx, deliveries, "filtered by event type and status", func(q *request) {
		q.query.Set("event_type", "users.registered")
		q.query.Set("status", "failed")
	}, ok(200))
	if len(items) == 0 {
		why := "no delivery to read: notifications has handled no event yet"
		r.record(delivery, "one delivery", Skip, 0, why)
		r.record(replay, "replay a delivery", Skip, 0, why)
		return
	}
	r.setFixture(delivery, "id", str(items[0], "id"))
	r.step(ctx, delivery, "one delivery", nil, ok(200))
	target := ""
	for _, d := range items {
		if str(d, "status") != "pending" {
			target = str(d, "id")
			break
		}
	}
	if target == "" {
		r.record(replay, "replay a delivery", Skip, 0, "every delivery is still pending, and only a tried one may be replayed")
		r.setFixture(replay, "id", str(items[0], "id"))
		r.step(ctx, replay, "replay a pending delivery", nil, refused(409))
		return
	}
	r.setFixture(replay, "id", target)
	r.step(ctx, replay, "replay a tried delivery", nil, ok(200))
	// 409 while it is still pending; the dispatcher may have tried it
	// again already, and then it is replayed again (200).
	r.step(ctx, replay, "replay it again at once", nil, ok(409, 200))
}

// --- reports ---

func scriptReports(ctx context.Context, r *run) {
	const sales, top, summary, low, rebuild = "GET /api/reports/sales", "GET /api/reports/top-products",
		"GET /api/reports/summary", "GET /api/reports/low-stock", "GET /api/reports/rebuild"
	now := time.Now().UTC()
	for _, key := range []string{sales, top, summary, low} {
		r.step(ctx, key, "as JSON", nil, ok(200))
		r.step(ctx, key, "as CSV (format=csv)", func(q *request) { q.query.Set("format", "csv") }, ok(200))
		r.step(ctx, key, "as CSV (Accept: text/csv)", func(q *request) { q.header.Set("Accept", "text/csv") }, ok(200))
	}
	r.step(ctx, sales, "by hour over a day", func(q *request) {
		q.query.Set("bucket", "hour")
		q.query.Set("from", now.Add(-24*time.Hour).Format(time.RFC3339))
		q.query.Set("to", now.Format(time.RFC3339))
	}, ok(200))
	r.step(ctx, sales, "by week, dates only", func(q *request) {
		q.query.Set("bucket", "week")
		q.query.Set("from", now.AddDate(0, 0, -28).Format(time.DateOnly))
		q.query.Set("to", now.Format(time.DateOnly))
	}, ok(200))
	r.step(ctx, top, "the top three", func(q *request) { q.query.Set("limit", "3") }, ok(200))
	r.step(ctx, low, "the last alert", func(q *request) { q.query.Set("limit", "1") }, ok(200))
	r.step(ctx, rebuild, "the latest rebuild", nil, ok(200))
	if _, _, started := r.step(ctx, "POST /api/reports/rebuild", "start a rebuild", nil, ok(202, 409)); started {
		r.step(ctx, "POST /api/reports/rebuild", "another while one may run", nil, ok(202, 409))
		r.step(ctx, rebuild, "the rebuild's progress", nil, ok(200))
	}
}
