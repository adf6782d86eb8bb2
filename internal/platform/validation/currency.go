package validation

import "golang.org/x/text/currency"

// Currency says why code may not be the currency of a price, or "" when
// it may: it must be an ISO 4217 code as the standard writes it (three
// capital letters) and name money. The X codes (gold, testing, "no
// currency") are ISO codes but no shop sells in them.
func Currency(code string) string {
	if len(code) != 3 || code[0] < 'A' || code[0] > 'Z' || code[1] < 'A' || code[1] > 'Z' || code[2] < 'A' || code[2] > 'Z' {
		return "must be an ISO 4217 code of three capital letters, such as USD"
	}
	if _, err := currency.ParseISO(code); err != nil || code[0] == 'X' {
		return "must be an ISO 4217 currency code, such as USD; " + code + " is none"
	}
	return ""
}
