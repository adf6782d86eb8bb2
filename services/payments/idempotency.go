package payments

import (
	"context"
	"crypto/sha256"
	"database/sql"
	"encoding/hex"
	"encoding/json"
	"errors"
	"net/http"
	"sync"
	"time"

	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// Idempotency: every write of the internal API carries an Idempotency-Key.
// The first request with a key runs, and its answer (status, content type
// and body) is stored in the same transaction as the change it made. A
// later request with the key and the same request gets that answer again,
// byte for byte, and changes nothing; the key with another request is
// refused (idempotency-key-reuse). Requests refused before anything
// changed (invalid input, a payment in the wrong state) store nothing:
// asking again gets the same refusal while the state holds.
//
// Requests sharing a key wait for each other in this process, so the
// processor is asked once. Across replicas the stored key is unique: the
// replica that loses the race throws its work away and replays the
// winner's answer, and one refused because it saw the winner's work (the
// payment already captured) looks for that answer before it refuses.

// IdempotencyKeyHeader names the header that makes a write safe to retry.
const IdempotencyKeyHeader = "Idempotency-Key"

const maxKey = 255

// errKeyMissing and errKeyInvalid refuse a write without a usable key.
var (
	errKeyMissing = errors.New("writes need an Idempotency-Key header; send the same key again to retry safely")
	errKeyInvalid = errors.New("the Idempotency-Key must be 1 to 255 visible ASCII characters")
)

// idempotencyKey reads and checks r's key.
func idempotencyKey(r *http.Request) (string, error) {
	k := r.Header.Get(IdempotencyKeyHeader)
	if k == "" {
		return "", errKeyMissing
	}
	if len(k) > maxKey {
		return "", errKeyInvalid
	}
	for i := 0; i < len(k); i++ {
		if k[i] < 0x21 || k[i] > 0x7e {
			return "", errKeyInvalid
		}
	}
	return k, nil
}

// fingerprint identifies a request for its key: the method, path and
// body. Callers pass the body as they decoded it, so spacing and field
// order do not matter.
func fingerprint(r *http.Request, body any) string {
	b, err := json.Marshal(body)
	if err != nil {
		// Only decoded JSON reaches here, which always encodes again.
		panic("payments: fingerprinting a request: " + err.Error())
	}
	h := sha256.New()
	h.Write([]byte(r.Method + " " + r.URL.Path + "\n"))
	h.Write(b)
	return hex.EncodeToString(h.Sum(nil))
}

// authorizeFingerprint is what an authorization's fingerprint covers. The
// card enters only as brand, last four digits and expiry: a plain hash of
// a card number is no secret (once brand and last four are known, only a
// few digits are left to guess), and the cvc is never kept in any form.
type authorizeFingerprint struct {
	OrderID     string `json:"order_id"`
	AmountCents int64  `json:"amount_cents"`
	Currency    string `json:"currency"`
	Brand       string `json:"brand"`
	Last4       string `json:"last4"`
	ExpMonth    int    `json:"exp_month"`
	ExpYear     int    `json:"exp_year"`
}

func fingerprintOf(req paymentsapi.AuthorizeRequest) authorizeFingerprint {
	digits := make([]byte, 0, len(req.Card.Number))
	for i := 0; i < len(req.Card.Number) && len(digits) < 64; i++ {
		if b := req.Card.Number[i]; b >= '0' && b <= '9' {
			digits = append(digits, b)
		}
	}
	f := authorizeFingerprint{OrderID: req.OrderID, AmountCents: req.AmountCents, Currency: req.Currency,
		Brand: req.Card.Brand(), ExpMonth: req.Card.ExpMonth, ExpYear: req.Card.ExpYear}
	if len(digits) >= 4 {
		f.Last4 = string(digits[len(digits)-4:])
	}
	return f
}

// record is the Outcome of one keyed write: Save renders the result as
// the HTTP answer and stores it under the key in the write's transaction.
type record struct {
	key, fingerprint string
	store            store
	render           func(result any, err error) answer
	now              func() time.Time

	// saved is the stored answer and savedErr the error it was made of;
	// the answer stands only if the write returns that same error.
	saved    *answer
	savedErr error
}

func (rec *record) Save(ctx context.Context, tx *sql.Tx, result any, err error) error {
	a := rec.render(result, err)
	if serr := rec.store.saveAnswer(ctx, tx, rec.key, rec.fingerprint, a, rec.now()); serr != nil {
		return serr
	}
	rec.saved, rec.savedErr = &a, err
	return nil
}

// keyLocks lets one request at a time work under an idempotency key.
type keyLocks struct {
	mu   sync.Mutex
	held map[string]*keyLock
}

type keyLock struct {
	slot chan struct{}
	refs int // holder and waiters
}

// lock waits for key, or for ctx to end. The returned func unlocks.
func (l *keyLocks) lock(ctx context.Context, key string) (func(), error) {
	l.mu.Lock()
	k := l.held[key]
	if k == nil {
		k = &keyLock{slot: make(chan struct{}, 1)}
		l.held[key] = k
	}
	k.refs++
	l.mu.Unlock()
	release := func() {
		l.mu.Lock()
		if k.refs--; k.refs == 0 {
			delete(l.held, key)
		}
		l.mu.Unlock()
	}
	select {
	case k.slot <- struct{}{}:
		return func() { <-k.slot; release() }, nil
	case <-ctx.Done():
		release()
		return nil, ctx.Err()
	}
}
