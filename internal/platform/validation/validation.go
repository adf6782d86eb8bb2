// Package validation describes what is wrong with a request, field by
// field, without saying how the refusal is answered. A service returns
// Errors; its HTTP handlers turn them into a 422 problem, and any other
// caller reads them as they are.
package validation

import "strings"

// FieldError names one invalid field and why it is invalid.
type FieldError struct {
	Field  string `json:"field"`
	Reason string `json:"reason"`
}

// Errors lists every invalid field of one request. It is the error a
// service returns for a request it refuses as invalid.
type Errors []FieldError

func (e Errors) Error() string {
	var b strings.Builder
	b.WriteString("invalid request")
	for i, f := range e {
		if i == 0 {
			b.WriteString(": ")
		} else {
			b.WriteString("; ")
		}
		b.WriteString(f.Field + " " + f.Reason)
	}
	return b.String()
}
