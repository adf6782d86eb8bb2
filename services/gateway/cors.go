package gateway

import (
	"fmt"
	"net/http"
	"net/url"
	"strings"

	"github.com/rs/cors"
)

// corsPolicy lets the web pages of origins (--cors-origins, such as
// "https://shop.example.com,https://admin.example.com", or "*") call the
// API from a browser. With none, which is the default, no answer carries
// CORS headers and browsers keep pages of other origins out, as they
// should: the web UI is served by the gateway itself, same origin.
//
// Tokens travel in the Authorization header, never in cookies, so
// credentials are not allowed: a page of an allowed origin can use a token
// only if it has one.
func corsPolicy(origins string) (func(http.Handler) http.Handler, error) {
	var list []string
	for _, o := range strings.Split(origins, ",") {
		o = strings.TrimSpace(o)
		if o == "" {
			continue
		}
		if o != "*" {
			u, err := url.Parse(o)
			if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" || (u.Path != "" && u.Path != "/") ||
				u.RawQuery != "" || u.User != nil {
				return nil, fmt.Errorf("--cors-origins: %q is not an origin such as https://shop.example.com (or *)", o)
			}
			o = u.Scheme + "://" + u.Host
		}
		list = append(list, o)
	}
	if len(list) == 0 {
		return func(next http.Handler) http.Handler { return next }, nil
	}
	c := cors.New(cors.Options{
		AllowedOrigins: list,
		AllowedMethods: []string{http.MethodGet, http.MethodHead, http.MethodPost, http.MethodPut, http.MethodPatch, http.MethodDelete},
		AllowedHeaders: []string{"Authorization", "Content-Type", "Idempotency-Key", "If-None-Match", "X-Request-Id"},
		ExposedHeaders: []string{"ETag", "Location", "Retry-After", "X-Request-Id"},
		MaxAge:         600,
	})
	return c.Handler, nil
}
