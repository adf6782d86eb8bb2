package payments

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/services/payments/paymentsapi"
)

var testNow = time.Date(2026, time.March, 15, 12, 0, 0, 0, time.UTC)

func TestParseCard(t *testing.T) {
	good := paymentsapi.Card{Number: "4242 4242 4242 4242", ExpMonth: 12, ExpYear: 2030, CVC: "123"}
	c, errs := parseCard(good, testNow)
	if len(errs) != 0 || c.Brand() != paymentsapi.BrandVisa || c.Last4() != "4242" {
		t.Fatalf("parseCard(good) = %v, %v", c, errs)
	}
	if s := fmt.Sprintf("%v %+v %s", c, c, c); strings.Contains(s, "42424242") {
		t.Errorf("a card prints its number: %s", s)
	}
	var logged strings.Builder
	req := paymentsapi.AuthorizeRequest{OrderID: "o", AmountCents: 1, Currency: "EUR", Card: good}
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "card", c, "input", good, "request", req)
	if strings.Contains(logged.String(), "42424242") || strings.Contains(logged.String(), "4242 4242 4242") {
		t.Errorf("a card logs its number: %s", logged.String())
	}
	if s := fmt.Sprintf("%v %+v %#v %v %+v", good, good, good, req, req); strings.Contains(s, "4242 4242 4242") {
		t.Errorf("the request's card prints its number: %s", s)
	}

	amex := paymentsapi.Card{Number: "3782 822463 10005", ExpMonth: 3, ExpYear: 2026, CVC: "1234"}
	if c, errs := parseCard(amex, testNow); len(errs) != 0 || c.Brand() != paymentsapi.BrandAmex {
		t.Errorf("amex expiring this month: %v %v", c, errs)
	}

	for _, tc := range []struct {
		name   string
		card   paymentsapi.Card
		fields []string
	}{
		{"letters", paymentsapi.Card{Number: "4242abcd42424242", ExpMonth: 1, ExpYear: 2030, CVC: "123"}, []string{"card.number"}},
		{"too short", paymentsapi.Card{Number: "4242", ExpMonth: 1, ExpYear: 2030, CVC: "123"}, []string{"card.number"}},
		{"too long", paymentsapi.Card{Number: strings.Repeat("4", 25), ExpMonth: 1, ExpYear: 2030, CVC: "123"}, []string{"card.number"}},
		{"fails luhn", paymentsapi.Card{Number: "4242424242424241", ExpMonth: 1, ExpYear: 2030, CVC: "123"}, []string{"card.number"}},
		{"unknown brand", paymentsapi.Card{Number: "3530111333300000", ExpMonth: 1, ExpYear: 2030, CVC: "123"}, []string{"card.number"}},
		{"expired last month", paymentsapi.Card{Number: CardApproved, ExpMonth: 2, ExpYear: 2026, CVC: "123"}, []string{"card.exp_year"}},
		{"expired last year", paymentsapi.Card{Number: CardApproved, ExpMonth: 12, ExpYear: 2025, CVC: "123"}, []string{"card.exp_year"}},
		{"month 13", paymentsapi.Card{Number: CardApproved, ExpMonth: 13, ExpYear: 2030, CVC: "123"}, []string{"card.exp_month"}},
		{"month 0", paymentsapi.Card{Number: CardApproved, ExpMonth: 0, ExpYear: 2030, CVC: "123"}, []string{"card.exp_month"}},
		{"two-digit year", paymentsapi.Card{Number: CardApproved, ExpMonth: 1, ExpYear: 30, CVC: "123"}, []string{"card.exp_year"}},
		{"21 years ahead", paymentsapi.Card{Number: CardApproved, ExpMonth: 1, ExpYear: 2047, CVC: "123"}, []string{"card.exp_year"}},
		{"cvc too short", paymentsapi.Card{Number: CardApproved, ExpMonth: 1, ExpYear: 2030, CVC: "12"}, []string{"card.cvc"}},
		{"cvc of 4 on visa", paymentsapi.Card{Number: CardApproved, ExpMonth: 1, ExpYear: 2030, CVC: "1234"}, []string{"card.cvc"}},
		{"cvc of 3 on amex", paymentsapi.Card{Number: "378282246310005", ExpMonth: 1, ExpYear: 2030, CVC: "123"}, []string{"card.cvc"}},
		{"cvc letters", paymentsapi.Card{Number: CardApproved, ExpMonth: 1, ExpYear: 2030, CVC: "12a"}, []string{"card.cvc"}},
		{"all wrong", paymentsapi.Card{Number: "x", ExpMonth: 13, ExpYear: 1, CVC: ""}, []string{"card.number", "card.exp_month", "card.exp_year", "card.cvc"}},
	} {
		t.Run(tc.name, func(t *testing.T) {
			c, errs := parseCard(tc.card, testNow)
			var fields []string
			for _, e := range errs {
				fields = append(fields, e.Field)
				if e.Reason == "" {
					t.Errorf("no reason for %s", e.Field)
				}
			}
			if strings.Join(fields, ",") != strings.Join(tc.fields, ",") {
				t.Errorf("fields %v, want %v", fields, tc.fields)
			}
			if c != (paymentsapi.Checked{}) {
				t.Errorf("an invalid card was returned: %v", c)
			}
		})
	}
	// The day after the twenty-year limit is still this year + 20.
	if _, errs := parseCard(paymentsapi.Card{Number: CardApproved, ExpMonth: 12, ExpYear: 2046, CVC: "123"}, testNow); len(errs) != 0 {
		t.Errorf("20 years ahead: %v", errs)
	}
}

func TestSimulator(t *testing.T) {
	p := simulator(t, SimulatorConfig{SlowCardDelay: 50 * time.Millisecond})
	ctx := context.Background()
	mk := func(n string) paymentsapi.Checked {
		c, _ := parseCard(paymentsapi.Card{Number: n, ExpMonth: 1, ExpYear: 2030, CVC: "123"}, testNow)
		return c
	}
	for number, want := range map[string]string{
		CardApproved: "", CardDeclined: paymentsapi.ReasonCardDeclined,
		CardInsufficientFunds: paymentsapi.ReasonInsufficientFunds, "5555555555554444": "",
	} {
		d, err := p.Authorize(ctx, mk(number), 100, "USD")
		if err != nil || d.Declined != want {
			t.Errorf("%s: %+v %v, want declined %q", number, d, err, want)
		}
	}
	start := time.Now()
	if d, err := p.Authorize(ctx, mk(CardSlow), 100, "USD"); err != nil || d.Declined != "" || time.Since(start) < 50*time.Millisecond {
		t.Errorf("slow card: %+v %v after %s", d, err, time.Since(start))
	}
	p = simulator(t, SimulatorConfig{SlowCardDelay: time.Hour})
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := p.Authorize(cctx, mk(CardSlow), 100, "USD"); !errors.Is(err, ErrNoAnswer) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("slow card past the deadline: %v", err)
	}
}

func TestKeyLocks(t *testing.T) {
	l := keyLocks{held: map[string]*keyLock{}}
	ctx := context.Background()
	unlock, err := l.lock(ctx, "k")
	if err != nil {
		t.Fatal(err)
	}
	// Another key is free; the same key waits.
	u2, err := l.lock(ctx, "other")
	if err != nil {
		t.Fatal(err)
	}
	u2()
	wctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := l.lock(wctx, "k"); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("a second holder of k: %v", err)
	}
	got := make(chan struct{})
	go func() {
		u, err := l.lock(ctx, "k")
		if err == nil {
			u()
		}
		close(got)
	}()
	unlock()
	<-got
	if len(l.held) != 0 {
		t.Errorf("locks left behind: %v", l.held)
	}
}

func TestSimulatorLatencyAndConnections(t *testing.T) {
	mk := func(n string) paymentsapi.Checked {
		c, _ := parseCard(paymentsapi.Card{Number: n, ExpMonth: 1, ExpYear: 2030, CVC: "123"}, testNow)
		return c
	}
	const latency = 40 * time.Millisecond
	p := simulator(t, SimulatorConfig{SlowCardDelay: time.Hour, Latency: latency, Connections: 2})
	ctx := context.Background()

	// Every answer takes the latency, declines too.
	for _, number := range []string{CardApproved, CardDeclined} {
		start := time.Now()
		if _, err := p.Authorize(ctx, mk(number), 100, "USD"); err != nil || time.Since(start) < latency {
			t.Errorf("%s answered after %s (%v), want at least %s", number, time.Since(start), err, latency)
		}
	}

	// Six at once through two connections take three rounds.
	start := time.Now()
	var wg sync.WaitGroup
	for range 6 {
		wg.Go(func() {
			if d, err := p.Authorize(ctx, mk(CardApproved), 100, "USD"); err != nil || d.Declined != "" {
				t.Errorf("approved card: %+v %v", d, err)
			}
		})
	}
	wg.Wait()
	if took := time.Since(start); took < 3*latency {
		t.Errorf("six authorizations over two connections took %s, want at least %s", took, 3*latency)
	}

	// A caller that gives up while waiting for a connection is answered so.
	busy := make(chan struct{})
	lanes := p.lanes // p is reassigned below, while these may still run
	for range 2 {
		go func() {
			lanes <- struct{}{}
			<-busy
			<-lanes
		}()
	}
	for len(lanes) < 2 {
		time.Sleep(time.Millisecond)
	}
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := p.Authorize(cctx, mk(CardApproved), 100, "USD"); !errors.Is(err, ErrNoAnswer) || !errors.Is(err, context.DeadlineExceeded) {
		t.Errorf("waiting for a busy processor past the deadline: %v", err)
	}
	close(busy)

	// The default simulator adds nothing and has no limit.
	p = simulator(t, SimulatorConfig{SlowCardDelay: time.Hour})
	start = time.Now()
	for range 50 {
		if _, err := p.Authorize(ctx, mk(CardApproved), 100, "USD"); err != nil {
			t.Fatal(err)
		}
	}
	if took := time.Since(start); took > 100*time.Millisecond {
		t.Errorf("50 authorizations with no latency took %s", took)
	}
}

func simulator(t *testing.T, cfg SimulatorConfig) *Simulator {
	t.Helper()
	s, err := NewSimulator(cfg)
	if err != nil {
		t.Fatal(err)
	}
	return s
}
