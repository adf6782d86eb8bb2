package orders

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"

	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/users/usersapi"
)

// ErasureConsumer erases what orders keeps about a customer when users
// announces the account erased: the name and street address of every
// order they placed. The orders themselves stay, with their lines,
// amounts, currency, card brand and last four digits, and the shipping
// country: the books (and the tax on them) must still add up, and none
// of these names a person once the account is gone. The customer's id
// stays too; it is opaque, and users keeps it only as a tombstone.
func (s *Service) ErasureConsumer() *events.Consumer {
	typ := usersapi.UserErased{}.EventType()
	return &events.Consumer{
		Name:     events.DurableName("orders", typ),
		Stream:   events.StreamName(events.Owner(typ)),
		Subjects: []string{typ},
		Handle: func(ctx context.Context, tx *sql.Tx, e events.Event) error {
			var b usersapi.UserErased
			if err := e.Decode(&b); err != nil {
				return err
			}
			n, err := s.store.eraseCustomer(ctx, tx, b.UserID)
			if err != nil {
				return err
			}
			s.log.InfoContext(ctx, "customer erased from orders", "user_id", b.UserID, "orders", n)
			return nil
		},
	}
}

// eraseCustomer blanks the address of every order of userID but its
// country, and returns how many orders it changed.
func (s store) eraseCustomer(ctx context.Context, tx *sql.Tx, userID string) (int64, error) {
	rows, err := tx.QueryContext(ctx, `SELECT id, shipping FROM orders WHERE user_id = $1`, userID)
	if err != nil {
		return 0, fmt.Errorf("finding the orders of %s: %w", userID, err)
	}
	type addr struct{ id, ship string }
	var all []addr
	for rows.Next() {
		var a addr
		if err := rows.Scan(&a.id, &a.ship); err != nil {
			rows.Close()
			return 0, fmt.Errorf("finding the orders of %s: %w", userID, err)
		}
		all = append(all, a)
	}
	rows.Close()
	if err := rows.Err(); err != nil {
		return 0, fmt.Errorf("finding the orders of %s: %w", userID, err)
	}
	for _, a := range all {
		var old ordersapi.Address
		_ = json.Unmarshal([]byte(a.ship), &old) // unreadable: erase it all
		erased, err := json.Marshal(ordersapi.Address{Country: old.Country})
		if err != nil {
			return 0, err
		}
		if _, err := tx.ExecContext(ctx, `UPDATE orders SET shipping = $1, email = '' WHERE id = $2`, string(erased), a.id); err != nil {
			return 0, fmt.Errorf("erasing the address of order %s: %w", a.id, err)
		}
	}
	return int64(len(all)), nil
}
