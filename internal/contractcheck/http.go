package contractcheck

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"net/url"
	"slices"
	"strings"
	"time"

	"github.com/getkin/kin-openapi/openapi3"

	"github.com/microshop/microshop/internal/platform/openapi"
	"github.com/microshop/microshop/services/users/usersapi"
)

// request is one call to make, before it becomes an *http.Request.
type request struct {
	op     *operation
	path   map[string]string
	query  url.Values
	header http.Header
	// body is the JSON body as a value; hasBody false sends none.
	body    any
	hasBody bool
	// raw, when rawSet, is sent as the body instead, byte for byte.
	raw    []byte
	rawSet bool
	ctype  string // Content-Type; application/json when empty and a body is sent
	cred   string
	// made lists the path parameters the checker made up, having no real
	// value: a refusal of the request may be about them.
	made []string
}

func (q *request) clone() *request {
	c := *q
	c.path = map[string]string{}
	for k, v := range q.path {
		c.path[k] = v
	}
	c.query = url.Values{}
	for k, v := range q.query {
		c.query[k] = append([]string(nil), v...)
	}
	c.header = q.header.Clone()
	c.body = deepCopy(q.body)
	c.made = append([]string(nil), q.made...)
	return &c
}

// str reads a string member of the body (a path such as "card.number").
func (q *request) str(path string) string {
	v := q.body
	for _, k := range strings.Split(path, ".") {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	s, _ := v.(string)
	return s
}

// set replaces a member of the body; a nil value removes it.
func (q *request) set(key string, v any) *request {
	m, ok := q.body.(map[string]any)
	if !ok {
		m = map[string]any{}
		q.body, q.hasBody = m, true
	}
	if v == nil {
		delete(m, key)
	} else {
		m[key] = v
	}
	return q
}

// template builds a valid request of o: real parameter values where the
// checker knows some, values made from the schema otherwise, a fresh
// Idempotency-Key, and the credential the operation needs.
func (r *run) template(o *operation) *request {
	q := &request{op: o, path: map[string]string{}, query: url.Values{}, header: http.Header{}, cred: r.credentialFor(o)}
	for _, p := range o.Params {
		schema := paramSchema(p)
		switch p.In {
		case "path":
			if v, ok := r.fixture(o.Key, p.Name); ok {
				q.path[p.Name] = v
			} else {
				q.path[p.Name] = paramString(r.gen.value(p.Name, schema))
				q.made = append(q.made, p.Name)
			}
		case "query":
			if v, ok := r.fixture(o.Key, p.Name); ok && p.Required {
				q.query.Set(p.Name, v)
			} else if p.Required {
				q.query.Set(p.Name, paramString(r.gen.value(p.Name, schema)))
			}
		case "header":
			if strings.EqualFold(p.Name, "Idempotency-Key") {
				q.header.Set(p.Name, "contract-check-"+r.gen.uniq())
			} else if p.Required {
				q.header.Set(p.Name, paramString(r.gen.value(p.Name, schema)))
			}
		}
	}
	if s, _, ok := o.jsonBody(); ok {
		q.body, q.hasBody = r.gen.value("body", s), true
	}
	return q
}

// bodyFor is a valid body of o made from its schema.
func (r *run) bodyFor(o *operation) any {
	if s, _, ok := o.jsonBody(); ok {
		return r.gen.value("body", s)
	}
	return nil
}

func paramSchema(p *openapi3.Parameter) *openapi3.Schema {
	if p.Schema == nil {
		return nil
	}
	return p.Schema.Value
}

// response is what the service answered.
type response struct {
	status int
	header http.Header
	body   []byte
	json   any
}

// get reads a member of a JSON object answer ("id", "card.last4").
func (s *response) get(path string) any {
	if s == nil {
		return nil
	}
	v := s.json
	for _, k := range strings.Split(path, ".") {
		m, _ := v.(map[string]any)
		v = m[k]
	}
	return v
}

func (s *response) str(path string) string {
	v, _ := s.get(path).(string)
	return v
}

// items reads the items of a list answer.
func (s *response) items() []map[string]any {
	arr, _ := s.get("items").([]any)
	var out []map[string]any
	for _, it := range arr {
		if m, ok := it.(map[string]any); ok {
			out = append(out, m)
		}
	}
	return out
}

func (r *run) httpRequest(ctx context.Context, q *request) (*http.Request, []byte, error) {
	p := q.op.Path
	for k, v := range q.path {
		p = strings.ReplaceAll(p, "{"+k+"}", url.PathEscape(v))
	}
	u := r.cfg.URL + p
	if len(q.query) > 0 {
		u += "?" + q.query.Encode()
	}
	var body []byte
	switch {
	case q.rawSet:
		body = q.raw
	case q.hasBody:
		b, err := json.Marshal(q.body)
		if err != nil {
			return nil, nil, err
		}
		body = b
	}
	req, err := http.NewRequestWithContext(ctx, q.op.Method, u, bytes.NewReader(body))
	if err != nil {
		return nil, nil, err
	}
	if body == nil {
		req.Body, req.ContentLength = http.NoBody, 0
	}
	for k, v := range q.header {
		req.Header[k] = v
	}
	switch {
	case q.ctype != "":
		req.Header.Set("Content-Type", q.ctype)
	case q.hasBody || q.rawSet:
		req.Header.Set("Content-Type", "application/json")
	}
	if req.Header.Get("Accept") == "" {
		req.Header.Set("Accept", "application/json, application/problem+json")
	}
	req.Header.Set("User-Agent", "microshop-contract-check")
	if q.cred != credNone {
		if tok, ok := r.tokens[q.cred]; ok {
			req.Header.Set("Authorization", "Bearer "+tok)
		}
	}
	return req, body, nil
}

// refusedByDocument says why the document refuses q, or nil.
func (r *run) refusedByDocument(ctx context.Context, q *request) error {
	req, body, err := r.httpRequest(ctx, q)
	if err != nil {
		return err
	}
	return refusal(r.doc, q.op, req, body, q.path)
}

func (r *run) send(ctx context.Context, q *request) (*http.Request, *response, error) {
	req, _, err := r.httpRequest(ctx, q)
	if err != nil {
		return nil, nil, err
	}
	res, err := r.client.Do(req)
	if err != nil {
		return nil, nil, err
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, 8<<20))
	if err != nil {
		return nil, nil, fmt.Errorf("reading the answer: %w", err)
	}
	out := &response{status: res.StatusCode, header: res.Header, body: b}
	if len(b) > 0 && isJSON(res.Header.Get("Content-Type")) {
		_ = json.Unmarshal(b, &out.json)
	}
	// A fresh request for response validation: the body is spent.
	check, _, _ := r.httpRequest(ctx, q)
	return check, out, nil
}

func isJSON(ct string) bool {
	mt, _, err := mime.ParseMediaType(ct)
	return err == nil && (mt == "application/json" || strings.HasSuffix(mt, "+json"))
}

// breaches lists how a response breaks the document: an undocumented
// status, content type or header, a body off its schema, and for errors
// anything but a problem+json whose status is the response's. An answer
// to HEAD has no body (RFC 9110, section 9.3.2), so only its status and
// Content-Type are checked; kin-openapi skips HEAD responses altogether.
func (r *run) breaches(q *request, req *http.Request, res *response) []string {
	var out []string
	head := req.Method == http.MethodHead
	if head {
		if !q.op.documents(res.status) {
			out = append(out, fmt.Sprintf("the answer breaks the document: status %d is not documented", res.status))
		}
	} else if err := responseProblem(r.doc, q.op, req, q.path, res.status, res.header, res.body); err != nil {
		out = append(out, "the answer breaks the document: "+shortError(err))
	}
	if res.status >= 400 {
		mt, _, _ := mime.ParseMediaType(res.header.Get("Content-Type"))
		if mt != "application/problem+json" {
			out = append(out, fmt.Sprintf("an error answered as %q, not application/problem+json", res.header.Get("Content-Type")))
		} else if !head {
			var p struct {
				Status int    `json:"status"`
				Type   string `json:"type"`
				Title  string `json:"title"`
			}
			if err := json.Unmarshal(res.body, &p); err != nil {
				out = append(out, "the problem is not a JSON object: "+shortError(err))
			} else if p.Status != res.status {
				out = append(out, fmt.Sprintf("the problem says status %d, the response %d", p.Status, res.status))
			}
		}
	}
	return out
}

// want is what a case expects.
type want struct {
	// codes: the statuses that pass; empty means any documented 2xx.
	codes []int
	// refusal: any documented 4xx passes; prefer narrows it to these
	// codes when the operation documents any of them.
	refusal bool
	prefer  []int
	// lenient: a documented refusal of a valid request is a skip, not a
	// failure (the request was made up and may name nothing real).
	lenient bool
}

func ok(codes ...int) want { return want{codes: codes} }

func refused(prefer ...int) want { return want{refusal: true, prefer: prefer} }

// call sends q as the case name of its operation, checks the answer
// against the document and w, records the result, and returns the answer
// and whether the case passed.
func (r *run) call(ctx context.Context, name string, q *request, w want) (*response, bool) {
	key := q.op.Key
	if !w.refusal {
		r.positive[key] = true
	}
	if has, why := r.have(q.cred); !has {
		r.record(key, name, Skip, 0, why)
		return nil, false
	}
	req, res, err := r.send(ctx, q)
	if err != nil {
		r.record(key, name, Fail, 0, "no answer: "+err.Error())
		return nil, false
	}
	breaches := r.breaches(q, req, res)
	status := res.status
	detail := ""
	outcome := Pass

	switch {
	case status == http.StatusTooManyRequests:
		r.record(key, name, Skip, status, "rate limited (429) before the request was judged; raise the service's rate limits to check this case")
		return res, false
	case w.refusal:
		switch {
		case status < 400 || status >= 500:
			outcome = Fail
			detail = fmt.Sprintf("want a documented 4xx refusal, got %d", status)
			if status < 300 {
				detail = fmt.Sprintf("accepted (%d) a request it should refuse", status)
			}
		case len(w.prefer) > 0 && anyDocumented(q.op, w.prefer) && !slices.Contains(w.prefer, status):
			outcome = Fail
			detail = fmt.Sprintf("want %s, got %d", codesText(documentedOf(q.op, w.prefer)), status)
		case (status == 401 || status == 403) && !slices.Contains(w.prefer, status):
			r.record(key, name, Skip, status, fmt.Sprintf("refused for its credential (%d) before the rest was judged: %s", status, problemDetail(res)))
			return res, false
		}
	default:
		good := slices.Contains(w.codes, status) || (len(w.codes) == 0 && status >= 200 && status < 300)
		if !good {
			want := "a documented 2xx"
			if len(w.codes) > 0 {
				want = codesText(w.codes)
			}
			if w.lenient && status >= 400 && status < 500 && len(breaches) == 0 {
				r.record(key, name, Skip, status, fmt.Sprintf("the service refused the request the checker made up (%s); give real values with --set: %s", want, problemDetail(res)))
				return res, false
			}
			outcome = Fail
			detail = fmt.Sprintf("want %s, got %d: %s", want, status, snippet(res.body))
		}
	}
	if len(breaches) > 0 {
		outcome = Fail
		detail = strings.TrimPrefix(detail+"; "+strings.Join(breaches, "; "), "; ")
	}
	r.record(key, name, outcome, status, detail)
	return res, outcome == Pass
}

func anyDocumented(o *operation, codes []int) bool {
	return len(documentedOf(o, codes)) > 0
}

func documentedOf(o *operation, codes []int) []int {
	var out []int
	for _, c := range codes {
		if o.documentedExactly(c) {
			out = append(out, c)
		}
	}
	return out
}

func codesText(codes []int) string {
	s := make([]string, len(codes))
	for i, c := range codes {
		s[i] = fmt.Sprint(c)
	}
	return strings.Join(s, " or ")
}

func problemDetail(res *response) string {
	if d := res.str("detail"); d != "" {
		return d
	}
	if t := res.str("title"); t != "" {
		return t
	}
	return snippet(res.body)
}

func snippet(b []byte) string {
	s := strings.Join(strings.Fields(string(b)), " ")
	if len(s) > 200 {
		s = s[:200] + "..."
	}
	return s
}

// checkServedDocument fetches GET /openapi.json: the implementation must
// serve a valid OpenAPI document, and one that documents the same
// operations as the checker's is expected (a difference is a warning:
// the checker holds the implementation to its own copy).
func (r *run) checkServedDocument(ctx context.Context) {
	const key = "GET /openapi.json"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.cfg.URL+"/openapi.json", nil)
	if err != nil {
		r.record(key, "served", Fail, 0, err.Error())
		return
	}
	res, err := r.client.Do(req)
	if err != nil {
		r.record(key, "served", Fail, 0, "no answer: "+err.Error())
		return
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(io.LimitReader(res.Body, 8<<20))
	if res.StatusCode != http.StatusOK {
		r.record(key, "served", Fail, res.StatusCode, "want 200 with the service's OpenAPI document")
		return
	}
	served, err := openapi.Load(b)
	if err != nil {
		r.record(key, "served", Fail, res.StatusCode, "not a valid OpenAPI document: "+shortError(err))
		return
	}
	r.record(key, "served", Pass, res.StatusCode, "")
	mine, theirs := map[string]bool{}, map[string]bool{}
	for _, o := range r.ops {
		mine[o.Key] = true
	}
	for _, o := range operations(served.T) {
		theirs[o.Key] = true
	}
	var missing, extra []string
	for k := range mine {
		if !theirs[k] {
			missing = append(missing, k)
		}
	}
	for k := range theirs {
		if !mine[k] {
			extra = append(extra, k)
		}
	}
	slices.Sort(missing)
	slices.Sort(extra)
	switch {
	case len(missing) == 0 && len(extra) == 0:
		r.record(key, "documents the same operations", Pass, 0, fmt.Sprintf("%d operations", len(mine)))
	default:
		var parts []string
		if len(missing) > 0 {
			parts = append(parts, "lacks "+strings.Join(missing, ", "))
		}
		if len(extra) > 0 {
			parts = append(parts, "adds "+strings.Join(extra, ", "))
		}
		r.record(key, "documents the same operations", Warn, 0, "the served document "+strings.Join(parts, "; "))
	}
}

// userCredentials gets the admin token (given, or by logging in) and a
// fresh customer's token (by registering one at the users service).
func (r *run) userCredentials(ctx context.Context) {
	switch {
	case r.cfg.Token != "":
		r.tokens[credAdmin] = r.cfg.Token
	case r.cfg.Email != "" && r.cfg.UsersURL != "":
		tok, err := r.login(ctx, r.cfg.Email, r.cfg.Password)
		if err != nil {
			r.record("credentials", "admin login", Fail, 0, "logging in as "+r.cfg.Email+" at "+r.cfg.UsersURL+": "+err.Error())
			r.whyNot[credAdmin] = "no admin token: the login failed"
		} else {
			r.tokens[credAdmin] = tok
		}
	default:
		r.whyNot[credAdmin] = "no admin token: pass --token, or --email and --password with --users-url"
	}
	if r.cfg.Service == "users" {
		// users' own script registers and logs in its customer, through
		// the very routes it checks.
		r.whyNot[credCustomer] = "no customer token: registering or logging in failed"
		r.whyNot[credOther] = r.whyNot[credCustomer]
		return
	}
	if r.cfg.UsersURL == "" {
		r.whyNot[credCustomer] = "no customer token: pass --users-url so the checker can register a customer"
		r.whyNot[credOther] = r.whyNot[credCustomer]
		return
	}
	for _, kind := range []string{credCustomer, credOther} {
		tok, err := r.registerCustomer(ctx)
		if err != nil {
			r.whyNot[kind] = "no " + kind + " token: registering at " + r.cfg.UsersURL + " failed: " + err.Error()
			continue
		}
		r.tokens[kind] = tok
	}
}

// registerCustomer opens a fresh customer account at UsersURL and returns
// its access token.
func (r *run) registerCustomer(ctx context.Context) (string, error) {
	u := r.gen.uniq()
	email, password := "contract-check-"+u+"@example.com", "contract check password "+u
	var user usersapi.User
	if err := r.postJSON(ctx, r.cfg.UsersURL+"/api/users/register",
		map[string]string{"email": email, "password": password, "name": "Contract Check"}, http.StatusCreated, &user); err != nil {
		return "", err
	}
	return r.login(ctx, email, password)
}

func (r *run) login(ctx context.Context, email, password string) (string, error) {
	var tok usersapi.Tokens
	if err := r.postJSON(ctx, r.cfg.UsersURL+"/api/users/login",
		map[string]string{"email": email, "password": password}, http.StatusOK, &tok); err != nil {
		return "", err
	}
	if tok.AccessToken == "" {
		return "", fmt.Errorf("the login answered no access_token")
	}
	return tok.AccessToken, nil
}

func (r *run) postJSON(ctx context.Context, u string, in any, status int, out any) error {
	b, _ := json.Marshal(in)
	ctx, cancel := context.WithTimeout(ctx, r.cfg.Timeout)
	defer cancel()
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, u, bytes.NewReader(b))
	if err != nil {
		return err
	}
	req.Header.Set("Content-Type", "application/json")
	res, err := r.client.Do(req)
	if err != nil {
		return err
	}
	defer res.Body.Close()
	body, _ := io.ReadAll(io.LimitReader(res.Body, 1<<20))
	if res.StatusCode != status {
		return fmt.Errorf("%d %s", res.StatusCode, snippet(body))
	}
	return json.Unmarshal(body, out)
}

// poll GETs the operation key with the path parameters until done says
// the answer is final or the time is up; it returns the last answer
// without recording anything (the caller records what it concludes).
func (r *run) poll(ctx context.Context, q *request, within time.Duration, done func(*response) bool) *response {
	deadline := time.Now().Add(within)
	for {
		_, res, err := r.send(ctx, q)
		if err == nil && (done(res) || time.Now().After(deadline)) {
			return res
		}
		if err != nil && time.Now().After(deadline) {
			return nil
		}
		select {
		case <-ctx.Done():
			return res
		case <-time.After(200 * time.Millisecond):
		}
	}
}
