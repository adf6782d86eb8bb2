package notificationsapi_test

import (
	"context"
	"errors"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/openapi/openapitest"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/notifications"
	"github.com/microshop/microshop/services/notifications/notificationsapi"
	"github.com/microshop/microshop/services/users"
	"github.com/microshop/microshop/services/users/usersapi"
)

// The client against the real notifications service, behind the OpenAPI
// checker, with a real users service for tokens and for the event that
// makes a delivery: a registration.
func TestClient(t *testing.T) {
	ctx := context.Background()
	shop := servicetest.NewShop(t, users.Spec(), servicetest.ShopOptions{})
	shop.JetStream(t, "users", "orders", "payments", "inventory")
	n := shop.Start(t, notifications.Spec(), []string{"--smtp-url", "smtp://127.0.0.1:1", "--webhook-allow-private",
		"--retry-base", "1h", "--retry-max", "1h"}, nil)
	url, _ := openapitest.Proxy(t, notifications.OpenAPI(), n.URL)
	c := notificationsapi.NewClient(url, client.Options{}, nil)
	accounts := usersapi.NewClient(shop.Users.URL, client.Options{}, nil)
	admin := shop.Admin

	t.Run("webhooks", func(t *testing.T) {
		w, err := c.CreateWebhook(ctx, admin, notificationsapi.WebhookRequest{URL: "http://127.0.0.1:1/hook",
			EventTypes: []string{"orders.confirmed"}, Description: "test"})
		if err != nil || w.ID == "" || w.Secret == "" || w.EventTypes[0] != "orders.confirmed" {
			t.Fatalf("create: %+v %v", w, err)
		}
		if _, err := c.CreateWebhook(ctx, admin, notificationsapi.WebhookRequest{URL: "ftp://example.com"}); problem.From(err) == nil || problem.From(err).Status != 422 {
			t.Fatalf("create invalid: %v", err)
		}
		list, err := c.Webhooks(ctx, admin)
		if err != nil || len(list) != 1 || list[0].ID != w.ID || list[0].Secret != "" {
			t.Fatalf("list: %+v %v", list, err)
		}
		if err := c.DeleteWebhook(ctx, admin, w.ID); err != nil {
			t.Fatalf("delete: %v", err)
		}
		if err := c.DeleteWebhook(ctx, admin, w.ID); !errors.Is(err, notificationsapi.ErrNotFound) {
			t.Fatalf("delete again: %v", err)
		}
	})

	t.Run("deliveries", func(t *testing.T) {
		if _, err := accounts.Register(ctx, usersapi.Registration{Email: "ada@example.com", Password: "long enough password", Name: "Ada"}); err != nil {
			t.Fatal(err)
		}
		f := notificationsapi.DeliveryFilter{EventType: "users.registered"}
		var d notificationsapi.Delivery
		for deadline := time.Now().Add(20 * time.Second); d.ID == ""; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("no delivery of the registration within 20s")
			}
			items, next, err := c.Deliveries(ctx, admin, f, 10, "")
			if err != nil || next != "" {
				t.Fatalf("deliveries: %+v %q %v", items, next, err)
			}
			for _, it := range items {
				if it.Recipient == "ada@example.com" {
					d = it
				}
			}
		}
		if d.Channel != notificationsapi.ChannelEmail || d.EventType != "users.registered" {
			t.Fatalf("delivery %+v", d)
		}
		got, err := c.Delivery(ctx, admin, d.ID)
		if err != nil || got.ID != d.ID || got.EventID != d.EventID {
			t.Fatalf("one delivery: %+v %v", got, err)
		}
		if _, err := c.Delivery(ctx, admin, "no-such-delivery"); !errors.Is(err, notificationsapi.ErrNotFound) {
			t.Fatalf("an unknown delivery: %v", err)
		}
		// The SMTP server is not there: the delivery fails and waits an
		// hour for its retry, so it can be replayed.
		for deadline := time.Now().Add(20 * time.Second); got.Status == notificationsapi.StatusPending; time.Sleep(50 * time.Millisecond) {
			if time.Now().After(deadline) {
				t.Fatal("the delivery was never tried")
			}
			if got, err = c.Delivery(ctx, admin, d.ID); err != nil {
				t.Fatal(err)
			}
		}
		replayed, err := c.Replay(ctx, admin, d.ID)
		if err != nil || replayed.Status != notificationsapi.StatusPending || replayed.Tries != 0 {
			t.Fatalf("replay: %+v %v", replayed, err)
		}
		if _, _, err := c.Deliveries(ctx, "", f, 0, ""); problem.From(err) == nil || problem.From(err).Status != 401 {
			t.Fatalf("deliveries without a token: %v", err)
		}
	})
}
