package contractcheck

import (
	"context"
	"encoding/json"
	"go/parser"
	"go/token"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/platform/events"
	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/internal/topology"
	"github.com/microshop/microshop/services/orders"
)

func documents() map[string]*openapi.Document {
	docs := map[string]*openapi.Document{}
	for _, s := range topology.Services() {
		if d := s.OpenAPI(); d != nil {
			docs[s.Name] = d
		}
	}
	return docs
}

// testRun is a run with every credential at hand, that sends nothing.
func testRun(t *testing.T, service string, doc *openapi.Document) *run {
	t.Helper()
	r, err := newRun(Config{Service: service, URL: "http://127.0.0.1:1", Doc: doc})
	if err != nil {
		t.Fatal(err)
	}
	for _, k := range []string{credAdmin, credCustomer, credOther, credService} {
		r.tokens[k] = "token-" + strings.ReplaceAll(k, " ", "-")
	}
	return r
}

// The requests the checker builds as valid are valid by the document, and
// every wrong one it builds is refused by it: the checker says nothing
// the document does not.
func TestGeneratedRequestsFollowTheDocuments(t *testing.T) {
	ctx := context.Background()
	for name, doc := range documents() {
		t.Run(name, func(t *testing.T) {
			r := testRun(t, name, doc)
			for _, o := range r.ops {
				q := r.template(o)
				if err := r.refusedByDocument(ctx, q); err != nil {
					t.Errorf("%s: the template is refused: %v", o.Key, err)
					continue
				}
				if s, _, ok := o.jsonBody(); ok {
					muts := r.gen.mutations(s, q.body)
					if len(muts) == 0 {
						t.Errorf("%s: no wrong body made", o.Key)
					}
					for _, m := range muts {
						w := q.clone()
						w.body = m.apply(w.body)
						if r.refusedByDocument(ctx, w) == nil {
							t.Errorf("%s: %s: the document accepts it", o.Key, m.what)
						}
						if err := r.refusedByDocument(ctx, q); err != nil {
							t.Fatalf("%s: %s changed the template: %v", o.Key, m.what, err)
						}
					}
				}
				for _, p := range o.Params {
					for _, b := range r.gen.paramValues(paramSchema(p)) {
						w := q.clone()
						switch p.In {
						case "query":
							w.query.Set(p.Name, b.value.(string))
						case "header":
							w.header.Set(p.Name, b.value.(string))
						default:
							continue
						}
						if r.refusedByDocument(ctx, w) == nil && b.value.(string) != "" {
							t.Errorf("%s: %s parameter %s %s (%q): the document accepts it", o.Key, p.In, p.Name, b.what, b.value)
						}
					}
				}
				if o.Secured {
					w := q.clone()
					w.cred = credNone
					if r.refusedByDocument(ctx, w) == nil {
						t.Errorf("%s: the document accepts it without a credential", o.Key)
					}
				}
			}
		})
	}
}

// The checker reads the documents' words for who may call a route.
func TestOperationsKnowTheirCallers(t *testing.T) {
	want := map[string][3]bool{ // secured, internal, admin
		"users GET /api/users/me":                               {true, false, false},
		"users POST /api/users/register":                        {false, false, false},
		"inventory GET /api/inventory/products":                 {false, false, false},
		"inventory POST /api/inventory/products":                {true, false, true},
		"inventory POST /internal/reservations":                 {true, true, false},
		"orders POST /api/orders":                               {true, false, false},
		"orders GET /api/orders":                                {true, false, false},
		"payments GET /api/payments/ledger":                     {true, false, true},
		"payments POST /internal/payments/authorize":            {true, true, false},
		"notifications GET /api/notifications/deliveries":       {true, false, true},
		"reports POST /api/reports/rebuild":                     {true, false, true},
		"notifications DELETE /api/notifications/webhooks/{id}": {true, false, true},
	}
	docs := documents()
	for key, w := range want {
		service, op, _ := strings.Cut(key, " ")
		var found *operation
		for _, o := range operations(docs[service].T) {
			if o.Key == op {
				found = o
			}
		}
		if found == nil {
			t.Errorf("%s: not in the document", key)
			continue
		}
		if got := [3]bool{found.Secured, found.Internal, found.Admin}; got != w {
			t.Errorf("%s: secured, internal, admin = %v, want %v", key, got, w)
		}
	}
}

func envelope(id, typ string, version int, data string) []byte {
	return []byte(`{"id":"` + id + `","type":"` + typ + `","version":` + strconv.Itoa(version) +
		`,"time":"2025-01-02T03:04:05Z","data":` + data + `}`)
}

func TestEventEnvelopes(t *testing.T) {
	e := &eventCheck{known: map[string]events.Body{}, cannot: map[string]string{},
		checked: map[string]int{}, problems: map[string][]string{}, unknown: map[string]int{}}
	spec, _ := topology.Find("orders")
	for _, b := range spec.Publishes {
		e.known[b.EventType()] = b
	}
	x := &expectation{typ: "orders.confirmed", match: field("order_id", "o1")}
	e.expects = []*expectation{x}
	good := `{"order_id":"o1","user_id":"u1","lines":[{"sku":"A","quantity":1,"price_cents":100}],` +
		`"total_cents":100,"currency":"USD","payment_id":"p1","confirmed_at":"2025-01-02T03:04:05Z","added_later":true}`
	msgs := []struct {
		subject string
		data    []byte
		msgID   string
	}{
		{"orders.confirmed", envelope("e1", "orders.confirmed", 2, good), "e1"},
		{"orders.confirmed", envelope("e2", "orders.confirmed", 1, good), "e2"},
		{"orders.confirmed", envelope("e3", "orders.confirmed", 2, `{"order_id":"o2","total_cents":"a lot"}`), "e3"},
		{"orders.confirmed", envelope("", "orders.confirmed", 2, good), ""},
		{"orders.rejected", envelope("e5", "orders.confirmed", 2, good), "e5"},
		{"orders.shipped", envelope("e6", "orders.shipped", 1, `{}`), "e6"},
		{"orders.cancelled", []byte(`not json`), "e7"},
		{"orders.confirmed", envelope("e8", "orders.confirmed", 2, good), ""},
	}
	for i, m := range msgs {
		h := nats.Header{}
		if m.msgID != "" {
			h.Set("Nats-Msg-Id", m.msgID)
		}
		e.check(&jetstream.RawStreamMsg{Subject: m.subject, Sequence: uint64(i + 1), Header: h, Data: m.data})
	}
	if !x.seen {
		t.Error("the expected event was not matched")
	}
	if e.checked["orders.confirmed"] != 6 {
		t.Errorf("checked %d orders.confirmed, want 6", e.checked["orders.confirmed"])
	}
	probs := strings.Join(e.problems["orders.confirmed"], "\n")
	for _, want := range []string{"#2: version 1; the contract understands version 2", "#3: data does not decode",
		"#4: no id", "#5: type orders.confirmed published on subject orders.rejected"} {
		if !strings.Contains(probs, want) {
			t.Errorf("problems lack %q:\n%s", want, probs)
		}
	}
	if len(e.problems["orders.confirmed"]) != 4 {
		t.Errorf("%d problems, want 4:\n%s", len(e.problems["orders.confirmed"]), probs)
	}
	if e.unknown["orders.shipped"] != 1 {
		t.Errorf("unknown = %v, want orders.shipped once", e.unknown)
	}
	if !strings.Contains(strings.Join(e.problems["orders.cancelled"], ""), "not a JSON object") {
		t.Errorf("a body that is not JSON passed: %v", e.problems)
	}
	if len(e.msgIDs) != 1 || e.msgIDs[0] != "e8" {
		t.Errorf("events without their id as Nats-Msg-Id = %v, want [e8]", e.msgIDs)
	}
}

// The checker knows services through their documents and contract
// packages only, so it holds a reimplementation to exactly what other
// services may rely on (test/boundary's rule for services, applied here).
func TestImportsOnlyPlatformAndContracts(t *testing.T) {
	const module = "github.com/microshop/microshop/"
	files, err := filepath.Glob("*.go")
	if err != nil {
		t.Fatal(err)
	}
	fset := token.NewFileSet()
	for _, f := range files {
		if strings.HasSuffix(f, "_test.go") {
			continue
		}
		src, err := os.ReadFile(f)
		if err != nil {
			t.Fatal(err)
		}
		ast, err := parser.ParseFile(fset, f, src, parser.ImportsOnly)
		if err != nil {
			t.Fatal(err)
		}
		for _, imp := range ast.Imports {
			p, _ := strconv.Unquote(imp.Path.Value)
			rest, ours := strings.CutPrefix(p, module)
			if !ours {
				continue
			}
			parts := strings.Split(rest, "/")
			contract := len(parts) >= 3 && parts[0] == "services" && parts[2] == parts[1]+"api"
			if !strings.HasPrefix(rest, "internal/platform/") && !contract {
				t.Errorf("%s imports %s: only the platform and services' contract packages", f, p)
			}
		}
	}
}

func TestValuesAreJSON(t *testing.T) {
	r := testRun(t, "orders", orders.OpenAPI())
	q := r.template(r.op("POST /api/orders"))
	b, err := json.Marshal(q.body)
	if err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{`"number":"4242 4242 4242 4242"`, `"quantity":1`, `"exp_month":12`, `"country":"GB"`} {
		if !strings.Contains(string(b), want) {
			t.Errorf("the order body %s lacks %s", b, want)
		}
	}
}
