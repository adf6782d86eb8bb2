package paymentsapi

import (
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"
)

func TestLuhn(t *testing.T) {
	for _, c := range []struct {
		digits string
		ok     bool
	}{
		// payments' test cards: approved, declined, insufficient funds, slow.
		{"4242424242424242", true}, {"4000000000000002", true}, {"4000000000009995", true}, {"4000000000000077", true},
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

// FuzzParseNumber: the parser never panics, and what it accepts is 12-19
// digits passing Luhn, made of the input's digits in order.
func FuzzParseNumber(f *testing.F) {
	for _, s := range []string{"4242424242424242", "4242 4242 4242 4242", "4242-4242-4242-4242", "", "abc", "4242424242424241",
		"1234567890123", strings.Repeat("0", 19), strings.Repeat("0", 20), "4\u00a0242", "٤٢٤٢"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, in string) {
		got, err := parseNumber(in)
		if err != nil {
			if got != "" {
				t.Fatalf("an error and a number: %q", got)
			}
			return
		}
		if len(got) < 12 || len(got) > 19 || !luhn(got) || got != digitsOf(in) {
			t.Fatalf("parseNumber(%q) = %q", in, got)
		}
		if strings.Trim(in, "0123456789 -") != "" {
			t.Fatalf("parseNumber accepted %q, which holds other characters", in)
		}
	})
}

// FuzzLuhn checks luhn against a second, plainly written implementation,
// and that changing any one digit breaks a valid number.
func FuzzLuhn(f *testing.F) {
	for _, s := range []string{"4242424242424242", "4000000000000002", "79927398713", "0", "", "x", "12345"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		got := luhn(s)
		if want := luhnReference(s); got != want {
			t.Fatalf("luhn(%q) = %v, the reference says %v", s, got, want)
		}
		if !got || len(s) > 30 {
			return
		}
		for i := range len(s) {
			b := []byte(s)
			b[i] = '0' + (b[i]-'0'+1)%10
			if luhn(string(b)) {
				t.Fatalf("changing digit %d of %q kept it valid", i, s)
			}
		}
	})
}

func luhnReference(s string) bool {
	if s == "" {
		return false
	}
	var sum int
	double := false
	for i := len(s) - 1; i >= 0; i-- {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
		d := int(s[i] - '0')
		if double {
			d = d*2%10 + d*2/10
		}
		sum += d
		double = !double
	}
	return sum%10 == 0
}

func TestCardBrand(t *testing.T) {
	// Brand reads the leading digits of any number, valid or not.
	for number, want := range map[string]string{
		"4242 4242 4242 4242": BrandVisa,
		"4242-4242-4242-4241": BrandVisa,
		"3782 822463 10005":   BrandAmex,
		"x5-5":                BrandMastercard,
		"3530 1113":           "",
		"":                    "",
	} {
		if got := (Card{Number: number}).Brand(); got != want {
			t.Errorf("Card{Number: %q}.Brand() = %q, want %q", number, got, want)
		}
	}
}

func TestCheckedMasks(t *testing.T) {
	now := time.Date(2026, time.March, 15, 12, 0, 0, 0, time.UTC)
	c, errs := Card{Number: "4242 4242 4242 4242", ExpMonth: 12, ExpYear: 2030, CVC: "123"}.Check(now)
	if len(errs) != 0 || c.Number() != "4242424242424242" || c.Last4() != "4242" || c.Brand() != BrandVisa {
		t.Fatalf("Check = %v (brand %q, last4 %q), %v", c, c.Brand(), c.Last4(), errs)
	}
	if s := fmt.Sprintf("%v %+v %#v %s", c, c, c, c); strings.Contains(s, "42424242") || !strings.Contains(s, "visa ****4242") {
		t.Errorf("a checked card prints its number: %s", s)
	}
	var logged strings.Builder
	slog.New(slog.NewJSONHandler(&logged, nil)).Info("x", "card", c)
	if strings.Contains(logged.String(), "42424242") {
		t.Errorf("a checked card logs its number: %s", logged.String())
	}
	if (Checked{}).Last4() != "" || (Checked{}).String() != " ****" {
		t.Errorf("the zero card: %q %q", Checked{}.Last4(), Checked{}.String())
	}
}
