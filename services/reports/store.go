package reports

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strconv"
	"strings"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
	"github.com/microshop/microshop/services/reports/reportsapi"
)

// store is reports' SQL; nothing else touches its tables. Writes run in
// the transaction of the consumer's inbox (see consumer.go).
type store struct{ db *database.DB }

// modelTables are the read model: what a rebuild wipes.
var modelTables = []string{"report_orders", "report_order_lines", "report_payments",
	"report_refunds", "report_reservations", "report_low_stock"}

func (st store) countEvent(ctx context.Context, tx *sql.Tx) error {
	_, err := tx.ExecContext(ctx, `UPDATE report_state SET events_applied = events_applied + 1 WHERE id = 1`)
	return err
}

// confirmOrder sets the order's confirmation; the confirmation's total
// and currency are the ones that count, whatever came first.
func (st store) confirmOrder(ctx context.Context, tx *sql.Tx, b ordersapi.OrderConfirmed, at int64) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO report_orders (order_id, currency, total_cents, confirmed_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (order_id) DO UPDATE SET currency = excluded.currency, total_cents = excluded.total_cents,
			confirmed_at = excluded.confirmed_at`,
		b.OrderID, b.Currency, b.TotalCents, at)
	if err != nil {
		return fmt.Errorf("recording confirmed order %s: %w", b.OrderID, err)
	}
	return st.addLines(ctx, tx, b.OrderID, b.Lines)
}

func (st store) rejectOrder(ctx context.Context, tx *sql.Tx, b ordersapi.OrderRejected, at int64) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO report_orders (order_id, currency, total_cents, rejected_at, reject_reason) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (order_id) DO UPDATE SET rejected_at = excluded.rejected_at, reject_reason = excluded.reject_reason`,
		b.OrderID, b.Currency, b.TotalCents, at, b.Reason)
	if err != nil {
		return fmt.Errorf("recording rejected order %s: %w", b.OrderID, err)
	}
	return nil
}

// cancelOrder sets the order's cancellation. Its lines are the
// confirmation's, so whichever event comes first stores them.
func (st store) cancelOrder(ctx context.Context, tx *sql.Tx, b ordersapi.OrderCancelled, at int64) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO report_orders (order_id, currency, total_cents, cancelled_at) VALUES ($1, $2, $3, $4)
		ON CONFLICT (order_id) DO UPDATE SET cancelled_at = excluded.cancelled_at`,
		b.OrderID, b.Currency, b.TotalCents, at)
	if err != nil {
		return fmt.Errorf("recording cancelled order %s: %w", b.OrderID, err)
	}
	return st.addLines(ctx, tx, b.OrderID, b.Lines)
}

func (st store) addLines(ctx context.Context, tx *sql.Tx, orderID string, lines []ordersapi.Line) error {
	for i, l := range lines {
		_, err := tx.ExecContext(ctx, `
			INSERT INTO report_order_lines (order_id, line_no, sku, quantity, price_cents) VALUES ($1, $2, $3, $4, $5)
			ON CONFLICT (order_id, line_no) DO NOTHING`,
			orderID, i, l.SKU, l.Quantity, l.PriceCents)
		if err != nil {
			return fmt.Errorf("recording the lines of order %s: %w", orderID, err)
		}
	}
	return nil
}

func (st store) capturePayment(ctx context.Context, tx *sql.Tx, b paymentsapi.PaymentCaptured, at int64) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO report_payments (payment_id, order_id, currency, amount_cents, captured_at) VALUES ($1, $2, $3, $4, $5)
		ON CONFLICT (payment_id) DO UPDATE SET currency = excluded.currency, amount_cents = excluded.amount_cents,
			captured_at = excluded.captured_at`,
		b.PaymentID, b.OrderID, b.Currency, b.AmountCents, at)
	if err != nil {
		return fmt.Errorf("recording captured payment %s: %w", b.PaymentID, err)
	}
	return nil
}

func (st store) failPayment(ctx context.Context, tx *sql.Tx, b paymentsapi.PaymentFailed, at int64) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO report_payments (payment_id, order_id, currency, amount_cents, failed_at, failure_reason) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (payment_id) DO UPDATE SET failed_at = excluded.failed_at, failure_reason = excluded.failure_reason`,
		b.PaymentID, b.OrderID, b.Currency, b.AmountCents, at, b.Reason)
	if err != nil {
		return fmt.Errorf("recording failed payment %s: %w", b.PaymentID, err)
	}
	return nil
}

// refund records one refund under its event id: each refund is its own
// fact, and the inbox already keeps a redelivered one out.
func (st store) refund(ctx context.Context, tx *sql.Tx, eventID string, b paymentsapi.PaymentRefunded, at int64) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO report_refunds (event_id, payment_id, order_id, currency, amount_cents, refunded_at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (event_id) DO NOTHING`,
		eventID, b.PaymentID, b.OrderID, b.Currency, b.AmountCents, at)
	if err != nil {
		return fmt.Errorf("recording a refund of payment %s: %w", b.PaymentID, err)
	}
	return nil
}

func (st store) reserve(ctx context.Context, tx *sql.Tx, orderID string, at int64) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO report_reservations (order_id, reserved_at) VALUES ($1, $2)
		ON CONFLICT (order_id) DO UPDATE SET reserved_at = excluded.reserved_at`, orderID, at)
	if err != nil {
		return fmt.Errorf("recording the reservation of order %s: %w", orderID, err)
	}
	return nil
}

func (st store) release(ctx context.Context, tx *sql.Tx, b inventoryapi.StockReleased, at int64) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO report_reservations (order_id, released_at, release_reason, previous_status) VALUES ($1, $2, $3, $4)
		ON CONFLICT (order_id) DO UPDATE SET released_at = excluded.released_at, release_reason = excluded.release_reason,
			previous_status = excluded.previous_status`,
		b.OrderID, at, b.Reason, b.PreviousStatus)
	if err != nil {
		return fmt.Errorf("recording the release of order %s: %w", b.OrderID, err)
	}
	return nil
}

func (st store) lowStock(ctx context.Context, tx *sql.Tx, eventID string, b inventoryapi.LowStock, at int64) error {
	_, err := tx.ExecContext(ctx, `
		INSERT INTO report_low_stock (event_id, sku, name, available, threshold, at) VALUES ($1, $2, $3, $4, $5, $6)
		ON CONFLICT (event_id) DO NOTHING`,
		eventID, b.SKU, b.Name, b.Available, b.Threshold, at)
	if err != nil {
		return fmt.Errorf("recording a low-stock alert for %s: %w", b.SKU, err)
	}
	return nil
}

// wipe empties the read model and forgets which events consumers handled,
// in one transaction. It updates report_state first, as every handler
// does, so it waits for handlers in flight and they wait for it.
func (st store) wipe(ctx context.Context, consumers []string) error {
	return st.db.InTx(ctx, func(tx *sql.Tx) error {
		if _, err := tx.ExecContext(ctx, `UPDATE report_state SET events_applied = 0 WHERE id = 1`); err != nil {
			return fmt.Errorf("wiping the read model: %w", err)
		}
		for _, t := range modelTables {
			if _, err := tx.ExecContext(ctx, `DELETE FROM `+t); err != nil {
				return fmt.Errorf("wiping %s: %w", t, err)
			}
		}
		args := make([]any, len(consumers))
		marks := make([]string, len(consumers))
		for i, c := range consumers {
			args[i], marks[i] = c, "$"+strconv.Itoa(i+1)
		}
		if _, err := tx.ExecContext(ctx, `DELETE FROM inbox WHERE consumer IN (`+strings.Join(marks, ", ")+`)`, args...); err != nil {
			return fmt.Errorf("wiping the inbox: %w", err)
		}
		return nil
	})
}

// read runs fn in a read transaction, so one report's figures all come
// from one snapshot of the model.
func (st store) read(ctx context.Context, fn func(tx *sql.Tx) error) error {
	opts := &sql.TxOptions{ReadOnly: true}
	if st.db.Dialect == database.Postgres {
		opts.Isolation = sql.LevelRepeatableRead
	}
	tx, err := st.db.BeginTx(ctx, opts)
	if err != nil {
		return fmt.Errorf("beginning a read: %w", err)
	}
	defer tx.Rollback() //nolint:errcheck // read only: nothing to keep
	return fn(tx)
}

// salesRow is one bucket's figures as SQL sums them.
type salesRow struct{ orders, revenue, refunds int64 }

// sales sums confirmed orders and refunds of [from, to) by bucket, keyed
// by the bucket's start (unix ms).
func (st store) sales(ctx context.Context, from, to int64, b bucket, currency string) (map[int64]salesRow, error) {
	out := map[int64]salesRow{}
	err := st.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `
			SELECT ((confirmed_at + $1) / $2) * $2 - $1, COUNT(*), CAST(SUM(total_cents) AS BIGINT)
			FROM report_orders
			WHERE confirmed_at >= $3 AND confirmed_at < $4 AND currency = $5
			GROUP BY 1`, b.offset, b.size, from, to, currency)
		if err != nil {
			return fmt.Errorf("summing sales: %w", err)
		}
		for rows.Next() {
			var start int64
			var r salesRow
			if err := rows.Scan(&start, &r.orders, &r.revenue); err != nil {
				rows.Close()
				return fmt.Errorf("summing sales: %w", err)
			}
			out[start] = r
		}
		rows.Close()
		if err := rows.Err(); err != nil {
			return fmt.Errorf("summing sales: %w", err)
		}
		rows, err = tx.QueryContext(ctx, `
			SELECT ((refunded_at + $1) / $2) * $2 - $1, CAST(SUM(amount_cents) AS BIGINT)
			FROM report_refunds
			WHERE refunded_at >= $3 AND refunded_at < $4 AND currency = $5
			GROUP BY 1`, b.offset, b.size, from, to, currency)
		if err != nil {
			return fmt.Errorf("summing refunds: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var start, refunds int64
			if err := rows.Scan(&start, &refunds); err != nil {
				return fmt.Errorf("summing refunds: %w", err)
			}
			r := out[start]
			r.refunds = refunds
			out[start] = r
		}
		if err := rows.Err(); err != nil {
			return fmt.Errorf("summing refunds: %w", err)
		}
		return nil
	})
	return out, err
}

// topProducts sums the lines of orders confirmed in [from, to), best
// sellers (by units still sold) first.
func (st store) topProducts(ctx context.Context, from, to int64, currency string, limit int) ([]reportsapi.Product, error) {
	out := []reportsapi.Product{}
	err := st.read(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx, `
			SELECT l.sku,
				CAST(SUM(CASE WHEN o.cancelled_at IS NULL THEN l.quantity ELSE 0 END) AS BIGINT) AS units,
				CAST(SUM(CASE WHEN o.cancelled_at IS NULL THEN 0 ELSE l.quantity END) AS BIGINT) AS cancelled_units,
				CAST(SUM(CASE WHEN o.cancelled_at IS NULL THEN l.quantity * l.price_cents ELSE 0 END) AS BIGINT) AS revenue
			FROM report_order_lines l JOIN report_orders o ON o.order_id = l.order_id
			WHERE o.confirmed_at >= $1 AND o.confirmed_at < $2 AND o.currency = $3
			GROUP BY l.sku
			ORDER BY units DESC, revenue DESC, l.sku
			LIMIT $4`, from, to, currency, limit)
		if err != nil {
			return fmt.Errorf("summing products: %w", err)
		}
		defer rows.Close()
		for rows.Next() {
			var p reportsapi.Product
			if err := rows.Scan(&p.SKU, &p.Units, &p.CancelledUnits, &p.RevenueCents); err != nil {
				return fmt.Errorf("summing products: %w", err)
			}
			out = append(out, p)
		}
		return rows.Err()
	})
	return out, err
}

// summary sums the whole model.
func (st store) summary(ctx context.Context, currency string) (reportsapi.Summary, error) {
	s := reportsapi.Summary{Currency: currency}
	err := st.read(ctx, func(tx *sql.Tx) error {
		queries := []struct {
			sql  string
			args []any
			dest []any
		}{
			{`SELECT
				COUNT(CASE WHEN confirmed_at IS NOT NULL AND cancelled_at IS NULL THEN 1 END),
				COUNT(CASE WHEN rejected_at IS NOT NULL AND confirmed_at IS NULL AND cancelled_at IS NULL THEN 1 END),
				COUNT(CASE WHEN cancelled_at IS NOT NULL THEN 1 END),
				CAST(COALESCE(SUM(CASE WHEN confirmed_at IS NOT NULL AND currency = $1 THEN total_cents ELSE 0 END), 0) AS BIGINT)
			  FROM report_orders`, []any{currency},
				[]any{&s.OrdersConfirmed, &s.OrdersRejected, &s.OrdersCancelled, &s.RevenueCents}},
			{`SELECT CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM report_refunds WHERE currency = $1`,
				[]any{currency}, []any{&s.RefundsCents}},
			{`SELECT CAST(COALESCE(SUM(CASE WHEN captured_at IS NOT NULL AND currency = $1 THEN amount_cents ELSE 0 END), 0) AS BIGINT),
				COUNT(CASE WHEN failed_at IS NOT NULL AND captured_at IS NULL THEN 1 END)
			  FROM report_payments`, []any{currency}, []any{&s.CapturedCents, &s.PaymentsFailed}},
			{`SELECT COUNT(*) FROM report_reservations WHERE release_reason = $1`,
				[]any{inventoryapi.ReasonExpired}, []any{&s.ReservationsExpired}},
			{`SELECT COUNT(*) FROM report_low_stock`, nil, []any{&s.LowStockAlerts}},
			{`SELECT events_applied FROM report_state WHERE id = 1`, nil, []any{&s.EventsApplied}},
			{`SELECT COUNT(*) FROM dead_letters`, nil, []any{&s.EventsDeadLettered}},
		}
		for _, q := range queries {
			if err := tx.QueryRowContext(ctx, q.sql, q.args...).Scan(q.dest...); err != nil {
				return fmt.Errorf("summing the model: %w", err)
			}
		}
		return nil
	})
	s.NetCents = s.RevenueCents - s.RefundsCents
	return s, err
}

// lowStockAlerts returns the newest alerts first.
func (st store) lowStockAlerts(ctx context.Context, limit int) ([]reportsapi.LowStockAlert, error) {
	rows, err := st.db.QueryContext(ctx, `
		SELECT sku, name, available, threshold, at FROM report_low_stock ORDER BY at DESC, event_id DESC LIMIT $1`, limit)
	if err != nil {
		return nil, fmt.Errorf("reading low-stock alerts: %w", err)
	}
	defer rows.Close()
	out := []reportsapi.LowStockAlert{}
	for rows.Next() {
		var a reportsapi.LowStockAlert
		var ms int64
		if err := rows.Scan(&a.SKU, &a.Name, &a.Available, &a.Threshold, &ms); err != nil {
			return nil, fmt.Errorf("reading low-stock alerts: %w", err)
		}
		a.At = msTime(ms)
		out = append(out, a)
	}
	return out, rows.Err()
}

// rebuildRow is the report_rebuild row.
type rebuildRow struct {
	id, state, owner, err                              string
	applied, total, startedAt, finishedAt, heartbeatAt int64
}

func (st store) rebuild(ctx context.Context) (rebuildRow, error) {
	var r rebuildRow
	err := st.db.QueryRowContext(ctx, `
		SELECT rebuild_id, state, owner, applied, total, started_at, finished_at, heartbeat_at, error
		FROM report_rebuild WHERE id = 1`).
		Scan(&r.id, &r.state, &r.owner, &r.applied, &r.total, &r.startedAt, &r.finishedAt, &r.heartbeatAt, &r.err)
	if err != nil {
		return r, fmt.Errorf("reading the rebuild's state: %w", err)
	}
	return r, nil
}

// claimRebuild makes id the running rebuild, owned by owner, unless
// another one runs with a heartbeat newer than staleBefore.
func (st store) claimRebuild(ctx context.Context, id, owner string, now, staleBefore int64) (bool, error) {
	res, err := st.db.Writer().ExecContext(ctx, `
		UPDATE report_rebuild SET rebuild_id = $1, state = $2, owner = $3, applied = 0, total = 0,
			started_at = $4, finished_at = 0, heartbeat_at = $4, error = ''
		WHERE id = 1 AND (state <> $2 OR heartbeat_at < $5)`,
		id, reportsapi.RebuildRunning, owner, now, staleBefore)
	if err != nil {
		return false, fmt.Errorf("starting a rebuild: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// takeRebuild gives owner the running rebuild when it is owner's own, not
// yet started, or its owner stopped beating (it died): the rebuild is
// then run again from the start.
func (st store) takeRebuild(ctx context.Context, owner string, now, staleBefore int64) (string, error) {
	var id string
	err := st.db.Writer().QueryRowContext(ctx, `
		UPDATE report_rebuild SET owner = $1, heartbeat_at = $2, applied = 0, total = 0
		WHERE id = 1 AND state = $3 AND (owner = $1 OR heartbeat_at < $4)
		RETURNING rebuild_id`,
		owner, now, reportsapi.RebuildRunning, staleBefore).Scan(&id)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("taking the rebuild: %w", err)
	}
	return id, nil
}

// beat records progress; false means owner lost the rebuild to another.
func (st store) beat(ctx context.Context, id, owner string, applied, total, now int64) (bool, error) {
	res, err := st.db.Writer().ExecContext(ctx, `
		UPDATE report_rebuild SET applied = $1, total = $2, heartbeat_at = $3
		WHERE id = 1 AND rebuild_id = $4 AND owner = $5 AND state = $6`,
		applied, total, now, id, owner, reportsapi.RebuildRunning)
	if err != nil {
		return false, fmt.Errorf("recording the rebuild's progress: %w", err)
	}
	n, err := res.RowsAffected()
	return n == 1, err
}

// finishRebuild records the end of a rebuild that owner still holds.
func (st store) finishRebuild(ctx context.Context, id, owner, state, reason string, applied, total, now int64) error {
	_, err := st.db.Writer().ExecContext(ctx, `
		UPDATE report_rebuild SET state = $1, error = $2, applied = $3, total = $4, finished_at = $5, heartbeat_at = $5
		WHERE id = 1 AND rebuild_id = $6 AND owner = $7 AND state = $8`,
		state, reason, applied, total, now, id, owner, reportsapi.RebuildRunning)
	if err != nil {
		return fmt.Errorf("recording the rebuild's end: %w", err)
	}
	return nil
}
