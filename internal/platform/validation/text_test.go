package validation_test

import (
	"strings"
	"testing"

	"github.com/microshop/microshop/internal/platform/validation"
)

func TestText(t *testing.T) {
	for _, c := range []struct {
		s           string
		text, lines string // "" allowed, else a word of the reason
	}{
		{"Ada Lovelace", "", ""},
		{"Zürich – 東京", "", ""},
		{"a\x00b", "control", "control"},
		{"a\x1b[31mred", "control", "control"},
		{"a\u0085b", "control", "control"}, // NEL, a C1 control
		{"two\nlines", "control", ""},
		{"tab\there", "control", ""},
		{"bad \xff utf8", "UTF-8", "UTF-8"},
		{strings.Repeat("é", 21), "at most", "at most"},
	} {
		for _, f := range []struct {
			name string
			fn   func(string, int) string
			want string
		}{{"Text", validation.Text, c.text}, {"Lines", validation.Lines, c.lines}} {
			got := f.fn(c.s, 20)
			if (f.want == "") != (got == "") || !strings.Contains(got, f.want) {
				t.Errorf("%s(%q) = %q, want one saying %q", f.name, c.s, got, f.want)
			}
		}
	}
}

func TestCurrency(t *testing.T) {
	for _, ok := range []string{"USD", "EUR", "GBP", "JPY", "CHF"} {
		if why := validation.Currency(ok); why != "" {
			t.Errorf("%s refused: %s", ok, why)
		}
	}
	for _, bad := range []string{"XYZ", "AAA", "usd", "US", "USDD", "", "XAU", "XTS", "XXX", "ÜSD"} {
		if validation.Currency(bad) == "" {
			t.Errorf("%q accepted as a currency", bad)
		}
	}
}
