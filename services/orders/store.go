package orders

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"slices"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

// store is the only code that touches orders' tables.
type store struct{ db *database.DB }

type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

func (s store) insert(ctx context.Context, tx *sql.Tx, o order, owner string, leaseUntil time.Time) error {
	ship, err := json.Marshal(o.Shipping)
	if err != nil {
		return fmt.Errorf("encoding the address: %w", err)
	}
	// The email column stays empty: the events no longer carry the
	// customer's address (docs/privacy.md), so orders keeps none.
	_, err = tx.ExecContext(ctx, `INSERT INTO orders (id, user_id, email, idempotency_key, request_hash, status, reason,
		total_cents, currency, shipping, card_brand, card_last4, saga_step, step_deadline, lease_owner, lease_until, created_at, updated_at)
		VALUES ($1, $2, '', $3, $4, $5, '', $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15)`,
		o.ID, o.UserID, o.IdempotencyKey, o.RequestHash, o.Status, o.TotalCents, o.Currency, string(ship),
		o.Card.Brand, o.Card.Last4, o.SagaStep, o.StepDeadline.UnixMilli(), owner, leaseUntil.UnixMilli(), o.CreatedAt.UnixMilli())
	if database.IsUniqueViolation(err) {
		return errDuplicateKey
	}
	if err != nil {
		return fmt.Errorf("storing order: %w", err)
	}
	return s.insertLines(ctx, tx, o.ID, o.Lines)
}

// errDuplicateKey: another request with the same Idempotency-Key won.
var errDuplicateKey = errors.New("idempotency key already used")

func (s store) replaceLines(ctx context.Context, tx *sql.Tx, id string, lines []ordersapi.Line) error {
	if _, err := tx.ExecContext(ctx, `DELETE FROM order_lines WHERE order_id = $1`, id); err != nil {
		return fmt.Errorf("storing order lines: %w", err)
	}
	return s.insertLines(ctx, tx, id, lines)
}

// insertLines stores the lines of an order that has none, in one
// statement: on Postgres each statement is a round trip.
func (s store) insertLines(ctx context.Context, tx *sql.Tx, id string, lines []ordersapi.Line) error {
	if len(lines) == 0 {
		return nil
	}
	var q strings.Builder
	q.WriteString(`INSERT INTO order_lines (order_id, line_no, sku, quantity, price_cents) VALUES `)
	args := make([]any, 0, 5*len(lines))
	for i, l := range lines {
		if i > 0 {
			q.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&q, "($%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5)
		args = append(args, id, i, l.SKU, l.Quantity, l.PriceCents)
	}
	if _, err := tx.ExecContext(ctx, q.String(), args...); err != nil {
		return fmt.Errorf("storing order lines: %w", err)
	}
	return nil
}

const orderColumns = `id, user_id, idempotency_key, request_hash, status, reason, total_cents, currency,
	shipping, card_brand, card_last4, payment_id, saga_step, step_deadline, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanOrder(row scanner) (order, error) {
	var o order
	var ship string
	var deadline, created, updated int64
	err := row.Scan(&o.ID, &o.UserID, &o.IdempotencyKey, &o.RequestHash, &o.Status, &o.Reason, &o.TotalCents,
		&o.Currency, &ship, &o.Card.Brand, &o.Card.Last4, &o.PaymentID, &o.SagaStep, &deadline, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return order{}, ErrNotFound
	}
	if err != nil {
		return order{}, fmt.Errorf("reading order: %w", err)
	}
	if err := json.Unmarshal([]byte(ship), &o.Shipping); err != nil {
		return order{}, fmt.Errorf("reading order %s address: %w", o.ID, err)
	}
	if deadline > 0 {
		o.StepDeadline = time.UnixMilli(deadline)
	}
	o.CreatedAt, o.UpdatedAt = time.UnixMilli(created), time.UnixMilli(updated)
	return o, nil
}

func (s store) lines(ctx context.Context, q querier, id string) ([]ordersapi.Line, error) {
	rows, err := q.QueryContext(ctx, `SELECT sku, quantity, price_cents FROM order_lines WHERE order_id = $1 ORDER BY line_no`, id)
	if err != nil {
		return nil, fmt.Errorf("reading order lines: %w", err)
	}
	defer rows.Close()
	lines := []ordersapi.Line{}
	for rows.Next() {
		var l ordersapi.Line
		if err := rows.Scan(&l.SKU, &l.Quantity, &l.PriceCents); err != nil {
			return nil, fmt.Errorf("reading order lines: %w", err)
		}
		lines = append(lines, l)
	}
	return lines, rows.Err()
}

func (s store) get(ctx context.Context, q querier, id string) (order, error) {
	o, err := scanOrder(q.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE id = $1`, id))
	if err != nil {
		return order{}, err
	}
	o.Lines, err = s.lines(ctx, q, id)
	return o, err
}

func (s store) byKey(ctx context.Context, userID, key string) (order, error) {
	o, err := scanOrder(s.db.QueryRowContext(ctx, `SELECT `+orderColumns+` FROM orders WHERE user_id = $1 AND idempotency_key = $2`, userID, key))
	if err != nil {
		return order{}, err
	}
	o.Lines, err = s.lines(ctx, s.db, o.ID)
	return o, err
}

// list returns a page of orders, newest first, after the id `after`.
// userID "" lists everyone's (for admins).
func (s store) list(ctx context.Context, userID, after string, limit int) ([]order, error) {
	q := `SELECT ` + orderColumns + ` FROM orders WHERE ($1 = '' OR user_id = $1) AND ($2 = '' OR id < $2) ORDER BY id DESC LIMIT $3`
	rows, err := s.db.QueryContext(ctx, q, userID, after, limit)
	if err != nil {
		return nil, fmt.Errorf("listing orders: %w", err)
	}
	var out []order
	for rows.Next() {
		o, err := scanOrder(rows)
		if err != nil {
			rows.Close()
			return nil, err
		}
		out = append(out, o)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing orders: %w", err)
	}
	for i := range out {
		if out[i].Lines, err = s.lines(ctx, s.db, out[i].ID); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// advance moves an order's saga to step and renews the lease, provided
// owner still holds it; errLeaseLost when another process took it over.
// The same statement stores what the saga's steps change in the order
// (status, reason, total, currency, payment), as o has them: the saga
// holding the lease is the only writer of those, and one statement is
// one round trip on Postgres where one per field was four.
func (s store) advance(ctx context.Context, tx *sql.Tx, o *order, step string, deadline time.Time, leaseUntil time.Time, now time.Time, owner string) error {
	dl := int64(0)
	if !deadline.IsZero() {
		dl = deadline.UnixMilli()
	}
	id := o.ID
	res, err := tx.ExecContext(ctx, `UPDATE orders SET saga_step = $1, step_deadline = $2, lease_until = $3, updated_at = $4,
		status = $5, reason = $6, total_cents = $7, currency = $8, payment_id = $9 WHERE id = $10 AND lease_owner = $11`,
		step, dl, leaseUntil.UnixMilli(), now.UnixMilli(), o.Status, o.Reason, o.TotalCents, o.Currency, o.PaymentID, id, owner)
	if err != nil {
		return fmt.Errorf("advancing the saga of %s to %s: %w", id, step, err)
	}
	if n, err := res.RowsAffected(); err != nil {
		return fmt.Errorf("advancing the saga of %s to %s: %w", id, step, err)
	} else if n != 1 {
		return fmt.Errorf("advancing the saga of %s to %s: %w", id, step, errLeaseLost)
	}
	return nil
}

// startCancel moves a confirmed order whose saga is done to the refund
// step under owner's lease. It reports whether it did: only one cancel
// wins, even across replicas.
func (s store) startCancel(ctx context.Context, tx *sql.Tx, id, owner string, leaseUntil, now time.Time) (bool, error) {
	res, err := tx.ExecContext(ctx, `UPDATE orders SET saga_step = $1, lease_owner = $2, lease_until = $3, updated_at = $4
		WHERE id = $5 AND status = $6 AND saga_step = $7`,
		stepRefund, owner, leaseUntil.UnixMilli(), now.UnixMilli(), id, ordersapi.StatusConfirmed, stepDone)
	if err != nil {
		return false, fmt.Errorf("starting the cancellation of %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("starting the cancellation of %s: %w", id, err)
	}
	return n == 1, nil
}

// setLines replaces the lines of an order when they differ from old (the
// prices the reservation confirmed); the total goes with the saga's step
// (advance).
func (s store) setLines(ctx context.Context, tx *sql.Tx, id string, old, lines []ordersapi.Line) error {
	if slices.Equal(old, lines) {
		return nil
	}
	return s.replaceLines(ctx, tx, id, lines)
}

// entry is one row of the saga log.
type entry struct{ step, event, detail string }

// log appends entries to the saga log of order id, in that order, in one
// statement.
func (s store) log(ctx context.Context, q interface {
	ExecContext(context.Context, string, ...any) (sql.Result, error)
}, id string, now time.Time, entries ...entry) error {
	var b strings.Builder
	b.WriteString(`INSERT INTO saga_log (id, order_id, step, event, detail, at) VALUES `)
	args := make([]any, 0, 6*len(entries))
	for i, e := range entries {
		if i > 0 {
			b.WriteString(", ")
		}
		n := len(args)
		fmt.Fprintf(&b, "($%d, $%d, $%d, $%d, $%d, $%d)", n+1, n+2, n+3, n+4, n+5, n+6)
		detail := e.detail
		if len(detail) > 500 {
			detail = detail[:500]
		}
		// ids are increasing within the process: the log reads in order.
		args = append(args, ids.New(), id, e.step, e.event, detail, now.UnixMilli())
	}
	_, err := q.ExecContext(ctx, b.String(), args...)
	if err != nil {
		return fmt.Errorf("writing the saga log of %s: %w", id, err)
	}
	return nil
}

func (s store) sagaLog(ctx context.Context, id string) ([]ordersapi.SagaEntry, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT step, event, detail, at FROM saga_log WHERE order_id = $1 ORDER BY id`, id)
	if err != nil {
		return nil, fmt.Errorf("reading the saga log of %s: %w", id, err)
	}
	defer rows.Close()
	out := []ordersapi.SagaEntry{}
	for rows.Next() {
		var e ordersapi.SagaEntry
		var at int64
		if err := rows.Scan(&e.Step, &e.Event, &e.Detail, &at); err != nil {
			return nil, fmt.Errorf("reading the saga log of %s: %w", id, err)
		}
		e.At = time.UnixMilli(at).UTC()
		out = append(out, e)
	}
	return out, rows.Err()
}

// claim takes the lease of an unfinished saga when nobody holds it, or
// when its holder is this very owner (a restarted process reclaiming its
// own). It reports whether the lease is now ours.
func (s store) claim(ctx context.Context, id, owner string, reclaimOwn bool, now, until time.Time) (bool, error) {
	var res sql.Result
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		res, err = tx.ExecContext(ctx, `UPDATE orders SET lease_owner = $1, lease_until = $2
			WHERE id = $3 AND saga_step <> $4 AND (lease_until < $5 OR lease_owner = '' OR ($6 AND lease_owner = $1))`,
			owner, until.UnixMilli(), id, stepDone, now.UnixMilli(), reclaimOwn)
		return err
	})
	if err != nil {
		return false, fmt.Errorf("claiming the saga of %s: %w", id, err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// renew extends a lease this owner holds; false means it was lost.
func (s store) renew(ctx context.Context, id, owner string, until time.Time) (bool, error) {
	var n int64
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE orders SET lease_until = $1 WHERE id = $2 AND lease_owner = $3`, until.UnixMilli(), id, owner)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("renewing the saga lease of %s: %w", id, err)
	}
	return n == 1, nil
}

// releaseLeases gives up every unfinished saga's lease owner holds.
func (s store) releaseLeases(ctx context.Context, owner string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `UPDATE orders SET lease_until = 0 WHERE lease_owner = $1 AND saga_step <> $2`, owner, stepDone)
		return err
	})
}

// unfinished lists sagas that may be resumed: not done, and whose lease
// has run out or is held by owner (when reclaimOwn).
func (s store) unfinished(ctx context.Context, owner string, reclaimOwn bool, now time.Time, limit int) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM orders WHERE saga_step <> $1
		AND (lease_until < $2 OR lease_owner = '' OR ($3 AND lease_owner = $4)) ORDER BY id LIMIT $5`,
		stepDone, now.UnixMilli(), reclaimOwn, owner, limit)
	if err != nil {
		return nil, fmt.Errorf("finding unfinished sagas: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, err
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// sagaCounts counts orders by saga step, for metrics and the console.
func (s store) sagaCounts(ctx context.Context) (map[string]int, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT saga_step, COUNT(*) FROM orders WHERE saga_step <> $1 GROUP BY saga_step`, stepDone)
	if err != nil {
		return nil, err
	}
	defer rows.Close()
	out := map[string]int{}
	for rows.Next() {
		var step string
		var n int
		if err := rows.Scan(&step, &n); err != nil {
			return nil, err
		}
		out[step] = n
	}
	return out, rows.Err()
}
