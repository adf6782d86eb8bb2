// Package privacy checks, on the real system, what docs/privacy.md
// promises about a customer's personal data: the orders.* events carry
// no email, and a customer who erases their account is gone from every
// service that answers about them (users, orders, notifications), can
// no longer log in or refresh a token, and their email stays in the
// broker only in users.registered, for no longer than the streams' age
// limit.
package privacy

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/notifications/notificationsapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/users/usersapi"
	"github.com/microshop/microshop/test/systemtest"
)

const password = "long enough password"

func TestErasingACustomer(t *testing.T) {
	s := systemtest.Start(t, systemtest.ShopEnv()...)
	gw := s.Gateway
	ctx := context.Background()
	shop := systemtest.Shop(gw)
	admin := systemtest.Login(t, shop, systemtest.AdminEmail, systemtest.AdminPassword)

	email := fmt.Sprintf("erase-me-%d@example.com", time.Now().UnixNano())
	if _, err := shop.Register(ctx, shopclient.Registration{Email: email, Password: password, Name: "Erin Erasable"}); err != nil {
		t.Fatal(err)
	}
	var tok usersapi.Tokens
	if st, body := call(t, gw, "POST", "/api/users/login", "", usersapi.Credentials{Email: email, Password: password}); st != 200 {
		t.Fatalf("login: %d %s", st, body)
	} else if err := json.Unmarshal(body, &tok); err != nil {
		t.Fatal(err)
	}
	var me usersapi.User
	if st, body := call(t, gw, "GET", "/api/users/me", tok.AccessToken, nil); st != 200 || json.Unmarshal(body, &me) != nil {
		t.Fatalf("me: %d %s", st, body)
	}
	sku := inStock(t, admin)
	order := place(t, shop, tok.AccessToken, "privacy-1", sku)

	// Notifications wrote to the customer: the receipt names them.
	waitFor(t, "the receipt's delivery", func() bool {
		return strings.Contains(string(deliveries(t, gw, admin.Token(), order.ID)), email)
	})

	// The event that announced the order names the customer by id only.
	js := stream(t, s)
	confirmed := eventsOf(t, js, "ORDERS", "orders.confirmed", func(e events.Event) bool { return strings.Contains(string(e.Data), order.ID) })
	noEmail(t, confirmed, email)

	// Erase: the wrong password refuses, the right one erases.
	if st, body := call(t, gw, "DELETE", "/api/users/me", tok.AccessToken, map[string]string{"password": "not the password"}); st != 422 {
		t.Fatalf("erasing with a wrong password: %d %s", st, body)
	}
	if st, body := call(t, gw, "DELETE", "/api/users/me", tok.AccessToken, map[string]string{"password": password}); st != 204 {
		t.Fatalf("erasing the account: %d %s", st, body)
	}

	// users: no login, no refresh, no profile.
	if st, body := call(t, gw, "POST", "/api/users/login", "", usersapi.Credentials{Email: email, Password: password}); st != 401 {
		t.Errorf("login after erasure: %d %s", st, body)
	}
	if st, body := call(t, gw, "POST", "/api/users/refresh", "", usersapi.RefreshRequest{RefreshToken: tok.RefreshToken}); st != 401 {
		t.Errorf("refresh after erasure: %d %s", st, body)
	}
	if st, body := call(t, gw, "GET", "/api/users/me", tok.AccessToken, nil); st == 200 || bytes.Contains(body, []byte(email)) {
		t.Errorf("profile after erasure: %d %s", st, body)
	}

	// orders: the order stays, with its amounts, without the name and
	// street it shipped to. (The access token still verifies until it
	// expires; it reaches nothing personal.)
	var after ordersapi.Order
	waitFor(t, "the order's address erased", func() bool {
		st, body := call(t, gw, "GET", "/api/orders/"+order.ID, tok.AccessToken, nil)
		after = ordersapi.Order{}
		return st == 200 && json.Unmarshal(body, &after) == nil && after.ShippingAddress.Name == "" && after.ShippingAddress.Street == ""
	})
	if after.TotalCents != order.TotalCents || after.Status != ordersapi.StatusConfirmed || after.Currency != order.Currency {
		t.Errorf("the order's amounts changed: %+v, was %+v", after, order)
	}
	if st, body := call(t, gw, "GET", "/api/orders/"+order.ID, tok.AccessToken, nil); bytes.Contains(body, []byte(email)) ||
		bytes.Contains(body, []byte(shopclient.TestAddress.Street)) {
		t.Errorf("the order still names the customer: %d %s", st, body)
	}

	// notifications: the deliveries about them no longer name them.
	waitFor(t, "the receipt emptied", func() bool {
		return !strings.Contains(string(deliveries(t, gw, admin.Token(), "")), email)
	})
	for _, d := range deliveryList(t, gw, admin.Token(), order.ID) {
		st, body := call(t, gw, "GET", "/api/notifications/deliveries/"+d.ID, admin.Token(), nil)
		if st != 200 || bytes.Contains(body, []byte(email)) {
			t.Errorf("delivery %s: %d %s", d.ID, st, body)
		}
	}

	// A new order's event carries no email either.
	other := systemtest.Customer(t, shop, "after-erasure")
	next := place(t, shop, other.Token(), "privacy-2", sku)
	noEmail(t, eventsOf(t, js, "ORDERS", "orders.confirmed", func(e events.Event) bool { return strings.Contains(string(e.Data), next.ID) }), other.Email)

	// The broker: users.erased names the id only; the one event that
	// still carries the email, users.registered, is in a stream that
	// keeps events for 30 days (docs/privacy.md), as every stream does.
	erased := eventsOf(t, js, "USERS", "users.erased", func(e events.Event) bool { return strings.Contains(string(e.Data), me.ID) })
	noEmail(t, erased, email)
	for _, name := range []string{"USERS", "ORDERS"} {
		st, err := js.Stream(ctx, name)
		if err != nil {
			t.Fatal(err)
		}
		if age := st.CachedInfo().Config.MaxAge; age <= 0 || age > events.DefaultMaxAge || events.DefaultMaxAge != 30*24*time.Hour {
			t.Errorf("stream %s keeps events for %s; docs/privacy.md promises at most %s", name, age, 30*24*time.Hour)
		}
	}
	for _, e := range eventsOf(t, js, "ORDERS", ">", func(events.Event) bool { return true }) {
		if strings.Contains(string(e.Data), email) {
			t.Errorf("the orders stream still holds the email in %s %s", e.Type, e.ID)
		}
	}
}

// call sends a request to the gateway and returns the status and body.
func call(t *testing.T, gw, method, path, token string, body any) (int, []byte) {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, gw+path, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, path, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, b
}

// inStock is a sku with stock to spare.
func inStock(t *testing.T, admin *shopclient.Session) string {
	t.Helper()
	stock, err := admin.Stock(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range stock {
		if l.Available >= 5 {
			return l.SKU
		}
	}
	t.Fatal("no product with stock")
	return ""
}

// place checks out one unit of sku as token and waits for the order to
// be confirmed.
func place(t *testing.T, shop *shopclient.Client, token, key, sku string) ordersapi.Order {
	t.Helper()
	o, err := shop.As(token).Checkout(context.Background(), key, shopclient.Checkout(shopclient.CardApproved, shopclient.Line{SKU: sku, Quantity: 1}))
	if err != nil {
		t.Fatal(err)
	}
	if o.Status != ordersapi.StatusConfirmed {
		t.Fatalf("order %s: %s %s", o.ID, o.Status, o.Reason)
	}
	return o
}

func deliveries(t *testing.T, gw, token, orderID string) []byte {
	t.Helper()
	path := "/api/notifications/deliveries?limit=100"
	if orderID != "" {
		path += "&order_id=" + orderID
	}
	st, body := call(t, gw, "GET", path, token, nil)
	if st != 200 {
		t.Fatalf("GET %s: %d %s", path, st, body)
	}
	return body
}

func deliveryList(t *testing.T, gw, token, orderID string) []notificationsapi.Delivery {
	t.Helper()
	var l struct{ Items []notificationsapi.Delivery }
	if err := json.Unmarshal(deliveries(t, gw, token, orderID), &l); err != nil {
		t.Fatal(err)
	}
	if len(l.Items) == 0 {
		t.Fatalf("no deliveries of order %s", orderID)
	}
	return l.Items
}

// stream connects to run's broker as notifications, which reads both
// the USERS and the ORDERS stream, with the key run made for it.
func stream(t *testing.T, s *systemtest.System) jetstream.JetStream {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(s.Data, "nats-keys.json"))
	if err != nil {
		t.Fatal(err)
	}
	var keys struct{ Seeds map[string]string }
	if err := json.Unmarshal(b, &keys); err != nil {
		t.Fatal(err)
	}
	opts, err := broker.Credential{Name: "notifications", Seed: keys.Seeds["notifications"]}.Options()
	if err != nil {
		t.Fatal(err)
	}
	nc, err := nats.Connect(fmt.Sprintf("nats://127.0.0.1:%d", s.Ports.NATS), opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	return js
}

// eventsOf reads stream from its start (subject filtered) until an event
// for which want is true has come, then returns those events.
func eventsOf(t *testing.T, js jetstream.JetStream, stream, subject string, want func(events.Event) bool) []events.Event {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	cfg := jetstream.OrderedConsumerConfig{}
	if subject != ">" {
		cfg.FilterSubjects = []string{subject}
	}
	cons, err := js.OrderedConsumer(ctx, stream, cfg)
	if err != nil {
		t.Fatalf("reading %s: %v", stream, err)
	}
	var all, found []events.Event
	for ctx.Err() == nil {
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			if len(found) > 0 {
				return found // read to the end
			}
			continue
		}
		var e events.Event
		if err := json.Unmarshal(msg.Data(), &e); err != nil {
			t.Fatalf("a message on %s is no event: %v", stream, err)
		}
		all = append(all, e)
		if want(e) {
			found = append(found, e)
		}
	}
	t.Fatalf("%s: no %s event wanted among %d", stream, subject, len(all))
	return nil
}

// noEmail fails t when an event carries an email member or the address.
func noEmail(t *testing.T, evs []events.Event, email string) {
	t.Helper()
	for _, e := range evs {
		var data map[string]any
		if err := json.Unmarshal(e.Data, &data); err != nil {
			t.Fatal(err)
		}
		if _, ok := data["email"]; ok || strings.Contains(string(e.Data), email) {
			t.Errorf("%s %s (version %d) carries the customer's email: %s", e.Type, e.ID, e.Version, e.Data)
		}
	}
}

func waitFor(t *testing.T, what string, ok func() bool) {
	t.Helper()
	for deadline := time.Now().Add(30 * time.Second); !ok(); time.Sleep(100 * time.Millisecond) {
		if time.Now().After(deadline) {
			t.Fatalf("%s: not within 30s", what)
		}
	}
}
