package loadgen

import (
	"context"
	"crypto/rand"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"unicode"

	"github.com/microshop/microshop/internal/shopclient"
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

// Unlimited is the environment under which `microshop run` lifts its rate
// limits per address and per account. A load's shoppers all come from one
// machine, where those limits would answer 429s and measure themselves;
// the demos, chaos, the bench and the black-box tests start their systems
// with it.
func Unlimited() []string {
	return []string{"MICROSHOP_REGISTER_RATE_IP=0", "MICROSHOP_LOGIN_RATE_IP=0", "MICROSHOP_LOGIN_RATE_ACCOUNT=0", "MICROSHOP_RATE_LIMIT=0"}
}

// setupError describes a setup request that went wrong, with a hint
// where one helps.
func (r *runner) setupError(doing, kind string) error {
	switch {
	case kind == KindConnection:
		return fmt.Errorf("%s: cannot connect to %s: is microshop running there?", doing, r.shop.URL())
	case kind == KindTimeout:
		return fmt.Errorf("%s: no answer from %s within %s", doing, r.shop.URL(), r.cfg.Timeout)
	case kind == statusKind(http.StatusTooManyRequests):
		return fmt.Errorf("%s: refused by a rate limit (429): use fewer --users, or start the system with %s",
			doing, strings.Join(Unlimited(), " "))
	}
	return fmt.Errorf("%s: %s", doing, kind)
}

// readCatalog reads every page of the catalog.
func (r *runner) readCatalog(ctx context.Context) error {
	tok := ""
	words := map[string]bool{}
	for range maxCatalogPages {
		octx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		p, err := r.shop.Products(octx, shopclient.ProductQuery{Limit: pageSize, PageToken: tok})
		kind := KindOf(octx, err)
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
		return fmt.Errorf("the catalog at %s is empty: there is nothing to browse or buy", r.shop.URL())
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
	octx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	admin, err := r.shop.Login(octx, r.cfg.AdminEmail, r.cfg.AdminPassword)
	kind := KindOf(octx, err)
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
		octx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
		level, err := admin.Restock(octx, p.SKU, restockLevel-p.Available)
		kind := KindOf(octx, err)
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
	r.customers = make([]*shopclient.Session, r.cfg.Users)
	ctx, cancel := context.WithCancelCause(ctx)
	defer cancel(nil)
	next := make(chan int)
	var wg sync.WaitGroup
	for range min(setupParallel, len(r.customers)) {
		wg.Go(func() {
			for i := range next {
				if err := r.registerOne(ctx, i); err != nil {
					cancel(err)
				}
			}
		})
	}
feed:
	for i := range r.customers {
		select {
		case next <- i:
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

// registerOne registers customer i and logs them in.
func (r *runner) registerOne(ctx context.Context, i int) error {
	if ctx.Err() != nil {
		return nil // another registration failed first
	}
	octx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	var pw [18]byte
	_, _ = rand.Read(pw[:])
	reg := shopclient.Registration{Email: fmt.Sprintf("load-%s-%d@example.com", r.runID, i+1), Password: fmt.Sprintf("%x", pw), Name: "Load Tester"}
	if _, err := r.shop.Register(octx, reg); err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return r.setupError("registering the customer "+reg.Email, KindOf(octx, err))
	}
	s, err := r.shop.Login(octx, reg.Email, reg.Password)
	if err != nil {
		if ctx.Err() != nil {
			return nil
		}
		return r.setupError("logging in the customer "+reg.Email, KindOf(octx, err))
	}
	r.customers[i] = s
	return nil
}

func itoa(n int) string    { return strconv.Itoa(n) }
func utoa(n uint64) string { return strconv.FormatUint(n, 10) }
