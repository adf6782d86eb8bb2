package security

import (
	"context"
	"crypto/rand"
	"database/sql"
	"encoding/base64"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"
	_ "github.com/jackc/pgx/v5/stdlib" // the "pgx" driver, to drop the shop's databases
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
	_ "modernc.org/sqlite" // the "sqlite" driver, to read users.db as a thief would

	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/test/systemtest"
)

// TestAttacks runs each attack of issue #11 against a shop with every
// defence on, and again where the defence is off: a shop started with
// it switched off through its flags (on a broker of the test's own that
// admits anyone), or a stand-in that has the weakness.
func TestAttacks(t *testing.T) {
	t.Parallel()
	open, err := broker.StartEmbedded(t.TempDir(), "127.0.0.1", 0, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(open.Shutdown)
	shops := startShops(t,
		shopConfig{name: "defended", env: []string{inFlight, connsPerClient}},
		shopConfig{name: "weak", env: []string{inFlight, "MICROSHOP_MAX_CONNS_PER_CLIENT=0", "MICROSHOP_BODY_GRACE=0", "MICROSHOP_LOGIN_RATE_ACCOUNT=0"},
			args: []string{"--nats", open.URL()}},
	)
	defended, weak := shops[0], shops[1]

	t.Run("credentials", func(t *testing.T) { testCredentials(t, defended) })
	t.Run("broker", func(t *testing.T) { testBroker(t, defended, weak, open.URL()) })
	t.Run("slow bodies", func(t *testing.T) { testSlowBodies(t, defended, weak) })
	t.Run("password guessing", func(t *testing.T) { testPasswordGuessing(t, defended, weak) })
	t.Run("free text", func(t *testing.T) {
		if accepted := freeTextAttack(t, defended); len(accepted) > 0 {
			t.Errorf("the shop on SQLite accepted control characters in %s", strings.Join(accepted, ", "))
		}
		if accepted := freeTextAttack(t, standIn(t, nil)); len(accepted) == 0 {
			t.Error("a stand-in that checks no text accepted nothing: the attack cannot tell a shop that checks from one that does not")
		}
	})
	t.Run("signing keys at rest", func(t *testing.T) {
		// A copy of users.db with a plain seed signs tokens for anyone.
		// Every stored seed must be sealed.
		if n, err := plainSeeds(filepath.Join(defended.Data, "users.db")); err != nil || n > 0 {
			t.Errorf("users.db holds %d signing keys in plain text (%v)", n, err)
		}
		if st, err := os.Stat(filepath.Join(defended.Data, "users-kek")); err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("run's users-kek: %v, %v; want a file of mode 0600", st, err)
		}
		// The stand-in: a users database as it was, with the seed as it is.
		old := filepath.Join(t.TempDir(), "users.db")
		if db, err := sql.Open("sqlite", old); err != nil {
			t.Fatal(err)
		} else if _, err := db.Exec(`CREATE TABLE signing_keys (seed TEXT); INSERT INTO signing_keys VALUES ($1)`, freshSeed(t)); err != nil {
			t.Fatal(err)
		} else {
			db.Close()
		}
		if n, err := plainSeeds(old); n != 1 {
			t.Errorf("a database with one plain seed: found %d (%v), want 1: the check cannot fail", n, err)
		}
	})
	t.Run("currency", func(t *testing.T) {
		for _, code := range []string{"XYZ", "AAA", "XTS"} {
			if a := newProduct(defended, code); a.status != http.StatusUnprocessableEntity || !a.names("currency") {
				t.Errorf("a product in %s: %s, want 422 naming currency", code, a)
			}
		}
		// The old rule, three capital letters, lets XYZ through.
		old := standIn(t, func(p map[string]any) bool {
			c, _ := p["currency"].(string)
			return len(c) == 3 && strings.ToUpper(c) == c
		})
		if a := newProduct(old, "XYZ"); a.status != http.StatusCreated {
			t.Errorf("a shop that takes any three letters refused XYZ (%s): the check cannot fail", a)
		}
		if a := newProduct(defended, "EUR"); a.status != http.StatusUnprocessableEntity {
			// One shop currency: the rule is not "any real code".
			t.Errorf("a product in EUR in a USD shop: %s, want 422", a)
		}
	})
}

// TestFreeTextOnPostgres runs the free-text attack against a shop on
// PostgreSQL, which refuses a NUL in text: without the check, the
// request would fail there with a 500 rather than a 422.
func TestFreeTextOnPostgres(t *testing.T) {
	t.Parallel()
	server := os.Getenv("MICROSHOP_TEST_POSTGRES_URL")
	if server == "" {
		t.Skip("MICROSHOP_TEST_POSTGRES_URL is not set; skipping the attack on a shop on PostgreSQL (set it to a server URL such as postgres://postgres@127.0.0.1:5432/postgres?sslmode=disable)")
	}
	b := make([]byte, 4)
	_, _ = rand.Read(b)
	prefix := "sec" + hex.EncodeToString(b) + "_"
	t.Cleanup(func() { dropDatabases(t, server, prefix) })
	s := startShops(t, shopConfig{name: "postgres", args: []string{"--mode", "monolith", "--db", server, "--db-prefix", prefix}})[0]
	if accepted := freeTextAttack(t, s); len(accepted) > 0 {
		t.Errorf("the shop on PostgreSQL accepted control characters in %s", strings.Join(accepted, ", "))
	}
}

// testCredentials replays a credential orders made for inventory at
// payments, and sends one signed with a key no service has. Both must
// be refused; a credential orders made for payments is the control.
func testCredentials(t *testing.T, s *shop) {
	orders := serviceKeys(t, s, "orders")
	forger, err := auth.ParseServiceKeys("orders", freshSeed(t), "")
	if err != nil {
		t.Fatal(err)
	}
	// run serves payments over mutual TLS: the attacker's connection
	// carries a certificate of the system's authority (as a thief of a
	// service's certificate files has), so the request reaches the
	// credential check. The stand-ins below serve plain HTTP, which the
	// same client speaks.
	payments := fmt.Sprintf("https://127.0.0.1:%d", s.port(t, "payments"))
	c := s.ServiceClient("payments")
	attacks := func(callee string) (right, crossAudience, forged answer) {
		return internalCall(c, callee, orders, "payments"), internalCall(c, callee, orders, "inventory"), internalCall(c, callee, forger, "payments")
	}

	right, cross, forged := attacks(payments)
	if right.err != nil || right.status == http.StatusUnauthorized || right.status == http.StatusForbidden {
		t.Fatalf("orders' own credential for payments: %s, want it accepted (the control)", right)
	}
	if cross.status != http.StatusUnauthorized {
		t.Errorf("orders' credential for inventory, replayed at payments: %s, want 401", cross)
	}
	if forged.status != http.StatusUnauthorized {
		t.Errorf("a credential signed with a key of no service: %s, want 401", forged)
	}

	// A callee that checks the signature but not the audience takes the
	// replayed credential; one that checks no signature takes the forged.
	_, cross, _ = attacks(standInCallee(t, orders, true))
	if cross.status != http.StatusOK {
		t.Errorf("a callee blind to audiences refused the replayed credential (%s): the check cannot fail", cross)
	}
	_, _, forged = attacks(standInCallee(t, orders, false))
	if forged.status != http.StatusOK {
		t.Errorf("a callee that checks no signature refused the forged credential (%s): the check cannot fail", forged)
	}
}

// internalCall asks payments' internal route, at base, through c, for
// an order's payments with keys' credential made for audience.
func internalCall(c *http.Client, base string, keys *auth.ServiceKeys, audience string) answer {
	tok, err := auth.NewCredentials(keys).Token(audience)
	if err != nil {
		return answer{err: err}
	}
	return call(c, "GET", base+"/internal/payments/?order_id="+ids.New(), tok, nil)
}

// serviceKeys reads a service's identity keys from run's data directory,
// as whoever obtained one of its credentials or its key file would.
func serviceKeys(t *testing.T, s *shop, name string) *auth.ServiceKeys {
	t.Helper()
	var stored struct {
		Seeds   map[string]string `json:"seeds"`
		Publics string            `json:"publics"`
	}
	b, err := os.ReadFile(filepath.Join(s.Data, "service-keys.json"))
	if err == nil {
		err = json.Unmarshal(b, &stored)
	}
	if err != nil {
		t.Fatalf("reading run's service keys: %v", err)
	}
	k, err := auth.ParseServiceKeys(name, stored.Seeds[name], stored.Publics)
	if err != nil {
		t.Fatal(err)
	}
	return k
}

func freshSeed(t *testing.T) string {
	b := make([]byte, 32)
	if _, err := rand.Read(b); err != nil {
		t.Fatal(err)
	}
	return base64.StdEncoding.EncodeToString(b)
}

// standInCallee is a payments that answers 200 to any credential that
// names a known service: with verify, after checking its signature
// (but not its audience, as before credentials were bound to their
// callee); without, reading it unchecked.
func standInCallee(t *testing.T, keys *auth.ServiceKeys, verify bool) string {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		tok, _ := auth.BearerToken(r)
		var claims jwt.RegisteredClaims
		var err error
		if verify {
			_, err = jwt.NewParser(jwt.WithValidMethods([]string{"EdDSA"})).ParseWithClaims(tok, &claims, func(tk *jwt.Token) (any, error) {
				kid, _ := tk.Header["kid"].(string)
				if key, ok := keys.Public[strings.TrimPrefix(kid, "service:")]; ok {
					return key, nil
				}
				return nil, errors.New("unknown service")
			})
		} else {
			_, _, err = jwt.NewParser().ParseUnverified(tok, &claims)
		}
		if err != nil || keys.Public[claims.Issuer] == nil {
			w.WriteHeader(http.StatusUnauthorized)
			return
		}
		w.Write([]byte(`{"items":[]}`))
	}))
	t.Cleanup(srv.Close)
	return srv.URL
}

// testBroker publishes a made-up orders.confirmed, a receipt for a
// fortune to an address of the attacker's choosing: without a NATS
// credential, and as inventory. The shop's broker refuses both, and no
// email or report changes; a broker that admits anyone takes it, and
// notifications mails the receipt and reports counts the sale.
func testBroker(t *testing.T, defended, weak *shop, openURL string) {
	ctx := context.Background()
	before, err := defended.admin.Summary(ctx, "")
	if err != nil {
		t.Fatal(err)
	}

	if nc, err := nats.Connect(defended.natsURL(), nats.Timeout(3*time.Second)); err == nil {
		nc.Close()
		t.Error("the shop's broker admitted a client without a credential")
	}
	victim := fmt.Sprintf("mark-%d@example.com", time.Now().UnixNano())
	var seeds struct {
		Seeds map[string]string `json:"seeds"`
	}
	if b, err := os.ReadFile(filepath.Join(defended.Data, "nats-keys.json")); err != nil || json.Unmarshal(b, &seeds) != nil {
		t.Fatalf("reading run's NATS keys: %v", err)
	}
	if err := forgeConfirmation(defended.natsURL(), broker.Credential{Name: "inventory", Seed: seeds.Seeds["inventory"]}, ids.New(), victim); err == nil {
		t.Error("the shop's broker let inventory publish orders.confirmed")
	} else {
		t.Logf("inventory publishing orders.confirmed: %v", err)
	}
	time.Sleep(3 * time.Second) // a receipt would be mailed by now (see the weak shop below)
	if box, err := defended.admin.Mailbox(ctx, shopclient.MailFilter{To: victim}); err != nil || len(box) > 0 {
		t.Errorf("mail to the attacker's address: %d messages (%v), want none", len(box), err)
	}
	after, err := defended.admin.Summary(ctx, "")
	if err != nil {
		t.Fatal(err)
	}
	if after.OrdersConfirmed != before.OrdersConfirmed || after.RevenueCents != before.RevenueCents {
		t.Errorf("reports changed: %d orders, %d cents before; %d, %d after", before.OrdersConfirmed, before.RevenueCents, after.OrdersConfirmed, after.RevenueCents)
	}

	// The same publish, with no credential at all, on a broker that
	// admits anyone.
	// notifications looks the customer's address up at users, so the
	// attacker names an account of the weak shop: its own, made for this.
	mark, err := systemtest.Shop(weak.Gateway).Register(ctx, shopclient.Registration{Email: victim, Password: "long enough password", Name: "Mark"})
	if err != nil {
		t.Fatalf("registering the attacker's account at the weak shop: %v", err)
	}
	if err := forgeConfirmation(openURL, broker.Credential{}, mark.ID, victim); err != nil {
		t.Fatalf("publishing on a broker that admits anyone: %v", err)
	}
	deadline := time.Now().Add(30 * time.Second)
	for {
		box, _ := weak.admin.Mailbox(ctx, shopclient.MailFilter{To: victim, Subject: "is confirmed"})
		sum, _ := weak.admin.Summary(ctx, "")
		if len(box) > 0 && sum.RevenueCents >= fortune {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("with a broker that admits anyone, the forged event should mail a receipt and count a sale: %d messages, %+v", len(box), sum)
		}
		time.Sleep(300 * time.Millisecond)
	}
}

const fortune = 99_999_999_000 // $999,999,990.00

// forgeConfirmation connects as cred and publishes an orders.confirmed
// for to through JetStream, returning the first refusal.
func forgeConfirmation(url string, cred broker.Credential, userID, to string) error {
	opts, err := cred.Options()
	if err != nil {
		return err
	}
	refused := make(chan error, 1)
	nc, err := nats.Connect(url, append(opts, nats.Timeout(3*time.Second), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		select {
		case refused <- err:
		default:
		}
	}))...)
	if err != nil {
		return fmt.Errorf("connecting: %w", err)
	}
	defer nc.Close()
	now := time.Now().UTC()
	data, _ := json.Marshal(ordersapi.OrderConfirmedV1{OrderID: ids.New(), UserID: userID, Email: to,
		Lines: []ordersapi.Line{{SKU: "GOLD-BAR", Quantity: 1, PriceCents: fortune}}, TotalCents: fortune,
		Currency: "USD", PaymentID: ids.New(), ConfirmedAt: now})
	msg, err := events.NewMsg(events.Event{ID: ids.New(), Type: "orders.confirmed", Version: 1, Time: now, Data: data})
	if err != nil {
		return err
	}
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 3*time.Second)
	defer cancel()
	if _, err := js.PublishMsg(ctx, msg); err != nil {
		select {
		case why := <-refused:
			return fmt.Errorf("%w (%v)", err, why)
		default:
			return err
		}
	}
	return nil
}

// testSlowBodies floods the gateway from 127.0.0.3 with logins whose
// bodies come a byte a second, more of them than the shop handles at
// once, and logs in from 127.0.0.2 meanwhile. Each login must answer
// within a second: or, when the machine is so busy that logins take
// more than half a second with no flood at all, within twice that.
func testSlowBodies(t *testing.T, defended, weak *shop) {
	probe := func(s *shop) (ok int, bound, worst time.Duration, bad []string) {
		email, password, _ := customer(t, s.Gateway, "prober")
		c := from("127.0.0.2")
		login := func() answer {
			return call(c, "POST", s.Gateway+"/api/users/login", "", map[string]string{"email": email, "password": password})
		}
		bound = time.Second
		if quiet := login(); quiet.took > bound/2 {
			bound = 2 * quiet.took
		}
		addr := strings.TrimPrefix(s.Gateway, "http://")
		ctx, stop := context.WithCancel(context.Background())
		var wg sync.WaitGroup
		for range 200 {
			wg.Go(func() { trickle(ctx, addr) })
		}
		defer func() { stop(); wg.Wait() }()
		time.Sleep(2500 * time.Millisecond) // the flood takes every slot it can
		for range 5 {
			a := login()
			worst = max(worst, a.took)
			if a.status == http.StatusOK && a.took <= bound {
				ok++
			} else {
				bad = append(bad, fmt.Sprintf("%s after %s", a, a.took.Round(time.Millisecond)))
			}
			time.Sleep(200 * time.Millisecond)
		}
		return ok, bound, worst, bad
	}
	ok, bound, worst, bad := probe(defended)
	if ok < 5 {
		t.Errorf("logins from another address during the flood: %d of 5 answered within %s; the others: %v", ok, bound, bad)
	} else {
		t.Logf("logins from another address during the flood: 5 of 5 within %s, worst %s", bound, worst.Round(time.Millisecond))
	}
	if ok, bound, _, bad := probe(weak); ok == 5 {
		t.Errorf("with the limits off the flood should starve the gateway, yet every login was answered within %s", bound)
	} else {
		t.Logf("with the limits off: %d of 5 logins within %s; the first of the others: %.120s", ok, bound, bad[0])
	}
}

// trickle keeps one login open from 127.0.0.3, its body declared 100 kB
// and sent a byte a second, reconnecting a second after the gateway
// closes it, until ctx ends.
func trickle(ctx context.Context, addr string) {
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP("127.0.0.3")}, Timeout: 3 * time.Second}
	for ctx.Err() == nil {
		c, err := d.DialContext(ctx, "tcp", addr)
		if err == nil {
			_, err = fmt.Fprintf(c, "POST /api/users/login HTTP/1.1\r\nHost: shop\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
			for err == nil && ctx.Err() == nil {
				select {
				case <-ctx.Done():
				case <-time.After(time.Second):
					_, err = c.Write([]byte(" "))
				}
			}
			c.Close()
		}
		select {
		case <-ctx.Done():
		case <-time.After(time.Second):
		}
	}
}

// testPasswordGuessing guesses a customer's password through PATCH /me
// with their stolen access token, from 127.0.0.4. The guesses must meet
// a 429, and the owner must still log in from their own address.
func testPasswordGuessing(t *testing.T, defended, weak *shop) {
	guess := func(s *shop) (email, password string, limited bool, statuses []int) {
		email, password, token := customer(t, s.Gateway, "owner")
		c := from("127.0.0.4")
		for i := range 15 {
			a := call(c, "PATCH", s.Gateway+"/api/users/me", token, map[string]string{"current_password": fmt.Sprintf("guess number %d", i), "password": "the attacker's password"})
			statuses = append(statuses, a.status)
			if a.status == http.StatusOK {
				t.Fatalf("guess %d changed the password", i)
			}
			if a.status == http.StatusTooManyRequests {
				return email, password, true, statuses
			}
		}
		return email, password, false, statuses
	}
	email, password, limited, statuses := guess(defended)
	if !limited {
		t.Errorf("15 guesses through PATCH /me met no 429: %v", statuses)
	}
	if a := call(from("127.0.0.2"), "POST", defended.Gateway+"/api/users/login", "", map[string]string{"email": email, "password": password}); a.status != http.StatusOK {
		t.Errorf("the owner, from their own address, after the guessing: %s, want 200", a)
	}
	// The same right password from the guesser's address is refused: the
	// owner gets in above because the limit is theirs, not because the
	// guessing left no limit behind.
	if a := call(from("127.0.0.4"), "POST", defended.Gateway+"/api/users/login", "", map[string]string{"email": email, "password": password}); a.status != http.StatusTooManyRequests {
		t.Errorf("the right password from the guesser's address: %s, want 429", a)
	}

	if _, _, limited, statuses := guess(weak); limited {
		t.Errorf("with the password limit off, guessing met a 429 anyway (%v): the check cannot fail", statuses)
	}
}

// freeTextAttack sends a NUL, an escape sequence and (where one line is
// the rule) a line break in every free-text field of the public API,
// and returns the fields where the shop took one.
func freeTextAttack(t *testing.T, s *shop) []string {
	t.Helper()
	ctx := context.Background()
	_, _, token := customer(t, s.Gateway, "texter")
	var sku string
	list, err := systemtest.Shop(s.Gateway).Products(ctx, shopclient.ProductQuery{Limit: 1})
	if err != nil || len(list.Items) == 0 {
		t.Fatalf("reading the catalog: %v", err)
	}
	sku = list.Items[0].SKU
	admin := s.admin.Token()

	type field struct {
		name      string
		multiline bool
		send      func(bad string) answer
	}
	fields := []field{
		{"name", false, func(bad string) answer {
			return call(http.DefaultClient, "POST", s.Gateway+"/api/users/register", "", map[string]string{
				"email": fmt.Sprintf("text-%d@example.com", time.Now().UnixNano()), "password": "long enough password", "name": bad})
		}},
		{"name", false, func(bad string) answer {
			return call(http.DefaultClient, "PATCH", s.Gateway+"/api/users/me", token, map[string]string{"name": bad})
		}},
		{"q", false, func(bad string) answer {
			return call(http.DefaultClient, "GET", s.Gateway+"/api/inventory/products?q="+url.QueryEscape(bad), "", nil)
		}},
		{"name", false, func(bad string) answer {
			return call(http.DefaultClient, "POST", s.Gateway+"/api/inventory/products", admin, product("TXT-"+ids.New()[20:], bad, "fine", "USD"))
		}},
		{"description", true, func(bad string) answer {
			return call(http.DefaultClient, "POST", s.Gateway+"/api/inventory/products", admin, product("TXT-"+ids.New()[20:], "fine", bad, "USD"))
		}},
		{"description", false, func(bad string) answer {
			return call(http.DefaultClient, "POST", s.Gateway+"/api/notifications/webhooks", admin, map[string]any{
				"url": "https://hooks.example.com/microshop", "event_types": []string{"orders.confirmed"}, "description": bad})
		}},
	}
	for _, part := range []string{"name", "street", "city", "postal_code"} {
		fields = append(fields, field{"shipping_address." + part, false, func(bad string) answer {
			o := shopclient.Checkout(shopclient.CardApproved, shopclient.Line{SKU: sku, Quantity: 1})
			addr := map[string]string{"name": o.ShippingAddress.Name, "street": o.ShippingAddress.Street, "city": o.ShippingAddress.City,
				"postal_code": o.ShippingAddress.PostalCode, "country": o.ShippingAddress.Country}
			addr[part] = bad
			req, _ := http.NewRequest("POST", s.Gateway+"/api/orders", strings.NewReader(mustJSON(map[string]any{"lines": o.Lines, "card": o.Card, "shipping_address": addr})))
			req.Header.Set("Content-Type", "application/json")
			req.Header.Set("Authorization", "Bearer "+token)
			req.Header.Set("Idempotency-Key", ids.New())
			res, err := http.DefaultClient.Do(req)
			if err != nil {
				return answer{err: err}
			}
			defer res.Body.Close()
			var b json.RawMessage
			_ = json.NewDecoder(res.Body).Decode(&b)
			return answer{status: res.StatusCode, body: b}
		}})
	}
	var accepted []string
	for _, f := range fields {
		bads := []string{"nul\x00byte", "bell\x07", "escape\x1b[2J"}
		if !f.multiline {
			bads = append(bads, "line\nbreak")
		}
		for _, bad := range bads {
			a := f.send(bad)
			if a.status != http.StatusUnprocessableEntity || !a.names(f.name) {
				accepted = append(accepted, fmt.Sprintf("%s %q (%s)", f.name, bad, a))
			}
		}
	}
	return accepted
}

func mustJSON(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		panic(err)
	}
	return string(b)
}

func product(sku, name, description, currency string) map[string]any {
	return map[string]any{"sku": sku, "name": name, "description": description, "price_cents": 1000, "currency": currency, "stock": 1}
}

// newProduct asks s to add a product priced in currency.
func newProduct(s *shop, currency string) answer {
	return call(http.DefaultClient, "POST", s.Gateway+"/api/inventory/products", s.admin.Token(), product("CUR-"+ids.New()[20:], "A product", "", currency))
}

// standIn is a shop's API that checks nothing a test sends it but what
// accept checks of a new product (nil: accept all): it answers each
// request with success, as a shop without the defences would. Its admin
// is only a token.
func standIn(t *testing.T, accept func(product map[string]any) bool) *shop {
	t.Helper()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		var body map[string]any
		_ = json.NewDecoder(r.Body).Decode(&body)
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == "GET" && r.URL.Path == "/api/inventory/products":
			w.Write([]byte(`{"items":[{"sku":"STAND-IN","name":"x","price_cents":1,"currency":"USD","available":1}]}`))
		case r.URL.Path == "/api/users/login":
			w.Write([]byte(`{"access_token":"stand-in","token_type":"Bearer","expires_in":900}`))
		case r.URL.Path == "/api/inventory/products" && accept != nil && !accept(body):
			w.WriteHeader(http.StatusUnprocessableEntity)
		case r.Method == "POST":
			w.WriteHeader(http.StatusCreated)
			w.Write([]byte(`{}`))
		default:
			w.Write([]byte(`{}`))
		}
	}))
	t.Cleanup(srv.Close)
	admin, err := systemtest.Shop(srv.URL).Login(context.Background(), "admin@stand-in", "x")
	if err != nil {
		t.Fatal(err)
	}
	return &shop{System: &localrun.System{Gateway: srv.URL}, admin: admin}
}

// plainSeeds counts the signing keys in a users database whose stored
// seed is the key itself (base64 of 32 bytes) rather than sealed.
func plainSeeds(path string) (int, error) {
	db, err := sql.Open("sqlite", "file:"+path+"?mode=ro")
	if err != nil {
		return 0, err
	}
	defer db.Close()
	rows, err := db.Query(`SELECT seed FROM signing_keys`)
	if err != nil {
		return 0, err
	}
	defer rows.Close()
	n, total := 0, 0
	for rows.Next() {
		var seed string
		if err := rows.Scan(&seed); err != nil {
			return 0, err
		}
		total++
		if b, err := base64.StdEncoding.DecodeString(seed); err == nil && len(b) == 32 {
			n++
		}
	}
	if err := rows.Err(); err != nil {
		return 0, err
	}
	if total == 0 {
		return 0, errors.New("no signing keys found")
	}
	return n, nil
}

// dropDatabases drops the databases a shop made on server under prefix.
func dropDatabases(t *testing.T, server, prefix string) {
	db, err := sql.Open("pgx", server)
	if err != nil {
		t.Logf("dropping the shop's databases: %v", err)
		return
	}
	defer db.Close()
	for _, svc := range []string{"users", "inventory", "orders", "payments", "notifications", "reports"} {
		if _, err := db.Exec("DROP DATABASE IF EXISTS " + prefix + svc + " WITH (FORCE)"); err != nil {
			t.Logf("dropping %s%s: %v", prefix, svc, err)
		}
	}
}
