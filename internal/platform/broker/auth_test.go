package broker_test

import (
	"context"
	"encoding/json"
	"errors"
	"log/slog"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/ids"
	"github.com/microshop/microshop/internal/topology"
)

// testBroker is an embedded server with the shop's users (auth) or with
// none (open), and the seeds of the users.
type testBroker struct {
	url   string
	auth  bool
	seeds map[string]string
}

// roles are the real services' roles, from the topology.
func roles() []broker.Role {
	var out []broker.Role
	for _, s := range topology.Services() {
		out = append(out, s.BrokerRole())
	}
	return out
}

func startBroker(t *testing.T, auth bool) *testBroker {
	t.Helper()
	b := &testBroker{auth: auth, seeds: map[string]string{}}
	publics := map[string]string{}
	for _, name := range append(topology.Names(), broker.Monitor) {
		seed, pub, err := broker.NewUserKey()
		if err != nil {
			t.Fatal(err)
		}
		b.seeds[name], publics[name] = seed, pub
	}
	var users []broker.User
	if auth {
		var err error
		if users, err = broker.Users(roles(), publics); err != nil {
			t.Fatal(err)
		}
	}
	emb, err := broker.StartEmbeddedWithUsers(t.TempDir(), "127.0.0.1", 0, users, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(emb.Shutdown)
	b.url = emb.URL()
	return b
}

// client is one connection, with the permission errors the server sent it.
type client struct {
	nc *nats.Conn
	js jetstream.JetStream

	mu      sync.Mutex
	refused []error
}

func (c *client) violations() []error {
	c.mu.Lock()
	defer c.mu.Unlock()
	return append([]error(nil), c.refused...)
}

// as connects as the user name (with the same options the services
// use), or as no one when name is empty. Without users, as a service
// facing an outside NATS without authentication, it gives no seed.
func (b *testBroker) as(t *testing.T, name string) (*client, error) {
	t.Helper()
	cred := broker.Credential{Name: "anonymous"}
	if name != "" {
		cred = broker.Credential{Name: name}
		if b.auth {
			cred.Seed = b.seeds[name]
		}
	}
	opts, err := cred.Options()
	if err != nil {
		t.Fatal(err)
	}
	c := &client{}
	opts = append(opts, nats.Timeout(2*time.Second), nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
		c.mu.Lock()
		c.refused = append(c.refused, err)
		c.mu.Unlock()
	}))
	nc, err := nats.Connect(b.url, opts...)
	if err != nil {
		return nil, err
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatal(err)
	}
	c.nc, c.js = nc, js
	return c, nil
}

func (b *testBroker) mustAs(t *testing.T, name string) *client {
	t.Helper()
	c, err := b.as(t, name)
	if err != nil {
		t.Fatalf("connecting as %s: %v", name, err)
	}
	return c
}

func ctxFor(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// publish publishes an event of typ as c, the way the outbox relay does.
func (c *client) publish(ctx context.Context, typ string) error {
	msg, err := events.NewMsg(events.Event{ID: ids.New(), Type: typ, Version: 1, Time: time.Now().UTC(), Data: json.RawMessage(`{}`)})
	if err != nil {
		return err
	}
	_, err = c.js.PublishMsg(ctx, msg)
	return err
}

func streamMsgs(t *testing.T, c *client, stream string) uint64 {
	t.Helper()
	s, err := c.js.Stream(ctx(t), stream)
	if err != nil {
		t.Fatalf("reading stream %s: %v", stream, err)
	}
	info, err := s.Info(ctx(t))
	if err != nil {
		t.Fatal(err)
	}
	return info.State.Msgs
}

func ctx(t *testing.T) context.Context { return ctxFor(t, 5*time.Second) }

// ensure makes the owner's stream and the durable of consumer on subject,
// each as its own service, as they do at start.
func ensure(t *testing.T, b *testBroker, consumer, subject string) {
	t.Helper()
	owner := events.Owner(subject)
	if _, err := events.EnsureStream(ctx(t), b.mustAs(t, owner).js, owner, 1); err != nil {
		t.Fatalf("%s creating its stream: %v", owner, err)
	}
	_, err := b.mustAs(t, consumer).js.CreateOrUpdateConsumer(ctx(t), events.StreamName(owner), jetstream.ConsumerConfig{
		Durable: events.DurableName(consumer, subject), FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy})
	if err != nil {
		t.Fatalf("%s creating its durable on %s: %v", consumer, subject, err)
	}
}

func TestAnUnauthenticatedClientIsRefused(t *testing.T) {
	for _, auth := range []bool{true, false} {
		b := startBroker(t, auth)
		_, err := b.as(t, "")
		switch {
		case auth && !errors.Is(err, nats.ErrAuthorization):
			t.Errorf("with users: a client without a credential connected (err %v), want an authorization error", err)
		case !auth && err != nil:
			t.Errorf("without users (the check must be able to fail): %v", err)
		}
	}
	// A key the broker does not know is refused too.
	b := startBroker(t, true)
	stranger, _, err := broker.NewUserKey()
	if err != nil {
		t.Fatal(err)
	}
	b.seeds["stranger"] = stranger
	if _, err := b.as(t, "stranger"); !errors.Is(err, nats.ErrAuthorization) {
		t.Errorf("an unknown nkey connected (err %v), want an authorization error", err)
	}
}

func TestAServiceCannotPublishAnothersEvents(t *testing.T) {
	for _, auth := range []bool{true, false} {
		b := startBroker(t, auth)
		ensure(t, b, "notifications", "orders.confirmed")
		inventory := b.mustAs(t, "inventory")
		err := inventory.publish(ctxFor(t, time.Second), "orders.confirmed")
		n := streamMsgs(t, b.mustAs(t, "orders"), "ORDERS")
		if !auth {
			// Without users the same publish goes through: the check can fail.
			if err != nil || n != 1 {
				t.Fatalf("without users: publish err %v, %d events in ORDERS; want it accepted", err, n)
			}
			continue
		}
		if err == nil || n != 0 {
			t.Errorf("inventory published orders.confirmed (err %v, %d events in ORDERS)", err, n)
		}
		if !refusedOn(inventory, "orders.confirmed") {
			t.Errorf("the broker reported no permission violation to inventory: %v", inventory.violations())
		}
		// Nor may it make orders' stream, or a stream over orders' subjects.
		if _, err := inventory.js.CreateStream(ctxFor(t, time.Second), jetstream.StreamConfig{Name: "FORGED", Subjects: []string{"orders.>"}}); err == nil {
			t.Error("inventory created a stream over orders.>")
		}
	}
}

func TestAServiceCannotPullAnothersDurable(t *testing.T) {
	const subject = "orders.confirmed"
	durable := events.DurableName("notifications", subject)
	next := "$JS.API.CONSUMER.MSG.NEXT.ORDERS." + durable
	for _, auth := range []bool{true, false} {
		b := startBroker(t, auth)
		ensure(t, b, "notifications", subject)
		if err := b.mustAs(t, "orders").publish(ctx(t), subject); err != nil {
			t.Fatal(err)
		}
		// inventory reads nothing of orders; reports reads orders'
		// stream, but through its own durables only.
		for _, thief := range []string{"inventory", "reports"} {
			c := b.mustAs(t, thief)
			reply := c.nc.NewRespInbox()
			sub, err := c.nc.SubscribeSync(reply)
			if err != nil {
				t.Fatal(err)
			}
			if err := c.nc.PublishRequest(next, reply, []byte(`{"batch":1,"expires":500000000}`)); err != nil {
				t.Fatal(err)
			}
			msg, err := sub.NextMsg(2 * time.Second)
			got := err == nil && msg.Subject == subject
			if !auth {
				if !got {
					t.Fatalf("without users: %s could not pull from %s (err %v); the check cannot fail", thief, durable, err)
				}
				_ = msg.Ack()
				if err := b.mustAs(t, "orders").publish(ctx(t), subject); err != nil {
					t.Fatal(err)
				}
				continue
			}
			if got {
				t.Errorf("%s pulled %s's event from %s", thief, "notifications", durable)
			}
			if !refusedOn(c, next) {
				t.Errorf("the broker reported no permission violation to %s: %v", thief, c.violations())
			}
			if _, err := c.js.Consumer(ctxFor(t, time.Second), "ORDERS", durable); err == nil {
				t.Errorf("%s read the state of %s", thief, durable)
			}
			if err := c.js.DeleteConsumer(ctxFor(t, time.Second), "ORDERS", durable); err == nil {
				t.Errorf("%s deleted %s", thief, durable)
			}
		}
		if !auth {
			continue
		}
		// The event is still there for notifications.
		cons, err := b.mustAs(t, "notifications").js.Consumer(ctx(t), "ORDERS", durable)
		if err != nil {
			t.Fatal(err)
		}
		batch, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for m := range batch.Messages() {
			n++
			if err := m.DoubleAck(ctx(t)); err != nil {
				t.Errorf("notifications acknowledging: %v", err)
			}
		}
		if n != 1 {
			t.Errorf("notifications got %d events from its durable, want 1", n)
		}
	}
}

// TestEachServiceDoesItsOwnWork runs, as each real service's user, what
// that service does on the broker: make its stream and publish each of
// its events; make each of its durables, pull from it and acknowledge;
// read its durables' state (the lag metric); and replay the streams it
// reads through an ordered consumer (reports' rebuild). The monitor lists
// every stream and consumer, and may do nothing else.
func TestEachServiceDoesItsOwnWork(t *testing.T) {
	b := startBroker(t, true)
	specs := topology.Services()
	for _, s := range specs {
		if len(s.Publishes) == 0 {
			continue
		}
		c := b.mustAs(t, s.Name)
		if _, err := events.EnsureStream(ctx(t), c.js, s.Name, 1); err != nil {
			t.Fatalf("%s making its stream: %v", s.Name, err)
		}
		// Twice, as a restart does: the second is an update.
		if _, err := events.EnsureStream(ctx(t), c.js, s.Name, 1); err != nil {
			t.Fatalf("%s updating its stream: %v", s.Name, err)
		}
		for _, typ := range s.EventTypes() {
			if err := c.publish(ctx(t), typ); err != nil {
				t.Errorf("%s publishing %s: %v", s.Name, typ, err)
			}
		}
	}
	consumed := 0
	for _, s := range specs {
		if len(s.Consumes) == 0 {
			continue
		}
		c := b.mustAs(t, s.Name)
		for _, subject := range s.Consumes {
			stream, durable := events.StreamName(events.Owner(subject)), events.DurableName(s.Name, subject)
			cons, err := c.js.CreateOrUpdateConsumer(ctx(t), stream, jetstream.ConsumerConfig{
				Durable: durable, FilterSubject: subject, AckPolicy: jetstream.AckExplicitPolicy, DeliverPolicy: jetstream.DeliverAllPolicy})
			if err != nil {
				t.Errorf("%s making %s: %v", s.Name, durable, err)
				continue
			}
			batch, err := cons.Fetch(1, jetstream.FetchMaxWait(2*time.Second))
			if err != nil {
				t.Errorf("%s pulling from %s: %v", s.Name, durable, err)
				continue
			}
			n := 0
			for m := range batch.Messages() {
				n++
				if err := m.DoubleAck(ctx(t)); err != nil {
					t.Errorf("%s acknowledging on %s: %v", s.Name, durable, err)
				}
			}
			if n != 1 {
				t.Errorf("%s got %d events of %s from %s, want 1 (%v)", s.Name, n, subject, durable, batch.Error())
			}
			if _, err := cons.Info(ctx(t)); err != nil {
				t.Errorf("%s reading the state of %s: %v", s.Name, durable, err)
			}
			consumed++
		}
		for _, stream := range streamsOf(s.Consumes) {
			oc, err := c.js.OrderedConsumer(ctx(t), stream, jetstream.OrderedConsumerConfig{DeliverPolicy: jetstream.DeliverAllPolicy})
			if err != nil {
				t.Errorf("%s replaying %s: %v", s.Name, stream, err)
				continue
			}
			if _, err := oc.Next(jetstream.FetchMaxWait(2 * time.Second)); err != nil {
				t.Errorf("%s replaying %s: %v", s.Name, stream, err)
			}
		}
		if v := c.violations(); len(v) > 0 {
			t.Errorf("%s was refused: %v", s.Name, v)
		}
	}
	if consumed == 0 {
		t.Fatal("no service consumes anything: the topology is not the one this test knows")
	}

	mon := b.mustAs(t, broker.Monitor)
	streams := 0
	names := mon.js.StreamNames(ctx(t))
	for name := range names.Name() {
		streams++
		s, err := mon.js.Stream(ctx(t), name)
		if err != nil {
			t.Fatalf("monitor reading %s: %v", name, err)
		}
		list := s.ListConsumers(ctx(t))
		for range list.Info() {
		}
		if err := list.Err(); err != nil {
			t.Errorf("monitor listing the consumers of %s: %v", name, err)
		}
	}
	if err := names.Err(); err != nil || streams == 0 {
		t.Errorf("monitor listed %d streams: %v", streams, err)
	}
	if err := mon.publish(ctxFor(t, time.Second), "orders.confirmed"); err == nil {
		t.Error("the monitor published orders.confirmed")
	}
}

func streamsOf(subjects []string) []string {
	var out []string
	for _, s := range subjects {
		if name := events.StreamName(events.Owner(s)); !strings.Contains(strings.Join(out, ","), name) {
			out = append(out, name)
		}
	}
	return out
}

// refusedOn reports whether the broker told c it may not use subject.
func refusedOn(c *client, subject string) bool {
	deadline := time.Now().Add(2 * time.Second)
	for time.Now().Before(deadline) {
		for _, err := range c.violations() {
			if errors.Is(err, nats.ErrPermissionViolation) && strings.Contains(err.Error(), subject) {
				return true
			}
		}
		time.Sleep(20 * time.Millisecond)
	}
	return false
}
