package browser

import (
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/chromedp/chromedp"

	"github.com/microshop/microshop/test/systemtest"
)

// TestStorefront runs the system once for the storefront's promises to
// a customer on a phone, to people who share a browser, and about money.
func TestStorefront(t *testing.T) {
	b := startBrowser(t)
	s := systemtest.Start(t, systemtest.ShopEnv()...)

	t.Run("on a phone nothing is wider than the screen and every header link shows whole on one line", func(t *testing.T) {
		for _, width := range []int64{360, 390} {
			t.Run(fmt.Sprint(width), func(t *testing.T) {
				p := b.open(t, s.Gateway)
				p.do("emulating a phone", chromedp.EmulateViewport(width, 780, chromedp.EmulateMobile))
				p.visit("/")
				p.waitFor("the catalog", `document.querySelectorAll(".product").length > 0`, 15*time.Second)
				fitsPhone(p, width, "the shop, signed out")
				p.keep(fmt.Sprintf("phone-%d-shop", width))

				register(p, "Grace Brewster Murray Hopper", fmt.Sprintf("grace%d@example.com", width), "compiler compiler")
				p.visit("/")
				p.waitFor("the catalog", `document.querySelectorAll(".product").length > 0`, 15*time.Second)
				fitsPhone(p, width, "the shop, signed in")
				p.click(".product button.add")
				p.waitText("#cart-count", "1", 5*time.Second)
				p.click(".product h3 a")
				p.waitFor("the product page", `document.querySelector(".detail")`, 10*time.Second)
				fitsPhone(p, width, "a product")
				p.click(".cart-link")
				p.waitFor("the cart", `document.querySelectorAll("tr[data-sku]").length === 1`, 10*time.Second)
				fitsPhone(p, width, "the cart")
				p.keep(fmt.Sprintf("phone-%d-cart", width))
				p.click("#checkout")
				p.waitFor("the checkout form", `document.querySelector("#f-card-number")`, 10*time.Second)
				fitsPhone(p, width, "the checkout")
				p.keep(fmt.Sprintf("phone-%d-checkout", width))
			})
		}
	})

	t.Run("each customer has their own cart on a shared browser", func(t *testing.T) {
		// Tabs of one browser share localStorage, where the cart is kept;
		// each tab has its own session.
		p := b.open(t, s.Gateway)
		register(p, "Ada Lovelace", "ada.cart@example.com", "analytical engine")
		addToCart(p, 0, 2)
		p.click("#logout")
		p.waitFor("signing out", `document.querySelector("#login-link")`, 10*time.Second)
		cartIs(p, "after Ada signed out", 0)

		register(p, "Charles Babbage", "charles.cart@example.com", "difference engine")
		cartIs(p, "for Charles, after Ada used the browser", 0)
		addToCart(p, 0, 1)
		p.click("#logout")
		p.waitFor("signing out", `document.querySelector("#login-link")`, 10*time.Second)

		// What someone picks before signing in joins their cart: a new
		// product as a line, one already there as the larger quantity.
		addToCart(p, 1, 2)
		signIn(p, "ada.cart@example.com", "analytical engine")
		cartIs(p, "for Ada, signed in again after picking two products, one of them hers already", 3)
		p.click("#logout")
		p.waitFor("signing out", `document.querySelector("#login-link")`, 10*time.Second)
		cartIs(p, "after Ada signed out again (her picks went into her cart)", 0)

		// Another tab, another session, the same browser: Charles's cart
		// is his, Ada's is not shown.
		q := b.open(t, s.Gateway)
		signIn(q, "charles.cart@example.com", "difference engine")
		cartIs(q, "for Charles in another tab", 1)
	})

	t.Run("a cart holds one currency", func(t *testing.T) {
		p := b.open(t, s.Gateway)
		p.visit("/")
		addToCart(p, 0, 1)
		usd := js[string](p, `document.querySelector(".product").dataset.sku`)
		answerFor(t, p, map[string]answer{
			"/api/inventory/products/EURO-MUG": {200, `{"sku":"EURO-MUG","name":"Euro Mug","description":"A mug priced in euros.","price_cents":1300,"currency":"EUR","available":50}`},
		})
		p.visit("/#/product/EURO-MUG")
		p.waitText("main h1", "Euro Mug", 10*time.Second)
		p.click("button.add")
		p.waitText(".add-error", "One order is paid in one currency", 5*time.Second)
		if msg := p.text(".add-error"); !strings.Contains(msg, "USD") || !strings.Contains(msg, "EUR") || looksRaw(msg) {
			t.Errorf("refusing a product in another currency the page says %q; want a sentence naming both currencies", msg)
		}
		cartIs(p, "after the refused product", 1)

		// A cart that holds two currencies anyway (kept from before the
		// rule) is never totalled or checked out.
		mixed := func(key string) {
			js[bool](p, fmt.Sprintf(`(async () => { localStorage.setItem(%s, JSON.stringify([
				{sku: %q, name: "Mug", price_cents: 1400, currency: "USD", quantity: 1},
				{sku: "EURO-MUG", name: "Euro Mug", price_cents: 1300, currency: "EUR", quantity: 1}])); return true })()`, key, usd))
		}
		mixed(`"microshop.cart.anonymous"`)
		p.visit("/#/") // the page is at #/cart: leave, so that coming back draws it again
		p.visit("/#/cart")
		p.waitText("main .alert", "priced in USD and EUR", 10*time.Second)
		if js[bool](p, `Boolean(document.querySelector("#checkout, #cart-total"))`) {
			t.Errorf("a cart in two currencies shows a total or a checkout button: %q", p.mainText())
		}
		// Signing in merges only the lines in the customer's currency.
		register(p, "Mixed Money", "mixed@example.com", "two currencies")
		cartIs(p, "after signing in with a cart in two currencies", 1)
		mixed(`"microshop.cart.user." + (await (await fetch("/api/users/me", {headers: {Authorization: "Bearer " +
			JSON.parse(sessionStorage.getItem("microshop.tokens")).access_token}})).json()).id`)
		p.visit("/#/checkout")
		p.waitText("main .alert", "one order is paid in one currency", 10*time.Second)
		if js[bool](p, `Boolean(document.querySelector("#checkout-form"))`) {
			t.Errorf("the checkout offers to pay for a cart in two currencies: %q", p.mainText())
		}
	})
}

// addToCart adds n products of the catalog's first page from the one at
// index from on, one of each, and waits for the header to count them.
func addToCart(p *page, from, n int) {
	p.t.Helper()
	before := js[int](p, `Number(document.querySelector("#cart-count").textContent)`)
	p.visit("/#/")
	p.waitFor("the catalog", fmt.Sprintf(`document.querySelectorAll(".product button.add:not([disabled])").length >= %d`, from+n), 15*time.Second)
	for i := range n {
		p.click(fmt.Sprintf(`.product:nth-child(%d) button.add`, from+i+1))
	}
	p.waitText("#cart-count", fmt.Sprint(before+n), 5*time.Second)
}

// cartIs checks the header's count and the cart page's lines.
func cartIs(p *page, when string, want int) {
	p.t.Helper()
	p.visit("/#/cart")
	p.waitFor("the cart page", `document.querySelector("main h1")?.innerText === "Your cart"`, 10*time.Second)
	// The lines come from storage at once; give a refresh a moment anyway.
	time.Sleep(200 * time.Millisecond)
	count := p.text("#cart-count")
	lines := js[int](p, `[...document.querySelectorAll("tr[data-sku] input.qty")].reduce((n, el) => n + Number(el.value), 0)`)
	if count != fmt.Sprint(want) || lines != want {
		p.t.Errorf("%s the header counts %s products and the cart page shows %d; want %d", when, count, lines, want)
	}
}

// fitsPhone checks that the page is no wider than the screen and that
// each link and button of the header is inside it, on one line.
func fitsPhone(p *page, screen int64, what string) {
	p.t.Helper()
	type result struct {
		Width, ScrollWidth int
		Problems           []string
	}
	r := js[result](p, `(() => {
		const width = window.innerWidth;
		const problems = [];
		for (const el of document.querySelectorAll("header a, header button")) {
			if (!el.offsetParent) continue; // hidden
			const name = (el.innerText || el.id || el.className).trim().replace(/\s+/g, " ");
			const box = el.getBoundingClientRect();
			if (box.left < 0 || box.right > width + 0.5) problems.push(name + " is cut off (" + Math.round(box.left) + " to " + Math.round(box.right) + ")");
			// Its text's boxes share one line: none starts below another's end.
			const range = document.createRange();
			range.selectNodeContents(el);
			const rects = [...range.getClientRects()].filter((r) => r.width > 0);
			const top = Math.max(...rects.map((r) => r.top)), bottom = Math.min(...rects.map((r) => r.bottom));
			if (rects.length && top >= bottom - 1) problems.push(name + " wraps onto two lines");
		}
		return { width, scrollWidth: document.documentElement.scrollWidth, problems };
	})()`)
	// A phone widens its layout viewport to fit a page that overflows,
	// so innerWidth alone would not tell.
	if int64(r.Width) != screen || r.ScrollWidth > r.Width {
		p.t.Errorf("%s on a %d px screen: the page lays out %d px wide, its content is %d px", what, screen, r.Width, r.ScrollWidth)
	}
	for _, problem := range r.Problems {
		p.t.Errorf("%s on a %d px screen: %s", what, screen, problem)
	}
}
