// Package contractcheck checks a running implementation of a microshop
// service, written in any language, against the service's OpenAPI
// document and event contract.
//
// For every documented operation it sends requests the document says are
// wrong (missing or mistyped members, unknown members, broken bounds and
// patterns, bad parameters, no credential, a customer's token on an admin
// route, a user's token on an internal one) and expects a documented 4xx
// answered as problem+json; and, where it can build a valid request (from
// the schema, the service's own answers and a scripted walk through the
// service's routes), it checks that the answer is one the document allows.
// With a NATS URL it then reads the service's event stream and checks each
// event's envelope and body against the service's contract package.
//
// The package knows services only through their documents and contract
// packages, never their internals, so it checks a reimplementation exactly
// as it checks microshop's own.
package contractcheck

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net/http"
	"net/url"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/openapi"
)

// Config says what to check and with which credentials.
type Config struct {
	// Service is the service's name: users, inventory, orders, payments,
	// notifications or reports.
	Service string
	// URL is the base URL of the running implementation.
	URL string
	// Doc is the service's OpenAPI document, the contract.
	Doc *openapi.Document
	// Events are the events the service publishes, as its contract
	// package declares them (its Spec's Publishes): the other half of the
	// contract. None means it publishes nothing.
	Events []events.Body

	// NATS, when set, is the NATS URL whose JetStream holds the service's
	// stream; its events are checked after the scripted calls.
	NATS string
	// EventWait bounds how long to wait for the events the calls should
	// cause (default 10s).
	EventWait time.Duration

	// Token is an admin's access token. Without it, Email and Password log
	// in at UsersURL.
	Token           string
	Email, Password string
	// UsersURL is where the checker logs in and registers the customers
	// it needs (a customer token for the admin routes' 403 cases, and as
	// the caller of customer routes). For users itself it defaults to URL.
	UsersURL string

	// ServiceKey (a base64 Ed25519 seed) and As (the service it belongs
	// to) sign a service credential for the /internal/ routes.
	ServiceKey string
	As         string

	// Set gives real values by name to path and query parameters and body
	// members the checker cannot make up, e.g. {"sku": "WIDGET-1"} for an
	// order's lines.
	Set map[string]string

	// Timeout bounds each request (default 15s).
	Timeout time.Duration
	// Client sends the requests (default: a plain client with Timeout).
	Client *http.Client
	// Progress, when set, gets one line per phase.
	Progress io.Writer
}

// credential kinds: which Authorization a request carries.
const (
	credNone     = ""
	credAdmin    = "admin"
	credCustomer = "customer"
	credOther    = "other customer"
	credService  = "service"
	credForged   = "forged service credential"
	credGarbage  = "malformed token"
)

// run is one check in progress.
type run struct {
	cfg    Config
	doc    *openapi3.T
	ops    []*operation
	byKey  map[string]*operation
	gen    *generator
	client *http.Client

	results  []Result
	tokens   map[string]string // credential kind -> bearer token
	whyNot   map[string]string // credential kind -> why there is none
	fixtures map[string]string // "<op key>|<param>" or "*|<param>" -> a real value
	positive map[string]bool   // operations that had a valid request checked
	events   *eventCheck
}

// Run checks the implementation at cfg.URL. It returns an error only when
// the check cannot start (no document, a bad URL or key); everything the
// implementation does wrong is a failed result in the report.
func Run(ctx context.Context, cfg Config) (*Report, error) {
	r, err := newRun(cfg)
	if err != nil {
		return nil, err
	}
	cfg = r.cfg
	r.progress("checking %s at %s: %d operations", cfg.Service, cfg.URL, len(r.ops))
	r.checkServedDocument(ctx)
	r.userCredentials(ctx)
	r.events = r.startEvents(ctx)

	r.progress("scripted calls")
	if script := scripts[cfg.Service]; script != nil {
		script(ctx, r)
	}
	r.progress("requests the document refuses")
	for _, o := range r.ops {
		r.refusals(ctx, o)
	}
	r.progress("valid requests built from the document")
	for _, o := range r.ops {
		if !r.positive[o.Key] {
			r.genericValid(ctx, o)
		}
	}
	if r.events != nil {
		r.progress("events")
	}
	r.finishEvents(ctx)

	rep := &Report{Service: cfg.Service, URL: cfg.URL, Results: r.sorted()}
	rep.count()
	return rep, nil
}

// newRun checks cfg and prepares a run: the document's operations and
// the service credentials.
func newRun(cfg Config) (*run, error) {
	if cfg.Doc == nil || cfg.Doc.T == nil {
		return nil, errors.New("no OpenAPI document to check against")
	}
	u, err := url.Parse(cfg.URL)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return nil, fmt.Errorf("--url %q: want the service's base URL, such as http://127.0.0.1:8081", cfg.URL)
	}
	cfg.URL = strings.TrimRight(cfg.URL, "/")
	cfg.UsersURL = strings.TrimRight(cfg.UsersURL, "/")
	if cfg.UsersURL == "" && cfg.Service == "users" {
		cfg.UsersURL = cfg.URL
	}
	if cfg.Timeout <= 0 {
		cfg.Timeout = 15 * time.Second
	}
	if cfg.EventWait <= 0 {
		cfg.EventWait = 10 * time.Second
	}
	client := cfg.Client
	if client == nil {
		client = &http.Client{
			Timeout:       cfg.Timeout,
			CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
		}
	}
	r := &run{
		cfg: cfg, doc: cfg.Doc.T, client: client,
		tokens: map[string]string{}, whyNot: map[string]string{},
		fixtures: map[string]string{}, positive: map[string]bool{},
	}
	r.gen = newGenerator(func(name string) (string, bool) { return r.fixture("*", name) })
	r.ops = operations(r.doc)
	r.byKey = map[string]*operation{}
	for _, o := range r.ops {
		r.byKey[o.Key] = o
	}
	if err := r.serviceCredentials(); err != nil {
		return nil, err
	}
	return r, nil
}

func (r *run) progress(format string, args ...any) {
	if r.cfg.Progress != nil {
		fmt.Fprintf(r.cfg.Progress, format+"\n", args...)
	}
}

// sorted orders the results by the document's operations, then events,
// keeping each operation's cases in the order they ran.
func (r *run) sorted() []Result {
	rank := map[string]int{"GET /openapi.json": -2, "credentials": -1}
	for i, o := range r.ops {
		rank[o.Key] = i
	}
	out := make([]Result, 0, len(r.results))
	groups := map[string][]Result{}
	var order []string
	for _, res := range r.results {
		if _, ok := groups[res.Operation]; !ok {
			order = append(order, res.Operation)
		}
		groups[res.Operation] = append(groups[res.Operation], res)
	}
	pos := func(op string) int {
		if n, ok := rank[op]; ok {
			return n
		}
		return len(r.ops) + 1 // events, after every operation
	}
	for i := 1; i < len(order); i++ { // stable insertion sort: few groups
		for j := i; j > 0 && pos(order[j]) < pos(order[j-1]); j-- {
			order[j], order[j-1] = order[j-1], order[j]
		}
	}
	for _, op := range order {
		out = append(out, groups[op]...)
	}
	return out
}

func (r *run) record(op, name string, o Outcome, status int, detail string) {
	r.results = append(r.results, Result{Operation: op, Case: name, Outcome: o, Status: status, Detail: detail})
}

// op returns the operation key names, or nil when the document lacks it
// (a script step for it is then skipped).
func (r *run) op(key string) *operation { return r.byKey[key] }

// setFixture records a real value of a parameter for one operation (key)
// or for every operation (key "*").
func (r *run) setFixture(key, param, value string) {
	if value != "" {
		r.fixtures[key+"|"+param] = value
	}
}

func (r *run) fixture(key, param string) (string, bool) {
	if v, ok := r.fixtures[key+"|"+param]; ok {
		return v, true
	}
	if v, ok := r.fixtures["*|"+param]; ok {
		return v, true
	}
	v, ok := r.cfg.Set[param]
	return v, ok
}

// serviceCredentials signs the service credential (with --service-key)
// and a forged one (a fresh key that no service knows).
func (r *run) serviceCredentials() error {
	name := r.cfg.As
	if r.cfg.ServiceKey != "" {
		if name == "" {
			return errors.New("--service-key needs --as: the name of the service the key belongs to (orders for the internal routes of inventory and payments)")
		}
		keys, err := auth.ParseServiceKeys(name, r.cfg.ServiceKey, "")
		if err != nil {
			return err
		}
		tok, err := auth.NewCredentials(keys).Token(r.cfg.Service)
		if err != nil {
			return err
		}
		r.tokens[credService] = tok
	} else {
		r.whyNot[credService] = "no service credential: pass --service-key <base64 seed> --as <caller> to check internal routes"
	}
	if name == "" {
		name = "orders"
	}
	seeds, _, err := auth.GenerateServiceKeys([]string{name})
	if err != nil {
		return err
	}
	keys, err := auth.ParseServiceKeys(name, seeds[name], "")
	if err != nil {
		return err
	}
	forged, err := auth.NewCredentials(keys).Token(r.cfg.Service)
	if err != nil {
		return err
	}
	r.tokens[credForged] = forged
	r.tokens[credGarbage] = "not-a-token"
	return nil
}

// credentialFor is the credential a valid request of o carries.
func (r *run) credentialFor(o *operation) string {
	switch {
	case !o.Secured:
		return credNone
	case o.Internal:
		return credService
	case o.Admin:
		return credAdmin
	}
	if _, ok := r.tokens[credCustomer]; ok {
		return credCustomer
	}
	if _, ok := r.tokens[credAdmin]; ok {
		return credAdmin
	}
	return credCustomer
}

// have says whether the credential kind is at hand, and why not.
func (r *run) have(kind string) (bool, string) {
	if kind == credNone {
		return true, ""
	}
	if _, ok := r.tokens[kind]; ok {
		return true, ""
	}
	why := r.whyNot[kind]
	if why == "" {
		why = "no " + kind + " token"
	}
	return false, why
}
