package contractcheck

import (
	"context"
	"fmt"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
)

// refusals sends o the requests that are wrong: first by their
// credential, then by each parameter, then by the body. Every request
// the document itself refuses is checked against the document first, so
// a case is only ever about something the document says.
func (r *run) refusals(ctx context.Context, o *operation) {
	tmpl := r.template(o)
	// Each case is its own intended operation, so it gets its own
	// Idempotency-Key: a key the service has seen would be answered from
	// its store, not judged.
	base := &variants{tmpl, r}

	if o.Secured {
		q := base.next()
		q.cred = credNone
		if r.refusedByDocument(ctx, q) != nil {
			r.call(ctx, "no credential", q, refused(401))
		}
		q = base.next()
		q.cred = credGarbage
		r.call(ctx, "a malformed bearer token", q, refused(401))
		switch {
		case o.Internal:
			q = base.next()
			q.cred = credCustomer
			if has, _ := r.have(credCustomer); !has {
				q.cred = credAdmin
			}
			r.call(ctx, "a user's access token instead of a service credential", q, refused(401, 403))
			q = base.next()
			q.cred = credForged
			r.call(ctx, "a service credential signed by an unknown key", q, refused(401, 403))
		case o.Admin:
			q = base.next()
			q.cred = credCustomer
			r.call(ctx, "a customer's token on an admin route", q, refused(403))
		}
	}

	if has, why := r.have(tmpl.cred); !has {
		r.record(o.Key, "requests the document refuses", Skip, 0, why)
		return
	}

	for _, p := range o.Params {
		schema := paramSchema(p)
		name := p.In + " parameter " + p.Name
		if p.Required && p.In != "path" {
			q := base.next()
			switch p.In {
			case "query":
				q.query.Del(p.Name)
			case "header":
				q.header.Del(p.Name)
			}
			r.refusal(ctx, "missing "+name, q)
		}
		for _, b := range r.gen.paramValues(schema) {
			q := base.next()
			v := b.value.(string)
			switch p.In {
			case "query":
				q.query.Set(p.Name, v)
			case "header":
				q.header.Set(p.Name, v)
			case "path":
				if v == "" {
					continue // an empty path segment is another route
				}
				q.path[p.Name] = v
			}
			r.refusal(ctx, name+" "+b.what, q)
		}
		if p.In == "path" && o.documentedExactly(404) {
			q := base.next()
			q.path[p.Name] = paramString(r.gen.fresh(p.Name, schema))
			r.call(ctx, name+" naming nothing", q, refused(404))
		}
	}

	schema, required, ok := o.jsonBody()
	if !ok {
		return
	}
	body := tmpl.body
	q := base.next()
	q.raw, q.rawSet, q.hasBody = []byte(`{"contract-check": `), true, false
	r.refusal(ctx, "malformed JSON body", q)
	if required {
		q = base.next()
		q.raw, q.rawSet, q.hasBody = []byte{}, true, false
		r.refusal(ctx, "empty body", q)
	}
	if typeOf(flat(schema)) == "object" {
		q = base.next()
		q.raw, q.rawSet, q.hasBody = []byte(`["contract-check"]`), true, false
		r.refusal(ctx, "body not a JSON object", q)
	}
	q = base.next()
	q.ctype = "text/plain"
	if r.refusedByDocument(ctx, q) != nil {
		r.call(ctx, "body sent as text/plain", q, refused(415))
	}
	for _, m := range r.gen.mutations(schema, body) {
		q := base.next()
		q.body = m.apply(q.body)
		r.refusal(ctx, m.what, q)
	}
}

// variants hands out copies of a template, each with a fresh
// Idempotency-Key when the template has one.
type variants struct {
	tmpl *request
	r    *run
}

func (v *variants) next() *request {
	q := v.tmpl.clone()
	for k := range q.header {
		if strings.EqualFold(k, "Idempotency-Key") {
			q.header.Set(k, "contract-check-"+v.r.gen.uniq())
		}
	}
	return q
}

// refusal sends q when the document refuses it, expecting a documented
// 4xx; a request the document accepts is not a wrong one, and is dropped.
func (r *run) refusal(ctx context.Context, name string, q *request) {
	if r.refusedByDocument(ctx, q) == nil {
		return
	}
	r.call(ctx, name, q, refused())
}

// fresh is a valid value that names nothing: made up, never used before.
func (g *generator) fresh(name string, s *openapi3.Schema) any {
	saved := g.real
	g.real = nil
	defer func() { g.real = saved }()
	if s == nil {
		return "contract-check-" + g.uniq()
	}
	// The document's example may name something real (a catalog sku):
	// a fresh value never does.
	c := *s
	c.Example = nil
	return g.value(name, &c)
}

// genericValid checks a valid request made from the document alone, for
// an operation the service's script did not cover.
func (r *run) genericValid(ctx context.Context, o *operation) {
	const name = "a valid request made from the document"
	q := r.template(o)
	if has, why := r.have(q.cred); !has {
		r.record(o.Key, name, Skip, 0, why)
		return
	}
	if len(q.made) > 0 {
		r.record(o.Key, name, Skip, 0, fmt.Sprintf("no real %s known (the calls before found none); give one with --set %s=<value>",
			strings.Join(q.made, ", "), q.made[0]))
		return
	}
	if err := r.refusedByDocument(ctx, q); err != nil {
		r.record(o.Key, name, Skip, 0, "the checker could not make a request the document accepts: "+shortError(err))
		return
	}
	r.call(ctx, name, q, want{lenient: true})
}
