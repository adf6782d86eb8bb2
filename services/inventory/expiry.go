package inventory

import (
	"context"
	"database/sql"
	"fmt"
	"time"

	"github.com/microshop/microshop/services/inventory/inventoryapi"
)

// The reservation expiry: a held reservation that nobody commits within
// the reservation TTL (orders crashed, or gave up on the order) is
// released by this sweeper, so its stock returns to available and
// inventory.released says why ("expired").

// expiryBatch bounds the reservations one query of the sweeper finds.
const expiryBatch = 100

// sweepInterval is how often the sweeper looks: a fraction of the TTL, so
// a reservation outlives its time by little, but not more than every few
// seconds, nor less often than every 50ms.
func sweepInterval(ttl time.Duration) time.Duration {
	return min(max(ttl/4, 50*time.Millisecond), 5*time.Second)
}

// RunExpiry releases expired reservations until ctx is done. A failed
// sweep is logged and tried again on the next tick: the database may be
// briefly away, and the service keeps answering meanwhile.
func (s *Service) RunExpiry(ctx context.Context) error {
	t := time.NewTicker(sweepInterval(s.cfg.ReservationTTL))
	defer t.Stop()
	for {
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
		n, err := s.ExpireHeld(ctx)
		if err != nil && ctx.Err() == nil {
			s.log.Warn("releasing expired reservations failed; will retry", "err", err)
		}
		if n > 0 {
			s.log.Info("expired reservations released", "count", n)
		}
	}
}

// ExpireHeld releases every held reservation whose time is up and returns
// how many it released.
func (s *Service) ExpireHeld(ctx context.Context) (int, error) {
	released := 0
	for {
		ids, err := s.store.expiredHeld(ctx, s.now(), expiryBatch)
		if err != nil {
			return released, err
		}
		for _, id := range ids {
			ok, err := s.expire(ctx, id)
			if err != nil {
				return released, fmt.Errorf("expiring the reservation of order %s: %w", id, err)
			}
			if ok {
				released++
			}
		}
		if len(ids) < expiryBatch {
			return released, nil
		}
	}
}

// expire releases one reservation if it is still held and past its time:
// a commit or another replica's sweeper may have got there first.
func (s *Service) expire(ctx context.Context, orderID string) (bool, error) {
	var done bool
	err := retry(func() error {
		done = false
		return s.db.InTx(ctx, func(tx *sql.Tx) error {
			r, err := s.store.reservation(ctx, tx, orderID)
			if err != nil {
				return err
			}
			now := s.now()
			if r.Status != inventoryapi.StatusHeld || now.Before(r.ExpiresAt) {
				return nil
			}
			if _, err := s.release(ctx, tx, r, inventoryapi.ReasonExpired, now); err != nil {
				return err
			}
			done = true
			return nil
		})
	})
	return done, err
}
