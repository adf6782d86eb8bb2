package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/contractcheck"
	"github.com/microshop/microshop/internal/platform/mtls"
	"github.com/microshop/microshop/internal/topology"
)

// contractServices are the services with a contract `microshop contract`
// checks implementations against: an OpenAPI document in their Spec. The
// gateway has none: it routes the others' APIs.
func contractServices() []string {
	var names []string
	for _, n := range topology.Names() {
		if s, _ := topology.Find(n); s.OpenAPI() != nil {
			names = append(names, n)
		}
	}
	return names
}

const contractUsage = `Usage: microshop contract <service> --url URL [flags]

Checks a running implementation of a service, in any language, against
the service's contract as this binary holds it: its OpenAPI document and,
with --nats, the events of its contract package.

For every documented operation it sends requests the document says are
wrong (missing, mistyped and unknown members, broken bounds, patterns and
enums, bad parameters, no credential, a customer's token on an admin
route, a user's token on an internal one) and expects a documented 4xx
answered as problem+json; and it walks the service's routes as a client
would (list then get, create then change, reserve then commit, ...),
checking every answer against the document. Then it reads the service's
event stream and checks each event's envelope and body.

It writes: it registers customers, creates products, places orders,
authorizes payments. Point it at a test deployment, not production.

  microshop contract users --url http://127.0.0.1:8081 --nats nats://127.0.0.1:4223
  microshop contract inventory --url http://127.0.0.1:8082 \
      --email admin@example.com --users-url http://127.0.0.1:8081 \
      --service-key "$ORDERS_SEED" --as orders --nats nats://127.0.0.1:4223

It prints a table of operation, case and result (pass, fail, skip or
warn, with the reason) and exits non-zero when any case fails. See
docs/contracts.md.

Services: ` + "%s" + ` (the gateway has no document: it routes the others').

Flags:
`

// setFlags collects repeated --set name=value flags.
type setFlags map[string]string

func (s setFlags) String() string { return "" }

func (s setFlags) Set(v string) error {
	name, value, ok := strings.Cut(v, "=")
	if !ok || name == "" {
		return errors.New("want name=value")
	}
	s[name] = value
	return nil
}

func contract(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	service := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		service, args = args[0], args[1:]
	}
	fs := flag.NewFlagSet("microshop contract", flag.ContinueOnError)
	fs.SetOutput(stderr)
	set := setFlags{}
	var (
		target     = fs.String("url", "", "base URL of the implementation to check (required)")
		natsURL    = fs.String("nats", "", "NATS URL: check the events on the service's stream after the calls")
		token      = fs.String("token", "", "an admin's access token, for admin routes")
		email      = fs.String("email", "", "log in as this admin at --users-url instead of --token")
		password   = fs.String("password", "", "the admin's password ($MICROSHOP_ADMIN_PASSWORD when empty)")
		usersURL   = fs.String("users-url", "", "users' base URL: where to log in and register the customers the check needs (users: --url)")
		serviceKey = fs.String("service-key", "", "a service identity key (base64 Ed25519 seed) to sign credentials for /internal/ routes ($MICROSHOP_SERVICE_KEY when empty and --as is given)")
		as         = fs.String("as", "", "the service --service-key belongs to (orders calls inventory's and payments' internal routes)")
		asJSON     = fs.Bool("json", false, "print the report as JSON")
		eventWait  = fs.Duration("event-wait", 10*time.Second, "how long to wait for the events the calls should cause")
		timeout    = fs.Duration("timeout", 15*time.Second, "bound of each request")
		tlsCert    = fs.String("tls-cert", "", "a certificate from the system's CA for services that serve mutual TLS (https:// URLs), e.g. microshop run's <data>/tls/supervisor.pem")
		tlsKey     = fs.String("tls-key", "", "the key of --tls-cert, e.g. <data>/tls/supervisor-key.pem")
		tlsCA      = fs.String("tls-ca", "", "the system's CA certificate, e.g. <data>/tls/ca.pem")
	)
	fs.Var(set, "set", "name=value: a real value for parameters and body members of that name, e.g. --set sku=WIDGET-1 (repeatable)")
	fs.Usage = func() {
		fmt.Fprintf(stderr, contractUsage, strings.Join(contractServices(), ", "))
		fs.PrintDefaults()
	}
	if helped, err := parseFlags(fs, args); helped || err != nil {
		return err
	}
	if service == "" && fs.NArg() > 0 {
		service = fs.Arg(0)
		if err := fs.Parse(fs.Args()[1:]); err != nil {
			return errUsage
		}
	}
	if fs.NArg() > 0 {
		fmt.Fprintf(stderr, "microshop contract: unexpected arguments %q\n", fs.Args())
		return errUsage
	}
	if service == "" || *target == "" {
		fs.Usage()
		return errUsage
	}
	spec, _ := topology.Find(service)
	doc := spec.OpenAPI()
	if doc == nil {
		if service == "gateway" {
			return errors.New("the gateway has no OpenAPI document of its own: it routes the other services' APIs; check each service instead")
		}
		return fmt.Errorf("no contract for %q; services: %s", service, strings.Join(contractServices(), ", "))
	}
	if *password == "" {
		*password = getenv("MICROSHOP_ADMIN_PASSWORD")
	}
	if *serviceKey == "" && *as != "" {
		*serviceKey = getenv("MICROSHOP_SERVICE_KEY")
	}
	if *email != "" && *usersURL == "" && service != "users" {
		return errors.New("--email needs --users-url: where to log in")
	}
	cfg := contractcheck.Config{
		Service: service, URL: *target, Doc: doc, Events: spec.Publishes,
		NATS: *natsURL, EventWait: *eventWait,
		Token: *token, Email: *email, Password: *password, UsersURL: *usersURL,
		ServiceKey: *serviceKey, As: *as,
		Set: set, Timeout: *timeout,
	}
	if *tlsCert != "" || *tlsKey != "" || *tlsCA != "" {
		id, err := mtls.Load(mtls.Files{Cert: *tlsCert, Key: *tlsKey, CA: *tlsCA})
		if err != nil {
			return err
		}
		// Each URL must prove to be its own service: --url the one
		// checked, --users-url users.
		peers := peerTransports{}
		for u, name := range map[string]string{*target: service, *usersURL: "users"} {
			if parsed, err := url.Parse(u); err == nil && parsed.Host != "" {
				peers[parsed.Host] = id.Transport(name)
			}
		}
		cfg.Client = &http.Client{Timeout: *timeout, Transport: peers}
	}
	if !*asJSON {
		cfg.Progress = stderr
	}
	rep, err := contractcheck.Run(ctx, cfg)
	if err != nil {
		return err
	}
	if *asJSON {
		err = rep.WriteJSON(stdout)
	} else {
		err = rep.WriteTable(stdout)
	}
	if err != nil {
		return err
	}
	if rep.Failed() {
		return fmt.Errorf("%s breaks its contract: %d of %d cases failed", service, rep.Totals.Fail, len(rep.Results))
	}
	return nil
}

// peerTransports sends each request through the transport of its host,
// which checks that the host is the service it should be.
type peerTransports map[string]http.RoundTripper

func (p peerTransports) RoundTrip(r *http.Request) (*http.Response, error) {
	t, ok := p[r.URL.Host]
	if !ok {
		return nil, fmt.Errorf("%s is neither --url nor --users-url: no service to expect there", r.URL.Host)
	}
	return t.RoundTrip(r)
}
