package notifications

import (
	"context"
	"database/sql"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/services/notifications/notificationsapi"
)

// store is the only code that touches notifications' tables.
type store struct{ db *database.DB }

// Delivery statuses and channels, as the contract names them.
const (
	StatusPending = notificationsapi.StatusPending
	StatusFailed  = notificationsapi.StatusFailed
	StatusSent    = notificationsapi.StatusSent
	StatusDead    = notificationsapi.StatusDead
	ChannelEmail  = notificationsapi.ChannelEmail
)

func webhookChannel(endpointID string) string { return "webhook:" + endpointID }

// newDelivery is a delivery as the event handler creates it.
type newDelivery struct {
	ID, EventID, EventType, OrderID string
	UserID                          string // the customer it is about, or ""
	Channel, EndpointID, Recipient  string
	Subject, Body, HTML             string
	CreatedAt                       time.Time
}

// insertDelivery adds d as pending inside tx, the transaction that also
// records the event in the inbox. A delivery for the same event and
// channel already there wins: nothing is added and added is false.
func (s store) insertDelivery(ctx context.Context, tx *sql.Tx, d newDelivery) (added bool, err error) {
	res, err := tx.ExecContext(ctx, `INSERT INTO deliveries (id, event_id, event_type, order_id, channel, endpoint_id,
		recipient, subject, body, html, status, next_attempt_at, created_at, user_id)
		VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $12, $13)
		ON CONFLICT (event_id, channel) DO NOTHING`,
		d.ID, d.EventID, d.EventType, d.OrderID, d.Channel, d.EndpointID, d.Recipient, d.Subject, d.Body, d.HTML,
		StatusPending, d.CreatedAt.UnixMilli(), d.UserID)
	if err != nil {
		return false, fmt.Errorf("storing the %s delivery of event %s: %w", d.Channel, d.EventID, err)
	}
	n, err := res.RowsAffected()
	if err != nil {
		return false, fmt.Errorf("storing the %s delivery of event %s: %w", d.Channel, d.EventID, err)
	}
	return n == 1, nil
}

// outgoing is a claimed delivery, with what the dispatcher needs to send it.
type outgoing struct {
	ID, EventID, EventType string
	Channel, EndpointID    string
	Recipient              string
	Subject, Body, HTML    string
	// Tries counts the tries before this one.
	Tries     int
	CreatedAt time.Time
	// Claim is the lease token; only its holder may record the outcome.
	Claim string
}

// due returns ids of deliveries that are waiting, due and not leased.
func (s store) due(ctx context.Context, now time.Time, limit int) ([]string, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT id FROM deliveries
		WHERE status IN ('pending', 'failed') AND next_attempt_at <= $1 AND lease_until <= $1
		ORDER BY next_attempt_at, id LIMIT $2`, now.UnixMilli(), limit)
	if err != nil {
		return nil, fmt.Errorf("finding due deliveries: %w", err)
	}
	defer rows.Close()
	var out []string
	for rows.Next() {
		var id string
		if err := rows.Scan(&id); err != nil {
			return nil, fmt.Errorf("finding due deliveries: %w", err)
		}
		out = append(out, id)
	}
	return out, rows.Err()
}

// claim leases delivery id to claim until until, if it is still waiting,
// due and unleased. The conditions are checked again by the UPDATE itself,
// so of two replicas that found the same id only one gets a row back: on
// SQLite writes are serial, and on Postgres the second UPDATE re-reads the
// row after the first commits and no longer matches it.
func (s store) claim(ctx context.Context, id, claim string, now, until time.Time) (outgoing, bool, error) {
	o := outgoing{Claim: claim}
	var created int64
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		return tx.QueryRowContext(ctx, `UPDATE deliveries SET lease_owner = $1, lease_until = $2
			WHERE id = $3 AND status IN ('pending', 'failed') AND next_attempt_at <= $4 AND lease_until <= $4
			RETURNING id, event_id, event_type, channel, endpoint_id, recipient, subject, body, html, tries, created_at`,
			claim, until.UnixMilli(), id, now.UnixMilli()).
			Scan(&o.ID, &o.EventID, &o.EventType, &o.Channel, &o.EndpointID, &o.Recipient, &o.Subject, &o.Body, &o.HTML, &o.Tries, &created)
	})
	if errors.Is(err, sql.ErrNoRows) {
		return outgoing{}, false, nil
	}
	if err != nil {
		return outgoing{}, false, fmt.Errorf("claiming delivery %s: %w", id, err)
	}
	o.CreatedAt = time.UnixMilli(created)
	return o, true, nil
}

// outcome is what one try of a delivery came to.
type outcome struct {
	Status    string
	Tries     int
	LastError string
	Next      time.Time // failed: when to try again
	SentAt    time.Time // sent
}

// record stores the outcome of the try that claim leased and releases the
// lease. It reports false when the lease was no longer the caller's (an
// admin replayed the delivery meanwhile), and then changes nothing.
func (s store) record(ctx context.Context, id, claim string, o outcome) (bool, error) {
	var sent int64
	if !o.SentAt.IsZero() {
		sent = o.SentAt.UnixMilli()
	}
	var n int64
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `UPDATE deliveries SET status = $1, tries = $2, last_error = $3,
			next_attempt_at = $4, sent_at = $5, lease_owner = '', lease_until = 0
			WHERE id = $6 AND lease_owner = $7`,
			o.Status, o.Tries, o.LastError, o.Next.UnixMilli(), sent, id, claim)
		if err != nil {
			return err
		}
		n, err = res.RowsAffected()
		return err
	})
	if err != nil {
		return false, fmt.Errorf("recording the outcome of delivery %s: %w", id, err)
	}
	return n == 1, nil
}

const deliveryColumns = `id, event_id, event_type, order_id, channel, recipient, subject, status, tries, last_error,
	next_attempt_at, created_at, sent_at`

type scanner interface{ Scan(dest ...any) error }

func scanDelivery(row scanner) (notificationsapi.Delivery, error) {
	var d notificationsapi.Delivery
	var next, created, sent int64
	err := row.Scan(&d.ID, &d.EventID, &d.EventType, &d.OrderID, &d.Channel, &d.Recipient, &d.Subject, &d.Status,
		&d.Tries, &d.LastError, &next, &created, &sent)
	if errors.Is(err, sql.ErrNoRows) {
		return notificationsapi.Delivery{}, ErrNotFound
	}
	if err != nil {
		return notificationsapi.Delivery{}, fmt.Errorf("reading a delivery: %w", err)
	}
	d.CreatedAt = time.UnixMilli(created).UTC()
	if sent > 0 {
		t := time.UnixMilli(sent).UTC()
		d.SentAt = &t
	}
	if d.Status == StatusPending || d.Status == StatusFailed {
		t := time.UnixMilli(next).UTC()
		d.NextAttemptAt = &t
	}
	return d, nil
}

func (s store) delivery(ctx context.Context, id string) (notificationsapi.Delivery, error) {
	return scanDelivery(s.db.QueryRowContext(ctx, `SELECT `+deliveryColumns+` FROM deliveries WHERE id = $1`, id))
}

// deliveries lists deliveries matching f, newest first, after the id
// after (a page token) when it is set.
func (s store) deliveries(ctx context.Context, f notificationsapi.DeliveryFilter, after string, limit int) ([]notificationsapi.Delivery, error) {
	var where []string
	var args []any
	add := func(cond string, v any) {
		args = append(args, v)
		where = append(where, fmt.Sprintf(cond, len(args)))
	}
	if f.EventType != "" {
		add("event_type = $%d", f.EventType)
	}
	if f.OrderID != "" {
		add("order_id = $%d", f.OrderID)
	}
	if f.Status != "" {
		add("status = $%d", f.Status)
	}
	if after != "" {
		add("id < $%d", after)
	}
	q := `SELECT ` + deliveryColumns + ` FROM deliveries`
	if len(where) > 0 {
		q += ` WHERE ` + strings.Join(where, " AND ")
	}
	args = append(args, limit)
	q += fmt.Sprintf(` ORDER BY id DESC LIMIT $%d`, len(args))
	rows, err := s.db.QueryContext(ctx, q, args...)
	if err != nil {
		return nil, fmt.Errorf("listing deliveries: %w", err)
	}
	defer rows.Close()
	out := []notificationsapi.Delivery{}
	for rows.Next() {
		d, err := scanDelivery(rows)
		if err != nil {
			return nil, err
		}
		out = append(out, d)
	}
	return out, rows.Err()
}

// replay puts a sent, failed or dead delivery back to pending, due now,
// with a fresh series of tries, and returns it as the reset left it. A
// lease still held on it is dropped, so the outcome of a try underway is
// not recorded over the replay.
func (s store) replay(ctx context.Context, id string, now time.Time) (notificationsapi.Delivery, error) {
	var d notificationsapi.Delivery
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		var err error
		d, err = scanDelivery(tx.QueryRowContext(ctx, `UPDATE deliveries SET status = 'pending', tries = 0, next_attempt_at = $1,
			lease_owner = '', lease_until = 0
			WHERE id = $2 AND status IN ('sent', 'failed', 'dead') AND body <> ''
			RETURNING `+deliveryColumns, now.UnixMilli(), id))
		if !errors.Is(err, ErrNotFound) {
			return err
		}
		var status, body string
		err = tx.QueryRowContext(ctx, `SELECT status, body FROM deliveries WHERE id = $1`, id).Scan(&status, &body)
		if errors.Is(err, sql.ErrNoRows) {
			return ErrNotFound
		}
		if err != nil {
			return fmt.Errorf("replaying delivery %s: %w", id, err)
		}
		if body == "" {
			return ErrErased // its customer was erased: nothing left to send
		}
		return ErrAlreadyPending
	})
	return d, err
}

// endpoint is a webhook endpoint as stored.
type endpoint struct {
	ID, URL, Description string
	EventTypes           []string
	CreatedAt            time.Time
}

func (s store) insertEndpoint(ctx context.Context, e endpoint, max int) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		var n int
		if err := tx.QueryRowContext(ctx, `SELECT COUNT(*) FROM webhook_endpoints`).Scan(&n); err != nil {
			return fmt.Errorf("counting webhook endpoints: %w", err)
		}
		if n >= max {
			return ErrTooManyEndpoints
		}
		if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_endpoints (id, url, description, created_at) VALUES ($1, $2, $3, $4)`,
			e.ID, e.URL, e.Description, e.CreatedAt.UnixMilli()); err != nil {
			return fmt.Errorf("storing webhook endpoint: %w", err)
		}
		for _, t := range e.EventTypes {
			if _, err := tx.ExecContext(ctx, `INSERT INTO webhook_subscriptions (endpoint_id, event_type) VALUES ($1, $2)`, e.ID, t); err != nil {
				return fmt.Errorf("storing webhook endpoint: %w", err)
			}
		}
		return nil
	})
}

func (s store) endpoints(ctx context.Context) ([]endpoint, error) {
	rows, err := s.db.QueryContext(ctx, `SELECT e.id, e.url, e.description, e.created_at, s.event_type
		FROM webhook_endpoints e JOIN webhook_subscriptions s ON s.endpoint_id = e.id
		ORDER BY e.id, s.event_type`)
	if err != nil {
		return nil, fmt.Errorf("listing webhook endpoints: %w", err)
	}
	defer rows.Close()
	out := []endpoint{}
	for rows.Next() {
		var e endpoint
		var created int64
		var typ string
		if err := rows.Scan(&e.ID, &e.URL, &e.Description, &created, &typ); err != nil {
			return nil, fmt.Errorf("listing webhook endpoints: %w", err)
		}
		if n := len(out); n > 0 && out[n-1].ID == e.ID {
			out[n-1].EventTypes = append(out[n-1].EventTypes, typ)
			continue
		}
		e.CreatedAt = time.UnixMilli(created).UTC()
		e.EventTypes = []string{typ}
		out = append(out, e)
	}
	return out, rows.Err()
}

// subscribers returns the endpoints that receive eventType, inside tx.
func (s store) subscribers(ctx context.Context, tx *sql.Tx, eventType string) ([]endpoint, error) {
	rows, err := tx.QueryContext(ctx, `SELECT e.id, e.url FROM webhook_endpoints e
		JOIN webhook_subscriptions s ON s.endpoint_id = e.id WHERE s.event_type = $1 ORDER BY e.id`, eventType)
	if err != nil {
		return nil, fmt.Errorf("finding the webhook endpoints of %s: %w", eventType, err)
	}
	defer rows.Close()
	var out []endpoint
	for rows.Next() {
		var e endpoint
		if err := rows.Scan(&e.ID, &e.URL); err != nil {
			return nil, fmt.Errorf("finding the webhook endpoints of %s: %w", eventType, err)
		}
		out = append(out, e)
	}
	return out, rows.Err()
}

// deleteEndpoint removes an endpoint and ends its waiting deliveries: they
// become dead, since nobody wants them any more.
func (s store) deleteEndpoint(ctx context.Context, id string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		res, err := tx.ExecContext(ctx, `DELETE FROM webhook_endpoints WHERE id = $1`, id)
		if err != nil {
			return fmt.Errorf("deleting webhook endpoint %s: %w", id, err)
		}
		if n, err := res.RowsAffected(); err != nil {
			return fmt.Errorf("deleting webhook endpoint %s: %w", id, err)
		} else if n == 0 {
			return ErrNotFound
		}
		// SQLite enforces the cascade only with foreign keys on; say it.
		if _, err := tx.ExecContext(ctx, `DELETE FROM webhook_subscriptions WHERE endpoint_id = $1`, id); err != nil {
			return fmt.Errorf("deleting webhook endpoint %s: %w", id, err)
		}
		_, err = tx.ExecContext(ctx, `UPDATE deliveries SET status = 'dead', last_error = 'the webhook endpoint was deleted',
			lease_owner = '', lease_until = 0
			WHERE endpoint_id = $1 AND status IN ('pending', 'failed')`, id)
		if err != nil {
			return fmt.Errorf("ending the deliveries of webhook endpoint %s: %w", id, err)
		}
		return nil
	})
}

// countEndpoints counts the webhook endpoints.
func (s store) countEndpoints(ctx context.Context) (int, error) {
	var n int
	if err := s.db.QueryRowContext(ctx, `SELECT COUNT(*) FROM webhook_endpoints`).Scan(&n); err != nil {
		return 0, fmt.Errorf("counting webhook endpoints: %w", err)
	}
	return n, nil
}

// setting returns a stored setting, or "" when it has none.
func (s store) setting(ctx context.Context, name string) (string, error) {
	var v string
	err := s.db.QueryRowContext(ctx, `SELECT value FROM settings WHERE name = $1`, name).Scan(&v)
	if errors.Is(err, sql.ErrNoRows) {
		return "", nil
	}
	if err != nil {
		return "", fmt.Errorf("reading setting %s: %w", name, err)
	}
	return v, nil
}

// initSetting stores value unless the setting has one, and returns the
// value that holds, so replicas starting together agree on the first.
func (s store) initSetting(ctx context.Context, name, value string) (string, error) {
	err := s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO settings (name, value) VALUES ($1, $2) ON CONFLICT (name) DO NOTHING`, name, value)
		return err
	})
	if err != nil {
		return "", fmt.Errorf("storing setting %s: %w", name, err)
	}
	return s.setting(ctx, name)
}

func (s store) setSetting(ctx context.Context, name, value string) error {
	return s.db.InTx(ctx, func(tx *sql.Tx) error {
		_, err := tx.ExecContext(ctx, `INSERT INTO settings (name, value) VALUES ($1, $2)
			ON CONFLICT (name) DO UPDATE SET value = excluded.value`, name, value)
		if err != nil {
			return fmt.Errorf("storing setting %s: %w", name, err)
		}
		return nil
	})
}
