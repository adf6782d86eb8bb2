// Package ids makes identifiers: time-ordered, so rows keyed by them are
// appended at the end of their index and sort by creation.
package ids

import (
	"crypto/rand"
	"strings"

	"github.com/oklog/ulid/v2"
)

// New returns a new lower-case ULID, 26 characters, time-ordered.
// Its randomness comes from crypto/rand, so ids are not guessable.
func New() string {
	return strings.ToLower(ulid.MustNew(ulid.Now(), rand.Reader).String())
}

// Valid reports whether s looks like an id New made; handlers use it to
// reject garbage before it reaches a query.
func Valid(s string) bool {
	if len(s) != ulid.EncodedSize {
		return false
	}
	_, err := ulid.ParseStrict(strings.ToUpper(s))
	return err == nil
}
