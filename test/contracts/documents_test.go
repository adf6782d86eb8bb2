// Package contracts holds each service to its OpenAPI document in both
// directions: what the document allows the server accepts, and what the
// document forbids the server refuses. A document looser than its server
// (a client built from it gets 422s it could not foresee) or stricter
// (it promises a refusal the server does not make) fails here.
package contracts

import (
	"encoding/json"
	"fmt"
	"net/http"
	"net/url"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"testing"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/service"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/internal/topology"
)

// seed makes every run make the same requests.
const seed = 12

// businessRefusals are operations whose valid requests the server may
// still refuse with a 422 for a reason no schema can state (what the
// request names does not exist, or is not allowed here), by operation:
// the field the refusal must name, and why.
var businessRefusals = map[string]struct{ field, why string }{
	"POST /api/notifications/webhooks": {"url", "the guard admits only addresses that resolve to public IPs, or --webhook-allow's"},
	"DELETE /api/users/me":             {"password", "only the account's own password erases it, and no schema knows it"},
}

// internalCaller is the service whose credential calls a service's
// /internal/ routes: orders, except where another is the only caller.
var internalCaller = map[string]string{"users": "notifications"}

func TestDocumentsAreAsStrictAsTheirServers(t *testing.T) {
	if testing.Short() {
		t.Skip("starts every service")
	}
	shop := startSystem(t)
	for _, spec := range topology.Services() {
		doc := spec.OpenAPI()
		if doc == nil {
			continue
		}
		t.Run(spec.Name, func(t *testing.T) {
			g := newGenerator(seed)
			tally = map[string]int{}
			base := shop.Service(spec.Name).URL
			for _, op := range operations(doc.T) {
				t.Run(op.id(), func(t *testing.T) {
					checkOperation(t, g, shop, spec.Name, base, op)
				})
			}
			t.Logf("%s: %d requests the document allows (%d refused), %d it forbids (%d accepted)", spec.Name,
				tally["allowed"], tally["allowed failed"], tally["forbidden"], tally["forbidden failed"])
		})
	}
}

// Every pattern in the documents reads the same in Go (kin-openapi, this
// test, the contract checker) and in ECMAScript (the linters, and the
// clients generated from the documents): no syntax only one of them has.
func TestPatternsArePortable(t *testing.T) {
	goOnly := regexp.MustCompile(`\\[pP]\{|\(\?P?<|\\x\{|\(\?[imsU]|\\[AzZ]`)
	for _, spec := range topology.Services() {
		doc := spec.OpenAPI()
		if doc == nil {
			continue
		}
		seen := map[*openapi3.Schema]bool{}
		var visitSchema func(where string, s *openapi3.Schema)
		visitSchema = func(where string, s *openapi3.Schema) {
			if s == nil || seen[s] {
				return
			}
			seen[s] = true
			if s.Pattern != "" {
				if goOnly.MatchString(s.Pattern) {
					t.Errorf("%s %s: pattern %q uses syntax ECMAScript does not read the same", spec.Name, where, s.Pattern)
				}
				if _, err := regexp.Compile(regexp.MustCompile(`\\u([0-9A-F]{4})`).ReplaceAllString(s.Pattern, `\x{$1}`)); err != nil {
					t.Errorf("%s %s: pattern %q: %v", spec.Name, where, s.Pattern, err)
				}
			}
			for name, p := range s.Properties {
				visitSchema(where+"."+name, p.Value)
			}
			if s.Items != nil {
				visitSchema(where+"[]", s.Items.Value)
			}
			for _, alts := range [][]*openapi3.SchemaRef{s.AllOf, s.AnyOf, s.OneOf} {
				for _, a := range alts {
					visitSchema(where, a.Value)
				}
			}
		}
		for name, s := range doc.T.Components.Schemas {
			visitSchema(name, s.Value)
		}
		for _, op := range operations(doc.T) {
			for _, p := range op.params {
				visitSchema(op.id()+" "+p.Name, p.Schema.Value)
			}
		}
	}
}

func startSystem(t *testing.T) *servicetest.Shop {
	t.Helper()
	var specs []service.Spec
	var names []string
	usersSpec, ok := topology.Find("users")
	if !ok {
		t.Fatal("topology has no users service")
	}
	for _, spec := range topology.Services() {
		if spec.OpenAPI() != nil && spec.Name != "users" {
			specs = append(specs, spec)
			names = append(names, spec.Name)
		}
	}
	shop := servicetest.NewShop(t, usersSpec, servicetest.ShopOptions{Keys: names,
		UsersArgs: []string{"--login-rate-account", "0"}})
	shop.StartAll(t, specs, map[string][]string{
		"orders": {"--step-timeout", "5s", "--checkout-wait", "5s"},
	})
	return shop
}

// operation is one method on one path, with its path-level and own
// parameters merged.
type operation struct {
	method, path string
	op           *openapi3.Operation
	params       []*openapi3.Parameter
	security     []string // the schemes of its first security requirement
}

func (o operation) id() string { return o.method + " " + o.path }

func operations(doc *openapi3.T) []operation {
	var out []operation
	for _, path := range doc.Paths.InMatchingOrder() {
		item := doc.Paths.Value(path)
		for _, method := range []string{"GET", "POST", "PUT", "PATCH", "DELETE"} {
			op := item.GetOperation(method)
			if op == nil {
				continue
			}
			o := operation{method: method, path: path, op: op}
			byName := map[string]*openapi3.Parameter{}
			for _, ps := range []openapi3.Parameters{item.Parameters, op.Parameters} {
				for _, p := range ps {
					byName[p.Value.In+" "+p.Value.Name] = p.Value
				}
			}
			for _, k := range slices.Sorted(func(yield func(string) bool) {
				for k := range byName {
					if !yield(k) {
						return
					}
				}
			}) {
				o.params = append(o.params, byName[k])
			}
			sec := doc.Security
			if op.Security != nil {
				sec = *op.Security
			}
			if len(sec) > 0 {
				for name := range sec[0] {
					o.security = append(o.security, name)
				}
			}
			out = append(out, o)
		}
	}
	slices.SortFunc(out, func(a, b operation) int { return strings.Compare(a.id(), b.id()) })
	return out
}

// tally counts the requests of one service's subtest and those that
// broke the document (the subtests run one at a time).
var tally map[string]int

// request is one call: parameters by location and name, and a body.
type request struct {
	path, query, header map[string]string
	body                any
	hasBody             bool
	validKey            string // the valid Idempotency-Key, replaced by a fresh one in each request
}

// keys counts the Idempotency-Keys made.
var keys int

func checkOperation(t *testing.T, g *generator, shop *servicetest.Shop, svc, base string, op operation) {
	valid := request{path: map[string]string{}, query: map[string]string{}, header: map[string]string{}}
	values := map[*openapi3.Parameter]any{}
	for _, p := range op.params {
		v, err := g.valid(p.In+" "+p.Name, p.Schema.Value)
		if err != nil {
			t.Fatal(err)
		}
		valid.param(p, scalar(v))
		values[p] = v
	}
	var bodySchema *openapi3.Schema
	if rb := op.op.RequestBody; rb != nil && rb.Value != nil {
		mt := rb.Value.Content.Get("application/json")
		if mt == nil || mt.Schema == nil {
			t.Fatalf("request body without an application/json schema")
		}
		bodySchema = mt.Schema.Value
		v, err := g.valid("body", bodySchema)
		if err != nil {
			t.Fatal(err)
		}
		valid.body, valid.hasBody = v, true
	}
	valid.validKey = valid.header["Idempotency-Key"]
	token := credential(t, shop, svc, op)

	// What the document allows, the server accepts (or refuses for a
	// reason that is no validation: 401, 404, 409...).
	res := send(t, base, op, valid, token)
	tally["allowed"]++
	if res.Status == http.StatusBadRequest || res.Status == http.StatusUnprocessableEntity || res.Status >= 500 {
		if br, ok := businessRefusals[op.id()]; ok && res.Status == http.StatusUnprocessableEntity && names(res, br.field) {
			t.Logf("valid request refused for a reason outside the document (%s): %s", br.why, res.Body)
		} else {
			tally["allowed failed"]++
			t.Errorf("a request the document allows was refused: %d %s\nrequest: %s", res.Status, res.Body, valid)
		}
	}

	// What the document forbids, the server refuses, one constraint at a
	// time, as a problem.
	refuse := func(what string, r request) {
		res := send(t, base, op, r, token)
		tally["forbidden"]++
		ct := res.Header.Get("Content-Type")
		if res.Status < 400 || res.Status > 499 || !strings.HasPrefix(ct, problem.ContentType) {
			tally["forbidden failed"]++
			t.Errorf("%s: the document forbids it, the server answered %d %s %s\nrequest: %s", what, res.Status, ct, res.Body, r)
		}
	}
	for _, p := range op.params {
		s := p.Schema.Value
		if p.Required && p.In != "path" {
			r := valid.clone()
			r.drop(p)
			refuse(fmt.Sprintf("%s %s: missing required", p.In, p.Name), r)
		}
		for _, m := range g.wrong(s, values[p], true) {
			w := scalar(m.value)
			if p.In == "path" && w == "" || p.In == "header" && strings.ContainsAny(w, "\x00\n\r\x7f\x01") {
				continue // not a request one can send
			}
			if p.In == "query" && !p.Required && w == "" {
				continue // an empty optional parameter reads as absent, everywhere in microshop
			}
			r := valid.clone()
			r.param(p, w)
			refuse(fmt.Sprintf("%s %s: %s", p.In, p.Name, m.what), r)
		}
	}
	if bodySchema != nil {
		walk(bodySchema, valid.body, "body", func(path string, s *openapi3.Schema, v any, with func(any, bool) any) {
			for _, m := range g.wrong(s, v, false) {
				r := valid.clone()
				r.body = with(m.value, m.absent)
				refuse(path+": "+m.what, r)
			}
		})
	}
}

// credential is what op's security asks for: the admin's access token
// for a user's token (an admin may do what a customer may), the calling
// service's credential for /internal/ routes, none for public ones.
func credential(t *testing.T, shop *servicetest.Shop, svc string, op operation) string {
	switch {
	case slices.Contains(op.security, "service"):
		caller := "orders"
		if c, ok := internalCaller[svc]; ok {
			caller = c
		}
		return shop.Token(t, caller, svc)
	case slices.Contains(op.security, "bearer"):
		return shop.Admin
	}
	return ""
}

func send(t *testing.T, base string, op operation, r request, token string) servicetest.Response {
	t.Helper()
	// A key names one intended operation: each request gets its own, or
	// the second would be refused as the key's reuse, unless the key
	// itself is the case.
	if k, ok := r.header["Idempotency-Key"]; ok && k == r.validKey {
		keys++
		r = r.clone()
		r.header["Idempotency-Key"] = fmt.Sprintf("contracts-%d-%d", seed, keys)
	}
	path := op.path
	for name, v := range r.path {
		path = strings.ReplaceAll(path, "{"+name+"}", url.PathEscape(v))
	}
	q := url.Values{}
	for name, v := range r.query {
		q.Set(name, v)
	}
	if len(q) > 0 {
		path += "?" + q.Encode()
	}
	var headers []string
	for _, name := range slices.Sorted(func(yield func(string) bool) {
		for k := range r.header {
			if !yield(k) {
				return
			}
		}
	}) {
		headers = append(headers, name, r.header[name])
	}
	var body any
	if r.hasBody {
		b, err := json.Marshal(r.body)
		if err != nil {
			t.Fatal(err)
		}
		body = b
	}
	return servicetest.Call(t, op.method, base+path, token, body, headers...)
}

func (r request) param(p *openapi3.Parameter, v string) {
	switch p.In {
	case "path":
		r.path[p.Name] = v
	case "query":
		r.query[p.Name] = v
	case "header":
		r.header[p.Name] = v
	}
}

func (r *request) drop(p *openapi3.Parameter) {
	switch p.In {
	case "query":
		delete(r.query, p.Name)
	case "header":
		delete(r.header, p.Name)
	}
}

func (r request) clone() request {
	c := r
	c.path, c.query, c.header = clone(r.path), clone(r.query), clone(r.header)
	return c
}

func clone(m map[string]string) map[string]string {
	c := make(map[string]string, len(m))
	for k, v := range m {
		c[k] = v
	}
	return c
}

func (r request) String() string {
	b, _ := json.Marshal(r.body)
	return fmt.Sprintf("path %v query %v header %v body %s", r.path, r.query, r.header, b)
}

// scalar is a parameter's value as it is sent.
func scalar(v any) string {
	switch x := v.(type) {
	case string:
		return x
	case float64:
		return strconv.FormatFloat(x, 'f', -1, 64)
	case nil:
		return ""
	}
	return fmt.Sprint(v)
}

// names says whether a problem's errors name field.
func names(res servicetest.Response, field string) bool {
	var p problem.Problem
	if json.Unmarshal(res.Body, &p) != nil {
		return false
	}
	for _, e := range p.Errors {
		if e.Field == field || strings.HasPrefix(e.Field, field+".") || strings.HasPrefix(e.Field, field+"[") {
			return true
		}
	}
	return false
}
