package notifications

import (
	"context"
	"database/sql"
	"encoding/json"
	"errors"
	"fmt"
	"time"

	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/users/usersapi"
)

// The orders.* events name the customer by id only (version 2), so
// notifications keeps its own table of where to write to each customer:
// learned from users.registered, and for a customer it has not heard of
// (registered before this table, or whose users.registered has not been
// handled yet: the two come through separate consumers) asked of users'
// internal route before the event's transaction. users.erased empties
// the row and the messages about that customer. See docs/privacy.md.

// Contacts finds where to write to a customer: users' internal route
// (usersapi.Internal). A customer users does not know, or has erased, is
// usersapi.ErrNotFound.
type Contacts interface {
	Contact(ctx context.Context, userID string) (usersapi.Contact, error)
}

// customer is a row of the customers table.
type customer struct {
	Email, Name string
	Erased      bool
}

// customerOf returns what notifications knows of userID; ok is false
// when it knows nothing.
func (s store) customerOf(ctx context.Context, q querier, userID string) (c customer, ok bool, err error) {
	var erased sql.NullInt64
	err = q.QueryRowContext(ctx, `SELECT email, name, erased_at FROM customers WHERE user_id = $1`, userID).Scan(&c.Email, &c.Name, &erased)
	if errors.Is(err, sql.ErrNoRows) {
		return customer{}, false, nil
	}
	if err != nil {
		return customer{}, false, fmt.Errorf("reading customer %s: %w", userID, err)
	}
	c.Erased = erased.Valid
	return c, true, nil
}

// learnCustomer stores where to write to userID, unless a row is there
// already: an erased customer's stays erased.
func (s store) learnCustomer(ctx context.Context, ex execer, userID, email, name string) error {
	_, err := ex.ExecContext(ctx, `INSERT INTO customers (user_id, email, name) VALUES ($1, $2, $3) ON CONFLICT (user_id) DO NOTHING`,
		userID, email, name)
	if err != nil {
		return fmt.Errorf("storing customer %s: %w", userID, err)
	}
	return nil
}

// eraseCustomer forgets userID's address and name for good (the row
// stays, empty, as a tombstone), and empties the messages about them:
// recipient (an email address; a webhook's URL is the receiver's, not
// the customer's), subject and bodies. A message still waiting is dead:
// there is nothing left to send. It returns how many messages it
// emptied.
func (s store) eraseCustomer(ctx context.Context, tx *sql.Tx, userID string, now time.Time) (int64, error) {
	var email string
	err := tx.QueryRowContext(ctx, `SELECT email FROM customers WHERE user_id = $1`, userID).Scan(&email)
	if err != nil && !errors.Is(err, sql.ErrNoRows) {
		return 0, fmt.Errorf("reading customer %s: %w", userID, err)
	}
	_, err = tx.ExecContext(ctx, `INSERT INTO customers (user_id, email, name, erased_at) VALUES ($1, '', '', $2)
		ON CONFLICT (user_id) DO UPDATE SET email = '', name = '', erased_at = $2`, userID, now.UnixMilli())
	if err != nil {
		return 0, fmt.Errorf("erasing customer %s: %w", userID, err)
	}
	// Deliveries made before they carried user_id are found by address.
	res, err := tx.ExecContext(ctx, `UPDATE deliveries SET
		recipient = CASE WHEN channel = 'email' THEN '' ELSE recipient END,
		subject = '', body = '', html = '',
		last_error = CASE WHEN status IN ('pending', 'failed') THEN 'the customer was erased' ELSE last_error END,
		status = CASE WHEN status IN ('pending', 'failed') THEN 'dead' ELSE status END,
		lease_owner = '', lease_until = 0, user_id = $1
		WHERE user_id = $1 OR ($2 <> '' AND channel = 'email' AND recipient = $2)`, userID, email)
	if err != nil {
		return 0, fmt.Errorf("erasing the messages of customer %s: %w", userID, err)
	}
	return res.RowsAffected()
}

type execer interface {
	ExecContext(ctx context.Context, query string, args ...any) (sql.Result, error)
}

type querier interface {
	QueryRowContext(ctx context.Context, query string, args ...any) *sql.Row
}

// customerOfEvent is the customer an orders.* event is about, any version.
func customerOfEvent(e events.Event) string {
	switch e.Type {
	case ordersapi.OrderConfirmed{}.EventType(), ordersapi.OrderRejected{}.EventType(), ordersapi.OrderCancelled{}.EventType():
		var b struct {
			UserID string `json:"user_id"`
		}
		if json.Unmarshal(e.Data, &b) == nil {
			return b.UserID
		}
	}
	return ""
}

// prepare makes sure, before an orders.* event's transaction, that the
// customers table knows the event's customer when users does: it asks
// users about a customer the table does not have. A customer users does
// not know (or has erased) stays unknown, and the event makes no email.
// users being away is retried: the redelivery asks again.
func (s *Service) prepare(ctx context.Context, e events.Event) error {
	userID := customerOfEvent(e)
	if userID == "" || s.contacts == nil {
		return nil
	}
	if _, ok, err := s.store.customerOf(ctx, s.store.db, userID); err != nil || ok {
		return err
	}
	c, err := s.contacts.Contact(ctx, userID)
	if errors.Is(err, usersapi.ErrNotFound) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("asking users where to write to customer %s: %w", userID, err)
	}
	return s.store.db.InTx(ctx, func(tx *sql.Tx) error { return s.store.learnCustomer(ctx, tx, userID, c.Email, c.Name) })
}

// ErasureConsumer erases what notifications keeps about a customer when
// users announces the account erased.
func (s *Service) ErasureConsumer() *events.Consumer {
	typ := usersapi.UserErased{}.EventType()
	return &events.Consumer{
		Name:     events.DurableName("notifications", typ),
		Stream:   events.StreamName(events.Owner(typ)),
		Subjects: []string{typ},
		Handle: func(ctx context.Context, tx *sql.Tx, e events.Event) error {
			var b usersapi.UserErased
			if err := e.Decode(&b); err != nil {
				return err
			}
			n, err := s.store.eraseCustomer(ctx, tx, b.UserID, time.Now())
			if err != nil {
				return err
			}
			s.log.InfoContext(ctx, "customer erased from notifications", "user_id", b.UserID, "messages", n)
			return nil
		},
	}
}
