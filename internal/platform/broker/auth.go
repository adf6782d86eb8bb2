package broker

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"slices"
	"strings"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nkeys"

	"github.com/microshop/microshop/internal/platform/events"
)

// The broker admits only the shop's own clients, each a NATS user known by
// an NKey: an Ed25519 key pair whose public half ("U...") is in the
// server's configuration and whose seed ("SU...") only that client holds.
// The server sends a nonce and the client signs it, so the seed never
// crosses the wire (NATS in a cluster often runs without TLS) and the
// server's configuration holds nothing secret: it can sit in a Helm values
// file or a JSON file beside the store. User names and passwords would
// need both ends to hold the same secret and send it in clear.
//
// Each user may publish only what its role says. A service publishes its
// own subjects (<service>.>) and runs the JetStream API for its own
// stream; it pulls from and acknowledges only its own durable consumers;
// and it receives replies on an inbox prefix of its own, so no service
// reads the replies, or the events, pulled by another.

// User is one client the broker admits.
type User struct {
	// Name is the service or tool, e.g. "orders"; its replies come to
	// InboxPrefix(Name).
	Name string `json:"name"`
	// NKey is the user's public NKey ("U...").
	NKey        string      `json:"nkey"`
	Permissions Permissions `json:"permissions"`
}

// Permissions are the subjects a user may publish to and subscribe to.
type Permissions struct {
	Publish   Subjects `json:"publish"`
	Subscribe Subjects `json:"subscribe"`
}

// Subjects allow some subjects, wildcards included, and deny others; a
// subject both allowed and denied is denied.
type Subjects struct {
	Allow []string `json:"allow,omitempty"`
	Deny  []string `json:"deny,omitempty"`
}

// Role is what a service does on the broker; its permissions follow.
type Role struct {
	Service string
	// Publishes says the service owns a stream, events.StreamName(Service),
	// over the subjects Service.>.
	Publishes bool
	// Consumes are the subjects it reads, each through its own durable
	// consumer, events.DurableName(Service, subject), on the stream of
	// the subject's owner (events.Owner).
	Consumes []string
}

// Monitor is the user of tools that only look: run's report of the
// streams and their consumers' lag.
const Monitor = "monitor"

// InboxPrefix is where the user name receives its replies. A user
// subscribes under its own prefix only, so it cannot read the replies of
// another (a pulled event is a reply).
func InboxPrefix(name string) string { return "_INBOX_" + name }

// jsAPI is the prefix of JetStream's API subjects.
const jsAPI = "$JS.API."

// ServiceUser is the user of the service in r, among all the roles of
// the system, with the public NKey nkey.
//
// It may publish its own subjects and create, update and read its own
// stream. On each stream it consumes from it may create, read, pull from
// and delete consumers, and acknowledge what they deliver, except the
// durable consumers of the other services there: those are denied by
// name. So it can replay a stream it reads through an ephemeral consumer
// (as reports' rebuild does), but never take an event meant for another
// service's durable, nor change or delete that durable.
func ServiceUser(r Role, all []Role, nkey string) User {
	var pub, deny []string
	if r.Publishes {
		stream := events.StreamName(r.Service)
		pub = append(pub, r.Service+".>",
			jsAPI+"STREAM.CREATE."+stream, jsAPI+"STREAM.UPDATE."+stream, jsAPI+"STREAM.INFO."+stream)
	}
	streams := consumedStreams(r)
	for _, stream := range streams {
		pub = append(pub,
			jsAPI+"STREAM.INFO."+stream,
			jsAPI+"CONSUMER.CREATE."+stream+".>",
			jsAPI+"CONSUMER.INFO."+stream+".*",
			jsAPI+"CONSUMER.MSG.NEXT."+stream+".*",
			jsAPI+"CONSUMER.DELETE."+stream+".*",
			"$JS.ACK."+stream+".>")
	}
	for _, other := range all {
		if other.Service == r.Service {
			continue
		}
		for _, subject := range other.Consumes {
			stream := events.StreamName(events.Owner(subject))
			if !slices.Contains(streams, stream) {
				continue // not allowed anyway
			}
			deny = append(deny, consumerSubjects(stream, events.DurableName(other.Service, subject))...)
		}
	}
	return User{Name: r.Service, NKey: nkey, Permissions: Permissions{
		Publish:   Subjects{Allow: dedupe(pub), Deny: deny},
		Subscribe: Subjects{Allow: []string{InboxPrefix(r.Service) + ".>"}},
	}}
}

// Users are the users of a system whose services have roles, with the
// public NKeys in keys, by name: one per service, and the Monitor when
// keys has one. Every service must have a key.
func Users(roles []Role, keys map[string]string) ([]User, error) {
	var out []User
	for _, r := range roles {
		if keys[r.Service] == "" {
			return nil, fmt.Errorf("no nats key for %s", r.Service)
		}
		out = append(out, ServiceUser(r, roles, keys[r.Service]))
	}
	if keys[Monitor] != "" {
		out = append(out, MonitorUser(keys[Monitor]))
	}
	return out, nil
}

// MonitorUser is the user of tools that list streams and consumers and
// read their state, and nothing else: it can neither publish an event
// nor pull one.
func MonitorUser(nkey string) User {
	return User{Name: Monitor, NKey: nkey, Permissions: Permissions{
		Publish: Subjects{Allow: []string{
			jsAPI + "INFO",
			jsAPI + "STREAM.NAMES",
			jsAPI + "STREAM.LIST",
			jsAPI + "STREAM.INFO.*",
			jsAPI + "CONSUMER.NAMES.*",
			jsAPI + "CONSUMER.LIST.*",
			jsAPI + "CONSUMER.INFO.*.*",
		}},
		Subscribe: Subjects{Allow: []string{InboxPrefix(Monitor) + ".>"}},
	}}
}

// consumerSubjects are the API and acknowledgement subjects of one
// consumer.
func consumerSubjects(stream, consumer string) []string {
	return []string{
		jsAPI + "CONSUMER.CREATE." + stream + "." + consumer,
		jsAPI + "CONSUMER.CREATE." + stream + "." + consumer + ".>",
		jsAPI + "CONSUMER.INFO." + stream + "." + consumer,
		jsAPI + "CONSUMER.MSG.NEXT." + stream + "." + consumer,
		jsAPI + "CONSUMER.DELETE." + stream + "." + consumer,
		"$JS.ACK." + stream + "." + consumer + ".>",
	}
}

// consumedStreams are the streams r reads, in the order of its subjects.
func consumedStreams(r Role) []string {
	var out []string
	for _, subject := range r.Consumes {
		if s := events.StreamName(events.Owner(subject)); !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

func dedupe(in []string) []string {
	var out []string
	for _, s := range in {
		if !slices.Contains(out, s) {
			out = append(out, s)
		}
	}
	return out
}

// Credential is what a client connects with: its user name and NKey
// seed. The zero Credential connects without one, to a broker that asks
// for none (an outside NATS without authentication).
type Credential struct {
	Name string
	Seed string
}

// NewUserKey makes a new NKey pair for a user and returns its seed and
// public key.
func NewUserKey() (seed, public string, err error) {
	kp, err := nkeys.CreateUser()
	if err != nil {
		return "", "", fmt.Errorf("making an nkey: %w", err)
	}
	s, err := kp.Seed()
	if err != nil {
		return "", "", fmt.Errorf("making an nkey: %w", err)
	}
	p, err := kp.PublicKey()
	if err != nil {
		return "", "", fmt.Errorf("making an nkey: %w", err)
	}
	return string(s), p, nil
}

// PublicKey is the public NKey of a user seed.
func PublicKey(seed string) (string, error) {
	kp, err := nkeys.FromSeed([]byte(strings.TrimSpace(seed)))
	if err != nil {
		return "", fmt.Errorf("reading the nats seed: %w", err)
	}
	defer kp.Wipe()
	pub, err := kp.PublicKey()
	if err != nil {
		return "", fmt.Errorf("reading the nats seed: %w", err)
	}
	if !nkeys.IsValidPublicUserKey(pub) {
		return "", fmt.Errorf("the nats seed is not a user's (its public key is %.1s..., want U...)", pub)
	}
	return pub, nil
}

// Options are the NATS client options that present c: its name, its
// NKey (signing the server's nonce with the seed) and its inbox prefix.
// The zero Credential gives only a name.
func (c Credential) Options() ([]nats.Option, error) {
	name := c.Name
	if name == "" {
		name = "client"
	}
	opts := []nats.Option{nats.Name("microshop-" + name)}
	if c.Seed == "" {
		return opts, nil
	}
	if c.Name == "" {
		return nil, fmt.Errorf("a nats credential needs the user's name for its inbox")
	}
	pub, err := PublicKey(c.Seed)
	if err != nil {
		return nil, err
	}
	seed := []byte(strings.TrimSpace(c.Seed))
	sign := func(nonce []byte) ([]byte, error) {
		kp, err := nkeys.FromSeed(seed)
		if err != nil {
			return nil, err
		}
		defer kp.Wipe()
		return kp.Sign(nonce)
	}
	return append(opts, nats.Nkey(pub, sign), nats.CustomInboxPrefix(InboxPrefix(c.Name))), nil
}

// ReadUsers reads a JSON list of users, as `microshop run` writes it
// for the broker it starts.
func ReadUsers(path string) ([]User, error) {
	b, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("reading the nats users: %w", err)
	}
	var users []User
	if err := json.Unmarshal(b, &users); err != nil {
		return nil, fmt.Errorf("reading the nats users in %s: %w", path, err)
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("%s lists no nats users", path)
	}
	return users, nil
}

// serverUsers turns users into nats-server's configuration.
func serverUsers(users []User) ([]*server.NkeyUser, error) {
	out := make([]*server.NkeyUser, 0, len(users))
	for _, u := range users {
		if !nkeys.IsValidPublicUserKey(u.NKey) {
			return nil, fmt.Errorf("nats user %s: %q is not a public user nkey", u.Name, u.NKey)
		}
		out = append(out, &server.NkeyUser{Nkey: u.NKey, Permissions: &server.Permissions{
			Publish:   &server.SubjectPermission{Allow: u.Permissions.Publish.Allow, Deny: u.Permissions.Publish.Deny},
			Subscribe: &server.SubjectPermission{Allow: u.Permissions.Subscribe.Allow, Deny: u.Permissions.Subscribe.Deny},
		}})
	}
	return out, nil
}

// ServerConfig is a nats-server configuration file (nats-server -c) that
// admits users only, each with its permissions: the same users as
// StartEmbeddedWithUsers admits, for a broker that runs as its own
// process, such as each node of a cluster. It is JSON, which nats-server
// reads as its configuration format; flags on nats-server's command line
// (address, cluster, store) go beside it.
func ServerConfig(users []User) ([]byte, error) {
	type subjects struct {
		Allow []string `json:"allow,omitempty"`
		Deny  []string `json:"deny,omitempty"`
	}
	type user struct {
		NKey        string `json:"nkey"`
		Permissions struct {
			Publish   subjects `json:"publish"`
			Subscribe subjects `json:"subscribe"`
		} `json:"permissions"`
	}
	if len(users) == 0 {
		return nil, fmt.Errorf("a nats-server configuration needs at least one user")
	}
	var conf struct {
		Authorization struct {
			Users []user `json:"users"`
		} `json:"authorization"`
	}
	for _, u := range users {
		if !nkeys.IsValidPublicUserKey(u.NKey) {
			return nil, fmt.Errorf("nats user %s: %q is not a public user nkey", u.Name, u.NKey)
		}
		// nats-server reads a permission with neither list as no
		// permission at all, which allows everything: say "nothing".
		nothing := func(s Subjects) subjects {
			if len(s.Allow) == 0 && len(s.Deny) == 0 {
				return subjects{Deny: []string{">"}}
			}
			return subjects(s)
		}
		var su user
		su.NKey = u.NKey
		su.Permissions.Publish = nothing(u.Permissions.Publish)
		su.Permissions.Subscribe = nothing(u.Permissions.Subscribe)
		conf.Authorization.Users = append(conf.Authorization.Users, su)
	}
	// Subjects hold ">" and "*": no HTML escapes, which nats-server's
	// parser would keep as they are.
	var b bytes.Buffer
	enc := json.NewEncoder(&b)
	enc.SetEscapeHTML(false)
	enc.SetIndent("", "  ")
	if err := enc.Encode(conf); err != nil {
		return nil, err
	}
	return b.Bytes(), nil
}
