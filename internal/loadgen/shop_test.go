package loadgen

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"strings"
	"sync"
	"sync/atomic"
	"testing"

	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
	"github.com/microshop/microshop/services/users/usersapi"
)

// fakeShop answers the public API's shapes that load uses, over real
// HTTP, with outcomes a test chooses.
type fakeShop struct {
	// outcome decides a final order from the card number; nil: the
	// approving card confirms and any other is declined.
	outcome func(card string) (status, reason string)
	// pending is how many polls answer PENDING before the outcome; the
	// POST then answers 202. A negative pending never ends.
	pending int

	mu         sync.Mutex
	products   []inventoryapi.Product
	passwords  map[string]string // email → password
	tokens     map[string]string // token → email
	orders     map[string]*fakeOrder
	keys       map[string]bool
	logins     map[string]int
	duplicates int // Idempotency-Keys used twice
	anonymous  int // order requests without a valid token

	posts, polls atomic.Int64
}

type fakeOrder struct {
	order ordersapi.Order
	owner string
	left  int // polls left answering PENDING
	final ordersapi.Order
}

func newFakeShop() *fakeShop {
	s := &fakeShop{
		passwords: map[string]string{}, tokens: map[string]string{}, orders: map[string]*fakeOrder{},
		keys: map[string]bool{}, logins: map[string]int{},
	}
	for i, name := range []string{"Ceramic Coffee Mug", "Travel Mug", "Pour-Over Kettle", "Burr Grinder",
		"Sencha Green Tea", "Dotted Notebook", "Fountain Pen", "Desk Lamp", "Wireless Earbuds", "Merino Socks",
		"Oak Cutting Board", "Yoga Mat"} {
		s.products = append(s.products, inventoryapi.Product{SKU: fmt.Sprintf("SKU-%02d", i), Name: name,
			PriceCents: 1000, Currency: "USD", Available: 100})
	}
	return s
}

func (s *fakeShop) start(t *testing.T) *httptest.Server {
	srv := httptest.NewServer(s.routes())
	t.Cleanup(srv.Close)
	return srv
}

func (s *fakeShop) routes() *http.ServeMux {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/inventory/products", s.list)
	mux.HandleFunc("GET /api/inventory/products/{sku}", s.product)
	mux.HandleFunc("POST /api/users/register", s.register)
	mux.HandleFunc("POST /api/users/login", s.login)
	mux.HandleFunc("POST /api/orders", s.place)
	mux.HandleFunc("GET /api/orders", s.history)
	mux.HandleFunc("GET /api/orders/{id}", s.get)
	return mux
}

func writeJSON(w http.ResponseWriter, status int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(v)
}

// list pages by sku, the page token being the last sku of the page.
func (s *fakeShop) list(w http.ResponseWriter, r *http.Request) {
	q := strings.ToLower(r.URL.Query().Get("q"))
	after := r.URL.Query().Get("page_token")
	page := shopclient.Page[inventoryapi.Product]{Items: []inventoryapi.Product{}}
	for _, p := range s.products {
		if p.SKU <= after || (q != "" && !strings.Contains(strings.ToLower(p.Name), q)) {
			continue
		}
		if len(page.Items) == pageSize {
			page.NextPageToken = page.Items[len(page.Items)-1].SKU
			break
		}
		page.Items = append(page.Items, p)
	}
	writeJSON(w, http.StatusOK, page)
}

func (s *fakeShop) product(w http.ResponseWriter, r *http.Request) {
	for _, p := range s.products {
		if p.SKU == r.PathValue("sku") {
			writeJSON(w, http.StatusOK, p)
			return
		}
	}
	http.NotFound(w, r)
}

func (s *fakeShop) register(w http.ResponseWriter, r *http.Request) {
	var in struct{ Email, Password, Name string }
	if json.NewDecoder(r.Body).Decode(&in) != nil || in.Email == "" || in.Password == "" || in.Name == "" {
		http.Error(w, "bad registration", http.StatusBadRequest)
		return
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if _, taken := s.passwords[in.Email]; taken {
		http.Error(w, "taken", http.StatusConflict)
		return
	}
	s.passwords[in.Email] = in.Password
	writeJSON(w, http.StatusCreated, usersapi.User{ID: in.Email, Email: in.Email, Name: in.Name})
}

func (s *fakeShop) login(w http.ResponseWriter, r *http.Request) {
	var in struct{ Email, Password string }
	_ = json.NewDecoder(r.Body).Decode(&in)
	s.mu.Lock()
	defer s.mu.Unlock()
	if pw, ok := s.passwords[in.Email]; !ok || pw != in.Password {
		http.Error(w, "wrong credentials", http.StatusUnauthorized)
		return
	}
	s.logins[in.Email]++
	tok := fmt.Sprintf("token-%s-%d", in.Email, s.logins[in.Email])
	s.tokens[tok] = in.Email
	writeJSON(w, http.StatusOK, usersapi.Tokens{AccessToken: tok, RefreshToken: "r" + tok, TokenType: "Bearer", ExpiresIn: 900})
}

// caller is the customer a request's token names, or "" (and counted).
func (s *fakeShop) caller(r *http.Request) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	email := s.tokens[strings.TrimPrefix(r.Header.Get("Authorization"), "Bearer ")]
	if email == "" {
		s.anonymous++
	}
	return email
}

func (s *fakeShop) place(w http.ResponseWriter, r *http.Request) {
	s.posts.Add(1)
	owner := s.caller(r)
	if owner == "" {
		http.Error(w, "no token", http.StatusUnauthorized)
		return
	}
	var in struct {
		Lines []shopclient.Line `json:"lines"`
		Card  paymentsapi.Card  `json:"card"`
		Ship  ordersapi.Address `json:"shipping_address"`
	}
	if json.NewDecoder(r.Body).Decode(&in) != nil || len(in.Lines) == 0 || in.Ship.Country == "" {
		http.Error(w, "bad order", http.StatusBadRequest)
		return
	}
	status, reason := ordersapi.StatusConfirmed, ""
	if s.outcome != nil {
		status, reason = s.outcome(in.Card.Number)
	} else if in.Card.Number != shopclient.CardApproved {
		status, reason = ordersapi.StatusRejected, ordersapi.ReasonPaymentDeclined
	}
	s.mu.Lock()
	key := r.Header.Get("Idempotency-Key")
	if key == "" || s.keys[key] {
		s.duplicates++
	}
	s.keys[key] = true
	id := fmt.Sprintf("order-%d", len(s.orders)+1)
	o := &fakeOrder{owner: owner, left: s.pending,
		final: ordersapi.Order{ID: id, Status: status, Reason: reason, TotalCents: 1000, Currency: "USD"}}
	o.order = o.final
	code := http.StatusCreated
	if s.pending != 0 {
		o.order = ordersapi.Order{ID: id, Status: ordersapi.StatusPending, TotalCents: 1000, Currency: "USD"}
		code = http.StatusAccepted
	}
	s.orders[id] = o
	answer := o.order
	s.mu.Unlock()
	w.Header().Set("Location", "/api/orders/"+id)
	writeJSON(w, code, answer)
}

func (s *fakeShop) get(w http.ResponseWriter, r *http.Request) {
	s.polls.Add(1)
	owner := s.caller(r)
	s.mu.Lock()
	o := s.orders[r.PathValue("id")]
	if o == nil || o.owner != owner {
		s.mu.Unlock()
		http.NotFound(w, r)
		return
	}
	if o.left > 0 {
		o.left--
	} else if o.left == 0 {
		o.order = o.final
	}
	answer := o.order
	s.mu.Unlock()
	writeJSON(w, http.StatusOK, answer)
}

func (s *fakeShop) history(w http.ResponseWriter, r *http.Request) {
	if s.caller(r) == "" {
		http.Error(w, "no token", http.StatusUnauthorized)
		return
	}
	writeJSON(w, http.StatusOK, shopclient.Page[ordersapi.Order]{Items: []ordersapi.Order{}})
}

// wrap runs h around the shop's handlers.
func wrap(t *testing.T, h func(next http.Handler) http.Handler) *httptest.Server {
	srv := httptest.NewServer(h(newFakeShop().routes()))
	t.Cleanup(srv.Close)
	return srv
}

// counts are the shop's figures, read under its lock.
func (s *fakeShop) counts() (customers, duplicates, anonymous int) {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.passwords), s.duplicates, s.anonymous
}
