package browser

import (
	"testing"
	"time"

	"github.com/microshop/microshop/test/systemtest"
)

// With access tokens that live two seconds, a customer stays signed in:
// the UI trades the refresh token for new tokens, both when the API says
// the token expired and, before that, when the token's own expiry is near.
// Once the refresh token is refused, the session ends and the page asks
// the customer to sign in again.
func TestSessionOutlivesItsAccessToken(t *testing.T) {
	b := startBrowser(t)
	s := systemtest.Start(t, systemtest.ShopEnv("MICROSHOP_ACCESS_TTL=2s")...)
	p := b.open(t, s.Gateway)
	p.visit("/")
	register(p, "Ada Lovelace", "ada@example.com", "analytical engine")
	refreshToken := func() string {
		return js[string](p, `JSON.parse(sessionStorage.getItem("microshop.tokens") || "{}").refresh_token || ""`)
	}
	first := refreshToken()
	if first == "" {
		t.Fatal("no tokens in sessionStorage after registering")
	}
	// Past the token's life and the verifiers' five seconds of leeway.
	const expired = 8 * time.Second

	// The API says the token expired: the page's clock is an hour slow, so
	// it does not see that coming.
	time.Sleep(expired)
	js[bool](p, `(() => { const real = Date.now; window.realNow = real; Date.now = () => real() - 3600e3; return true })()`)
	p.click(`a[data-nav=orders]`)
	p.waitText("main", "You have not ordered anything yet", 10*time.Second)
	second := refreshToken()
	if second == "" || second == first {
		t.Fatalf("the refresh token did not rotate after a 401 (before %q, after %q)", first, second)
	}

	// The page sees the expiry itself and refreshes before calling.
	js[bool](p, `(() => { Date.now = window.realNow; return true })()`)
	time.Sleep(expired)
	p.visit("/#/")
	p.click(`a[data-nav=orders]`)
	p.waitText("main", "You have not ordered anything yet", 10*time.Second)
	if third := refreshToken(); third == "" || third == second {
		t.Fatalf("the refresh token did not rotate before an expired token was sent (before %q, after %q)", second, third)
	}

	// A refresh token the API refuses ends the session, in words.
	js[bool](p, `(() => { const t = JSON.parse(sessionStorage.getItem("microshop.tokens")); t.refresh_token = "spent"; sessionStorage.setItem("microshop.tokens", JSON.stringify(t)); return true })()`)
	time.Sleep(expired)
	p.visit("/#/")
	p.click(`a[data-nav=orders]`)
	p.waitText("main .alert", "Your session has ended. Please sign in again.", 10*time.Second)
	if loc := p.location(); len(loc) < 8 || loc[:8] != "#/login?" {
		t.Errorf("after the session ended the page is at %q, want the sign-in page", loc)
	}
}
