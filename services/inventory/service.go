// Package inventory owns the catalog, the stock of every product and the
// reservations that hold stock for orders. Customers browse and search the
// catalog; admins add products, edit them and restock; orders reserves,
// commits and releases stock through internal routes, and a reservation
// nobody commits expires and gives its stock back. Stock is conserved:
// received = available + reserved + sold for every product, always.
package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"log/slog"
	"regexp"
	"slices"
	"strings"
	"time"
	"unicode/utf8"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/validation"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
)

// Sentinel errors of the inventory domain; http.go maps them to statuses.
var (
	ErrProductNotFound     = errors.New("no product has this sku")
	ErrSKUTaken            = errors.New("a product with this sku already exists")
	ErrReservationNotFound = errors.New("no reservation for this order")
	ErrOutOfStock          = inventoryapi.ErrOutOfStock
	ErrReservationReleased = inventoryapi.ErrReservationReleased
	ErrReservationMismatch = inventoryapi.ErrReservationMismatch

	// errConflict means a concurrent change won a race; the operation is
	// run again from the start.
	errConflict = errors.New("changed concurrently")
)

// Limits of the catalog and of reservations.
const (
	maxSKU         = 64
	maxName        = 200
	maxDescription = 2000
	maxPriceCents  = 1_000_000_000
	maxStock       = 1_000_000
	maxRestock     = 1_000_000
	maxLines       = 100
	maxLineQty     = 1000
	maxOrderID     = 64
	maxQuery       = 200
)

var (
	skuPattern = regexp.MustCompile(`^[A-Za-z0-9_-]+$`)
)

// Config holds the inventory service's settings.
type Config struct {
	// ReservationTTL is how long a reservation holds stock uncommitted.
	ReservationTTL time.Duration
	// LowStockThreshold: a reservation that takes a product's available
	// units from at least this to below it publishes inventory.low_stock.
	// Zero turns the event off.
	LowStockThreshold int64
	// SeedCatalog loads the built-in catalog when there are no products.
	SeedCatalog bool
	// Currency is the shop's one currency (ISO 4217): every product is
	// priced in it, so no order can mix currencies. Empty means USD.
	Currency string
}

// Service is the inventory service.
type Service struct {
	cfg    Config
	db     *database.DB
	store  store
	outbox events.Outbox
	log    *slog.Logger
	now    func() time.Time
}

// Deps are what the inventory service works with.
type Deps struct {
	DB  *database.DB
	Log *slog.Logger
}

// New builds the service and, when configured to and the catalog is
// empty, loads the seed catalog; ctx bounds that work and is not kept.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	db, log := deps.DB, deps.Log
	if cfg.ReservationTTL <= 0 {
		return nil, fmt.Errorf("the reservation ttl must be positive, not %s", cfg.ReservationTTL)
	}
	if cfg.LowStockThreshold < 0 {
		return nil, fmt.Errorf("the low-stock threshold must be 0 or more, not %d", cfg.LowStockThreshold)
	}
	if cfg.Currency == "" {
		cfg.Currency = "USD"
	}
	if why := validation.Currency(cfg.Currency); why != "" {
		return nil, fmt.Errorf("the shop's currency %q %s", cfg.Currency, why)
	}
	s := &Service{cfg: cfg, db: db, store: store{db: db}, log: log, now: time.Now}
	if cfg.SeedCatalog {
		if err := s.seed(ctx); err != nil {
			return nil, err
		}
	}
	return s, nil
}

// NewProduct is an admin's request to add a product to the catalog.
type NewProduct inventoryapi.NewProduct

// Valid checks a new product field by field.
func (p *NewProduct) Valid() []validation.FieldError {
	var errs []validation.FieldError
	add := func(field, reason string) {
		if reason != "" {
			errs = append(errs, validation.FieldError{Field: field, Reason: reason})
		}
	}
	add("sku", skuProblem(p.SKU))
	add("name", nameProblem(p.Name))
	add("description", descriptionProblem(p.Description))
	add("price_cents", priceProblem(p.PriceCents))
	add("currency", validation.Currency(p.Currency))
	if p.Stock < 0 || p.Stock > maxStock {
		add("stock", fmt.Sprintf("must be between 0 and %d", maxStock))
	}
	return errs
}

// ProductUpdate changes some of a product's catalog fields. Its sku and
// currency never change: reservations and reports refer to them.
type ProductUpdate struct {
	Name        *string `json:"name,omitempty"`
	Description *string `json:"description,omitempty"`
	PriceCents  *int64  `json:"price_cents,omitempty"`
}

// Valid checks the fields that are present.
func (u *ProductUpdate) Valid() []validation.FieldError {
	if u.Name == nil && u.Description == nil && u.PriceCents == nil {
		return []validation.FieldError{{Field: "name", Reason: "give a name, description or price_cents to change"}}
	}
	var errs []validation.FieldError
	if u.Name != nil {
		if reason := nameProblem(*u.Name); reason != "" {
			errs = append(errs, validation.FieldError{Field: "name", Reason: reason})
		}
	}
	if u.Description != nil {
		if reason := descriptionProblem(*u.Description); reason != "" {
			errs = append(errs, validation.FieldError{Field: "description", Reason: reason})
		}
	}
	if u.PriceCents != nil {
		if reason := priceProblem(*u.PriceCents); reason != "" {
			errs = append(errs, validation.FieldError{Field: "price_cents", Reason: reason})
		}
	}
	return errs
}

// Restock is an admin's delivery of more units of a product.
type Restock struct {
	Quantity int64 `json:"quantity"`
}

// Valid checks the quantity.
func (r *Restock) Valid() []validation.FieldError {
	if r.Quantity < 1 || r.Quantity > maxRestock {
		return []validation.FieldError{{Field: "quantity", Reason: fmt.Sprintf("must be between 1 and %d", maxRestock)}}
	}
	return nil
}

// ReserveRequest is orders' request to hold stock; see contract.ReserveRequest.
type ReserveRequest inventoryapi.ReserveRequest

// Valid checks the order id and every line.
func (r *ReserveRequest) Valid() []validation.FieldError {
	var errs []validation.FieldError
	if reason := orderIDProblem(r.OrderID); reason != "" {
		errs = append(errs, validation.FieldError{Field: "order_id", Reason: reason})
	}
	return append(errs, linesProblems(r.Lines)...)
}

// QuoteRequest is orders' request for prices; see contract.QuoteRequest.
type QuoteRequest inventoryapi.QuoteRequest

// Valid checks every line.
func (q *QuoteRequest) Valid() []validation.FieldError { return linesProblems(q.Lines) }

// linesProblems checks the lines of a reservation or a quote: 1 to 100 of
// them, each sku once, 1 to 1000 units each.
func linesProblems(lines []inventoryapi.ReserveLine) []validation.FieldError {
	var errs []validation.FieldError
	if len(lines) < 1 || len(lines) > maxLines {
		errs = append(errs, validation.FieldError{Field: "lines", Reason: fmt.Sprintf("must hold between 1 and %d lines", maxLines)})
		if len(lines) > maxLines {
			return errs // do not list the problems of thousands of lines
		}
	}
	seen := make(map[string]int, len(lines))
	for i, l := range lines {
		if reason := skuProblem(l.SKU); reason != "" {
			errs = append(errs, validation.FieldError{Field: fmt.Sprintf("lines[%d].sku", i), Reason: reason})
		} else if first, dup := seen[l.SKU]; dup {
			errs = append(errs, validation.FieldError{Field: fmt.Sprintf("lines[%d].sku", i),
				Reason: fmt.Sprintf("repeats lines[%d]; give each sku once with the total quantity", first)})
		} else {
			seen[l.SKU] = i
		}
		if l.Quantity < 1 || l.Quantity > maxLineQty {
			errs = append(errs, validation.FieldError{Field: fmt.Sprintf("lines[%d].quantity", i),
				Reason: fmt.Sprintf("must be between 1 and %d", maxLineQty)})
		}
	}
	return errs
}

func skuProblem(sku string) string {
	switch {
	case sku == "":
		return "is required"
	case len(sku) > maxSKU:
		return fmt.Sprintf("must be at most %d characters", maxSKU)
	case !skuPattern.MatchString(sku):
		return "may hold only letters A-Z and a-z, digits, '-' and '_'"
	}
	return ""
}

func orderIDProblem(id string) string {
	switch {
	case id == "":
		return "is required"
	case len(id) > maxOrderID:
		return fmt.Sprintf("must be at most %d characters", maxOrderID)
	case !skuPattern.MatchString(id):
		return "may hold only letters A-Z and a-z, digits, '-' and '_'"
	}
	return ""
}

func nameProblem(name string) string {
	if utf8.ValidString(name) && strings.TrimSpace(name) == "" {
		return "is required"
	}
	return validation.Text(name, maxName)
}

func descriptionProblem(d string) string { return validation.Lines(d, maxDescription) }

func priceProblem(cents int64) string {
	if cents < 1 || cents > maxPriceCents {
		return fmt.Sprintf("must be an integer number of cents between 1 and %d", maxPriceCents)
	}
	return ""
}

// retry runs fn again while it loses races to concurrent changes.
func retry(fn func() error) error {
	for attempt := 1; ; attempt++ {
		err := fn()
		if !errors.Is(err, errConflict) || attempt == 5 {
			return err
		}
	}
}

// Products lists the catalog in sku order: up to limit products after
// the sku after whose name or description contains query, any case. more
// reports whether another page follows.
func (s *Service) Products(ctx context.Context, query, after string, limit int) (page []inventoryapi.Product, more bool, err error) {
	ps, err := s.store.listProducts(ctx, strings.ToLower(query), after, limit+1)
	if err != nil {
		return nil, false, err
	}
	if len(ps) > limit {
		ps, more = ps[:limit], true
	}
	page = make([]inventoryapi.Product, 0, len(ps))
	for _, p := range ps {
		page = append(page, p.public())
	}
	return page, more, nil
}

// Product returns one product.
func (s *Service) Product(ctx context.Context, sku string) (inventoryapi.Product, error) {
	p, err := s.store.product(ctx, s.db, sku)
	if err != nil {
		return inventoryapi.Product{}, err
	}
	return p.public(), nil
}

// CreateProduct adds a product with its first stock.
func (s *Service) CreateProduct(ctx context.Context, np NewProduct) (inventoryapi.Product, error) {
	if np.Currency != s.cfg.Currency {
		return inventoryapi.Product{}, validation.Errors{{Field: "currency",
			Reason: fmt.Sprintf("the shop sells in %s only; %s is not its currency", s.cfg.Currency, np.Currency)}}
	}
	p := product{SKU: np.SKU, Name: strings.TrimSpace(np.Name), Description: np.Description,
		PriceCents: np.PriceCents, Currency: np.Currency, Received: np.Stock, Available: np.Stock}
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		return s.store.insertProduct(ctx, tx, p, s.now(), false)
	})
	if err != nil {
		return inventoryapi.Product{}, err
	}
	return p.public(), nil
}

// UpdateProduct changes a product's name, description or price. Prices
// of reservations already made stay as they were.
func (s *Service) UpdateProduct(ctx context.Context, sku string, u ProductUpdate) (inventoryapi.Product, error) {
	var p product
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		if p, err = s.store.lockProduct(ctx, tx, sku, s.now()); err != nil {
			return err
		}
		if u.Name != nil {
			p.Name = strings.TrimSpace(*u.Name)
		}
		if u.Description != nil {
			p.Description = *u.Description
		}
		if u.PriceCents != nil {
			p.PriceCents = *u.PriceCents
		}
		return s.store.updateProduct(ctx, tx, p)
	})
	if err != nil {
		return inventoryapi.Product{}, err
	}
	return p.public(), nil
}

// Restock records quantity more units received of sku.
func (s *Service) Restock(ctx context.Context, sku string, quantity int64) (inventoryapi.StockLevel, error) {
	var p product
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		p, err = s.store.restock(ctx, tx, sku, quantity, s.now())
		return err
	})
	if err != nil {
		return inventoryapi.StockLevel{}, err
	}
	return p.stock(), nil
}

// Stock returns the stock of every product, in sku order.
func (s *Service) Stock(ctx context.Context) ([]inventoryapi.StockLevel, error) {
	ps, err := s.store.allProducts(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]inventoryapi.StockLevel, 0, len(ps))
	for _, p := range ps {
		out = append(out, p.stock())
	}
	return out, nil
}

// OutOfStockError says which lines of a reservation lacked stock.
type OutOfStockError struct {
	Short []Shortage
}

// Shortage is one line that asked for more than was available.
type Shortage struct {
	Line      int
	SKU       string
	Requested int64
	Available int64
}

func (e *OutOfStockError) Error() string {
	skus := make([]string, len(e.Short))
	for i, s := range e.Short {
		skus[i] = s.SKU
	}
	return "not enough stock of " + strings.Join(skus, ", ")
}

// Is makes errors.Is(err, ErrOutOfStock) true.
func (e *OutOfStockError) Is(target error) bool { return target == ErrOutOfStock }

// Reserve holds stock for every line of an order, or for none. It is
// idempotent by order id: when the order already has a reservation it
// returns that one, changing nothing, and created is false.
func (s *Service) Reserve(ctx context.Context, req ReserveRequest) (res inventoryapi.Reservation, created bool, err error) {
	err = retry(func() error {
		return s.db.InTx(ctx, func(tx *sql.Tx) error {
			existing, err := s.store.reservation(ctx, tx, req.OrderID)
			switch {
			case err == nil:
				if !sameLines(existing.Lines, req.Lines) {
					return fmt.Errorf("%w: order %s holds other lines", ErrReservationMismatch, req.OrderID)
				}
				res, created = existing.public(), false
				return nil
			case !errors.Is(err, ErrReservationNotFound):
				return err
			}
			r, err := s.hold(ctx, tx, req)
			if err != nil {
				return err
			}
			res, created = r.public(), true
			return nil
		})
	})
	return res, created, err
}

// hold takes the stock of req inside tx and records the reservation and
// its events. Any failure rolls all of it back.
func (s *Service) hold(ctx context.Context, tx *sql.Tx, req ReserveRequest) (reservation, error) {
	// Times are kept to the millisecond, so the answer to a repeated
	// request is the same as the first.
	now := s.now().Truncate(time.Millisecond)
	r := reservation{OrderID: req.OrderID, Status: inventoryapi.StatusHeld, CreatedAt: now,
		ExpiresAt: now.Add(s.cfg.ReservationTTL), Lines: make([]inventoryapi.ReservationLine, len(req.Lines))}
	// Take rows in sku order so two multi-line reservations lock products
	// in the same order and cannot deadlock on Postgres.
	order := make([]int, len(req.Lines))
	for i := range order {
		order[i] = i
	}
	slices.SortFunc(order, func(a, b int) int { return strings.Compare(req.Lines[a].SKU, req.Lines[b].SKU) })

	var (
		unknown []int
		short   []Shortage
		low     []inventoryapi.LowStock
	)
	for _, i := range order {
		l := req.Lines[i]
		p, ok, err := s.store.take(ctx, tx, l.SKU, l.Quantity, now)
		if err != nil {
			return reservation{}, err
		}
		if !ok {
			p, err := s.store.product(ctx, tx, l.SKU)
			switch {
			case errors.Is(err, ErrProductNotFound):
				unknown = append(unknown, i)
			case err != nil:
				return reservation{}, err
			default:
				short = append(short, Shortage{Line: i, SKU: l.SKU, Requested: l.Quantity, Available: p.Available})
			}
			continue
		}
		r.Lines[i] = inventoryapi.ReservationLine{SKU: p.SKU, Quantity: l.Quantity, PriceCents: p.PriceCents, Currency: p.Currency}
		if before := p.Available + l.Quantity; before >= s.cfg.LowStockThreshold && p.Available < s.cfg.LowStockThreshold {
			low = append(low, inventoryapi.LowStock{SKU: p.SKU, Name: p.Name, Available: p.Available, Threshold: s.cfg.LowStockThreshold})
		}
	}
	if len(unknown) > 0 {
		return reservation{}, unknownSKUs(unknown)
	}
	if len(short) > 0 {
		slices.SortFunc(short, func(a, b Shortage) int { return a.Line - b.Line })
		return reservation{}, &OutOfStockError{Short: short}
	}
	var err error
	if r.TotalCents, r.Currency, err = total(r.Lines); err != nil {
		return reservation{}, err
	}
	stored, err := s.store.insertReservation(ctx, tx, r)
	if err != nil {
		return reservation{}, err
	}
	if !stored {
		return reservation{}, errConflict // a concurrent reserve of this order won; read its result
	}
	if _, err := s.outbox.Add(ctx, tx, inventoryapi.StockReserved{OrderID: r.OrderID, Lines: r.Lines,
		TotalCents: r.TotalCents, Currency: r.Currency}); err != nil {
		return reservation{}, err
	}
	for _, ev := range low {
		if _, err := s.outbox.Add(ctx, tx, ev); err != nil {
			return reservation{}, err
		}
	}
	return r, nil
}

// unknownSKUs refuses lines (by index) whose sku names no product.
func unknownSKUs(lines []int) error {
	slices.Sort(lines)
	errs := make(validation.Errors, len(lines))
	for j, i := range lines {
		errs[j] = validation.FieldError{Field: fmt.Sprintf("lines[%d].sku", i), Reason: "no product has this sku"}
	}
	return errs
}

// total sums priced lines, which must all be in one currency.
func total(lines []inventoryapi.ReservationLine) (int64, string, error) {
	var sum int64
	currency := lines[0].Currency
	for _, l := range lines {
		if l.Currency != currency {
			return 0, "", validation.Errors{{Field: "lines",
				Reason: fmt.Sprintf("all products of an order must share one currency; %s is in %s, %s in %s",
					lines[0].SKU, currency, l.SKU, l.Currency)}}
		}
		sum += l.PriceCents * l.Quantity
	}
	return sum, currency, nil
}

// Quote prices lines at the current catalog prices, reserving nothing.
func (s *Service) Quote(ctx context.Context, req QuoteRequest) (inventoryapi.Quote, error) {
	q := inventoryapi.Quote{Lines: make([]inventoryapi.ReservationLine, len(req.Lines))}
	var unknown []int
	for i, l := range req.Lines {
		p, err := s.store.product(ctx, s.db, l.SKU)
		switch {
		case errors.Is(err, ErrProductNotFound):
			unknown = append(unknown, i)
			continue
		case err != nil:
			return inventoryapi.Quote{}, err
		}
		q.Lines[i] = inventoryapi.ReservationLine{SKU: p.SKU, Quantity: l.Quantity, PriceCents: p.PriceCents, Currency: p.Currency}
	}
	if len(unknown) > 0 {
		return inventoryapi.Quote{}, unknownSKUs(unknown)
	}
	var err error
	if q.TotalCents, q.Currency, err = total(q.Lines); err != nil {
		return inventoryapi.Quote{}, err
	}
	return q, nil
}

// sameLines reports whether a stored reservation holds exactly the
// requested skus and quantities, in any order.
func sameLines(held []inventoryapi.ReservationLine, asked []inventoryapi.ReserveLine) bool {
	if len(held) != len(asked) {
		return false
	}
	want := make(map[string]int64, len(asked))
	for _, l := range asked {
		want[l.SKU] += l.Quantity
	}
	for _, l := range held {
		if want[l.SKU] != l.Quantity {
			return false
		}
		delete(want, l.SKU)
	}
	return len(want) == 0
}

// Commit turns a held reservation into a sale: its units move from
// reserved to sold. Committing a committed reservation changes nothing. A
// released one, or a held one past its expiry (which is released now),
// is ErrReservationReleased.
func (s *Service) Commit(ctx context.Context, orderID string) (inventoryapi.Reservation, error) {
	var (
		out     reservation
		expired bool
	)
	err := retry(func() error {
		expired = false
		return s.db.InTx(ctx, func(tx *sql.Tx) error {
			r, err := s.store.reservation(ctx, tx, orderID)
			if err != nil {
				return err
			}
			now := s.now()
			switch r.Status {
			case inventoryapi.StatusCommitted:
				out = r
				return nil
			case inventoryapi.StatusReleased:
				return fmt.Errorf("%w: order %s was %s", ErrReservationReleased, orderID, r.ReleaseReason)
			}
			if !now.Before(r.ExpiresAt) {
				// Its time is up even if the sweeper has not come by yet.
				expired = true
				out, err = s.release(ctx, tx, r, inventoryapi.ReasonExpired, now)
				return err
			}
			ok, err := s.store.setStatus(ctx, tx, orderID, inventoryapi.StatusHeld, inventoryapi.StatusCommitted, "", now)
			if err != nil {
				return err
			}
			if !ok {
				return errConflict
			}
			for _, l := range bySKU(r.Lines) {
				if err := s.store.move(ctx, tx, reservedToSold, l.SKU, l.Quantity, now); err != nil {
					return err
				}
			}
			r.Status = inventoryapi.StatusCommitted
			out = r
			return nil
		})
	})
	if err != nil {
		return inventoryapi.Reservation{}, err
	}
	if expired {
		return inventoryapi.Reservation{}, fmt.Errorf("%w: order %s was expired", ErrReservationReleased, orderID)
	}
	return out.public(), nil
}

// Release gives a reservation's units back to available: from reserved
// when it is held, from sold when it was committed (the order was
// cancelled after it was confirmed). Releasing again changes nothing.
func (s *Service) Release(ctx context.Context, orderID string) (inventoryapi.Reservation, error) {
	var out reservation
	err := retry(func() error {
		return s.db.InTx(ctx, func(tx *sql.Tx) error {
			r, err := s.store.reservation(ctx, tx, orderID)
			if err != nil {
				return err
			}
			if r.Status == inventoryapi.StatusReleased {
				out = r
				return nil
			}
			out, err = s.release(ctx, tx, r, inventoryapi.ReasonReleased, s.now())
			return err
		})
	})
	if err != nil {
		return inventoryapi.Reservation{}, err
	}
	return out.public(), nil
}

// release moves r, held or committed, to released inside tx, gives its
// units back and announces it.
func (s *Service) release(ctx context.Context, tx *sql.Tx, r reservation, reason string, now time.Time) (reservation, error) {
	ok, err := s.store.setStatus(ctx, tx, r.OrderID, r.Status, inventoryapi.StatusReleased, reason, now)
	if err != nil {
		return reservation{}, err
	}
	if !ok {
		return reservation{}, errConflict
	}
	movement := reservedToAvailable
	if r.Status == inventoryapi.StatusCommitted {
		movement = soldToAvailable
	}
	for _, l := range bySKU(r.Lines) {
		if err := s.store.move(ctx, tx, movement, l.SKU, l.Quantity, now); err != nil {
			return reservation{}, err
		}
	}
	if _, err := s.outbox.Add(ctx, tx, inventoryapi.StockReleased{OrderID: r.OrderID, Reason: reason,
		PreviousStatus: r.Status, Lines: r.Lines}); err != nil {
		return reservation{}, err
	}
	r.Status, r.ReleaseReason = inventoryapi.StatusReleased, reason
	return r, nil
}

// bySKU returns lines sorted by sku: every transaction that changes
// several products locks their rows in this order, so two of them never
// wait for each other on Postgres.
func bySKU(lines []inventoryapi.ReservationLine) []inventoryapi.ReservationLine {
	out := slices.Clone(lines)
	slices.SortFunc(out, func(a, b inventoryapi.ReservationLine) int { return strings.Compare(a.SKU, b.SKU) })
	return out
}
