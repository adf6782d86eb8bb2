// Package monolith runs `microshop run --mode monolith` as a real process
// and uses it the way the microservices mode is used, through the gateway
// only: the same system, every service in one process, calls between the
// services handed over in memory.
package monolith

import (
	"bufio"
	"context"
	"encoding/hex"
	"fmt"
	"net/http"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/mailbox"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/test/systemtest"
)

func TestMonolithEndToEnd(t *testing.T) {
	ctx := context.Background()
	// --mode comes from MICROSHOP_MODE, as every flag of run may.
	s := systemtest.Start(t, append([]string{"MICROSHOP_MODE=monolith"}, systemtest.AdminEnv...)...)
	shop := systemtest.Shop(s.Gateway)
	if !strings.Contains(s.Output(), "Mode monolith") {
		t.Fatalf("run did not say it runs as a monolith:\n%s", s.Output())
	}

	// One process holds every service (and the broker), each with its own
	// database file and its own port.
	st, err := localrun.ReadState(s.Data)
	if err != nil {
		t.Fatal(err)
	}
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
	customer := systemtest.Customer(t, shop, "mono")
	if me, err := customer.Me(ctx); err != nil || me.Email != customer.Email {
		t.Fatalf("me: %+v %v", me, err)
	}
	// A token is still checked: a forged one gets 401.
	tok := customer.Token()
	if _, err := shop.As(tok[:len(tok)-4] + "AAAA").Me(ctx); shopclient.StatusOf(err) != http.StatusUnauthorized {
		t.Fatalf("me with a forged token: %v", err)
	}

	// Browse: a first page, the next one, one product.
	page, err := shop.Products(ctx, shopclient.ProductQuery{Limit: 5})
	if err != nil || len(page.Items) != 5 || page.NextPageToken == "" {
		t.Fatalf("want a first page of 5 seeded products: %+v %v", page, err)
	}
	if _, err := shop.Products(ctx, shopclient.ProductQuery{Limit: 5, PageToken: page.NextPageToken}); err != nil {
		t.Fatalf("second page: %v", err)
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
	product, err := shop.Product(ctx, sku)
	if err != nil || product.PriceCents <= 0 {
		t.Fatalf("one product: %+v %v", product, err)
	}

	// A checkout that confirms: orders calls inventory and payments.
	checkout := func(key, card string) ordersapi.Order {
		t.Helper()
		ctx, cancel := context.WithTimeout(ctx, 30*time.Second)
		defer cancel()
		o, err := customer.Checkout(ctx, key, shopclient.Checkout(card, shopclient.Line{SKU: sku, Quantity: 2}))
		if err != nil {
			t.Fatalf("checkout %s: %v", key, err)
		}
		return o
	}
	confirmed := checkout("mono-ok", shopclient.CardApproved)
	if confirmed.Status != ordersapi.StatusConfirmed || confirmed.TotalCents != 2*product.PriceCents || confirmed.Card.Last4 != "4242" {
		t.Fatalf("want a confirmed order of 2 × %d: %+v", product.PriceCents, confirmed)
	}
	// The same key again names the same order.
	if again := checkout("mono-ok", shopclient.CardApproved); again.ID != confirmed.ID {
		t.Fatalf("the same Idempotency-Key gave another order: %s, then %s", confirmed.ID, again.ID)
	}
	// A declined card: rejected, its stock released.
	declined := checkout("mono-declined", shopclient.CardDeclined)
	if declined.Status != ordersapi.StatusRejected || declined.Reason != ordersapi.ReasonPaymentDeclined {
		t.Fatalf("want a rejected order (payment_declined): %+v", declined)
	}
	if after, err := shop.Product(ctx, sku); err != nil || after.Available != product.Available-2 {
		t.Errorf("available went from %d to %d (%v); want 2 sold, the declined one released", product.Available, after.Available, err)
	}
	if o, err := customer.Order(ctx, confirmed.ID); err != nil || o.Status != ordersapi.StatusConfirmed {
		t.Fatalf("the confirmed order: %+v %v", o, err)
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
	admin := systemtest.Login(t, shop, systemtest.AdminEmail, systemtest.AdminPassword)
	receipt := waitForMail(t, admin, customer.Email, shopclient.ReceiptSubject(confirmed.ID))
	if !strings.Contains(receipt.Text, confirmed.ID) {
		t.Errorf("the receipt does not name the order: %+v", receipt)
	}
	waitForMail(t, admin, customer.Email, "We could not complete your microshop order "+declined.ID)
	// A customer may not read the mailbox.
	if _, err := customer.Mailbox(ctx, shopclient.MailFilter{}); shopclient.StatusOf(err) != http.StatusForbidden {
		t.Errorf("a customer reading the mailbox: %v", err)
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
	if _, err := s.System.Scale(ctx, "payments", 2); err == nil || !strings.Contains(err.Error(), "monolith") {
		t.Errorf("scaling in a monolith: %v", err)
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

// waitForMail waits up to 30s for the message to to with subject, and
// requires exactly one.
func waitForMail(t *testing.T, admin *shopclient.Session, to, subject string) mailbox.Message {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		box, err := admin.Mailbox(context.Background(), shopclient.MailFilter{To: to, Limit: 100})
		if err != nil {
			t.Fatalf("mailbox: %v", err)
		}
		var found []mailbox.Message
		for _, m := range box {
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
			t.Fatalf("no message %q to %s within 30s; the mailbox holds %+v", subject, to, box)
		}
		time.Sleep(200 * time.Millisecond)
	}
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

func tail(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
