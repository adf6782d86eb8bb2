// Package notifications tells people and systems what happened in the
// shop: it consumes other services' events and sends an email (over SMTP)
// and signed webhooks for each, exactly once per event and channel,
// retrying with backoff until the receiver takes it.
//
// The event handler, inside the inbox transaction, only records the
// deliveries an event asks for; a dispatcher sends them. See
// docs/notifications.md.
package notifications

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/mail"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/platform/database"
	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/internal/platform/validation"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/notifications/notificationsapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
	"github.com/microshop/microshop/services/users/usersapi"
)

// EventTypes are the events notifications consumes, and the ones a
// webhook endpoint may subscribe to.
func EventTypes() []string {
	return []string{
		usersapi.UserRegistered{}.EventType(),
		ordersapi.OrderConfirmed{}.EventType(),
		ordersapi.OrderRejected{}.EventType(),
		ordersapi.OrderCancelled{}.EventType(),
		paymentsapi.PaymentRefunded{}.EventType(),
		inventoryapi.LowStock{}.EventType(),
	}
}

// Limits.
const (
	// MaxEndpoints bounds the webhook endpoints; each event fans out to
	// all that subscribe to it, inside one transaction.
	MaxEndpoints       = 100
	maxDescriptionLen  = 200
	defaultListLimit   = 20
	maxListLimit       = 100
	maxLastErrorLength = 500
)

// Errors the service answers with; http.go maps them to statuses.
var (
	ErrNotFound         = errors.New("not found")
	ErrAlreadyPending   = errors.New("the delivery is pending already; it will be tried")
	ErrErased           = errors.New("the delivery's customer was erased; nothing is left to send")
	ErrTooManyEndpoints = fmt.Errorf("there are %d webhook endpoints already; delete one first", MaxEndpoints)
)

// Config is what the service needs to know besides its stores.
type Config struct {
	// From is the sender of every email.
	From mail.Address
	// AdminEmail receives the stock alerts.
	AdminEmail string
	// MaxTries is how many tries a delivery gets before it is dead.
	MaxTries int
	// RetryBase and RetryMax bound the backoff between tries: before try
	// n+1 the dispatcher waits a random time up to
	// min(RetryMax, RetryBase × 2^(n-1)) (exponential, full jitter).
	RetryBase, RetryMax time.Duration
	// MaxEventAge: older events are recorded and not notified, so a new
	// deployment (or one whose database was lost) does not send the
	// streams' whole history. 0 notifies any event.
	MaxEventAge time.Duration
	// AllowPrivate lets webhooks reach loopback and private addresses.
	AllowPrivate bool
	// AllowReceivers are receivers (address and port) webhooks may reach
	// although the guard would block them.
	AllowReceivers []netip.AddrPort
}

// Service is notifications: its stores, templates and webhook guard.
type Service struct {
	cfg   Config
	store store
	msgs  *messages
	guard guard
	key   signingKey
	log   *slog.Logger
	// contacts finds a customer's address that the customers table
	// lacks; nil finds none.
	contacts Contacts
	// wake tells the dispatcher there may be new work.
	wake chan struct{}
}

// Deps are what the notifications service works with.
type Deps struct {
	DB  *database.DB
	Log *slog.Logger
	// SigningKey is the webhook signing key that endpoint secrets are
	// derived from (32 bytes or more, see loadSigningKey).
	SigningKey []byte
	// Contacts asks users where to write to a customer the customers
	// table does not know yet (nil: it asks nobody).
	Contacts Contacts
}

// New returns the service. It refuses a signing key that the stored
// endpoints were not made with; ctx bounds that check and is not kept.
func New(ctx context.Context, cfg Config, deps Deps) (*Service, error) {
	db, key, log := deps.DB, deps.SigningKey, deps.Log
	if len(key) < 32 {
		return nil, errors.New("the webhook signing key must be 32 bytes or more")
	}
	msgs, err := loadMessages()
	if err != nil {
		return nil, err
	}
	own, err := ownAddresses()
	if err != nil {
		return nil, err
	}
	s := &Service{cfg: cfg, store: store{db}, msgs: msgs, key: key, log: log, contacts: deps.Contacts,
		guard: guard{allowPrivate: cfg.AllowPrivate, allow: cfg.AllowReceivers, own: own, resolver: net.DefaultResolver},
		wake:  make(chan struct{}, 1)}
	if err := checkSigningKey(ctx, s.store, key); err != nil {
		return nil, err
	}
	return s, nil
}

// poke wakes the dispatcher without waiting.
func (s *Service) poke() {
	select {
	case s.wake <- struct{}{}:
	default:
	}
}

// WebhookRequest registers a webhook endpoint; see
// notificationsapi.WebhookRequest.
type WebhookRequest notificationsapi.WebhookRequest

// Valid checks what can be checked without the network; CreateWebhook
// then checks where the URL leads.
func (r *WebhookRequest) Valid() []validation.FieldError {
	var errs []validation.FieldError
	switch {
	case r.URL == "":
		errs = append(errs, validation.FieldError{Field: "url", Reason: "is required"})
	case len(r.URL) > MaxURLLength:
		errs = append(errs, validation.FieldError{Field: "url", Reason: fmt.Sprintf("must be at most %d bytes", MaxURLLength)})
	default:
		if why := checkShape(r.URL); why != "" {
			errs = append(errs, validation.FieldError{Field: "url", Reason: why})
		}
	}
	known := EventTypes()
	if len(r.EventTypes) == 0 {
		errs = append(errs, validation.FieldError{Field: "event_types", Reason: "must name at least one of " + strings.Join(known, ", ")})
	}
	for i, t := range r.EventTypes {
		field := fmt.Sprintf("event_types[%d]", i)
		switch {
		case !slices.Contains(known, t):
			errs = append(errs, validation.FieldError{Field: field, Reason: fmt.Sprintf("%q is not an event notifications sends; use %s", t, strings.Join(known, ", "))})
		case slices.Contains(r.EventTypes[:i], t):
			errs = append(errs, validation.FieldError{Field: field, Reason: fmt.Sprintf("%q is listed twice", t)})
		}
	}
	if why := validation.Text(r.Description, maxDescriptionLen); why != "" {
		errs = append(errs, validation.FieldError{Field: "description", Reason: why})
	}
	return errs
}

// CreateWebhook registers an endpoint after checking where its URL
// leads, and returns it with its secret: the only time the secret is shown.
func (s *Service) CreateWebhook(ctx context.Context, req WebhookRequest) (notificationsapi.Webhook, error) {
	if why := s.guard.checkURL(ctx, req.URL); why != "" {
		return notificationsapi.Webhook{}, validation.Errors{{Field: "url", Reason: why}}
	}
	e := endpoint{ID: ids.New(), URL: req.URL, Description: req.Description, CreatedAt: time.Now().UTC().Truncate(time.Millisecond)}
	// Stored in the order of EventTypes, whatever order they came in.
	for _, t := range EventTypes() {
		if slices.Contains(req.EventTypes, t) {
			e.EventTypes = append(e.EventTypes, t)
		}
	}
	if err := s.store.insertEndpoint(ctx, e, MaxEndpoints); err != nil {
		return notificationsapi.Webhook{}, err
	}
	s.log.InfoContext(ctx, "webhook endpoint registered", "endpoint_id", e.ID, "url", redactURL(e.URL), "event_types", e.EventTypes)
	w := e.public()
	w.Secret = s.key.secret(e.ID)
	return w, nil
}

func (e endpoint) public() notificationsapi.Webhook {
	return notificationsapi.Webhook{ID: e.ID, URL: e.URL, EventTypes: e.EventTypes, Description: e.Description, CreatedAt: e.CreatedAt}
}

// Webhooks lists the endpoints, oldest first, without their secrets.
func (s *Service) Webhooks(ctx context.Context) ([]notificationsapi.Webhook, error) {
	es, err := s.store.endpoints(ctx)
	if err != nil {
		return nil, err
	}
	out := make([]notificationsapi.Webhook, 0, len(es))
	for _, e := range es {
		out = append(out, e.public())
	}
	return out, nil
}

// DeleteWebhook removes an endpoint; its deliveries still waiting become dead.
func (s *Service) DeleteWebhook(ctx context.Context, id string) error {
	if !ids.Valid(id) {
		return ErrNotFound
	}
	if err := s.store.deleteEndpoint(ctx, id); err != nil {
		return err
	}
	s.log.InfoContext(ctx, "webhook endpoint deleted", "endpoint_id", id)
	return nil
}

// Deliveries lists deliveries, newest first, after the id after.
func (s *Service) Deliveries(ctx context.Context, f notificationsapi.DeliveryFilter, after string, limit int) ([]notificationsapi.Delivery, error) {
	return s.store.deliveries(ctx, f, after, limit)
}

// Delivery returns one delivery.
func (s *Service) Delivery(ctx context.Context, id string) (notificationsapi.Delivery, error) {
	if !ids.Valid(id) {
		return notificationsapi.Delivery{}, ErrNotFound
	}
	return s.store.delivery(ctx, id)
}

// Replay puts a sent, failed or dead delivery back to pending for a new
// series of tries, and returns it.
func (s *Service) Replay(ctx context.Context, id string) (notificationsapi.Delivery, error) {
	if !ids.Valid(id) {
		return notificationsapi.Delivery{}, ErrNotFound
	}
	d, err := s.store.replay(ctx, id, time.Now())
	if err != nil {
		return notificationsapi.Delivery{}, err
	}
	s.log.InfoContext(ctx, "delivery replayed", "delivery_id", id)
	s.poke()
	return d, nil
}
