// Package monolith runs `microshop run --mode monolith` as a real process
// and uses it the way the microservices mode is used, through the gateway
// only: the same system, every service in one process, calls between the
// services handed over in memory.
package monolith

import (
	"bufio"
	"encoding/hex"
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/mailbox"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/users/usersapi"
	"github.com/microshop/microshop/test/systemtest"
)

const (
	adminEmail    = "admin@example.com"
	adminPassword = "admin password 123"
)

// runState is the part of <data>/run.json this test reads.
type runState struct {
	Services []struct {
		Name    string `json:"name"`
		PID     int    `json:"pid"`
		Port    int    `json:"port"`
		URL     string `json:"url"`
		Running bool   `json:"running"`
	} `json:"services"`
}

func TestMonolithEndToEnd(t *testing.T) {
	// --mode comes from MICROSHOP_MODE, as every flag of run may.
	s := systemtest.Start(t,
		"MICROSHOP_MODE=monolith",
		"MICROSHOP_ADMIN_EMAIL="+adminEmail,
		"MICROSHOP_ADMIN_PASSWORD="+adminPassword,
	)
	gw := s.Gateway
	if !strings.Contains(s.Output(), "Mode monolith") {
		t.Fatalf("run did not say it runs as a monolith:\n%s", s.Output())
	}

	// One process holds every service (and the broker), each with its own
	// database file and its own port.
	st := readState(t, s.Data)
	ports := map[string]int{}
	for _, c := range st.Services {
		if c.PID != s.Cmd.Process.Pid || !c.Running {
			t.Errorf("%s: pid %d running %v; want run's own pid %d", c.Name, c.PID, c.Running, s.Cmd.Process.Pid)
		}
		ports[c.Name] = c.Port
	}
	for _, name := range []string{"users", "inventory", "orders", "payments", "notifications", "gateway", "nats"} {
		if ports[name] == 0 {
			t.Errorf("%s is not in run.json: %+v", name, st)
		}
	}
	for _, name := range []string{"users", "inventory", "orders", "payments", "notifications"} {
		if _, err := os.Stat(filepath.Join(s.Data, name+".db")); err != nil {
			t.Errorf("no database of its own for %s: %v", name, err)
		}
	}

	// Register, log in, who am I.
	email := fmt.Sprintf("mono-%d@example.com", time.Now().UnixNano())
	r := servicetest.Call(t, "POST", gw+"/api/users/register", "", map[string]string{
		"email": email, "password": "a long enough password", "name": "Mono"})
	if r.Status != http.StatusCreated {
		t.Fatalf("register: %d %s", r.Status, r.Body)
	}
	tok := login(t, gw, email, "a long enough password")
	if r := servicetest.Call(t, "GET", gw+"/api/users/me", tok, nil); r.Status != http.StatusOK || !strings.Contains(string(r.Body), email) {
		t.Fatalf("me: %d %s", r.Status, r.Body)
	}
	// A token is still checked: none, or a forged one, gets 401.
	if r := servicetest.Call(t, "GET", gw+"/api/users/me", tok[:len(tok)-4]+"AAAA", nil); r.Status != http.StatusUnauthorized {
		t.Fatalf("me with a forged token: %d %s", r.Status, r.Body)
	}

	// Browse: a first page, the next one, one product.
	var page struct {
		Items         []inventoryapi.Product `json:"items"`
		NextPageToken string                 `json:"next_page_token"`
	}
	r = servicetest.Call(t, "GET", gw+"/api/inventory/products?limit=5", "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("products: %d %s", r.Status, r.Body)
	}
	r.JSON(t, &page)
	if len(page.Items) != 5 || page.NextPageToken == "" {
		t.Fatalf("want a first page of 5 seeded products: %s", r.Body)
	}
	r = servicetest.Call(t, "GET", gw+"/api/inventory/products?limit=5&page_token="+url.QueryEscape(page.NextPageToken), "", nil)
	if r.Status != http.StatusOK {
		t.Fatalf("second page: %d %s", r.Status, r.Body)
	}
	var sku string
	for _, p := range page.Items {
		if p.Available >= 5 {
			sku = p.SKU
			break
		}
	}
	if sku == "" {
		t.Fatalf("no product with stock on the first page: %+v", page.Items)
	}
	r = servicetest.Call(t, "GET", gw+"/api/inventory/products/"+url.PathEscape(sku), "", nil)
	var product inventoryapi.Product
	r.JSON(t, &product)
	if r.Status != http.StatusOK || product.SKU != sku || product.PriceCents <= 0 {
		t.Fatalf("one product: %d %s", r.Status, r.Body)
	}

	// A checkout that confirms: orders calls inventory and payments.
	confirmed := checkout(t, gw, tok, "mono-ok", sku, "4242 4242 4242 4242")
	if confirmed.Status != ordersapi.StatusConfirmed || confirmed.TotalCents != 2*product.PriceCents || confirmed.Card.Last4 != "4242" {
		t.Fatalf("want a confirmed order of 2 × %d: %+v", product.PriceCents, confirmed)
	}
	// The same key again names the same order.
	if again := checkout(t, gw, tok, "mono-ok", sku, "4242 4242 4242 4242"); again.ID != confirmed.ID {
		t.Fatalf("the same Idempotency-Key gave another order: %s, then %s", confirmed.ID, again.ID)
	}
	// A declined card: rejected, its stock released.
	declined := checkout(t, gw, tok, "mono-declined", sku, "4000 0000 0000 0002")
	if declined.Status != ordersapi.StatusRejected || declined.Reason != "payment_declined" {
		t.Fatalf("want a rejected order (payment_declined): %+v", declined)
	}
	r = servicetest.Call(t, "GET", gw+"/api/inventory/products/"+url.PathEscape(sku), "", nil)
	var after inventoryapi.Product
	r.JSON(t, &after)
	if after.Available != product.Available-2 {
		t.Errorf("available went from %d to %d; want 2 sold, the declined one released", product.Available, after.Available)
	}
	r = servicetest.Call(t, "GET", gw+"/api/orders/"+confirmed.ID, tok, nil)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), ordersapi.StatusConfirmed) {
		t.Fatalf("the confirmed order: %d %s", r.Status, r.Body)
	}

	// Those calls went between services in memory: no connection to any
	// service's port but the gateway's was ever left open. (Over HTTP,
	// orders keeps connections to inventory and payments alive, the
	// gateway to each service it forwarded to.)
	for _, name := range []string{"users", "inventory", "orders", "payments", "notifications", "reports"} {
		if p := ports[name]; p != 0 {
			if n := establishedTo(t, p); n > 0 {
				t.Errorf("%d TCP connections to %s (port %d): calls between services should not use sockets", n, name, p)
			}
		}
	}

	// The receipt arrives in the mailbox: events through NATS to
	// notifications, SMTP to run's mail server, read through the gateway.
	admin := login(t, gw, adminEmail, adminPassword)
	receipt := waitForMail(t, gw, admin, email, "Your microshop order "+confirmed.ID+" is confirmed")
	if !strings.Contains(receipt.Text, confirmed.ID) {
		t.Errorf("the receipt does not name the order: %+v", receipt)
	}
	waitForMail(t, gw, admin, email, "We could not complete your microshop order "+declined.ID)
	// A customer may not read the mailbox.
	if r := servicetest.Call(t, "GET", gw+"/api/mailbox/messages", tok, nil); r.Status != http.StatusForbidden {
		t.Errorf("a customer reading the mailbox: %d", r.Status)
	}

	// Each service still answers on its own port, for anyone.
	for _, name := range []string{"users", "inventory", "orders", "payments", "notifications"} {
		hc := &http.Client{Timeout: 5 * time.Second, Transport: &http.Transport{DisableKeepAlives: true}}
		resp, err := hc.Get(fmt.Sprintf("http://127.0.0.1:%d/readyz", ports[name]))
		if err != nil {
			t.Errorf("%s on its own port: %v", name, err)
			continue
		}
		resp.Body.Close()
		if resp.StatusCode != http.StatusOK {
			t.Errorf("%s /readyz: %d", name, resp.StatusCode)
		}
	}
	// There is nothing to start, scale or restart in one process; the
	// control socket says so.
	status, body := control(t, s.Data, "/services/payments/scale?n=2")
	if status != http.StatusConflict || !strings.Contains(body, "monolith") {
		t.Errorf("scaling in a monolith: %d %s", status, body)
	}

	// Ctrl-C stops it all, gracefully.
	s.Stop(t)
	if localrun.Alive(s.Cmd.Process.Pid) {
		t.Error("run is still running")
	}
	out := s.Output()
	if !strings.Contains(out, "stopping: draining") || !strings.HasSuffix(strings.TrimSpace(out), "stopped") {
		t.Errorf("run did not say it stopped:\n%s", out)
	}
	for _, name := range []string{"gateway", "orders", "inventory", "payments", "notifications", "users"} {
		b, _ := os.ReadFile(filepath.Join(s.Data, "logs", name+".log"))
		if !strings.Contains(string(b), `"msg":"stopped"`) {
			t.Errorf("%s did not stop gracefully; its log ends:\n%s", name, tail(string(b), 1500))
		}
	}
}

func login(t *testing.T, gw, email, password string) string {
	t.Helper()
	r := servicetest.Call(t, "POST", gw+"/api/users/login", "", map[string]string{"email": email, "password": password})
	if r.Status != http.StatusOK {
		t.Fatalf("login %s: %d %s", email, r.Status, r.Body)
	}
	var tok usersapi.Tokens
	r.JSON(t, &tok)
	return tok.AccessToken
}

// checkout places an order for two of sku and returns it once the saga
// has ended.
func checkout(t *testing.T, gw, token, key, sku, card string) ordersapi.Order {
	t.Helper()
	r := servicetest.Call(t, "POST", gw+"/api/orders", token, map[string]any{
		"lines":            []map[string]any{{"sku": sku, "quantity": 2}},
		"shipping_address": map[string]string{"name": "Mono", "street": "1 Way", "city": "London", "postal_code": "N1", "country": "GB"},
		"card":             map[string]any{"number": card, "exp_month": 12, "exp_year": time.Now().Year() + 2, "cvc": "123"},
	}, "Idempotency-Key", key)
	if r.Status != http.StatusCreated && r.Status != http.StatusAccepted {
		t.Fatalf("checkout %s: %d %s", key, r.Status, r.Body)
	}
	var o ordersapi.Order
	r.JSON(t, &o)
	for deadline := time.Now().Add(30 * time.Second); o.Status == ordersapi.StatusPending; {
		if time.Now().After(deadline) {
			t.Fatalf("order %s still pending after 30s", o.ID)
		}
		time.Sleep(100 * time.Millisecond)
		r = servicetest.Call(t, "GET", gw+"/api/orders/"+o.ID, token, nil)
		r.JSON(t, &o)
	}
	return o
}

func waitForMail(t *testing.T, gw, admin, to, subject string) mailbox.Message {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		r := servicetest.Call(t, "GET", gw+"/api/mailbox/messages?limit=100&to="+url.QueryEscape(to), admin, nil)
		if r.Status != http.StatusOK {
			t.Fatalf("mailbox: %d %s", r.Status, r.Body)
		}
		var box struct{ Items []mailbox.Message }
		r.JSON(t, &box)
		var found []mailbox.Message
		for _, m := range box.Items {
			if m.Subject == subject {
				found = append(found, m)
			}
		}
		switch {
		case len(found) == 1:
			return found[0]
		case len(found) > 1:
			t.Fatalf("%d messages %q; want exactly one", len(found), subject)
		case time.Now().After(deadline):
			t.Fatalf("no message %q to %s within 30s; the mailbox holds %s", subject, to, r.Body)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

func readState(t *testing.T, data string) runState {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(data, "run.json"))
	if err != nil {
		t.Fatal(err)
	}
	var st runState
	if err := json.Unmarshal(b, &st); err != nil {
		t.Fatal(err)
	}
	return st
}

// establishedTo counts the established TCP connections on this machine
// whose local or remote port is port, from /proc/net/tcp and tcp6.
func establishedTo(t *testing.T, port int) int {
	t.Helper()
	n := 0
	for _, file := range []string{"/proc/net/tcp", "/proc/net/tcp6"} {
		f, err := os.Open(file)
		if err != nil {
			if file == "/proc/net/tcp" {
				t.Skipf("cannot read %s: %v", file, err)
			}
			continue
		}
		sc := bufio.NewScanner(f)
		sc.Scan() // the header
		for sc.Scan() {
			fields := strings.Fields(sc.Text())
			if len(fields) < 4 || fields[3] != "01" { // 01: ESTABLISHED
				continue
			}
			if hexPort(fields[1]) == port || hexPort(fields[2]) == port {
				n++
			}
		}
		f.Close()
	}
	return n
}

// hexPort reads the port of a /proc/net/tcp address such as
// "0100007F:1F90".
func hexPort(addr string) int {
	_, p, ok := strings.Cut(addr, ":")
	if !ok {
		return -1
	}
	b, err := hex.DecodeString(p)
	if err != nil || len(b) != 2 {
		return -1
	}
	return int(b[0])<<8 | int(b[1])
}

// control posts to run's control socket.
func control(t *testing.T, data, path string) (int, string) {
	t.Helper()
	hc := &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{
		Dial: func(_, _ string) (net.Conn, error) { return net.Dial("unix", filepath.Join(data, "control.sock")) }}}
	resp, err := hc.Post("http://run"+path, "", nil)
	if err != nil {
		t.Fatalf("control %s: %v", path, err)
	}
	defer resp.Body.Close()
	var b strings.Builder
	sc := bufio.NewScanner(resp.Body)
	for sc.Scan() {
		b.WriteString(sc.Text())
	}
	return resp.StatusCode, b.String()
}

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
