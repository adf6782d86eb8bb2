package notifications

import (
	"context"
	"database/sql"
	"encoding/json"
	"fmt"
	"net/mail"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
	"github.com/microshop/microshop/services/users/usersapi"
)

// Consumers returns one inbox-guarded durable consumer per event type.
// One each, not one per stream with several filter subjects: NATS servers
// before 2.10 take a single filter subject per consumer. Each durable is
// shared by every replica, so an event reaches one of them.
func (s *Service) Consumers() []*events.Consumer {
	var out []*events.Consumer
	for _, typ := range EventTypes() {
		publisher, _, _ := strings.Cut(typ, ".")
		out = append(out, &events.Consumer{
			Name:     events.DurableName("notifications", typ),
			Stream:   events.StreamName(publisher),
			Subjects: []string{typ},
			Handle:   s.handle,
			Prepare:  s.prepare,
		})
	}
	return append(out, s.ErasureConsumer())
}

// notice is what one event asks for besides its webhooks: an email, when
// it has someone to write to.
type notice struct {
	orderID string
	userID  string // the customer the event is about, if any
	to      string
	mail    *rendered
}

// handle runs inside the inbox transaction: it only records the deliveries
// e asks for, one per channel, as pending rows. Sending happens after the
// commit, in the dispatcher; so a redelivered event finds its inbox row
// and adds nothing, and a delivery row exists exactly when its event was
// handled.
func (s *Service) handle(ctx context.Context, tx *sql.Tx, e events.Event) error {
	now := time.Now()
	if s.cfg.MaxEventAge > 0 && !e.Time.IsZero() && now.Sub(e.Time) > s.cfg.MaxEventAge {
		s.log.InfoContext(ctx, "event too old to notify; skipped", "event_id", e.ID, "type", e.Type,
			"age", now.Sub(e.Time).Round(time.Second).String(), "max_event_age", s.cfg.MaxEventAge.String())
		return nil
	}
	n, err := s.notice(ctx, tx, e)
	if err != nil {
		return err
	}
	added := 0
	if n.mail != nil {
		ok, err := s.store.insertDelivery(ctx, tx, newDelivery{
			ID: ids.New(), EventID: e.ID, EventType: e.Type, OrderID: n.orderID, UserID: n.userID,
			Channel: ChannelEmail, Recipient: n.to,
			Subject: n.mail.Subject, Body: n.mail.Text, HTML: n.mail.HTML, CreatedAt: now,
		})
		if err != nil {
			return err
		}
		if ok {
			added++
		}
	}
	hooks, err := s.store.subscribers(ctx, tx, e.Type)
	if err != nil {
		return err
	}
	if len(hooks) > 0 {
		// The body is the envelope as it came, re-encoded once: every
		// endpoint gets the same bytes, on every try.
		body, err := json.Marshal(e)
		if err != nil {
			return events.Permanent(fmt.Errorf("encoding event %s for webhooks: %w", e.ID, err))
		}
		for _, h := range hooks {
			ok, err := s.store.insertDelivery(ctx, tx, newDelivery{
				ID: ids.New(), EventID: e.ID, EventType: e.Type, OrderID: n.orderID, UserID: n.userID,
				Channel: webhookChannel(h.ID), EndpointID: h.ID, Recipient: h.URL,
				Body: string(body), CreatedAt: now,
			})
			if err != nil {
				return err
			}
			if ok {
				added++
			}
		}
	}
	if added > 0 {
		s.poke() // the dispatcher looks again; it may be just before the commit, so it polls too
	}
	return nil
}

// notice decides the email of an event. A body that does not decode is
// permanent: no redelivery fixes it, and the event goes to dead letters.
// The orders.* events are decoded from version 1 on (DecodeSince): those
// still carry an email, which notifications ignores; the customers table
// is where it writes to, so an erased customer gets no mail.
func (s *Service) notice(ctx context.Context, tx *sql.Tx, e events.Event) (notice, error) {
	switch e.Type {
	case usersapi.UserRegistered{}.EventType():
		var b usersapi.UserRegistered
		if err := e.Decode(&b); err != nil {
			return notice{}, err
		}
		if err := s.store.learnCustomer(ctx, tx, b.UserID, b.Email, b.Name); err != nil {
			return notice{}, err
		}
		c, _, err := s.store.customerOf(ctx, tx, b.UserID)
		if err != nil || c.Erased {
			return notice{userID: b.UserID}, err // erased before the welcome went out
		}
		return s.email(e, "", b.UserID, b.Email, msgWelcome, welcomeData{Name: firstNonEmpty(b.Name, b.Email), Email: b.Email})
	case ordersapi.OrderConfirmed{}.EventType():
		var b ordersapi.OrderConfirmed
		if err := e.DecodeSince(&b, 1); err != nil {
			return notice{}, err
		}
		return s.customerEmail(ctx, tx, e, b.OrderID, b.UserID, msgReceipt, orderData{OrderID: b.OrderID,
			Lines: orderLines(b.Lines, b.Currency), Total: formatMoney(b.TotalCents, b.Currency)})
	case ordersapi.OrderRejected{}.EventType():
		var b ordersapi.OrderRejected
		if err := e.DecodeSince(&b, 1); err != nil {
			return notice{}, err
		}
		return s.customerEmail(ctx, tx, e, b.OrderID, b.UserID, msgRejected, orderData{OrderID: b.OrderID,
			Lines: orderLines(b.Lines, b.Currency), Total: formatMoney(b.TotalCents, b.Currency),
			Reason: b.Reason, Why: rejectionReason(b.Reason)})
	case ordersapi.OrderCancelled{}.EventType():
		// The refund notice goes out on the cancellation, which carries
		// the customer and the whole story. payments.refunded (below)
		// also comes for it; it drives webhooks only, so one
		// cancellation makes one email, whatever order the events come in.
		var b ordersapi.OrderCancelled
		if err := e.DecodeSince(&b, 1); err != nil {
			return notice{}, err
		}
		return s.customerEmail(ctx, tx, e, b.OrderID, b.UserID, msgRefund, orderData{OrderID: b.OrderID,
			Lines: orderLines(b.Lines, b.Currency), Total: formatMoney(b.TotalCents, b.Currency),
			Refunded: formatMoney(b.RefundedCents, b.Currency)})
	case paymentsapi.PaymentRefunded{}.EventType():
		var b paymentsapi.PaymentRefunded
		if err := e.Decode(&b); err != nil {
			return notice{}, err
		}
		return notice{orderID: b.OrderID}, nil
	case inventoryapi.LowStock{}.EventType():
		var b inventoryapi.LowStock
		if err := e.Decode(&b); err != nil {
			return notice{}, err
		}
		return s.email(e, "", "", s.cfg.AdminEmail, msgLowStock, lowStockData{SKU: b.SKU, Name: firstNonEmpty(b.Name, b.SKU),
			Available: b.Available, Threshold: b.Threshold})
	default:
		return notice{}, events.Permanent(fmt.Errorf("notifications does not handle %s events", e.Type))
	}
}

// customerEmail renders the message name for the customer userID, at
// the address the customers table has (prepare filled it in from users
// when it could). A customer it does not know, or erased, gets no email.
func (s *Service) customerEmail(ctx context.Context, tx *sql.Tx, e events.Event, orderID, userID, name string, data any) (notice, error) {
	c, ok, err := s.store.customerOf(ctx, tx, userID)
	if err != nil {
		return notice{}, err
	}
	if !ok || c.Erased {
		s.log.InfoContext(ctx, "no address for the event's customer (unknown to users, or erased); no email",
			"event_id", e.ID, "type", e.Type, "user_id", userID)
		return notice{orderID: orderID, userID: userID}, nil
	}
	return s.email(e, orderID, userID, c.Email, name, data)
}

// email renders the message name for to. An event without a usable
// address gets no email (its webhooks still go).
func (s *Service) email(e events.Event, orderID, userID, to, name string, data any) (notice, error) {
	n := notice{orderID: orderID, userID: userID}
	addr, err := mail.ParseAddress(to)
	if err != nil || addr.Name != "" || addr.Address != to {
		s.log.Warn("event has no usable email address; no email", "event_id", e.ID, "type", e.Type)
		return n, nil
	}
	r, err := s.msgs.render(name, data)
	if err != nil {
		return notice{}, events.Permanent(err)
	}
	n.to, n.mail = to, &r
	return n, nil
}

func firstNonEmpty(a, b string) string {
	if strings.TrimSpace(a) != "" {
		return a
	}
	return b
}
