package payments

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/services/payments/contract"
)

var testNow = time.Date(2026, time.March, 15, 12, 0, 0, 0, time.UTC)

func TestLuhn(t *testing.T) {
	for _, c := range []struct {
		digits string
		ok     bool
	}{
		{CardApproved, true}, {CardDeclined, true}, {CardInsufficientFunds, true}, {CardSlow, true},
		{"378282246310005", true},   // amex
		{"5555555555554444", true},  // mastercard
		{"2223003122003222", true},  // mastercard 2-series
		{"6011111111111117", true},  // discover
		{"4242424242424241", false}, // last digit off
		{"4242424242424224", false}, // two digits swapped
		{"0", true}, {"", false}, {"1", false}, {"4a42", false},
	} {
		if got := luhn(c.digits); got != c.ok {
			t.Errorf("luhn(%q) = %v, want %v", c.digits, got, c.ok)
		}
	}
}

func TestParseNumber(t *testing.T) {
	for _, c := range []struct {
		in, want, err string
	}{
		{"4242 4242 4242 4242", "4242424242424242", ""},
		{"4242-4242-4242-4242", "4242424242424242", ""},
		{" 4242424242424242 ", "4242424242424242", ""},
		{"", "", "is required"},
		{"4242 4242 4242 424x", "", "only digits"},
		{"４２４２ 4242 4242 4242", "", "only digits"}, // full-width digits are not digits here
		{"42424242424", "", "12 to 19 digits, not 11"},
		{"42424242424242424242", "", "12 to 19 digits, not 20"},
		{"4242424242424241", "", "Luhn"},
		{strings.Repeat("-", 41), "", "12 to 19 digits"},
	} {
		got, err := parseNumber(c.in)
		if c.err == "" {
			if err != nil || got != c.want {
				t.Errorf("parseNumber(%q) = %q, %v; want %q", c.in, got, err, c.want)
			}
			continue
		}
		if err == nil || !strings.Contains(err.Error(), c.err) {
			t.Errorf("parseNumber(%q) error = %v, want one saying %q", c.in, err, c.err)
		}
		if err != nil && strings.Contains(err.Error(), "4242") {
			t.Errorf("the reason echoes the number: %v", err)
		}
	}
}

func TestBrandOf(t *testing.T) {
	for number, want := range map[string]string{
		"4242424242424242": BrandVisa,
		"5105105105105100": BrandMastercard,
		"5500000000000004": BrandMastercard,
		"2221000000000009": BrandMastercard,
		"2720990000000007": BrandMastercard,
		"2220990000000000": "",
		"2721000000000000": "",
		"5600000000000000": "",
		"378282246310005":  BrandAmex,
		"341111111111111":  BrandAmex,
		"6011000990139424": BrandDiscover,
		"6500000000000002": BrandDiscover,
		"6012000000000000": "",
		"3530111333300000": "", // jcb: not accepted
		"":                 "",
	} {
		if got := brandOf(number); got != want {
			t.Errorf("brandOf(%q) = %q, want %q", number, got, want)
		}
	}
}

func TestParseCard(t *testing.T) {
	good := contract.Card{Number: "4242 4242 4242 4242", ExpMonth: 12, ExpYear: 2030, CVC: "123"}
	c, errs := parseCard(good, testNow)
	if len(errs) != 0 || c.Brand() != BrandVisa || c.Last4() != "4242" {
		t.Fatalf("parseCard(good) = %v, %v", c, errs)
	}
	if s := fmt.Sprintf("%v %+v %s", c, c, c); strings.Contains(s, "42424242") {
		t.Errorf("a card prints its number: %s", s)
	}
	var logged strings.Builder
	req := contract.AuthorizeRequest{OrderID: "o", AmountCents: 1, Currency: "EUR", Card: good}
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "card", c, "input", good, "request", req)
	if strings.Contains(logged.String(), "42424242") || strings.Contains(logged.String(), "4242 4242 4242") {
		t.Errorf("a card logs its number: %s", logged.String())
	}
	if s := fmt.Sprintf("%v %+v %#v %v %+v", good, good, good, req, req); strings.Contains(s, "4242 4242 4242") {
		t.Errorf("the request's card prints its number: %s", s)
	}

	amex := contract.Card{Number: "3782 822463 10005", ExpMonth: 3, ExpYear: 2026, CVC: "1234"}
	if c, errs := parseCard(amex, testNow); len(errs) != 0 || c.Brand() != BrandAmex {
		t.Errorf("amex expiring this month: %v %v", c, errs)
	}

	for _, tc := range []struct {
		name   string
		card   contract.Card
		fields []string
	}{
		{"letters", contract.Card{Number: "4242abcd42424242", ExpMonth: 1, ExpYear: 2030, CVC: "123"}, []string{"card.number"}},
		{"too short", contract.Card{Number: "4242", ExpMonth: 1, ExpYear: 2030, CVC: "123"}, []string{"card.number"}},
		{"too long", contract.Card{Number: strings.Repeat("4", 25), ExpMonth: 1, ExpYear: 2030, CVC: "123"}, []string{"card.number"}},
		{"fails luhn", contract.Card{Number: "4242424242424241", ExpMonth: 1, ExpYear: 2030, CVC: "123"}, []string{"card.number"}},
		{"unknown brand", contract.Card{Number: "3530111333300000", ExpMonth: 1, ExpYear: 2030, CVC: "123"}, []string{"card.number"}},
		{"expired last month", contract.Card{Number: CardApproved, ExpMonth: 2, ExpYear: 2026, CVC: "123"}, []string{"card.exp_year"}},
		{"expired last year", contract.Card{Number: CardApproved, ExpMonth: 12, ExpYear: 2025, CVC: "123"}, []string{"card.exp_year"}},
		{"month 13", contract.Card{Number: CardApproved, ExpMonth: 13, ExpYear: 2030, CVC: "123"}, []string{"card.exp_month"}},
		{"month 0", contract.Card{Number: CardApproved, ExpMonth: 0, ExpYear: 2030, CVC: "123"}, []string{"card.exp_month"}},
		{"two-digit year", contract.Card{Number: CardApproved, ExpMonth: 1, ExpYear: 30, CVC: "123"}, []string{"card.exp_year"}},
		{"21 years ahead", contract.Card{Number: CardApproved, ExpMonth: 1, ExpYear: 2047, CVC: "123"}, []string{"card.exp_year"}},
		{"cvc too short", contract.Card{Number: CardApproved, ExpMonth: 1, ExpYear: 2030, CVC: "12"}, []string{"card.cvc"}},
		{"cvc of 4 on visa", contract.Card{Number: CardApproved, ExpMonth: 1, ExpYear: 2030, CVC: "1234"}, []string{"card.cvc"}},
		{"cvc of 3 on amex", contract.Card{Number: "378282246310005", ExpMonth: 1, ExpYear: 2030, CVC: "123"}, []string{"card.cvc"}},
		{"cvc letters", contract.Card{Number: CardApproved, ExpMonth: 1, ExpYear: 2030, CVC: "12a"}, []string{"card.cvc"}},
		{"all wrong", contract.Card{Number: "x", ExpMonth: 13, ExpYear: 1, CVC: ""}, []string{"card.number", "card.exp_month", "card.exp_year", "card.cvc"}},
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
			if c != (card{}) {
				t.Errorf("an invalid card was returned: %v", c)
			}
		})
	}
	// The day after the twenty-year limit is still this year + 20.
	if _, errs := parseCard(contract.Card{Number: CardApproved, ExpMonth: 12, ExpYear: 2046, CVC: "123"}, testNow); len(errs) != 0 {
		t.Errorf("20 years ahead: %v", errs)
	}
}

func TestProcessor(t *testing.T) {
	p := processor{slowDelay: 50 * time.Millisecond}
	ctx := context.Background()
	mk := func(n string) card {
		c, _ := parseCard(contract.Card{Number: n, ExpMonth: 1, ExpYear: 2030, CVC: "123"}, testNow)
		return c
	}
	for number, want := range map[string]string{
		CardApproved: "", CardDeclined: contract.ReasonCardDeclined,
		CardInsufficientFunds: contract.ReasonInsufficientFunds, "5555555555554444": "",
	} {
		d, err := p.authorize(ctx, mk(number), 100)
		if err != nil || d.declined != want {
			t.Errorf("%s: %+v %v, want declined %q", number, d, err, want)
		}
	}
	start := time.Now()
	if d, err := p.authorize(ctx, mk(CardSlow), 100); err != nil || d.declined != "" || time.Since(start) < 50*time.Millisecond {
		t.Errorf("slow card: %+v %v after %s", d, err, time.Since(start))
	}
	p.slowDelay = time.Hour
	cctx, cancel := context.WithTimeout(ctx, 20*time.Millisecond)
	defer cancel()
	if _, err := p.authorize(cctx, mk(CardSlow), 100); !errors.Is(err, errNoAnswer) || !errors.Is(err, context.DeadlineExceeded) {
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
