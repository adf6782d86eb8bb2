package chaos

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"math/rand/v2"
	"net"
	"net/http"
	"net/url"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/users/usersapi"
)

// The shoppers' mix, in parts of 100.
const (
	weightBrowse   = 43
	weightCheckout = 35
	weightHistory  = 10
	weightRegister = 8
	weightCancel   = 4
)

const (
	goodCard     = "4242 4242 4242 4242"
	declinedCard = "4000 0000 0000 0002"
	password     = "chaos monkey password"
	// requestDeadline bounds the retries of one request. Faults last a
	// few seconds, so a safe request outlives any of them.
	requestDeadline = 60 * time.Second
)

// load is the shoppers and what they saw.
type load struct {
	e        *engine
	api      *api
	seed     uint64
	catalog  []inventoryapi.StockLevel
	received map[string]int64
	shoppers []*shopper

	requests, retried, failedAttempts atomic.Int64
	placed, confirmed                 atomic.Int64

	mu         sync.Mutex
	errKinds   map[string]int // failed attempts, by kind
	gaveUp     map[string]int // requests that got no usable answer, by kind
	accepted   []string
	seen       map[string]bool
	keys       map[string][]string
	owner      map[string]string // order id -> the customer's email
	registered map[string]string // email -> name, for registrations answered 201
	samples    []string          // a few unexpected answers
}

// account is one customer a shopper shops as.
type account struct {
	email, token string
}

// shopper is one simulated customer session; it runs alone in its
// goroutine and owns its random source.
type shopper struct {
	l        *load
	id       int
	rng      *rand.Rand
	accounts []*account
	bought   []string // confirmed orders not cancelled yet
	n        int      // operations so far, for keys and names
}

func newLoad(ctx context.Context, e *engine, admin *shopclient.Session) (*load, error) {
	l := &load{e: e, api: e.api, seed: e.cfg.Seed, received: map[string]int64{},
		errKinds: map[string]int{}, gaveUp: map[string]int{}, seen: map[string]bool{},
		keys: map[string][]string{}, owner: map[string]string{}, registered: map[string]string{}}
	stock, err := admin.Stock(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the stock: %w", err)
	}
	for _, s := range stock {
		l.received[s.SKU] = s.Received
		if s.Available > 0 {
			l.catalog = append(l.catalog, s)
		}
	}
	if len(l.catalog) == 0 {
		return nil, errors.New("no product has stock to sell")
	}
	for i := range e.cfg.Shoppers {
		s := &shopper{l: l, id: i, rng: rand.New(rand.NewPCG(e.cfg.Seed, uint64(i)+1))}
		email := fmt.Sprintf("chaos-%d-s%d@example.com", l.seed, i)
		if _, err := l.api.shop.Register(ctx, shopclient.Registration{Email: email, Password: password, Name: fmt.Sprintf("Chaos shopper %d", i)}); err != nil {
			return nil, fmt.Errorf("registering shopper %d: %w", i, err)
		}
		l.registered[email] = fmt.Sprintf("Chaos shopper %d", i)
		sess, err := l.api.shop.Login(ctx, email, password)
		if err != nil {
			return nil, fmt.Errorf("logging in shopper %d: %w", i, err)
		}
		s.accounts = []*account{{email: email, token: sess.Token()}}
		l.shoppers = append(l.shoppers, s)
	}
	return l, nil
}

// run starts the shoppers; they stop after their current operation once
// stop is closed, and the returned channel closes when all have.
func (l *load) run(ctx context.Context, stop <-chan struct{}) <-chan struct{} {
	done := make(chan struct{})
	var wg sync.WaitGroup
	for _, s := range l.shoppers {
		wg.Go(func() { s.shop(ctx, stop) })
	}
	go func() { wg.Wait(); close(done) }()
	return done
}

func (l *load) progress() Progress {
	return Progress{Requests: l.requests.Load(), Placed: l.placed.Load(), Confirmed: l.confirmed.Load(), Errors: l.failedAttempts.Load()}
}

func (l *load) sample(format string, args ...any) {
	l.mu.Lock()
	defer l.mu.Unlock()
	if len(l.samples) < 10 {
		l.samples = append(l.samples, fmt.Sprintf(format, args...))
	}
}

func (s *shopper) shop(ctx context.Context, stop <-chan struct{}) {
	for {
		select {
		case <-stop:
			return
		case <-ctx.Done():
			return
		case <-time.After(between(s.rng, 50*time.Millisecond, 500*time.Millisecond)):
		}
		s.n++
		switch w := s.rng.IntN(100); {
		case w < weightBrowse:
			s.browse(ctx)
		case w < weightBrowse+weightCheckout:
			s.checkout(ctx)
		case w < weightBrowse+weightCheckout+weightHistory:
			acc := s.account()
			s.authed(ctx, acc, http.MethodGet, "/api/orders?limit=5", nil, "", true)
		case w < weightBrowse+weightCheckout+weightHistory+weightRegister:
			s.register(ctx)
		default:
			if len(s.bought) > 0 {
				s.cancel(ctx)
			} else {
				s.browse(ctx)
			}
		}
	}
}

func (s *shopper) account() *account { return s.accounts[s.rng.IntN(len(s.accounts))] }

var searches = []string{"", "", "mug", "tea", "notebook", "usb", "wool", "coffee"}

func (s *shopper) browse(ctx context.Context) {
	q := url.Values{"limit": {"20"}}
	if w := searches[s.rng.IntN(len(searches))]; w != "" {
		q.Set("q", w)
	}
	s.l.call(ctx, s.rng, http.MethodGet, "/api/inventory/products?"+q.Encode(), "", nil, "", true)
	sku := s.l.catalog[s.rng.IntN(len(s.l.catalog))].SKU
	s.l.call(ctx, s.rng, http.MethodGet, "/api/inventory/products/"+url.PathEscape(sku), "", nil, "", true)
}

func (s *shopper) checkout(ctx context.Context) {
	acc := s.account()
	lines := []map[string]any{}
	first := s.rng.IntN(len(s.l.catalog))
	for k := range 1 + s.rng.IntN(2) {
		sku := s.l.catalog[(first+k*7)%len(s.l.catalog)].SKU
		lines = append(lines, map[string]any{"sku": sku, "quantity": 1 + s.rng.IntN(2)})
	}
	card := goodCard
	if s.rng.IntN(100) < 15 {
		card = declinedCard
	}
	body := map[string]any{
		"lines":            lines,
		"shipping_address": map[string]string{"name": "Chaos", "street": "1 Way", "city": "Oslo", "postal_code": "0150", "country": "NO"},
		"card":             map[string]any{"number": card, "exp_month": 12, "exp_year": time.Now().Year() + 2, "cvc": "123"},
	}
	key := fmt.Sprintf("chaos-%d-%d-%d", s.l.seed, s.id, s.n)
	o, ok := s.place(ctx, acc, key, body)
	if !ok {
		return
	}
	s.l.placed.Add(1)
	// Now and then the same request again, as a client that lost the
	// answer would: it must name the same order.
	if s.rng.IntN(6) == 0 {
		s.place(ctx, acc, key, body)
	}
	for deadline := time.Now().Add(20 * time.Second); o.Status == ordersapi.StatusPending && time.Now().Before(deadline); {
		if !sleepUntil(ctx, time.Now().Add(300*time.Millisecond)) {
			return
		}
		status, b, _ := s.authed(ctx, acc, http.MethodGet, "/api/orders/"+url.PathEscape(o.ID), nil, "", true)
		if status != http.StatusOK || json.Unmarshal(b, &o) != nil {
			return
		}
	}
	if o.Status == ordersapi.StatusConfirmed {
		s.l.confirmed.Add(1)
		s.bought = append(s.bought, o.ID)
	}
}

// place posts one order with key and records the answer.
func (s *shopper) place(ctx context.Context, acc *account, key string, body any) (ordersapi.Order, bool) {
	status, b, answered := s.authed(ctx, acc, http.MethodPost, "/api/orders", body, key, true)
	var o ordersapi.Order
	if !answered {
		return o, false
	}
	if (status != http.StatusCreated && status != http.StatusAccepted) || json.Unmarshal(b, &o) != nil || o.ID == "" {
		s.l.unexpected("POST /api/orders", status, b)
		return o, false
	}
	l := s.l
	l.mu.Lock()
	if !l.seen[o.ID] {
		l.seen[o.ID] = true
		l.accepted = append(l.accepted, o.ID)
	}
	l.keys[key] = append(l.keys[key], o.ID)
	l.owner[o.ID] = acc.email
	l.mu.Unlock()
	return o, true
}

// cancel cancels one of the shopper's confirmed orders. Cancelling is
// idempotent by nature (cancelling again answers the same order), so it is
// retried like a keyed request.
func (s *shopper) cancel(ctx context.Context) {
	i := s.rng.IntN(len(s.bought))
	id := s.bought[i]
	s.bought = append(s.bought[:i], s.bought[i+1:]...)
	acc := s.ownerAccount(id)
	status, b, answered := s.authed(ctx, acc, http.MethodPost, "/api/orders/"+url.PathEscape(id)+"/cancel", nil, "", true)
	if answered && status != http.StatusOK && status != http.StatusAccepted {
		s.l.unexpected("POST /api/orders/{id}/cancel", status, b)
	}
}

func (s *shopper) ownerAccount(order string) *account {
	s.l.mu.Lock()
	email := s.l.owner[order]
	s.l.mu.Unlock()
	for _, a := range s.accounts {
		if a.email == email {
			return a
		}
	}
	return s.accounts[0]
}

// register signs a new customer up and logs in as them; the shopper then
// shops as any of its accounts. Neither POST has an idempotency key, so
// they are sent again only when the connection was refused.
func (s *shopper) register(ctx context.Context) {
	email := fmt.Sprintf("chaos-%d-s%d-%d@example.com", s.l.seed, s.id, s.n)
	name := fmt.Sprintf("Chaos shopper %d-%d", s.id, s.n)
	status, b, answered := s.l.call(ctx, s.rng, http.MethodPost, "/api/users/register", "",
		map[string]string{"email": email, "password": password, "name": name}, "", false)
	if !answered {
		return
	}
	if status != http.StatusCreated {
		s.l.unexpected("POST /api/users/register", status, b)
		return
	}
	s.l.mu.Lock()
	s.l.registered[email] = name
	s.l.mu.Unlock()
	status, b, answered = s.l.call(ctx, s.rng, http.MethodPost, "/api/users/login", "",
		map[string]string{"email": email, "password": password}, "", false)
	var tok usersapi.Tokens
	if !answered {
		return
	}
	if status != http.StatusOK || json.Unmarshal(b, &tok) != nil {
		s.l.unexpected("POST /api/users/login", status, b)
		return
	}
	s.accounts = append(s.accounts, &account{email: email, token: tok.AccessToken})
}

// authed sends a request as acc, logging in again once if the token is
// refused (it expired).
func (s *shopper) authed(ctx context.Context, acc *account, method, path string, body any, key string, safe bool) (int, []byte, bool) {
	status, b, ok := s.l.call(ctx, s.rng, method, path, acc.token, body, key, safe)
	if ok && status == http.StatusUnauthorized {
		if sess, err := s.l.api.shop.Login(ctx, acc.email, password); err == nil {
			acc.token = sess.Token()
			status, b, ok = s.l.call(ctx, s.rng, method, path, acc.token, body, key, safe)
		}
	}
	return status, b, ok
}

// unexpected counts an answer the shopper could not use.
func (l *load) unexpected(what string, status int, body []byte) {
	kind := fmt.Sprintf("http %d", status)
	l.mu.Lock()
	l.gaveUp[kind]++
	l.mu.Unlock()
	l.sample("%s: %d %s", what, status, truncate(string(body), 200))
}

// call sends one request the way a careful client does: a request that
// never left (connection refused) is sent again whatever it is, and a
// safe one (a GET, or a POST whose repetition changes nothing: an
// Idempotency-Key or a cancel) also after any other failure or a 5xx,
// with backoff, for up to requestDeadline. Every failed attempt is
// counted by kind. answered says whether an answer came back; a 5xx that
// could not be retried is counted as given up and not answered.
func (l *load) call(ctx context.Context, r *rand.Rand, method, path, token string, body any, key string, safe bool) (status int, out []byte, answered bool) {
	l.requests.Add(1)
	var b []byte
	if body != nil {
		b, _ = json.Marshal(body)
	}
	deadline := time.Now().Add(requestDeadline)
	for attempt := 0; ; attempt++ {
		if attempt > 0 {
			l.retried.Add(1)
			backoff := min(100*time.Millisecond<<min(attempt-1, 4), time.Second)
			if !sleepUntil(ctx, time.Now().Add(between(r, backoff/2, backoff))) {
				l.fail("cancelled", true)
				return 0, nil, false
			}
		}
		req, err := http.NewRequestWithContext(ctx, method, l.api.gateway+path, bytes.NewReader(b))
		if err != nil {
			l.fail("bad request", true)
			return 0, nil, false
		}
		if b != nil {
			req.Header.Set("Content-Type", "application/json")
		}
		if token != "" {
			req.Header.Set("Authorization", "Bearer "+token)
		}
		if key != "" {
			req.Header.Set("Idempotency-Key", key)
		}
		req.Header.Set("User-Agent", "microshop-chaos")
		resp, err := l.api.http.Do(req)
		var kind string
		if err == nil {
			out, err = io.ReadAll(resp.Body)
			resp.Body.Close()
			status = resp.StatusCode
		}
		switch {
		case err != nil:
			kind = errKind(err)
		case status >= 500:
			kind = fmt.Sprintf("http %d", status)
		default:
			return status, out, true
		}
		retry := (safe || kind == "refused") && time.Now().Before(deadline) && ctx.Err() == nil
		l.fail(kind, !retry)
		if !retry {
			// A 503 is what a request meets while a service is down; any
			// other 5xx is worth a look.
			if status >= 500 && status != http.StatusServiceUnavailable {
				l.sample("%s %s: %d %s", method, path, status, truncate(string(out), 200))
			}
			return 0, nil, false
		}
	}
}

// fail counts a failed attempt, and a request given up when final.
func (l *load) fail(kind string, final bool) {
	l.failedAttempts.Add(1)
	l.mu.Lock()
	defer l.mu.Unlock()
	l.errKinds[kind]++
	if final {
		l.gaveUp[kind]++
	}
}

// errKind names a failure to get an answer.
func errKind(err error) string {
	var op *net.OpError
	switch {
	case errors.Is(err, syscall.ECONNREFUSED):
		return "refused"
	case errors.Is(err, syscall.ECONNRESET):
		return "reset"
	case errors.Is(err, io.EOF), errors.Is(err, io.ErrUnexpectedEOF):
		return "closed mid-answer"
	case errors.Is(err, context.Canceled):
		return "cancelled"
	}
	if ne, ok := err.(net.Error); ok && ne.Timeout() {
		return "timeout"
	}
	if errors.As(err, &op) && op.Op == "dial" {
		return "refused"
	}
	return "other"
}

func truncate(s string, n int) string {
	if len(s) > n {
		return s[:n] + "..."
	}
	return s
}

// summarize copies what the shoppers saw into res.
func (l *load) summarize(res *Result) {
	l.mu.Lock()
	defer l.mu.Unlock()
	res.Requests = l.requests.Load()
	res.Retried = l.retried.Load()
	res.Placed = len(l.accepted)
	res.Registrations = len(l.registered)
	res.ErrorAttempts = l.errKinds
	res.GaveUp = l.gaveUp
	res.Samples = l.samples
}
