package loadgen

import (
	"context"
	"crypto/rand"
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/microshop/microshop/services/orders/ordersapi"
)

// setupParallel is how many customers are registered at once: each
// registration and login hashes a password, which is meant to be slow.
const setupParallel = 4

// restockLevel is the available stock setup tops every product up to
// when it has admin credentials: enough for long runs at high rates.
const restockLevel = 100_000

// maxCatalogPages bounds the catalog read in setup.
const maxCatalogPages = 1000

// setup prepares what the scenario needs, outside the figures.
func (r *runner) setup(ctx context.Context) (Setup, error) {
	if err := r.readCatalog(ctx); err != nil {
		return Setup{}, err
	}
	s := Setup{Products: len(r.catalog.products)}
	if !r.scen.customers {
		return s, nil
	}
	if r.cfg.AdminEmail != "" {
		n, err := r.restock(ctx)
		if err != nil {
			return s, err
		}
		s.Restocked = n
	}
	for _, p := range r.catalog.products {
		if p.Available > 0 {
			r.catalog.inStock = append(r.catalog.inStock, p.SKU)
		}
	}
	if len(r.catalog.inStock) == 0 {
		return s, errors.New("no product is in stock, so no checkout can succeed: restock, or give the admin's credentials so that load does")
	}
	if err := r.register(ctx); err != nil {
		return s, err
	}
	s.Customers = len(r.customers)
	return s, nil
}

// setupError describes a setup request that went wrong, with a hint
// where one helps.
func (r *runner) setupError(doing, kind string) error {
	switch {
	case kind == KindConnection:
		return fmt.Errorf("%s: cannot connect to %s: is microshop running there?", doing, r.base)
	case kind == KindTimeout:
		return fmt.Errorf("%s: no answer from %s within %s", doing, r.base, r.cfg.Timeout)
	case kind == statusKind(http.StatusTooManyRequests):
		return fmt.Errorf("%s: refused by a rate limit (429): use fewer --users, or start the system with "+
			"MICROSHOP_REGISTER_RATE_IP=0 MICROSHOP_LOGIN_RATE_IP=0 MICROSHOP_RATE_LIMIT=0", doing)
	}
	return fmt.Errorf("%s: %s", doing, kind)
}

// readCatalog reads every page of the catalog.
func (r *runner) readCatalog(ctx context.Context) error {
	tok := ""
	words := map[string]bool{}
	for range maxCatalogPages {
		var p productPage
		octx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		kind := r.getJSON(octx, query("/api/inventory/products", "limit", itoa(pageSize), "page_token", tok), "", &p)
		cancel()
		if kind != "" {
			return r.setupError("reading the catalog", kind)
		}
		r.catalog.products = append(r.catalog.products, p.Items...)
		for _, prod := range p.Items {
			for _, w := range strings.FieldsFunc(strings.ToLower(prod.Name), func(c rune) bool { return !unicode.IsLetter(c) }) {
				if len(w) >= 4 {
					words[w] = true
				}
			}
		}
		if p.NextPageToken == "" || len(p.Items) == 0 {
			break
		}
		tok = p.NextPageToken
		r.catalog.pages = append(r.catalog.pages, tok)
	}
	if len(r.catalog.products) == 0 {
		return fmt.Errorf("the catalog at %s is empty: there is nothing to browse or buy", r.base)
	}
	for w := range words {
		r.catalog.words = append(r.catalog.words, w)
	}
	if len(r.catalog.words) == 0 {
		r.catalog.words = []string{strings.ToLower(r.catalog.products[0].SKU)}
	}
	slices.Sort(r.catalog.words) // the seed picks the same words every run
	return nil
}

// restock logs the admin in and tops every product up to restockLevel
// available, so that the checkouts of a long run do not empty the shop.
// It returns how many products it restocked.
func (r *runner) restock(ctx context.Context) (int, error) {
	admin := &customer{email: r.cfg.AdminEmail, password: r.cfg.AdminPassword}
	octx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	kind := r.login(octx, admin)
	cancel()
	if kind != "" {
		return 0, r.setupError("logging in as the admin "+r.cfg.AdminEmail, kind)
	}
	n := 0
	for i := range r.catalog.products {
		p := &r.catalog.products[i]
		if p.Available >= restockLevel {
			continue
		}
		var level struct {
			Available int64 `json:"available"`
		}
		octx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		kind := r.expectJSON(octx, http.MethodPost, "/api/inventory/products/"+url.PathEscape(p.SKU)+"/restock", admin.token, "",
			map[string]int64{"quantity": restockLevel - p.Available}, http.StatusOK, &level)
		cancel()
		if kind != "" {
			return n, r.setupError("restocking "+p.SKU+" as "+r.cfg.AdminEmail, kind)
		}
		p.Available = level.Available
		n++
	}
	return n, nil
}

// register creates cfg.Users customers for this run and logs each in.
func (r *runner) register(ctx context.Context) error {
	r.customers = make([]*customer, r.cfg.Users)
	for i := range r.customers {
		var pw [18]byte
		_, _ = rand.Read(pw[:])
		r.customers[i] = &customer{
			email:    fmt.Sprintf("load-%s-%d@example.com", r.runID, i+1),
			password: fmt.Sprintf("%x", pw),
		}
	}
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan *customer)
	var wg sync.WaitGroup
	for range min(setupParallel, len(r.customers)) {
		wg.Go(func() {
			for c := range next {
				if err := r.registerOne(ctx, c); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for _, c := range r.customers {
		select {
		case next <- c:
		case <-ctx.Done():
			break feed
		}
	}
	close(next)
	wg.Wait()
	if err := context.Cause(ctx); err != nil {
		return err
	}
	return nil
}

func (r *runner) registerOne(ctx context.Context, c *customer) error {
	if ctx.Err() != nil {
		return nil // another registration failed first
	}
	octx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	body := map[string]string{"email": c.email, "password": c.password, "name": "Load Tester"}
	if kind := r.expectJSON(octx, http.MethodPost, "/api/users/register", "", "", body, http.StatusCreated, nil); kind != "" {
		if ctx.Err() != nil {
			return nil
		}
		return r.setupError("registering the customer "+c.email, kind)
	}
	if kind := r.login(octx, c); kind != "" {
		if ctx.Err() != nil {
			return nil
		}
		return r.setupError("logging in the customer "+c.email, kind)
	}
	return nil
}

// decodeOrder decodes an order and checks that it names itself.
func decodeOrder(b []byte, o *ordersapi.Order) error {
	if err := json.Unmarshal(b, o); err != nil {
		return err
	}
	if o.ID == "" || o.Status == "" {
		return errors.New("an order without id or status")
	}
	return nil
}

func itoa(n int) string    { return strconv.Itoa(n) }
func utoa(n uint64) string { return strconv.FormatUint(n, 10) }
