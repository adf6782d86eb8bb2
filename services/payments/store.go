package payments

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"time"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// store is the only code that touches payments' tables.
type store struct{ db *database.DB }

// querier is what both *sql.DB and *sql.Tx offer.
type querier interface {
	QueryContext(ctx context.Context, query string, args ...any) (*sql.Rows, error)
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// payment is a payment as stored. Its card is only a brand and last four
// digits.
type payment struct {
	id, orderID, status    string
	amount                 int64
	currency, brand, last4 string
	captured, refunded     int64
	declineReason          string
	createdAt, updatedAt   time.Time
}

func (p payment) public() paymentsapi.Payment {
	return paymentsapi.Payment{ID: p.id, OrderID: p.orderID, Status: p.status, AmountCents: p.amount,
		Currency: p.currency, Brand: p.brand, Last4: p.last4, CapturedCents: p.captured,
		RefundedCents: p.refunded, DeclineReason: p.declineReason,
		CreatedAt: p.createdAt.UTC(), UpdatedAt: p.updatedAt.UTC()}
}

const paymentColumns = `id, order_id, status, amount_cents, currency, brand, last4, captured_cents, refunded_cents, decline_reason, created_at, updated_at`

type scanner interface{ Scan(dest ...any) error }

func scanPayment(row scanner) (payment, error) {
	var p payment
	var created, updated int64
	err := row.Scan(&p.id, &p.orderID, &p.status, &p.amount, &p.currency, &p.brand, &p.last4,
		&p.captured, &p.refunded, &p.declineReason, &created, &updated)
	if errors.Is(err, sql.ErrNoRows) {
		return payment{}, paymentsapi.ErrNotFound
	}
	if err != nil {
		return payment{}, fmt.Errorf("reading a payment: %w", err)
	}
	p.createdAt, p.updatedAt = time.UnixMilli(created), time.UnixMilli(updated)
	return p, nil
}

func scanPayments(rows *sql.Rows, err error) ([]payment, error) {
	if err != nil {
		return nil, fmt.Errorf("listing payments: %w", err)
	}
	defer rows.Close()
	var out []payment
	for rows.Next() {
		p, err := scanPayment(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, p)
	}
	if err := rows.Err(); err != nil {
		return nil, fmt.Errorf("listing payments: %w", err)
	}
	return out, nil
}

func (s store) insertPayment(ctx context.Context, tx *sql.Tx, p payment) error {
	_, err := tx.ExecContext(ctx, `INSERT INTO payments (`+paymentColumns+`) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12)`,
		p.id, p.orderID, p.status, p.amount, p.currency, p.brand, p.last4, p.captured, p.refunded, p.declineReason,
		p.createdAt.UnixMilli(), p.updatedAt.UnixMilli())
	if err != nil {
		return fmt.Errorf("storing payment %s: %w", p.id, err)
	}
	return nil
}

func (s store) payment(ctx context.Context, q querier, id string) (payment, error) {
	return scanPayment(q.QueryRowContext(ctx, `SELECT `+paymentColumns+` FROM payments WHERE id = $1`, id))
}

// maxPerOrder bounds the payments listed for one order.
const maxPerOrder = 200

// byOrder lists an order's payments, oldest first.
func (s store) byOrder(ctx context.Context, q querier, orderID string) ([]payment, error) {
	return scanPayments(q.QueryContext(ctx,
		`SELECT `+paymentColumns+` FROM payments WHERE order_id = $1 ORDER BY id LIMIT $2`, orderID, maxPerOrder))
}

// list returns up to limit payments older than before (all when ""),
// newest first, of one order when orderID is not "".
func (s store) list(ctx context.Context, orderID, before string, limit int) ([]payment, error) {
	return scanPayments(s.db.QueryContext(ctx,
		`SELECT `+paymentColumns+` FROM payments
		 WHERE ($1 = '' OR order_id = $1) AND ($2 = '' OR id < $2)
		 ORDER BY id DESC LIMIT $3`, orderID, before, limit))
}

// lockOrder takes the order's row lock for the rest of tx (authorize and
// void of one order never interleave) and says whether it was voided.
func (s store) lockOrder(ctx context.Context, tx *sql.Tx, orderID string) (voided bool, err error) {
	var at sql.NullInt64
	err = tx.QueryRowContext(ctx,
		`INSERT INTO payment_orders (order_id) VALUES ($1)
		 ON CONFLICT (order_id) DO UPDATE SET order_id = excluded.order_id
		 RETURNING voided_at`, orderID).Scan(&at)
	if err != nil {
		return false, fmt.Errorf("locking order %s: %w", orderID, err)
	}
	return at.Valid, nil
}

// orderVoided reads the tombstone without locking.
func (s store) orderVoided(ctx context.Context, orderID string) (bool, error) {
	var at sql.NullInt64
	err := s.db.QueryRowContext(ctx, `SELECT voided_at FROM payment_orders WHERE order_id = $1`, orderID).Scan(&at)
	if errors.Is(err, sql.ErrNoRows) {
		return false, nil
	}
	if err != nil {
		return false, fmt.Errorf("reading order %s: %w", orderID, err)
	}
	return at.Valid, nil
}

// tombstone locks the order's row and marks it voided, keeping the first
// void's time.
func (s store) tombstone(ctx context.Context, tx *sql.Tx, orderID string, now time.Time) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO payment_orders (order_id, voided_at) VALUES ($1, $2)
		 ON CONFLICT (order_id) DO UPDATE SET voided_at = COALESCE(payment_orders.voided_at, excluded.voided_at)`,
		orderID, now.UnixMilli())
	if err != nil {
		return fmt.Errorf("voiding order %s: %w", orderID, err)
	}
	return nil
}

// capture marks an authorized payment captured in full. The update returns the payment as it left it, so capturing is one
// statement, not a read and then a write (on Postgres, one round trip
// rather than two). amount, when not negative, must be the authorized
// amount. ok is false when nothing changed: the payment is missing, not
// authorized, or of another amount.
func (s store) capture(ctx context.Context, tx *sql.Tx, id string, amount int64, now time.Time) (p payment, ok bool, err error) {
	p, err = scanPayment(tx.QueryRowContext(ctx,
		`UPDATE payments SET status = 'captured', captured_cents = amount_cents, updated_at = $1
		 WHERE id = $2 AND status = 'authorized' AND (CAST($3 AS BIGINT) < 0 OR amount_cents = CAST($3 AS BIGINT))
		 RETURNING `+paymentColumns, now.UnixMilli(), id, amount))
	if errors.Is(err, paymentsapi.ErrNotFound) {
		return payment{}, false, nil
	}
	if err != nil {
		return payment{}, false, fmt.Errorf("capturing payment %s: %w", id, err)
	}
	return p, true, nil
}

// refund adds amount to a captured payment's refunds unless they would
// pass the captured amount, and returns the new total; ok is false when
// nothing changed.
func (s store) refund(ctx context.Context, tx *sql.Tx, id string, amount int64, now time.Time) (total int64, ok bool, err error) {
	err = tx.QueryRowContext(ctx,
		`UPDATE payments SET refunded_cents = refunded_cents + $1, updated_at = $2
		 WHERE id = $3 AND status = 'captured' AND refunded_cents + $1 <= captured_cents
		 RETURNING refunded_cents`, amount, now.UnixMilli(), id).Scan(&total)
	if errors.Is(err, sql.ErrNoRows) {
		return 0, false, nil
	}
	if err != nil {
		return 0, false, fmt.Errorf("refunding payment %s: %w", id, err)
	}
	return total, true, nil
}

// voidAuthorized voids every authorized payment of an order and returns them.
func (s store) voidAuthorized(ctx context.Context, tx *sql.Tx, orderID string, now time.Time) ([]payment, error) {
	return scanPayments(tx.QueryContext(ctx,
		`UPDATE payments SET status = 'voided', updated_at = $1
		 WHERE order_id = $2 AND status = 'authorized'
		 RETURNING `+paymentColumns, now.UnixMilli(), orderID))
}

func affected(res sql.Result, err error, what string) (bool, error) {
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("%s: %w", what, err)
	}
	return n == 1, nil
}

// post writes one movement of the ledger: a debit of to and a credit of
// from, for amount, in one statement.
func (s store) post(ctx context.Context, tx *sql.Tx, m movement, movementID string, p payment, amount int64, now time.Time) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO ledger_entries (movement_id, side, account, amount_cents, currency, payment_id, kind, created_at)
		 VALUES ($1, 'debit', $2, $3, $4, $5, $6, $7), ($1, 'credit', $8, $9, $4, $5, $6, $7)`,
		movementID, m.to, amount, p.currency, p.id, m.kind, now.UnixMilli(), m.from, -amount)
	if err != nil {
		return fmt.Errorf("posting the %s of payment %s to the ledger: %w", m.kind, p.id, err)
	}
	return nil
}

// ledger sums the entries, of one payment when paymentID is not "".
func (s store) ledger(ctx context.Context, paymentID string) (paymentsapi.Ledger, error) {
	var l paymentsapi.Ledger
	err := s.snapshot(ctx, func(tx *sql.Tx) error {
		rows, err := tx.QueryContext(ctx,
			`SELECT account, currency, CAST(SUM(amount_cents) AS BIGINT) FROM ledger_entries
			 WHERE ($1 = '' OR payment_id = $1)
			 GROUP BY account, currency ORDER BY account, currency`, paymentID)
		if err != nil {
			return err
		}
		defer rows.Close()
		l.Accounts = []paymentsapi.AccountBalance{}
		for rows.Next() {
			var a paymentsapi.AccountBalance
			if err := rows.Scan(&a.Account, &a.Currency, &a.BalanceCents); err != nil {
				return err
			}
			l.Accounts = append(l.Accounts, a)
		}
		if err := rows.Err(); err != nil {
			return err
		}
		var badCurrencies, badMovements int64
		err = tx.QueryRowContext(ctx,
			`SELECT COUNT(*), CAST(COALESCE(SUM(amount_cents), 0) AS BIGINT) FROM ledger_entries
			 WHERE ($1 = '' OR payment_id = $1)`, paymentID).Scan(&l.Entries, &l.TotalCents)
		if err != nil {
			return err
		}
		err = tx.QueryRowContext(ctx,
			`SELECT COUNT(*) FROM (SELECT currency FROM ledger_entries WHERE ($1 = '' OR payment_id = $1)
			 GROUP BY currency HAVING SUM(amount_cents) <> 0) c`, paymentID).Scan(&badCurrencies)
		if err != nil {
			return err
		}
		err = tx.QueryRowContext(ctx,
			`SELECT COUNT(*) FROM (SELECT movement_id FROM ledger_entries WHERE ($1 = '' OR payment_id = $1)
			 GROUP BY movement_id HAVING COUNT(*) <> 2 OR SUM(amount_cents) <> 0) m`, paymentID).Scan(&badMovements)
		if err != nil {
			return err
		}
		l.Balanced = l.TotalCents == 0 && badCurrencies == 0 && badMovements == 0
		return nil
	})
	if err != nil {
		return paymentsapi.Ledger{}, fmt.Errorf("reading the ledger: %w", err)
	}
	return l, nil
}

// snapshot runs fn in a read-only transaction that sees one moment of the
// database (repeatable read on Postgres; a read transaction in WAL mode on
// SQLite), off the writer, so that several queries agree.
func (s store) snapshot(ctx context.Context, fn func(tx *sql.Tx) error) error {
	tx, err := s.db.BeginTx(ctx, &sql.TxOptions{Isolation: sql.LevelRepeatableRead, ReadOnly: true})
	if err != nil {
		return err
	}
	defer func() { _ = tx.Rollback() }()
	return fn(tx)
}

// answer is the stored HTTP answer to a write, replayed for its
// idempotency key.
type answer struct {
	status      int
	contentType string
	body        []byte
}

// errKeyTaken means another request stored an answer for the key first.
var errKeyTaken = errors.New("another request answered this idempotency key first")

// answerFor returns the answer stored for key and the fingerprint of the
// request it answered.
func (s store) answerFor(ctx context.Context, key string) (a answer, fingerprint string, found bool, err error) {
	var body string
	err = s.db.QueryRowContext(ctx,
		`SELECT fingerprint, status, content_type, body FROM idempotency_keys WHERE idem_key = $1`, key).
		Scan(&fingerprint, &a.status, &a.contentType, &body)
	if errors.Is(err, sql.ErrNoRows) {
		return answer{}, "", false, nil
	}
	if err != nil {
		return answer{}, "", false, fmt.Errorf("reading idempotency key: %w", err)
	}
	a.body = []byte(body)
	return a, fingerprint, true, nil
}

func (s store) saveAnswer(ctx context.Context, tx *sql.Tx, key, fingerprint string, a answer, now time.Time) error {
	_, err := tx.ExecContext(ctx,
		`INSERT INTO idempotency_keys (idem_key, fingerprint, status, content_type, body, created_at) VALUES ($1, $2, $3, $4, $5, $6)`,
		key, fingerprint, a.status, a.contentType, string(a.body), now.UnixMilli())
	if database.IsUniqueViolation(err) {
		return errKeyTaken
	}
	if err != nil {
		return fmt.Errorf("storing the answer of idempotency key: %w", err)
	}
	return nil
}

// forgetAnswers deletes answers stored before cutoff.
func (s store) forgetAnswers(ctx context.Context, cutoff time.Time) (int64, error) {
	var n int64
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM idempotency_keys WHERE created_at < $1`, cutoff.UnixMilli())
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return 0, fmt.Errorf("forgetting old idempotency keys: %w", err)
	}
	return n, nil
}
