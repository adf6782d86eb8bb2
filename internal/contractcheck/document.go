package contractcheck

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net/http"
	"slices"
	"sort"
	"strings"

	"github.com/getkin/kin-openapi/openapi3"
	"github.com/getkin/kin-openapi/openapi3filter"
	"github.com/getkin/kin-openapi/routers"
)

// operation is one documented method on one path, with what the checker
// derives from the document: who may call it and with which parameters.
type operation struct {
	Method string // GET, POST, ...
	Path   string // the document's path template, e.g. /api/orders/{id}
	Key    string // "GET /api/orders/{id}"
	Op     *openapi3.Operation
	Item   *openapi3.PathItem
	Params []*openapi3.Parameter // path-level and operation-level, resolved

	// Secured: the document names a security requirement.
	Secured bool
	// Internal: a route between services (/internal/...), which needs a
	// service credential rather than a user's access token.
	Internal bool
	// Admin: a user route that needs the admin role (see isAdmin).
	Admin bool
}

// operations lists every operation of doc, sorted by path then method.
func operations(doc *openapi3.T) []*operation {
	var out []*operation
	for path, item := range doc.Paths.Map() {
		for method, op := range item.Operations() {
			o := &operation{Method: method, Path: path, Key: method + " " + path, Op: op, Item: item}
			seen := map[string]bool{}
			for _, list := range []openapi3.Parameters{op.Parameters, item.Parameters} {
				for _, ref := range list {
					if ref == nil || ref.Value == nil {
						continue
					}
					p := ref.Value
					if seen[p.In+" "+p.Name] {
						continue // the operation's own wins over the path's
					}
					seen[p.In+" "+p.Name] = true
					o.Params = append(o.Params, p)
				}
			}
			sec := doc.Security
			if op.Security != nil {
				sec = *op.Security
			}
			for _, req := range sec {
				if len(req) > 0 {
					o.Secured = true
				}
			}
			o.Internal = strings.HasPrefix(path, "/internal/")
			o.Admin = o.Secured && !o.Internal && isAdmin(doc, op, sec)
			out = append(out, o)
		}
	}
	order := map[string]int{"GET": 0, "POST": 1, "PUT": 2, "PATCH": 3, "DELETE": 4}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Path != out[j].Path {
			return out[i].Path < out[j].Path
		}
		return order[out[i].Method] < order[out[j].Method]
	})
	return out
}

// isAdmin says whether an operation is for admins only. OpenAPI has no
// word for roles, so the checker reads the documents' conventions: the
// summary ends in "(admin)", the security scheme is described as a token
// "with the admin role", or the document says every route is for admins.
func isAdmin(doc *openapi3.T, op *openapi3.Operation, sec openapi3.SecurityRequirements) bool {
	if strings.Contains(strings.ToLower(op.Summary), "(admin)") {
		return true
	}
	if doc.Info != nil && strings.Contains(strings.ToLower(doc.Info.Description), "every route is for admins") {
		return true
	}
	if doc.Components == nil {
		return false
	}
	for _, req := range sec {
		for name := range req {
			s := doc.Components.SecuritySchemes[name]
			if s != nil && s.Value != nil && strings.Contains(strings.ToLower(s.Value.Description), "admin role") {
				return true
			}
		}
	}
	return false
}

// param returns the operation's parameter named name in in, or nil.
func (o *operation) param(in, name string) *openapi3.Parameter {
	for _, p := range o.Params {
		if p.In == in && strings.EqualFold(p.Name, name) {
			return p
		}
	}
	return nil
}

// pathParams lists the names of the path parameters, in path order.
func (o *operation) pathParams() []string {
	var out []string
	rest := o.Path
	for {
		i := strings.IndexByte(rest, '{')
		if i < 0 {
			return out
		}
		j := strings.IndexByte(rest[i:], '}')
		if j < 0 {
			return out
		}
		out = append(out, rest[i+1:i+j])
		rest = rest[i+j+1:]
	}
}

// documents says whether the operation documents status (exactly, by a
// range such as 4XX, or by default).
func (o *operation) documents(status int) bool {
	if o.Op.Responses == nil {
		return false
	}
	return o.Op.Responses.Status(status) != nil || o.Op.Responses.Default() != nil
}

// documentedExactly says whether status is listed by its own code.
func (o *operation) documentedExactly(status int) bool {
	return o.Op.Responses != nil && o.Op.Responses.Value(fmt.Sprint(status)) != nil
}

// successes lists the documented 2xx statuses.
func (o *operation) successes() []int {
	var out []int
	if o.Op.Responses == nil {
		return out
	}
	for code := range o.Op.Responses.Map() {
		var n int
		if _, err := fmt.Sscanf(code, "%d", &n); err == nil && n >= 200 && n < 300 {
			out = append(out, n)
		}
	}
	slices.Sort(out)
	return out
}

// jsonBody returns the schema of the operation's application/json request
// body, whether the body is required, and whether there is one at all.
func (o *operation) jsonBody() (schema *openapi3.Schema, required, ok bool) {
	if o.Op.RequestBody == nil || o.Op.RequestBody.Value == nil {
		return nil, false, false
	}
	rb := o.Op.RequestBody.Value
	mt := rb.Content.Get("application/json")
	if mt == nil || mt.Schema == nil || mt.Schema.Value == nil {
		return nil, rb.Required, false
	}
	return mt.Schema.Value, rb.Required, true
}

// route is what openapi3filter needs to validate an exchange of o.
func (o *operation) route(doc *openapi3.T) *routers.Route {
	return &routers.Route{Spec: doc, Path: o.Path, PathItem: o.Item, Method: o.Method, Operation: o.Op}
}

// requireBearer is the AuthenticationFunc of request validation: an
// http bearer scheme is satisfied by any "Authorization: Bearer <token>"
// (whether the token is good is the service's to say, not the document's).
func requireBearer(_ context.Context, in *openapi3filter.AuthenticationInput) error {
	s := in.SecurityScheme
	if s == nil || s.Type != "http" || !strings.EqualFold(s.Scheme, "bearer") {
		return nil
	}
	h := in.RequestValidationInput.Request.Header.Get("Authorization")
	scheme, token, _ := strings.Cut(h, " ")
	if !strings.EqualFold(scheme, "bearer") || strings.TrimSpace(token) == "" {
		return errors.New("no bearer token")
	}
	return nil
}

// refusal says why the document refuses req (nil: it accepts it).
func refusal(doc *openapi3.T, o *operation, req *http.Request, body []byte, pathParams map[string]string) error {
	req.Body = nopCloser(body)
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: pathParams, Route: o.route(doc),
		Options: &openapi3filter.Options{AuthenticationFunc: requireBearer, SkipSettingDefaults: true},
	}
	return openapi3filter.ValidateRequest(context.Background(), in)
}

// responseProblem says how a response breaks the document (nil: it does
// not): an undocumented status, content type, header or body.
func responseProblem(doc *openapi3.T, o *operation, req *http.Request, pathParams map[string]string, status int, header http.Header, body []byte) error {
	in := &openapi3filter.RequestValidationInput{
		Request: req, PathParams: pathParams, Route: o.route(doc),
		Options: &openapi3filter.Options{AuthenticationFunc: openapi3filter.NoopAuthenticationFunc},
	}
	out := &openapi3filter.ResponseValidationInput{
		RequestValidationInput: in,
		Status:                 status,
		Header:                 header,
		Options:                &openapi3filter.Options{IncludeResponseStatus: true, MultiError: true},
	}
	out.SetBodyBytes(body)
	return openapi3filter.ValidateResponse(context.Background(), out)
}

func nopCloser(b []byte) *readCloser { return &readCloser{bytes.NewReader(b)} }

type readCloser struct{ *bytes.Reader }

func (readCloser) Close() error { return nil }

// shortError flattens a validation error to one line of bounded length.
func shortError(err error) string {
	s := strings.Join(strings.Fields(err.Error()), " ")
	// kin-openapi appends the whole schema and value: the reason is enough.
	for _, cut := range []string{" Schema: ", " Value: "} {
		if i := strings.Index(s, cut); i > 0 {
			s = s[:i]
		}
	}
	const max = 300
	if len(s) > max {
		s = s[:max] + "..."
	}
	return s
}
