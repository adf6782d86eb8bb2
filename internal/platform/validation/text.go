package validation

import (
	"fmt"
	"strings"
	"unicode"
	"unicode/utf8"
)

// Text says why s may not be a one-line free-text field (a name, a city,
// a search) of at most max characters, or "" when it may. Emptiness is
// the caller's to judge. Invalid UTF-8 and control characters are
// refused everywhere: PostgreSQL refuses NUL in text, so letting one
// through is a 500 there instead of a 422, and line breaks or escape
// sequences in a name end up in emails, logs and terminals.
func Text(s string, max int) string {
	return text(s, max, unicode.IsControl, "must not hold control characters such as line breaks")
}

// Lines is Text for a field that may span lines (a description): line
// breaks and tabs are allowed, other control characters are not.
func Lines(s string, max int) string {
	return text(s, max, func(r rune) bool { return unicode.IsControl(r) && r != '\n' && r != '\r' && r != '\t' },
		"must not hold control characters other than line breaks and tabs")
}

func text(s string, max int, bad func(rune) bool, reason string) string {
	switch {
	case !utf8.ValidString(s):
		return "must be valid UTF-8"
	case utf8.RuneCountInString(s) > max:
		return fmt.Sprintf("must be at most %d characters", max)
	case strings.ContainsFunc(s, bad):
		return reason
	}
	return ""
}
