package orders

import (
	"fmt"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/platform/problem"
)

// Card is the card a customer pays with. orders holds it in memory only,
// for as long as it takes to ask payments to authorize it; it is never
// stored or logged (its String method hides the number).
type Card struct {
	Number   string `json:"number"`
	ExpMonth int    `json:"exp_month"`
	ExpYear  int    `json:"exp_year"`
	CVC      string `json:"cvc"`
}

// String never shows the number or the code.
func (c Card) String() string { return "card ending " + c.last4() }

// GoString keeps %#v from printing the number too.
func (c Card) GoString() string { return c.String() }

func (c Card) digits() string {
	return strings.Map(func(r rune) rune {
		if r == ' ' || r == '-' {
			return -1
		}
		return r
	}, c.Number)
}

func (c Card) last4() string {
	d := c.digits()
	if len(d) < 4 {
		return ""
	}
	return d[len(d)-4:]
}

// brand names the card network from the number's prefix.
func (c Card) brand() string {
	d := c.digits()
	switch {
	case strings.HasPrefix(d, "4"):
		return "visa"
	case strings.HasPrefix(d, "34"), strings.HasPrefix(d, "37"):
		return "amex"
	case len(d) >= 2 && d[0] == '5' && d[1] >= '1' && d[1] <= '5':
		return "mastercard"
	case len(d) >= 4 && d[:4] >= "2221" && d[:4] <= "2720":
		return "mastercard"
	case strings.HasPrefix(d, "6011"), strings.HasPrefix(d, "65"):
		return "discover"
	}
	return "unknown"
}

// valid checks what can be checked without the card network, so an order
// with a malformed card is refused before anything is stored. payments
// checks again: it is the authority.
func (c Card) valid(now time.Time) []problem.FieldError {
	var errs []problem.FieldError
	d := c.digits()
	switch {
	case d == "":
		errs = append(errs, problem.FieldError{Field: "card.number", Reason: "is required"})
	case !allDigits(d) || len(d) < 12 || len(d) > 19:
		errs = append(errs, problem.FieldError{Field: "card.number", Reason: "must be 12 to 19 digits"})
	case !luhn(d):
		errs = append(errs, problem.FieldError{Field: "card.number", Reason: "is not a valid card number (check digit)"})
	}
	if c.ExpMonth < 1 || c.ExpMonth > 12 {
		errs = append(errs, problem.FieldError{Field: "card.exp_month", Reason: "must be between 1 and 12"})
	}
	year, month := now.Year(), int(now.Month())
	switch {
	case c.ExpYear < 1000 || c.ExpYear > 9999:
		errs = append(errs, problem.FieldError{Field: "card.exp_year", Reason: "must be a four-digit year"})
	case c.ExpYear < year || (c.ExpYear == year && c.ExpMonth >= 1 && c.ExpMonth < month):
		errs = append(errs, problem.FieldError{Field: "card.exp_year", Reason: "the card has expired"})
	case c.ExpYear > year+20:
		errs = append(errs, problem.FieldError{Field: "card.exp_year", Reason: "is too far in the future"})
	}
	wantCVC := 3
	if c.brand() == "amex" {
		wantCVC = 4
	}
	if len(c.CVC) != wantCVC || !allDigits(c.CVC) {
		errs = append(errs, problem.FieldError{Field: "card.cvc", Reason: fmt.Sprintf("must be %d digits", wantCVC)})
	}
	return errs
}

func allDigits(s string) bool {
	for _, r := range s {
		if r < '0' || r > '9' {
			return false
		}
	}
	return s != ""
}

// luhn reports whether the number's check digit is right.
func luhn(d string) bool {
	sum := 0
	double := false
	for i := len(d) - 1; i >= 0; i-- {
		n := int(d[i] - '0')
		if double {
			n *= 2
			if n > 9 {
				n -= 9
			}
		}
		sum += n
		double = !double
	}
	return sum%10 == 0
}
