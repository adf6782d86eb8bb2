package security

import (
	"context"
	"fmt"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/test/systemtest"
)

// squatters take free replica ports of users (which receives passwords)
// and payments (card numbers, and orders' service credential), each
// copying the public Microshop-Service header of the real replica. They
// come in every kind a stranger could be: plain HTTP, TLS with a
// self-signed certificate or one from another system's authority naming
// the right service, and TLS with this system's own certificate of
// another service (a stranger that took over notifications).
func squatters(t *testing.T, s *systemtest.System) []*squatter {
	t.Helper()
	users, payments := identityOf(t, s.System, "users"), identityOf(t, s.System, "payments")
	return []*squatter{
		squat(t, "users slot 2, self-signed", replicaPort(t, s.System, "users", 1), users, selfSigned(t, "users")),
		squat(t, "users slot 3, another CA", replicaPort(t, s.System, "users", 2), users, otherCA(t, "users")),
		squat(t, "users slot 4, plain HTTP", replicaPort(t, s.System, "users", 3), users, nil),
		squat(t, "payments slot 2, notifications' real certificate", replicaPort(t, s.System, "payments", 1), payments, realCertOf(t, s.System, "notifications")),
		squat(t, "payments slot 3, self-signed", replicaPort(t, s.System, "payments", 2), payments, selfSigned(t, "payments")),
	}
}

// account is one made before the squatters arrive.
type account struct{ email, password string }

func register(t *testing.T, s *systemtest.System) account {
	t.Helper()
	c := account{email: fmt.Sprintf("squat-%d@example.com", time.Now().UnixNano()), password: "long enough password"}
	if _, err := systemtest.Shop(s.Gateway).Register(context.Background(), shopclient.Registration{Email: c.email, Password: c.password, Name: "Squat"}); err != nil {
		t.Fatal(err)
	}
	return c
}

// shopAs drives what the squatters want: logins (passwords, tokens) and
// checkouts (card numbers, orders' service credential), all through the
// gateway. It returns how many logins succeeded and how many checkouts
// were confirmed.
func shopAs(t *testing.T, s *systemtest.System, c account, logins, checkouts int) (loggedIn, confirmed int) {
	t.Helper()
	ctx := context.Background()
	client := systemtest.Shop(s.Gateway)
	var sess *shopclient.Session
	for range logins {
		if got, err := client.Login(ctx, c.email, c.password); err == nil {
			sess = got
			loggedIn++
		} else {
			t.Logf("login: %v", err)
		}
	}
	if sess == nil {
		return loggedIn, 0
	}
	list, err := client.Products(ctx, shopclient.ProductQuery{Limit: 20})
	if err != nil || len(list.Items) == 0 {
		t.Fatalf("catalog: %v", err)
	}
	sku := list.Items[0].SKU
	for _, p := range list.Items {
		if p.Available > int64(checkouts) {
			sku = p.SKU
		}
	}
	for i := range checkouts {
		o, _, err := sess.PlaceOrder(ctx, fmt.Sprintf("squat-%d", i), shopclient.Checkout(shopclient.CardApproved, shopclient.Line{SKU: sku, Quantity: 1}))
		if err != nil {
			t.Logf("checkout %d: %v", i, err)
			continue
		}
		if o.Status == ordersapi.StatusConfirmed {
			confirmed++
		}
	}
	return loggedIn, confirmed
}

// A stranger on a replica port gets no request: not a password, not a
// card number, not a readiness probe. Callers check in the TLS handshake
// that the other end holds this system's certificate of the very service
// they meant to call, and send nothing otherwise (issue 11, item 1).
func TestSquattersOnReplicaPortsGetNothing(t *testing.T) {
	s := systemtest.Start(t, systemtest.AdminEnv...)
	c := register(t, s)
	sq := squatters(t, s)
	time.Sleep(2500 * time.Millisecond) // balancers probe every second

	const logins, checkouts = 6, 6 // logins: under users' 10 a minute
	start := time.Now()
	loggedIn, confirmed := shopAs(t, s, c, logins, checkouts)
	t.Logf("%d logins and %d checkouts took %s", logins, checkouts, time.Since(start))
	if loggedIn != logins || confirmed != checkouts {
		t.Errorf("with squatters on the replica ports, %d of %d logins succeeded and %d of %d checkouts were confirmed",
			loggedIn, logins, confirmed, checkouts)
	}
	for _, q := range sq {
		if q.requests.Load() != 0 {
			t.Errorf("a squatter received requests: %s", q)
		}
		// They were called (probes, at least): the test would pass
		// vacuously if nobody came.
		if q.conns.Load() == 0 {
			t.Errorf("nobody connected to the squatter %s; is it on a replica port?", q.name)
		}
	}
}

// The same attack with the callers' check switched off (the test-only
// MICROSHOP_TLS_TEST_SKIP_PEER_CHECK): the squatters that speak TLS now
// receive logins and checkouts, which shows that the check is what
// stops them above.
func TestSquattersGetTrafficWithoutThePeerCheck(t *testing.T) {
	s := systemtest.Start(t, append(systemtest.AdminEnv, "MICROSHOP_TLS_TEST_SKIP_PEER_CHECK=1")...)
	c := register(t, s)
	sq := squatters(t, s)
	time.Sleep(2500 * time.Millisecond)

	shopAs(t, s, c, 9, 6)
	users := sq[0].traffic() + sq[1].traffic()
	payments := sq[3].traffic() + sq[4].traffic()
	if users == 0 || payments == 0 {
		t.Errorf("without the peer check the squatters should get traffic; users' got %d, payments' %d:\n%s\n%s\n%s\n%s",
			users, payments, sq[0], sq[1], sq[3], sq[4])
	}
	if sq[2].requests.Load() != 0 {
		t.Errorf("a plain HTTP squatter cannot read TLS: %s", sq[2])
	}
	t.Logf("without the check: %s; %s; %s; %s", sq[0], sq[1], sq[3], sq[4])
}
