// Package ids makes identifiers: time-ordered, so rows keyed by them are
// appended at the end of their index and sort by creation.
package ids

import (
	"crypto/rand"
	"strings"
	"sync"

	"github.com/oklog/ulid/v2"
)

// source makes ids strictly increasing within this process, also within
// one millisecond, so logs keyed by them (the saga log) read in the order
// they were written. It is the package's one piece of state, like the
// random source of crypto/rand: a generator, not configuration.
var source = struct {
	sync.Mutex
	entropy *ulid.MonotonicEntropy
}{entropy: ulid.Monotonic(rand.Reader, 0)}

// New returns a new lower-case ULID, 26 characters, time-ordered and,
// within this process, strictly increasing. Its randomness comes from
// crypto/rand, so ids are not guessable.
func New() string {
	source.Lock()
	id, err := ulid.New(ulid.Now(), source.entropy)
	source.Unlock()
	if err != nil {
		// The monotonic increment overflowed within one millisecond
		// (after billions of ids): fall back to a fresh random id.
		id = ulid.MustNew(ulid.Now(), rand.Reader)
	}
	return strings.ToLower(id.String())
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
