package gateway

import (
	"net/http"
	"net/url"
	"strings"
)

// publicRoutes are the only /api routes anyone may call without an access
// token. Every other /api route needs a valid token at the gateway, and the
// service behind it checks the token again. A "{name}" segment matches any
// one non-empty segment; a GET route also allows HEAD.
var publicRoutes = []struct{ method, path string }{
	{http.MethodPost, "/api/users/register"},
	{http.MethodPost, "/api/users/login"},
	{http.MethodPost, "/api/users/refresh"},
	{http.MethodPost, "/api/users/logout"},
	{http.MethodGet, "/api/users/.well-known/jwks.json"},
	{http.MethodGet, "/api/inventory/products"},
	{http.MethodGet, "/api/inventory/products/{sku}"},
}

// isPublic reports whether method and path (as sent, still escaped) name
// a public route. It matches the escaped path because that is what the
// services' routers match too: the gateway and the service must agree on
// which route a request names.
func isPublic(method, path string) bool {
	segs := strings.Split(path, "/")
	for _, r := range publicRoutes {
		if r.method != method && !(r.method == http.MethodGet && method == http.MethodHead) {
			continue
		}
		if matches(strings.Split(r.path, "/"), segs) {
			return true
		}
	}
	return false
}

func matches(pattern, segs []string) bool {
	if len(pattern) != len(segs) {
		return false
	}
	for i, p := range pattern {
		if strings.HasPrefix(p, "{") && strings.HasSuffix(p, "}") {
			if segs[i] == "" {
				return false
			}
			continue
		}
		if p != segs[i] {
			return false
		}
	}
	return true
}

// serviceOf returns the <name> of /api/<name> or /api/<name>/..., or "".
func serviceOf(path string) string {
	rest, ok := strings.CutPrefix(path, "/api/")
	if !ok {
		return ""
	}
	name, _, _ := strings.Cut(rest, "/")
	return name
}

// maxDecodes bounds how many layers of percent-encoding a path may have.
// One is normal; a second (%252F) is already suspicious.
const maxDecodes = 3

// unroutable reports whether the gateway must refuse path (as sent, still
// escaped) whatever the route: a path that names an /internal segment,
// or a "." or ".." segment, at any layer of percent-decoding. Routes
// between services live under /internal and are never reachable from
// outside. No route has a dot segment, and refusing them (rather than
// cleaning them) means no "..", plain or encoded, can make the path the
// gateway checked differ from the one a service resolves.
func unroutable(path string) bool {
	for range maxDecodes {
		if hasForbiddenSegment(path) {
			return true
		}
		dec, err := url.PathUnescape(path)
		if err != nil {
			return true
		}
		if dec == path {
			return false
		}
		path = dec
	}
	return true // more layers of encoding than any client needs
}

// hasForbiddenSegment looks at each segment of path. Backslashes count as
// separators and ";parameters" are ignored, and case does not matter,
// because some servers and frameworks treat paths that way.
func hasForbiddenSegment(path string) bool {
	for seg := range strings.FieldsFuncSeq(path, func(r rune) bool { return r == '/' || r == '\\' }) {
		seg, _, _ = strings.Cut(seg, ";")
		seg = strings.TrimSpace(seg)
		if seg == "." || seg == ".." || strings.EqualFold(seg, "internal") {
			return true
		}
	}
	return false
}
