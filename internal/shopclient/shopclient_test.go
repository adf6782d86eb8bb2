package shopclient_test

import (
	"context"
	"errors"
	"net/http"
	"net/http/httptest"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/mailbox"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/test/systemtest"
)

func TestAgainstTheRealShop(t *testing.T) {
	s := systemtest.Start(t, systemtest.AdminEnv...)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	c := shopclient.MustNew(s.Gateway, shopclient.Options{})

	if _, err := c.Register(ctx, shopclient.Registration{Email: "ann@example.com", Password: "a long password", Name: "Ann"}); err != nil {
		t.Fatal(err)
	}
	_, err := c.Register(ctx, shopclient.Registration{Email: "ann@example.com", Password: "a long password", Name: "Ann"})
	var e *shopclient.Error
	if !errors.As(err, &e) || e.Status != http.StatusConflict || e.Problem == nil {
		t.Fatalf("registering twice: %v, want a 409 problem", err)
	}
	_, err = c.Login(ctx, "ann@example.com", "the wrong password")
	if shopclient.StatusOf(err) != http.StatusUnauthorized {
		t.Fatalf("a wrong password: %v, want 401", err)
	}
	ann, err := c.Login(ctx, "ann@example.com", "a long password")
	if err != nil {
		t.Fatal(err)
	}
	if me, err := ann.Me(ctx); err != nil || me.Email != "ann@example.com" {
		t.Fatalf("me: %+v %v", me, err)
	}
	before := ann.Token()
	if err := ann.Refresh(ctx); err != nil || ann.Token() == "" || ann.Token() == before {
		t.Fatalf("refresh: %v (a new token: %t)", err, ann.Token() != before)
	}

	page, err := c.Products(ctx, shopclient.ProductQuery{Limit: 2})
	if err != nil || len(page.Items) != 2 || page.NextPageToken == "" {
		t.Fatalf("the first page of two: %+v %v", page, err)
	}
	next, err := c.Products(ctx, shopclient.ProductQuery{Limit: 2, PageToken: page.NextPageToken})
	if err != nil || len(next.Items) == 0 || next.Items[0].SKU == page.Items[0].SKU {
		t.Fatalf("the second page: %+v %v", next, err)
	}
	_, err = c.Product(ctx, "NO-SUCH-SKU")
	if !errors.As(err, &e) || e.Status != http.StatusNotFound || e.Slug != "not-found" {
		t.Fatalf("an unknown product: %v", err)
	}

	admin, err := c.Login(ctx, systemtest.AdminEmail, systemtest.AdminPassword)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := admin.CreateProduct(ctx, shopclient.NewProduct{SKU: "CLIENT-1", Name: "Client test mug",
		Description: "For the client's test.", PriceCents: 1250, Currency: "USD", Stock: 3}); err != nil {
		t.Fatal(err)
	}
	if l, err := admin.Restock(ctx, "CLIENT-1", 2); err != nil || l.Available != 5 {
		t.Fatalf("restock: %+v %v", l, err)
	}
	if p, err := c.Product(ctx, "CLIENT-1"); err != nil || p.PriceCents != 1250 {
		t.Fatalf("the new product: %+v %v", p, err)
	}

	// The same key twice names one order.
	o, _, err := ann.PlaceOrder(ctx, "client-test-1", shopclient.Checkout(shopclient.CardApproved, shopclient.Line{SKU: "CLIENT-1", Quantity: 2}))
	if err != nil {
		t.Fatal(err)
	}
	again, _, err := ann.PlaceOrder(ctx, "client-test-1", shopclient.Checkout(shopclient.CardApproved, shopclient.Line{SKU: "CLIENT-1", Quantity: 2}))
	if err != nil || again.ID != o.ID {
		t.Fatalf("the same key again: %s %v, want %s", again.ID, err, o.ID)
	}
	o, err = ann.WaitOrder(ctx, o.ID)
	if err != nil || o.Status != ordersapi.StatusConfirmed || o.TotalCents != 2500 {
		t.Fatalf("the order: %+v %v", o, err)
	}
	declined, err := ann.Checkout(ctx, "client-test-2", shopclient.Checkout(shopclient.CardDeclined, shopclient.Line{SKU: "CLIENT-1", Quantity: 1}))
	if err != nil || declined.Status != ordersapi.StatusRejected || declined.Reason != ordersapi.ReasonPaymentDeclined {
		t.Fatalf("the declined order: %+v %v", declined, err)
	}
	_, _, err = ann.PlaceOrder(ctx, "", shopclient.Checkout(shopclient.CardApproved, shopclient.Line{SKU: "CLIENT-1", Quantity: 1}))
	if !errors.As(err, &e) || e.Status != http.StatusBadRequest || e.Slug != "idempotency-key-required" {
		t.Fatalf("an order without a key: %v", err)
	}
	if _, err := ann.CancelOrder(ctx, o.ID); err != nil {
		t.Fatal(err)
	}
	if o, err := ann.WaitOrder(ctx, o.ID); err != nil || o.Status != ordersapi.StatusCancelled {
		t.Fatalf("the cancelled order: %+v %v", o, err)
	}
	if mine, err := ann.Orders(ctx, 10, ""); err != nil || len(mine.Items) != 2 {
		t.Fatalf("ann's orders: %+v %v", mine, err)
	}

	// What admins read.
	if _, err := ann.Stock(ctx); shopclient.StatusOf(err) != http.StatusForbidden {
		t.Fatalf("a customer reading the stock: %v, want 403", err)
	}
	stock, err := admin.Stock(ctx)
	if err != nil {
		t.Fatal(err)
	}
	for _, l := range stock {
		if l.SKU == "CLIENT-1" && (l.Received != 5 || l.Available != 5 || l.Sold != 0) {
			t.Errorf("the stock after the cancel: %+v", l)
		}
	}
	all, err := admin.AllOrders(ctx)
	if err != nil || len(all) != 2 {
		t.Fatalf("every order: %d %v", len(all), err)
	}
	if saga, err := admin.Saga(ctx, o.ID); err != nil || len(saga) == 0 {
		t.Fatalf("the saga: %v %v", saga, err)
	}
	if pays, err := admin.Payments(ctx); err != nil || len(pays) == 0 {
		t.Fatalf("payments: %v %v", pays, err)
	}
	if l, err := admin.Ledger(ctx); err != nil || !l.Balanced {
		t.Fatalf("the ledger: %+v %v", l, err)
	}
	if _, err := admin.Summary(ctx, "USD"); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Sales(ctx, "day", time.Now().Add(-24*time.Hour), time.Now().Add(time.Hour)); err != nil {
		t.Fatal(err)
	}
	if _, err := admin.Mailbox(ctx, shopclient.MailFilter{To: "ann@example.com"}); err != nil {
		t.Fatal(err)
	}
	if streams, err := admin.Streams(ctx); err != nil || len(streams) == 0 {
		t.Fatalf("streams: %v %v", streams, err)
	}
}

func TestErrorsAndRefusals(t *testing.T) {
	elsewhere := httptest.NewServer(http.NotFoundHandler())
	defer elsewhere.Close()
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		switch r.URL.Path {
		case "/api/users/login":
			w.Header().Set("Content-Type", "application/json")
			_, _ = w.Write([]byte(`{"access_token":"t","expires_in":900}`))
		case "/api/orders":
			w.Header().Set("Content-Type", "application/json")
			w.Header().Set("Location", elsewhere.URL+"/api/orders/1")
			w.WriteHeader(http.StatusAccepted)
			_, _ = w.Write([]byte(`{"id":"1","status":"PENDING"}`))
		case "/api/inventory/products/DECLINED":
			p := problem.New(http.StatusPaymentRequired, "payment-declined", "Declined", "no")
			p.Extensions = map[string]any{"reason": "card_declined"}
			problem.Write(w, r, p)
		case "/api/inventory/products/HTML":
			http.Error(w, "<html>bad gateway</html>", http.StatusBadGateway)
		case "/api/inventory/products/JUNK":
			_, _ = w.Write([]byte("not json"))
		default:
			http.Redirect(w, r, elsewhere.URL, http.StatusFound)
		}
	}))
	defer srv.Close()
	ctx := context.Background()
	c := shopclient.MustNew(srv.URL, shopclient.Options{})

	_, err := c.Product(ctx, "DECLINED")
	var e *shopclient.Error
	if !errors.As(err, &e) || e.Status != 402 || e.Slug != "payment-declined" || e.Reason != "card_declined" || e.Title != "Declined" {
		t.Errorf("a problem: %#v", err)
	}
	if _, err := c.Product(ctx, "HTML"); !errors.As(err, &e) || e.Status != 502 || e.Problem != nil || e.Body == "" {
		t.Errorf("a non-problem answer: %v", err)
	}
	if _, err := c.Product(ctx, "JUNK"); !errors.Is(err, shopclient.ErrBadResponse) {
		t.Errorf("a garbled answer: %v", err)
	}
	if _, err := c.Product(ctx, "ELSEWHERE"); shopclient.StatusOf(err) != http.StatusFound {
		t.Errorf("a redirect: %v, want it taken as a 302", err)
	}
	s, err := c.Login(ctx, "a@example.com", "pw")
	if err != nil {
		t.Fatal(err)
	}
	if _, _, err := s.PlaceOrder(ctx, "k", shopclient.Checkout(shopclient.CardApproved)); !errors.Is(err, shopclient.ErrBadResponse) {
		t.Errorf("a Location on another host: %v", err)
	}
	if _, err := shopclient.New(srv.URL+"/api", shopclient.Options{}); err == nil {
		t.Error("a URL with a path was taken")
	}
}

func TestReceiptOf(t *testing.T) {
	if id, ok := shopclient.ReceiptOf(mailbox.Message{Subject: shopclient.ReceiptSubject("01ORDER")}); !ok || id != "01ORDER" {
		t.Errorf("a receipt's order = %q, %v", id, ok)
	}
	for _, subject := range []string{"We could not complete your microshop order 01ORDER", "Your microshop order 01ORDER was cancelled and refunded"} {
		if id, ok := shopclient.ReceiptOf(mailbox.Message{Subject: subject}); ok {
			t.Errorf("%q is taken for the receipt of %q", subject, id)
		}
	}
}
