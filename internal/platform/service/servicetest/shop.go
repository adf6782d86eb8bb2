package servicetest

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sync/atomic"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/service"
)

// The accounts every Shop has. The admin is made by users from its
// environment; the customer registers as any customer does.
const (
	AdminEmail    = "admin@example.com"
	AdminPassword = "admin password 123"
	CustomerEmail = "shopper@example.com"
	CustomerName  = "Shopper"
	// Password is the customer's password, and that of every customer
	// NewCustomer registers.
	Password = "long enough password"
)

// Shop is the ground every service's test stands on: an embedded NATS
// server, a real users service with its rate limits off, an admin and a
// customer with their access tokens, and service identity keys. The
// service under test, and any others, start on it with Start.
type Shop struct {
	NATS  string
	Users *Service
	// Admin and Customer are access tokens of the admin and of the
	// customer (CustomerEmail, Password).
	Admin, Customer string

	seeds    map[string]string
	publics  string
	services map[string]*Service
	nth      atomic.Int64 // customers registered by NewCustomer
}

// ShopOptions shape a Shop. The zero value gives only users an identity
// key.
type ShopOptions struct {
	// Keys names the services that get an identity key (users always has
	// one): a service started with Start signs its calls with its key,
	// and a test calls internal routes as any of them with Credentials.
	Keys []string
	// NATS is the URL of a NATS server to use instead of an embedded one.
	NATS string
	// UsersArgs and UsersEnv are users' extra flags and environment.
	UsersArgs []string
	UsersEnv  map[string]string
}

// NewShop starts a Shop for t with users (the users service's Spec: the
// platform cannot import a service, so the test passes it in).
func NewShop(t testing.TB, users service.Spec, o ShopOptions) *Shop {
	t.Helper()
	names := append([]string{users.Name}, o.Keys...)
	seeds, publics, err := auth.GenerateServiceKeys(slices.Compact(slices.Sorted(slices.Values(names))))
	if err != nil {
		t.Fatalf("making service keys: %v", err)
	}
	s := &Shop{NATS: o.NATS, seeds: seeds, publics: publics, services: map[string]*Service{}}
	if s.NATS == "" {
		s.NATS = NATS(t)
	}
	env := map[string]string{
		"MICROSHOP_ADMIN_EMAIL": AdminEmail, "MICROSHOP_ADMIN_PASSWORD": AdminPassword,
		"MICROSHOP_REGISTER_RATE_IP": "0", "MICROSHOP_LOGIN_RATE_IP": "0",
	}
	maps.Copy(env, o.UsersEnv)
	s.Users = s.Start(t, users, o.UsersArgs, env)
	s.Admin = s.Login(t, AdminEmail, AdminPassword)
	Register(t, s.Users.URL, CustomerEmail, Password, CustomerName)
	s.Customer = s.Login(t, CustomerEmail, Password)
	return s
}

// Start runs spec on the shop's NATS with its identity key (if it has
// one) and, before args, a --<peer>-url flag for each peer it needs that
// the shop already runs; args and env come on top.
func (s *Shop) Start(t testing.TB, spec service.Spec, args []string, env map[string]string) *Service {
	t.Helper()
	full := []string{"--nats", s.NATS}
	for _, peer := range spec.Needs() {
		if p := s.services[peer]; p != nil {
			full = append(full, "--"+peer+"-url", p.URL)
		}
	}
	vars := s.Env(spec.Name)
	maps.Copy(vars, env)
	svc := Start(t, spec, append(full, args...), vars)
	s.services[spec.Name] = svc
	return svc
}

// StartAll starts specs with Start, each once the services it needs
// run, with args[name] as its flags, so a test runs a whole system with
// one call.
func (s *Shop) StartAll(t testing.TB, specs []service.Spec, args map[string][]string) {
	t.Helper()
	pending := specs
	for len(pending) > 0 {
		var waiting []service.Spec
		for _, spec := range pending {
			if slices.ContainsFunc(spec.Needs(), func(peer string) bool { return s.services[peer] == nil }) {
				waiting = append(waiting, spec)
				continue
			}
			s.Start(t, spec, args[spec.Name], nil)
		}
		if len(waiting) == len(pending) {
			var names []string
			for _, spec := range waiting {
				names = append(names, fmt.Sprintf("%s (needs %v)", spec.Name, spec.Needs()))
			}
			t.Fatalf("cannot start %v: what they need is not among the services", names)
		}
		pending = waiting
	}
}

// JetStream connects to the shop's NATS and makes the streams of the
// named producers as their services make them, for a test that publishes
// events in their place or reads what a service published.
func (s *Shop) JetStream(t testing.TB, producers ...string) jetstream.JetStream {
	t.Helper()
	nc, err := nats.Connect(s.NATS)
	if err != nil {
		t.Fatalf("connecting to nats: %v", err)
	}
	t.Cleanup(nc.Close)
	js, err := jetstream.New(nc)
	if err != nil {
		t.Fatalf("opening jetstream: %v", err)
	}
	for _, name := range producers {
		if _, err := events.EnsureStream(context.Background(), js, name, 1); err != nil {
			t.Fatalf("making the stream of %s: %v", name, err)
		}
	}
	return js
}

// Events reads the stream of producer from its start until done, given
// every event read so far, says the test has what it waits for, and
// returns them. Each message must be an event envelope whose id is its
// de-duplication id and whose type is its subject.
func (s *Shop) Events(t testing.TB, producer string, done func([]events.Event) bool) []events.Event {
	t.Helper()
	js := s.JetStream(t)
	ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
	defer cancel()
	stream := events.StreamName(producer)
	var cons jetstream.Consumer
	for {
		var err error
		if cons, err = js.OrderedConsumer(ctx, stream, jetstream.OrderedConsumerConfig{}); err == nil {
			break
		}
		if ctx.Err() != nil {
			t.Fatalf("no %s stream: %v", stream, err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	var out []events.Event
	for !done(out) {
		if ctx.Err() != nil {
			t.Fatalf("timed out waiting on the %s stream; read %d events", stream, len(out))
		}
		msg, err := cons.Next(jetstream.FetchMaxWait(time.Second))
		if err != nil {
			continue
		}
		var e events.Event
		if err := json.Unmarshal(msg.Data(), &e); err != nil {
			t.Fatalf("a message on %s is not an event: %v", stream, err)
		}
		if id := msg.Headers().Get(jetstream.MsgIDHeader); id != e.ID || msg.Subject() != e.Type {
			t.Fatalf("message id %q, subject %q for event %+v", id, msg.Subject(), e)
		}
		out = append(out, e)
	}
	return out
}

// Service returns the service name that Start ran last, or nil.
func (s *Shop) Service(name string) *Service { return s.services[name] }

// Env is the environment that gives service name its identity key and
// the public keys of all the shop's services.
func (s *Shop) Env(name string) map[string]string {
	return map[string]string{"MICROSHOP_SERVICE_KEY": s.seeds[name], "MICROSHOP_SERVICE_KEYS": s.publics}
}

// Credentials sign calls as service name, as that service itself would.
func (s *Shop) Credentials(t testing.TB, name string) *auth.Credentials {
	t.Helper()
	if s.seeds[name] == "" {
		t.Fatalf("%s has no service key; name it in ShopOptions.Keys", name)
	}
	return credentials(t, name, s.seeds[name], s.publics)
}

// Token is a credential of service caller for calling callee, to send as
// a bearer token.
func (s *Shop) Token(t testing.TB, caller, callee string) string {
	t.Helper()
	return token(t, s.Credentials(t, caller), callee)
}

// Forged is a credential for callee that claims to be service name but is
// signed with a key no service knows.
func (s *Shop) Forged(t testing.TB, name, callee string) string {
	t.Helper()
	seeds, _, err := auth.GenerateServiceKeys([]string{name})
	if err != nil {
		t.Fatalf("making a stranger's key: %v", err)
	}
	return token(t, credentials(t, name, seeds[name], ""), callee)
}

func credentials(t testing.TB, name, seed, publics string) *auth.Credentials {
	t.Helper()
	keys, err := auth.ParseServiceKeys(name, seed, publics)
	if err != nil {
		t.Fatalf("reading the service keys of %s: %v", name, err)
	}
	return auth.NewCredentials(keys)
}

func token(t testing.TB, c *auth.Credentials, callee string) string {
	t.Helper()
	tok, err := c.Token(callee)
	if err != nil {
		t.Fatalf("signing a service credential: %v", err)
	}
	return tok
}

// Login logs email in at users and returns the access token.
func (s *Shop) Login(t testing.TB, email, password string) string {
	t.Helper()
	return Login(t, s.Users.URL, email, password).AccessToken
}

// NewCustomer registers a customer named name under an email no other
// customer of the shop has, with Password, and returns the access token.
func (s *Shop) NewCustomer(t testing.TB, name string) string {
	t.Helper()
	email := fmt.Sprintf("customer-%d@example.com", s.nth.Add(1))
	Register(t, s.Users.URL, email, Password, name)
	return s.Login(t, email, Password)
}

// Tokens are what users answers to a login.
type Tokens struct {
	AccessToken  string `json:"access_token"`
	RefreshToken string `json:"refresh_token"`
	TokenType    string `json:"token_type"`
	ExpiresIn    int    `json:"expires_in"`
}

// Register registers a customer at url (users, or a gateway in front of
// it), failing t unless it answers 201 Created, and returns the answer.
func Register(t testing.TB, url, email, password, name string) Response {
	t.Helper()
	r := Call(t, "POST", url+"/api/users/register", "", map[string]string{"email": email, "password": password, "name": name})
	if r.Status != http.StatusCreated {
		t.Fatalf("registering %s: %d %s", email, r.Status, r.Body)
	}
	return r
}

// Login logs email in at url (users, or a gateway in front of it),
// failing t unless it answers 200 OK with an access token.
func Login(t testing.TB, url, email, password string) Tokens {
	t.Helper()
	r := Call(t, "POST", url+"/api/users/login", "", map[string]string{"email": email, "password": password})
	if r.Status != http.StatusOK {
		t.Fatalf("logging in %s: %d %s", email, r.Status, r.Body)
	}
	var tok Tokens
	r.JSON(t, &tok)
	if tok.AccessToken == "" {
		t.Fatalf("logging in %s: no access token in %s", email, r.Body)
	}
	return tok
}
