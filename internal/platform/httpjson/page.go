package httpjson

import (
	"encoding/base64"
	"fmt"
	"net/url"
	"strconv"

	"github.com/microshop/microshop/internal/platform/problem"
)

// Page is where a list request starts and how much it wants: Limit items
// after the item whose key is After ("" for the first page).
type Page struct {
	Limit int
	After string
}

// ReadPage reads a list's limit (1 to max, def when absent) and its
// page_token, an opaque token PageToken made from the last key of the
// previous page; valid checks the key inside it. Each bad parameter is a
// field error for a 422.
func ReadPage(v url.Values, def, max int, valid func(key string) bool) (Page, []problem.FieldError) {
	p := Page{Limit: def}
	var errs []problem.FieldError
	if s := v.Get("limit"); s != "" {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > max {
			errs = append(errs, problem.FieldError{Field: "limit", Reason: fmt.Sprintf("must be a whole number from 1 to %d", max)})
		}
		p.Limit = n
	}
	if tok := v.Get("page_token"); tok != "" {
		b, err := base64.RawURLEncoding.DecodeString(tok)
		if err != nil || !valid(string(b)) {
			errs = append(errs, problem.FieldError{Field: "page_token", Reason: "is not a next_page_token this list gave out"})
		}
		p.After = string(b)
	}
	return p, errs
}

// PageToken is the next_page_token of a page whose last item has key.
func PageToken(key string) string { return base64.RawURLEncoding.EncodeToString([]byte(key)) }
