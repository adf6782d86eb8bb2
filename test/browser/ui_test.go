package browser

import (
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/microshop/microshop/test/systemtest"
)

// TestWebUI runs the system once and uses it through the UI as a new
// customer, a customer whose card is declined, and an admin.
func TestWebUI(t *testing.T) {
	b := startBrowser(t)
	s := systemtest.Start(t, systemtest.ShopEnv()...)

	var orderID string
	t.Run("a customer registers, searches, checks out, sees the order confirmed and in the history, and cancels it", func(t *testing.T) {
		p := b.open(t, s.Gateway)
		p.visit("/")
		p.waitFor("the catalog", `document.querySelectorAll(".product").length > 0`, 15*time.Second)
		p.keep("storefront")

		register(p, "Grace Hopper", "grace@example.com", "compiler compiler")
		if got := p.text("#account .who"); got != "Grace Hopper" {
			t.Errorf("the header shows %q, want the customer's name", got)
		}

		// Search, and put the first two results in the cart.
		p.visit("/")
		p.fill(`input[name=q]`, "mug\n")
		p.waitText("main h1", "Results for “mug”", 10*time.Second)
		p.waitFor("two results", `document.querySelectorAll(".product").length >= 2`, 10*time.Second)
		skus := js[[]string](p, `[...document.querySelectorAll(".product")].slice(0, 2).map((el) => el.dataset.sku)`)
		for _, sku := range skus {
			p.click(fmt.Sprintf(`.product[data-sku=%q] button.add`, sku))
		}
		p.waitText("#cart-count", "2", 5*time.Second)

		p.click(".cart-link")
		p.waitFor("two lines in the cart", `document.querySelectorAll("tr[data-sku]").length === 2`, 10*time.Second)
		p.keep("cart")
		p.click("#checkout")

		// The card form comes with the test card that is approved.
		p.waitFor("the checkout form", `document.querySelector("#f-card-number")`, 10*time.Second)
		if got := js[string](p, `document.querySelector("#f-card-number").value`); got != "4242 4242 4242 4242" {
			t.Errorf("the card number is %q, want the test card 4242 4242 4242 4242", got)
		}
		if hints := p.text(".hints"); !strings.Contains(hints, "4000 0000 0000 0002") {
			t.Errorf("the other test cards are not shown as hints: %q", hints)
		}
		fillAddress(p)
		p.keep("checkout")
		p.click("#place-order")

		p.waitText("#order-status", "CONFIRMED", 30*time.Second)
		orderID = js[string](p, `decodeURIComponent(location.hash.match(/^#\/orders\/([^?]+)/)[1])`)
		if orderID == "" {
			t.Fatalf("no order id in %s", p.location())
		}
		p.waitText("#cart-count", "0", 5*time.Second) // the cart is emptied once the order is confirmed
		p.keep("order-confirmed")

		// The order history has it, confirmed.
		p.click(`a[data-nav=orders]`)
		p.waitText(fmt.Sprintf(`#orders tr[data-order=%q]`, orderID), "CONFIRMED", 10*time.Second)
		p.keep("order-history")

		// Cancelling refunds it; the history says so.
		p.click(fmt.Sprintf(`#orders tr[data-order=%q] a`, orderID))
		p.click("#cancel-order")
		p.click("#confirm-cancel")
		p.waitText("#order-status", "CANCELLED", 30*time.Second)
		if msg := p.text("main .alert"); !strings.Contains(msg, "refunded") {
			t.Errorf("after cancelling the page says %q; want it to say the payment was refunded", msg)
		}
		p.click(`a[data-nav=orders]`)
		p.waitText(fmt.Sprintf(`#orders tr[data-order=%q]`, orderID), "CANCELLED", 10*time.Second)
	})

	t.Run("a declined card is told in a sentence, not JSON", func(t *testing.T) {
		p := b.open(t, s.Gateway)
		p.visit("/")
		register(p, "Alan Turing", "alan@example.com", "universal machine")
		p.visit("/#/product/MUG-CERAMIC-12")
		p.click("button.add")
		p.waitText("#cart-count", "1", 5*time.Second)
		p.visit("/#/checkout")
		p.waitFor("the checkout form", `document.querySelector("#f-card-number")`, 10*time.Second)

		// A form the API refuses: each field's reason as a sentence.
		p.fill("#f-card-cvc", "1")
		p.click("#place-order")
		p.waitFor("the form's errors", `document.querySelector("#checkout-messages .alert.error")`, 15*time.Second)
		msg := p.text("#checkout-messages")
		for _, want := range []string{"Street is required.", "CVC must be 3 digits."} {
			if !strings.Contains(msg, want) {
				t.Errorf("the form's errors %q lack %q", msg, want)
			}
		}
		if looksRaw(msg) {
			t.Errorf("the form's errors look like raw API output: %q", msg)
		}

		fillAddress(p)
		p.fill("#f-card-cvc", "123")
		p.click(`.hints button[title="Use this card"]:nth-of-type(2)`)
		if got := js[string](p, `document.querySelector("#f-card-number").value`); got != "4000 0000 0000 0002" {
			t.Fatalf("the declined test card's hint set the number to %q", got)
		}
		p.click("#place-order")
		p.waitText("#checkout-messages .alert.error", "declined", 30*time.Second)
		msg = p.text("#checkout-messages .alert.error")
		if looksRaw(msg) || !strings.Contains(msg, "Your card was declined, so nothing was charged.") {
			t.Errorf("the decline reads %q; want a sentence saying the card was declined", msg)
		}
		if got := p.text("#cart-count"); got != "1" {
			t.Errorf("the cart has %s items after a decline, want it kept (1) to try another card", got)
		}
		p.keep("checkout-declined")
	})

	t.Run("an admin sees every service ready and the saga of the checkout and its cancel", func(t *testing.T) {
		if orderID == "" {
			t.Skip("the checkout did not happen")
		}
		p := b.open(t, s.Gateway)
		signIn(p, systemtest.AdminEmail, systemtest.AdminPassword)
		p.waitFor("the console link", `!document.querySelector("a[data-nav=console]").hidden`, 10*time.Second)
		p.click("a[data-nav=console]")

		for _, name := range runningServices(t, s) {
			p.waitFor(name+" ready on the services panel",
				fmt.Sprintf(`document.querySelector('#services [data-service=%q][data-status="ready"]')`, name), 10*time.Second)
		}
		p.keep("console-services")

		p.click(`.console-nav a[href="#/console/sagas"]`)
		p.waitFor("the checkout among all orders", fmt.Sprintf(`document.querySelector('#saga-orders tr[data-order=%q]')`, orderID), 10*time.Second)
		p.click(fmt.Sprintf(`#saga-orders tr[data-order=%q] a`, orderID))
		p.waitFor("the saga's steps", `document.querySelector('#saga-steps li[data-step="refund"][data-event="succeeded"]')`, 10*time.Second)
		steps := js[[]string](p, `[...document.querySelectorAll("#saga-steps li")].map((li) => li.dataset.step + " " + li.dataset.event)`)
		for _, want := range []string{"reserve succeeded", "authorize succeeded", "commit succeeded", "capture succeeded", "refund succeeded"} {
			if !slices.Contains(steps, want) {
				t.Errorf("the saga shows %v; it lacks %q", steps, want)
			}
		}
		p.keep("console-saga")
	})

	t.Run("an admin opens the mailbox", func(t *testing.T) {
		p := b.open(t, s.Gateway)
		signIn(p, systemtest.AdminEmail, systemtest.AdminPassword)
		p.visit("/#/console/mailbox")
		p.waitFor("the mailbox list", `document.querySelector("#mailbox table, #mailbox-empty")`, 15*time.Second)
		if n := js[int](p, `document.querySelectorAll("#mailbox tr[data-message]").length`); n > 0 {
			p.click("#mailbox tr[data-message] a")
			p.waitFor("the message", `document.querySelector("#mail-message")`, 10*time.Second)
			// An HTML body is shown only in a frame that may do nothing.
			if frames := js[[]string](p, `[...document.querySelectorAll("#mail-message iframe")].map((f) => f.getAttribute("sandbox"))`); len(frames) > 0 && frames[0] != "" {
				t.Errorf("the message's frame has sandbox=%q, want an empty sandbox (no permissions)", frames[0])
			}
		}
		if msg := p.text("main .alert.error"); msg != "" {
			t.Errorf("the mailbox shows an error: %q", msg)
		}
		p.keep("console-mailbox")
	})

	t.Run("the telemetry pages show the checkout's services and a trace", func(t *testing.T) {
		if orderID == "" {
			t.Skip("the checkout did not happen")
		}
		p := b.open(t, s.Gateway)
		signIn(p, systemtest.AdminEmail, systemtest.AdminPassword)
		p.visit("/#/console/map")
		// Spans reach the collector in batches: give it a few seconds.
		p.waitFor("gateway → orders on the service map",
			`document.querySelector('#service-map .node[data-service="orders"]') && document.querySelector('#service-map .edge-group[data-from="gateway"][data-to="orders"]')`,
			20*time.Second)
		p.keep("console-map")

		p.visit("/#/console/traces?service=orders")
		p.waitFor("a trace through orders", `document.querySelector("#traces tr[data-trace]")`, 20*time.Second)
		p.click("#traces tr[data-trace] a")
		p.waitFor("the trace's waterfall", `document.querySelectorAll("#trace .wf-row[data-span]").length >= 3`, 10*time.Second)
		p.keep("console-trace")
	})

	t.Run("sections of services that are down say so", func(t *testing.T) {
		p := b.open(t, s.Gateway)
		signIn(p, systemtest.AdminEmail, systemtest.AdminPassword)
		// The browser answers for these services as the gateway does when
		// they are not running (503 naming them) or not routed (404).
		answerFor(t, p, map[string]answer{
			"/api/notifications/": {503, `{"type":"https://microshop.dev/problems/unavailable","title":"Service unavailable","status":503,"detail":"the notifications service is unavailable; try again shortly","service":"notifications"}`},
			"/api/reports/":       {503, `{"type":"https://microshop.dev/problems/unavailable","title":"Service unavailable","status":503,"detail":"the reports service is unavailable; try again shortly","service":"reports"}`},
			"/api/telemetry/":     {404, `{"type":"https://microshop.dev/problems/not-found","title":"Not found","status":404,"detail":"there is no service named \"telemetry\"; the API is under /api/<service>/"}`},
		})
		for _, c := range []struct{ route, service, want string }{
			{"/#/console/deliveries", "notifications", "Notifications is not running."},
			{"/#/console/reports", "reports", "Reports is not running."},
			{"/#/console/map", "telemetry", "Telemetry is not available yet."},
			{"/#/console/traces", "telemetry", "Telemetry is not available yet."},
		} {
			p.visit(c.route)
			p.waitText(fmt.Sprintf(`[data-unavailable=%q]`, c.service), c.want, 10*time.Second)
		}
	})

	t.Run("the reports page draws the reports' figures as bar charts", func(t *testing.T) {
		p := b.open(t, s.Gateway)
		signIn(p, systemtest.AdminEmail, systemtest.AdminPassword)
		// Figures in the shapes of services/reports/contract, so the charts
		// are checked whatever the read model holds right now.
		answerFor(t, p, map[string]answer{
			"/api/reports/summary": {200, `{"currency":"USD","orders_confirmed":9,"orders_rejected":2,"orders_cancelled":1,"revenue_cents":41200,"refunds_cents":1400,"net_cents":39800}`},
			"/api/reports/sales": {200, `{"bucket":"day","currency":"USD","buckets":[` +
				`{"start":"2026-11-24T00:00:00Z","orders":1,"revenue_cents":1400,"refunds_cents":0,"net_cents":1400},` +
				`{"start":"2026-11-25T00:00:00Z","orders":0,"revenue_cents":0,"refunds_cents":0,"net_cents":0},` +
				`{"start":"2026-11-26T00:00:00Z","orders":3,"revenue_cents":12600,"refunds_cents":0,"net_cents":12600},` +
				`{"start":"2026-11-27T00:00:00Z","orders":2,"revenue_cents":9900,"refunds_cents":1400,"net_cents":8500},` +
				`{"start":"2026-11-28T00:00:00Z","orders":3,"revenue_cents":17300,"refunds_cents":0,"net_cents":17300}],` +
				`"totals":{"orders":9,"revenue_cents":41200,"refunds_cents":1400,"net_cents":39800}}`},
			"/api/reports/top-products": {200, `{"currency":"USD","items":[` +
				`{"sku":"MUG-CERAMIC-12","units":12,"cancelled_units":1,"revenue_cents":16800},` +
				`{"sku":"TEA-SENCHA-100","units":7,"cancelled_units":0,"revenue_cents":10500},` +
				`{"sku":"NO-SUCH-SKU","units":2,"cancelled_units":0,"revenue_cents":3000}]}`},
		})
		p.visit("/#/console/reports")
		p.waitFor("the charts", `document.querySelector("#chart-top-units")`, 10*time.Second)
		if n := js[int](p, `document.querySelectorAll("#chart-revenue rect.bar").length`); n != 5 {
			t.Errorf("the revenue chart has %d bars, want one per day (5)", n)
		}
		label := js[string](p, `document.querySelector("#chart-top-units").getAttribute("aria-label")`)
		if !strings.Contains(label, "Ceramic Coffee Mug, 12 oz: 12") || !strings.Contains(label, "NO-SUCH-SKU: 2") {
			t.Errorf("the top products chart says %q; want catalog names (or the sku) and units", label)
		}
		if got := p.text("#reports-summary"); !strings.Contains(got, "$412.00") {
			t.Errorf("the summary %q lacks the revenue $412.00", got)
		}
		p.keep("console-reports-charts")
	})

	t.Run("reports and deliveries show figures or say the service is not running", func(t *testing.T) {
		p := b.open(t, s.Gateway)
		signIn(p, systemtest.AdminEmail, systemtest.AdminPassword)
		p.visit("/#/console/reports")
		p.waitFor("the reports", `document.querySelector("#reports-sales svg, #reports-sales .empty, [data-unavailable]")`, 15*time.Second)
		p.keep("console-reports")
		p.visit("/#/console/deliveries")
		p.waitFor("the deliveries", `document.querySelector("#deliveries table, #deliveries .empty, [data-unavailable]")`, 15*time.Second)
		if msg := p.text("main .alert.error"); looksRaw(msg) {
			t.Errorf("the page shows %q", msg)
		}
	})
}

// register creates an account through the register page; the UI signs in.
func register(p *page, name, email, password string) {
	p.t.Helper()
	p.visit("/#/register")
	p.fill("#register-name", name)
	p.fill("#register-email", email)
	p.fill("#register-password", password)
	p.click("#register-submit")
	p.waitText("#account .who", name, 10*time.Second)
}

// signIn signs in through the login page.
func signIn(p *page, email, password string) {
	p.t.Helper()
	p.visit("/#/login")
	p.fill("#login-email", email)
	p.fill("#login-password", password)
	p.click("#login-submit")
	p.waitFor("signing in", `document.querySelector("#account .who")`, 10*time.Second)
}

func fillAddress(p *page) {
	p.t.Helper()
	p.fill("#f-shipping_address-street", "1 Analytical Way")
	p.fill("#f-shipping_address-postal_code", "N1 7AA")
	p.fill("#f-shipping_address-city", "London")
	p.do("choosing the country", chromedp.SetValue(chromedp.CSS("#f-shipping_address-country"), "GB"))
}
