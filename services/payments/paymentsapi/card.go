package paymentsapi

import (
	"fmt"
	"log/slog"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/platform/problem"
)

// Card brands payments accepts, as in Payment.Brand.
const (
	BrandVisa       = "visa"
	BrandMastercard = "mastercard"
	BrandAmex       = "amex"
	BrandDiscover   = "discover"
)

// maxExpiryYears is how far ahead an expiry year may be.
const maxExpiryYears = 20

// Checked is a card that passed Check. It holds the number, digits only,
// in memory for the card processor; it prints and logs masked, and its
// fields are unexported so no other package can make one that did not
// pass Check.
type Checked struct {
	number string
	brand  string
}

// Brand is BrandVisa, BrandMastercard, BrandAmex or BrandDiscover.
func (c Checked) Brand() string { return c.brand }

// Last4 is the last four digits, the only part of the number anyone keeps.
func (c Checked) Last4() string {
	if len(c.number) < 4 {
		return ""
	}
	return c.number[len(c.number)-4:]
}

// Number is the number, digits only. It is for the card processor alone:
// never log, store or send it anywhere else.
func (c Checked) Number() string { return c.number }

// String masks the card.
func (c Checked) String() string { return c.brand + " ****" + c.Last4() }

// GoString masks the card for %#v too.
func (c Checked) GoString() string { return c.String() }

// LogValue masks the card in structured logs.
func (c Checked) LogValue() slog.Value { return slog.StringValue(c.String()) }

// Check validates every field of c as of now: the number (12 to 19
// digits, spaces and dashes allowed, passing the Luhn check, of an
// accepted brand), the expiry (good through the last day of its month, in
// UTC, at most 20 years ahead) and the cvc (4 digits for amex, 3 for the
// others). It returns the checked card or one problem per invalid field,
// named "card.number", "card.exp_month", "card.exp_year" or "card.cvc".
// Reasons never echo the number or the cvc. payments accepts exactly the
// cards Check accepts; callers check early with it to refuse a bad card
// before doing anything else.
func (c Card) Check(now time.Time) (Checked, []problem.FieldError) {
	var errs []problem.FieldError
	add := func(field, reason string) {
		errs = append(errs, problem.FieldError{Field: "card." + field, Reason: reason})
	}
	number, err := parseNumber(c.Number)
	if err != nil {
		add("number", err.Error())
	}
	brand := brandOf(number)
	if err == nil && brand == "" {
		add("number", "must be a visa, mastercard, amex or discover card")
	}
	for _, fe := range expiryProblems(c.ExpMonth, c.ExpYear, now) {
		add(fe.Field, fe.Reason)
	}
	if reason := cvcProblem(c.CVC, brand); reason != "" {
		add("cvc", reason)
	}
	if len(errs) > 0 {
		return Checked{}, errs
	}
	return Checked{number: number, brand: brand}, nil
}

// Brand names the brand of c's number from its leading digits, whether or
// not the number is valid (other characters are skipped), or "" for none
// payments accepts.
func (c Card) Brand() string { return brandOf(digitsOf(c.Number)) }

// digitsOf keeps only s's ASCII digits.
func digitsOf(s string) string {
	digits := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		if b := s[i]; b >= '0' && b <= '9' {
			digits = append(digits, b)
		}
	}
	return string(digits)
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
