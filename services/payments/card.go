package payments

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/services/payments/contract"
)

// Card brands the processor accepts.
const (
	BrandVisa       = "visa"
	BrandMastercard = "mastercard"
	BrandAmex       = "amex"
	BrandDiscover   = "discover"
)

// The test cards of the built-in processor. Any other valid number is
// approved.
const (
	CardApproved          = "4242424242424242"
	CardDeclined          = "4000000000000002" // card_declined
	CardInsufficientFunds = "4000000000009995" // insufficient_funds
	// CardSlow answers after --slow-card-delay (10s by default), or when
	// the caller gives up, whichever comes first; then it approves.
	CardSlow = "4000000000000077"
)

const maxExpiryYears = 20

// card is a validated payment card. It holds the number only in memory,
// for the processor; nothing outside this file reads it, and it prints
// and logs masked.
type card struct {
	number   string // digits only
	brand    string
	expMonth int
	expYear  int
}

// Brand is visa, mastercard, amex or discover.
func (c card) Brand() string { return c.brand }

// Last4 is the last four digits, the only part of the number kept.
func (c card) Last4() string { return c.number[len(c.number)-4:] }

// String masks the card.
func (c card) String() string { return c.brand + " ****" + c.Last4() }

// LogValue masks the card in structured logs.
func (c card) LogValue() slog.Value { return slog.StringValue(c.String()) }

// parseCard checks every field of in, as of now, and returns the card or
// one problem per invalid field. Field names are prefixed with "card.".
// Reasons never echo the number or the cvc.
func parseCard(in contract.Card, now time.Time) (card, []problem.FieldError) {
	var errs []problem.FieldError
	add := func(field, reason string) {
		errs = append(errs, problem.FieldError{Field: "card." + field, Reason: reason})
	}
	number, err := parseNumber(in.Number)
	if err != nil {
		add("number", err.Error())
	}
	brand := brandOf(number)
	if err == nil && brand == "" {
		add("number", "must be a visa, mastercard, amex or discover card")
	}
	for _, fe := range expiryProblems(in.ExpMonth, in.ExpYear, now) {
		add(fe.Field, fe.Reason)
	}
	if reason := cvcProblem(in.CVC, brand); reason != "" {
		add("cvc", reason)
	}
	if len(errs) > 0 {
		return card{}, errs
	}
	return card{number: number, brand: brand, expMonth: in.ExpMonth, expYear: in.ExpYear}, nil
}

// parseNumber strips the spaces and dashes people type and checks that
// what is left is 12 to 19 digits passing the Luhn check.
func parseNumber(s string) (string, error) {
	if s == "" {
		return "", fmt.Errorf("is required")
	}
	if len(s) > 40 {
		return "", fmt.Errorf("must be 12 to 19 digits")
	}
	digits := make([]byte, 0, 19)
	for i := 0; i < len(s); i++ {
		switch b := s[i]; {
		case b >= '0' && b <= '9':
			digits = append(digits, b)
		case b == ' ' || b == '-':
		default:
			return "", fmt.Errorf("must hold only digits, spaces and dashes")
		}
	}
	if len(digits) < 12 || len(digits) > 19 {
		return "", fmt.Errorf("must be 12 to 19 digits, not %d", len(digits))
	}
	if !luhn(string(digits)) {
		return "", fmt.Errorf("is not a valid card number (it fails the Luhn check)")
	}
	return string(digits), nil
}

// luhn reports whether digits (ASCII digits only) pass the Luhn check.
func luhn(digits string) bool {
	if digits == "" {
		return false
	}
	sum := 0
	for i := range len(digits) {
		d := int(digits[len(digits)-1-i] - '0')
		if d < 0 || d > 9 {
			return false
		}
		if i%2 == 1 {
			d *= 2
			if d > 9 {
				d -= 9
			}
		}
		sum += d
	}
	return sum%10 == 0
}

// brandOf names a card's brand from its leading digits, or "".
func brandOf(number string) string {
	prefix := func(n int) int {
		if len(number) < n {
			return -1
		}
		v := 0
		for _, b := range number[:n] {
			v = v*10 + int(b-'0')
		}
		return v
	}
	switch p2, p4 := prefix(2), prefix(4); {
	case strings.HasPrefix(number, "4"):
		return BrandVisa
	case p2 >= 51 && p2 <= 55, p4 >= 2221 && p4 <= 2720:
		return BrandMastercard
	case p2 == 34, p2 == 37:
		return BrandAmex
	case p4 == 6011, p2 == 65:
		return BrandDiscover
	}
	return ""
}

// expiryProblems says what is wrong with an expiry, by field. A card is
// good through the last day of its expiry month (in UTC).
func expiryProblems(month, year int, now time.Time) []problem.FieldError {
	now = now.UTC()
	var errs []problem.FieldError
	if month < 1 || month > 12 {
		errs = append(errs, problem.FieldError{Field: "exp_month", Reason: "must be a month from 1 to 12"})
	}
	switch {
	case year < 1000 || year > 9999:
		errs = append(errs, problem.FieldError{Field: "exp_year", Reason: "must be a four-digit year"})
	case year > now.Year()+maxExpiryYears:
		errs = append(errs, problem.FieldError{Field: "exp_year", Reason: fmt.Sprintf("must be at most %d years ahead", maxExpiryYears)})
	case len(errs) == 0 && !now.Before(time.Date(year, time.Month(month)+1, 1, 0, 0, 0, 0, time.UTC)):
		errs = append(errs, problem.FieldError{Field: "exp_year", Reason: "the card has expired"})
	}
	return errs
}

// cvcProblem checks the security code: 4 digits for amex, 3 for the others.
func cvcProblem(cvc, brand string) string {
	want := 3
	if brand == BrandAmex {
		want = 4
	}
	if len(cvc) != want || strings.Trim(cvc, "0123456789") != "" {
		return fmt.Sprintf("must be %d digits", want)
	}
	return ""
}

// errNoAnswer: the card processor had not answered when the caller gave up.
var errNoAnswer = errors.New("the card processor did not answer in time")

// processor is the built-in card processor. It behaves like a real one
// for the test cards above: it approves, declines with a reason, or takes
// its time. It keeps nothing.
type processor struct {
	slowDelay time.Duration
}

// decision is the processor's answer: declined with a reason, or approved.
type decision struct {
	declined string
}

// authorize asks for amount to be held on c. Only a slow card can fail,
// when ctx ends before it answers.
func (p processor) authorize(ctx context.Context, c card, amount int64) (decision, error) {
	switch c.number {
	case CardDeclined:
		return decision{declined: contract.ReasonCardDeclined}, nil
	case CardInsufficientFunds:
		return decision{declined: contract.ReasonInsufficientFunds}, nil
	case CardSlow:
		t := time.NewTimer(p.slowDelay)
		defer t.Stop()
		select {
		case <-t.C:
		case <-ctx.Done():
			return decision{}, fmt.Errorf("%w: %w", errNoAnswer, ctx.Err())
		}
	}
	return decision{}, nil
}
