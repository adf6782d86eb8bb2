package inventory

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
)

// product is a catalog entry with its stock, as stored.
type product struct {
	SKU         string
	Name        string
	Description string
	PriceCents  int64
	Currency    string
	Received    int64
	Available   int64
	Reserved    int64
	Sold        int64
	Version     int64
}

func (p product) public() inventoryapi.Product {
	return inventoryapi.Product{SKU: p.SKU, Name: p.Name, Description: p.Description,
		PriceCents: p.PriceCents, Currency: p.Currency, Available: p.Available}
}

func (p product) stock() inventoryapi.StockLevel {
	return inventoryapi.StockLevel{SKU: p.SKU, Received: p.Received, Available: p.Available,
		Reserved: p.Reserved, Sold: p.Sold}
}

// searchText is what q is matched against: lower-cased here rather than
// with SQL LOWER, which SQLite applies to ASCII only.
func searchText(name, description string) string {
	return strings.ToLower(name + "\n" + description)
}

// store is the only code that touches inventory's tables.
type store struct{ db *database.DB }

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

const productColumns = `sku, name, description, price_cents, currency, received, available, reserved, sold, version`

type scanner interface{ Scan(dest ...any) error }

func scanProduct(row scanner) (product, error) {
	var p product
	err := row.Scan(&p.SKU, &p.Name, &p.Description, &p.PriceCents, &p.Currency,
		&p.Received, &p.Available, &p.Reserved, &p.Sold, &p.Version)
	if errors.Is(err, sql.ErrNoRows) {
		return product{}, ErrProductNotFound
	}
	if err != nil {
		return product{}, fmt.Errorf("reading product: %w", err)
	}
	return p, nil
}

// insertProduct stores a new product. With ignoreExisting a product with
// the same sku is left alone (the seed); otherwise it is ErrSKUTaken.
func (s store) insertProduct(ctx context.Context, tx *sql.Tx, p product, now time.Time, ignoreExisting bool) error {
	q := `INSERT INTO products (sku, name, description, search, price_cents, currency, received, available, reserved, sold, version, created_at, updated_at)
	      VALUES ($1, $2, $3, $4, $5, $6, $7, $7, 0, 0, 1, $8, $8)`
	if ignoreExisting {
		q += ` ON CONFLICT (sku) DO NOTHING`
	}
	_, err := tx.ExecContext(ctx, q, p.SKU, p.Name, p.Description, searchText(p.Name, p.Description),
		p.PriceCents, p.Currency, p.Received, now.UnixMilli())
	if database.IsUniqueViolation(err) {
		return ErrSKUTaken
	}
	if err != nil {
		return fmt.Errorf("storing product %s: %w", p.SKU, err)
	}
	return nil
}

func (s store) countProducts(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM products`).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting products: %w", err)
	}
	return n, nil
}

func (s store) product(ctx context.Context, q querier, sku string) (product, error) {
	return scanProduct(q.QueryRowContext(ctx, `SELECT `+productColumns+` FROM products WHERE sku = $1`, sku))
}

// lockProduct takes the row lock of a product that is about to be edited
// and returns it as it is now: a read-modify-write behind it cannot lose a
// concurrent edit on Postgres (the UPDATE waits for the other
// transaction, then sees its result), and SQLite has one writer anyway.
func (s store) lockProduct(ctx context.Context, tx *sql.Tx, sku string, now time.Time) (product, error) {
	return scanProduct(tx.QueryRowContext(ctx,
		`UPDATE products SET version = version + 1, updated_at = $1 WHERE sku = $2 RETURNING `+productColumns,
		now.UnixMilli(), sku))
}

// updateProduct writes p's catalog fields; lockProduct must have locked it.
func (s store) updateProduct(ctx context.Context, tx *sql.Tx, p product) error {
	_, err := tx.ExecContext(ctx,
		`UPDATE products SET name = $1, description = $2, search = $3, price_cents = $4 WHERE sku = $5`,
		p.Name, p.Description, searchText(p.Name, p.Description), p.PriceCents, p.SKU)
	if err != nil {
		return fmt.Errorf("updating product %s: %w", p.SKU, err)
	}
	return nil
}

// listProducts returns up to limit products after the sku after, in sku
// order, whose name or description contains query (already lower-case).
func (s store) listProducts(ctx context.Context, query, after string, limit int) ([]product, error) {
	var (
		where []string
		args  []any
	)
	if query != "" {
		args = append(args, "%"+escapeLike(query)+"%")
		where = append(where, fmt.Sprintf(`search LIKE $%d ESCAPE '\'`, len(args)))
	}
	if after != "" {
		args = append(args, after)
		where = append(where, fmt.Sprintf(`sku > $%d`, len(args)))
	}
	q := `SELECT ` + productColumns + ` FROM products`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, ` AND `)
	}
	args = append(args, limit)
	q += fmt.Sprintf(` ORDER BY sku LIMIT $%d`, len(args))
	return s.queryProducts(ctx, s.db, q, args...)
}

// escapeLike makes s match literally inside a LIKE pattern.
func escapeLike(s string) string {
	return strings.NewReplacer(`\`, `\\`, `%`, `\%`, `_`, `\_`).Replace(s)
}

func (s store) allProducts(ctx context.Context) ([]product, error) {
	return s.queryProducts(ctx, s.db, `SELECT `+productColumns+` FROM products ORDER BY sku`)
}

func (s store) queryProducts(ctx context.Context, q querier, query string, args ...any) ([]product, error) {
	rows, err := q.QueryContext(ctx, query, args...)
	if err != nil {
		return nil, fmt.Errorf("listing products: %w", err)
	}
	defer rows.Close()
	var out []product
	for rows.Next() {
		p, err := scanProduct(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing products: %w", err)
	}
	return out, nil
}

// restock adds quantity units to what was received and is available.
func (s store) restock(ctx context.Context, tx *sql.Tx, sku string, quantity int64, now time.Time) (product, error) {
	return scanProduct(tx.QueryRowContext(ctx,
		`UPDATE products SET received = received + $1, available = available + $1, updated_at = $2
		 WHERE sku = $3 RETURNING `+productColumns, quantity, now.UnixMilli(), sku))
}

// take moves quantity units of sku from available to reserved in one
// statement that cannot oversell: it changes nothing, and reports false,
// when fewer units are available. The row lock it takes makes concurrent
// reservations of the same product queue on Postgres; on SQLite the
// writer is single anyway.
func (s store) take(ctx context.Context, tx *sql.Tx, sku string, quantity int64, now time.Time) (product, bool, error) {
	p, err := scanProduct(tx.QueryRowContext(ctx,
		`UPDATE products SET available = available - $1, reserved = reserved + $1, updated_at = $2
		 WHERE sku = $3 AND available >= $1 RETURNING `+productColumns, quantity, now.UnixMilli(), sku))
	if errors.Is(err, ErrProductNotFound) {
		return product{}, false, nil
	}
	if err != nil {
		return product{}, false, fmt.Errorf("reserving %d of %s: %w", quantity, sku, err)
	}
	return p, true, nil
}

// Stock movements after a reservation: each moves units between two
// columns and must find them there.
const (
	reservedToSold      = `reserved = reserved - $1, sold = sold + $1 WHERE sku = $3 AND reserved >= $1`
	reservedToAvailable = `reserved = reserved - $1, available = available + $1 WHERE sku = $3 AND reserved >= $1`
	soldToAvailable     = `sold = sold - $1, available = available + $1 WHERE sku = $3 AND sold >= $1`
)

func (s store) move(ctx context.Context, tx *sql.Tx, movement, sku string, quantity int64, now time.Time) error {
	res, err := tx.ExecContext(ctx, `UPDATE products SET updated_at = $2, `+movement, quantity, now.UnixMilli(), sku)
	if err != nil {
		return fmt.Errorf("moving %d of %s: %w", quantity, sku, err)
	}
	ok, err := affectedOne(res, "moving stock of "+sku)
	if err != nil {
		return err
	}
	if !ok {
		// The reservation says the units are there; the row disagrees.
		return fmt.Errorf("moving %d of %s: the units are not where the reservation put them", quantity, sku)
	}
	return nil
}

func affectedOne(res sql.Result, what string) (bool, error) {
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return n == 1, nil
}

// reservation is a reservation as stored.
type reservation struct {
	OrderID       string
	Status        string
	Lines         []inventoryapi.ReservationLine
	TotalCents    int64
	Currency      string
	CreatedAt     time.Time
	ExpiresAt     time.Time
	ReleaseReason string
}

func (r reservation) public() inventoryapi.Reservation {
	return inventoryapi.Reservation{OrderID: r.OrderID, Status: r.Status, Lines: r.Lines,
		TotalCents: r.TotalCents, Currency: r.Currency, CreatedAt: r.CreatedAt.UTC(),
		ExpiresAt: r.ExpiresAt.UTC(), ReleaseReason: r.ReleaseReason}
}

// insertReservation stores r and its lines. It reports false, storing
// nothing, when the order id already has a reservation (a concurrent
// reserve of the same order won).
func (s store) insertReservation(ctx context.Context, tx *sql.Tx, r reservation) (bool, error) {
	res, err := tx.ExecContext(ctx,
		`INSERT INTO reservations (order_id, status, total_cents, currency, created_at, expires_at, updated_at)
		 VALUES ($1, $2, $3, $4, $5, $6, $5) ON CONFLICT (order_id) DO NOTHING`,
		r.OrderID, r.Status, r.TotalCents, r.Currency, r.CreatedAt.UnixMilli(), r.ExpiresAt.UnixMilli())
	if err != nil {
		return false, fmt.Errorf("storing reservation %s: %w", r.OrderID, err)
	}
	if ok, err := affectedOne(res, "storing reservation "+r.OrderID); err != nil || !ok {
		return false, err
	}
	stmt, err := tx.PrepareContext(ctx,
		`INSERT INTO reservation_lines (order_id, line_no, sku, quantity, price_cents, currency) VALUES ($1, $2, $3, $4, $5, $6)`)
	if err != nil {
		return false, fmt.Errorf("storing reservation lines: %w", err)
	}
	defer stmt.Close()
	for i, l := range r.Lines {
		if _, err := stmt.ExecContext(ctx, r.OrderID, i, l.SKU, l.Quantity, l.PriceCents, l.Currency); err != nil {
			return false, fmt.Errorf("storing reservation line %s/%d: %w", r.OrderID, i, err)
		}
	}
	return true, nil
}

func (s store) reservation(ctx context.Context, q querier, orderID string) (reservation, error) {
	var (
		r                reservation
		created, expires int64
		reason           sql.NullString
	)
	err := q.QueryRowContext(ctx,
		`SELECT order_id, status, total_cents, currency, created_at, expires_at, release_reason FROM reservations WHERE order_id = $1`,
		orderID).Scan(&r.OrderID, &r.Status, &r.TotalCents, &r.Currency, &created, &expires, &reason)
	if errors.Is(err, sql.ErrNoRows) {
		return reservation{}, ErrReservationNotFound
	}
	if err != nil {
		return reservation{}, fmt.Errorf("reading reservation %s: %w", orderID, err)
	}
	r.CreatedAt, r.ExpiresAt, r.ReleaseReason = time.UnixMilli(created), time.UnixMilli(expires), reason.String
	rows, err := q.QueryContext(ctx,
		`SELECT sku, quantity, price_cents, currency FROM reservation_lines WHERE order_id = $1 ORDER BY line_no`, orderID)
	if err != nil {
		return reservation{}, fmt.Errorf("reading reservation lines of %s: %w", orderID, err)
	}
	defer rows.Close()
	for rows.Next() {
		var l inventoryapi.ReservationLine
		if err := rows.Scan(&l.SKU, &l.Quantity, &l.PriceCents, &l.Currency); err != nil {
			return reservation{}, fmt.Errorf("reading reservation lines of %s: %w", orderID, err)
		}
		r.Lines = append(r.Lines, l)
	}
	if err := rows.Err(); err != nil {
		return reservation{}, fmt.Errorf("reading reservation lines of %s: %w", orderID, err)
	}
	return r, nil
}

// setStatus moves a reservation from status from to status to, and
// reports false when it was not in from any more (a concurrent commit,
// release or expiry moved it first).
func (s store) setStatus(ctx context.Context, tx *sql.Tx, orderID, from, to, reason string, now time.Time) (bool, error) {
	var why any
	if reason != "" {
		why = reason
	}
	res, err := tx.ExecContext(ctx,
		`UPDATE reservations SET status = $1, release_reason = $2, updated_at = $3 WHERE order_id = $4 AND status = $5`,
		to, why, now.UnixMilli(), orderID, from)
	if err != nil {
		return false, fmt.Errorf("marking reservation %s %s: %w", orderID, to, err)
	}
	return affectedOne(res, "marking reservation "+orderID+" "+to)
}

// expiredHeld returns up to limit held reservations whose time is up.
func (s store) expiredHeld(ctx context.Context, now time.Time, limit int) ([]string, error) {
	rows, err := s.db.QueryContext(ctx,
		`SELECT order_id FROM reservations WHERE status = $1 AND expires_at <= $2 ORDER BY expires_at LIMIT $3`,
		inventoryapi.StatusHeld, now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("finding expired reservations: %w", err)
	}
	defer rows.Close()
	var ids []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("finding expired reservations: %w", err)
		}
		ids = append(ids, id)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("finding expired reservations: %w", err)
	}
	return ids, nil
}
