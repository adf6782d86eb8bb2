// Package notificationsapi is the contract of notifications, what other
// programs may know of it: the shapes of its admin API (webhook endpoints
// and deliveries) and a typed client. Nothing here reaches notifications'
// internals or database.
package notificationsapi

import (
	"errors"
	"time"
)

// Delivery statuses. A delivery is pending until its first try, failed
// while it waits for a retry, then sent, or dead once it has used up its
// tries (or the receiver refused it for good).
const (
	StatusPending = "pending"
	StatusFailed  = "failed"
	StatusSent    = "sent"
	StatusDead    = "dead"
)

// ChannelEmail is the channel of a delivery by email; a webhook
// delivery's channel is "webhook:<endpoint id>".
const ChannelEmail = "email"

// Problem types (the last segment of a problem's type) notifications
// answers with besides the common ones.
const (
	ProblemDeliveryPending = "delivery-pending"
	ProblemTooManyWebhooks = "too-many-webhooks"
)

// Errors the client returns for notifications' refusals.
var (
	ErrNotFound        = errors.New("notifications: not found")
	ErrDeliveryPending = errors.New("notifications: the delivery is pending already")
	ErrTooManyWebhooks = errors.New("notifications: too many webhook endpoints")
)

// WebhookRequest registers a webhook endpoint.
type WebhookRequest struct {
	URL         string   `json:"url"`
	EventTypes  []string `json:"event_types"`
	Description string   `json:"description,omitempty"`
}

// Webhook is a webhook endpoint. Secret is set only in the answer that
// created it.
type Webhook struct {
	ID          string    `json:"id"`
	URL         string    `json:"url"`
	EventTypes  []string  `json:"event_types"`
	Description string    `json:"description,omitempty"`
	Secret      string    `json:"secret,omitempty"`
	CreatedAt   time.Time `json:"created_at"`
}

// Delivery is one notification of one event on one channel.
type Delivery struct {
	ID        string `json:"id"`
	EventID   string `json:"event_id"`
	EventType string `json:"event_type"`
	// OrderID is set when the event is about an order.
	OrderID string `json:"order_id,omitempty"`
	// Channel is ChannelEmail or "webhook:<endpoint id>".
	Channel   string `json:"channel"`
	Recipient string `json:"recipient"`
	Subject   string `json:"subject,omitempty"`
	Status    string `json:"status"`
	// Tries counts the tries of the current series (a replay starts a new one).
	Tries     int        `json:"tries"`
	LastError string     `json:"last_error,omitempty"`
	CreatedAt time.Time  `json:"created_at"`
	SentAt    *time.Time `json:"sent_at,omitempty"`
	// NextAttemptAt is when a pending or failed delivery is tried next.
	NextAttemptAt *time.Time `json:"next_attempt_at,omitempty"`
}

// DeliveryFilter narrows a list of deliveries; empty fields match all.
type DeliveryFilter struct {
	EventType, OrderID, Status string
}
