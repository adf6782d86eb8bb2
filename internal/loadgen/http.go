package loadgen

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"io"
	"net"
	"net/http"
	"net/url"
	"strconv"
)

// maxBody bounds an answer's body: the API's pages are far smaller.
const maxBody = 4 << 20

// response is an answer read whole.
type response struct {
	status int
	header http.Header
	body   []byte
}

// call sends one request to the target and reads the whole answer. ref is
// a path on the target (or a Location it answered); a reference to any
// other host is refused. token and key, when set, become the
// Authorization and Idempotency-Key headers; in, when not nil, the JSON
// body. When no answer came, the second result is the kind of failure.
func (r *runner) call(ctx context.Context, method, ref, token, key string, in any) (response, string) {
	u, err := r.base.Parse(ref)
	if err != nil || u.Scheme != r.base.Scheme || u.Host != r.base.Host {
		return response{}, KindBadResponse // never anything but the target
	}
	var body io.Reader
	if in != nil {
		b, err := json.Marshal(in)
		if err != nil {
			panic("loadgen: encoding a request: " + err.Error()) // our own types always encode
		}
		body = bytes.NewReader(b)
	}
	req, err := http.NewRequestWithContext(ctx, method, u.String(), body)
	if err != nil {
		return response{}, KindBadResponse
	}
	req.Header.Set("Accept", "application/json")
	req.Header.Set("User-Agent", "microshop-load")
	if in != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	if key != "" {
		req.Header.Set("Idempotency-Key", key)
	}
	r.requests.Add(1)
	res, err := r.client.Do(req)
	if err != nil {
		return response{}, classify(ctx, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(io.LimitReader(res.Body, maxBody))
	if err != nil {
		return response{}, classify(ctx, err)
	}
	return response{status: res.StatusCode, header: res.Header, body: b}, ""
}

// classify names the kind of a failure to get an answer.
func classify(ctx context.Context, err error) string {
	if ctx.Err() != nil {
		err = ctx.Err()
	}
	switch {
	case errors.Is(err, context.Canceled):
		return KindCancelled
	case errors.Is(err, context.DeadlineExceeded):
		return KindTimeout
	}
	var ne net.Error
	if errors.As(err, &ne) && ne.Timeout() {
		return KindTimeout
	}
	return KindConnection
}

// statusKind is the kind of an answer with an unexpected status.
func statusKind(code int) string { return "status_" + strconv.Itoa(code) }

// outcomeKind is the kind of a checkout that ended other than it should.
func outcomeKind(status, reason string) string {
	if reason == "" {
		return "wrong_outcome:" + status
	}
	return "wrong_outcome:" + status + "/" + reason
}

// getJSON GETs ref expecting 200 and decodes the body into out.
func (r *runner) getJSON(ctx context.Context, ref, token string, out any) string {
	return r.expectJSON(ctx, http.MethodGet, ref, token, "", nil, http.StatusOK, out)
}

// expectJSON sends a request expecting the status want and a JSON body
// that decodes into out, and returns the kind of failure or "".
func (r *runner) expectJSON(ctx context.Context, method, ref, token, key string, in any, want int, out any) string {
	res, kind := r.call(ctx, method, ref, token, key, in)
	if kind != "" {
		return kind
	}
	if res.status != want {
		return statusKind(res.status)
	}
	if out != nil && json.Unmarshal(res.body, out) != nil {
		return KindBadResponse
	}
	return ""
}

// query builds a path with a query string.
func query(path string, kv ...string) string {
	v := url.Values{}
	for i := 0; i+1 < len(kv); i += 2 {
		if kv[i+1] != "" {
			v.Set(kv[i], kv[i+1])
		}
	}
	if len(v) == 0 {
		return path
	}
	return path + "?" + v.Encode()
}
