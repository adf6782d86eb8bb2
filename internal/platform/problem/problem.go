// Package problem writes errors as RFC 9457 problem details
// (application/problem+json), the one error shape every microshop API uses.
package problem

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"

	"github.com/microshop/microshop/internal/platform/validation"
)

// ContentType is the media type of a problem document.
const ContentType = "application/problem+json"

// typeBase prefixes every problem type. The URIs are identifiers, not
// pages; docs/errors.md lists them.
const typeBase = "https://microshop.dev/problems/"

// Problem is an RFC 9457 problem document. It is also an error, so a
// service method can return one and the handler writes it unchanged.
type Problem struct {
	Type     string       `json:"type"`
	Title    string       `json:"title"`
	Status   int          `json:"status"`
	Detail   string       `json:"detail,omitempty"`
	Instance string       `json:"instance,omitempty"`
	Errors   []FieldError `json:"errors,omitempty"`
	// Service names the service a gateway could not reach.
	Service string `json:"service,omitempty"`
	// RequestID lets a user quote the failed request to an operator.
	RequestID string `json:"request_id,omitempty"`

	// RetryAfter, when set, is sent as the Retry-After header in seconds.
	RetryAfter int `json:"-"`
	// Extensions are the members a problem type adds beside the standard
	// ones (RFC 9457 section 3.2), such as the reason a card was declined.
	// They are written at the top level of the document and read back
	// from it, so a client keeps them; a standard member's name is ignored.
	Extensions map[string]any `json:"-"`
}

// members are the standard members; an extension may not take their names.
var members = map[string]bool{"type": true, "title": true, "status": true, "detail": true,
	"instance": true, "errors": true, "service": true, "request_id": true}

// standard is Problem without its JSON methods.
type standard Problem

// MarshalJSON writes the standard members followed by the extensions.
func (p Problem) MarshalJSON() ([]byte, error) {
	b, err := json.Marshal(standard(p))
	if err != nil || len(p.Extensions) == 0 {
		return b, err
	}
	ext := make(map[string]any, len(p.Extensions))
	for k, v := range p.Extensions {
		if !members[k] {
			ext[k] = v
		}
	}
	if len(ext) == 0 {
		return b, nil
	}
	e, err := json.Marshal(ext)
	if err != nil {
		return nil, fmt.Errorf("encoding problem extensions: %w", err)
	}
	// Both are JSON objects: join "{...}" and "{...}" into one.
	return append(append(b[:len(b)-1], ','), e[1:]...), nil
}

// UnmarshalJSON reads the standard members and keeps any others as
// Extensions.
func (p *Problem) UnmarshalJSON(b []byte) error {
	var s standard
	if err := json.Unmarshal(b, &s); err != nil {
		return err
	}
	var all map[string]any
	if err := json.Unmarshal(b, &all); err != nil {
		return err
	}
	*p = Problem(s)
	p.Extensions = nil
	for k, v := range all {
		if members[k] {
			continue
		}
		if p.Extensions == nil {
			p.Extensions = map[string]any{}
		}
		p.Extensions[k] = v
	}
	return nil
}

// FieldError names one invalid field and why it is invalid. It is the
// validation package's, so services can refuse a request without
// speaking HTTP and their handlers still write the fields unchanged.
type FieldError = validation.FieldError

func (p *Problem) Error() string {
	if p.Detail != "" {
		return fmt.Sprintf("%d %s: %s", p.Status, p.Title, p.Detail)
	}
	return fmt.Sprintf("%d %s", p.Status, p.Title)
}

// New returns a problem with a type derived from slug, e.g. "out-of-stock".
func New(status int, slug, title, detail string) *Problem {
	return &Problem{Type: typeBase + slug, Title: title, Status: status, Detail: detail}
}

// The common problems. Each returns a fresh value so callers may add to it.

func BadRequest(detail string) *Problem {
	return New(http.StatusBadRequest, "bad-request", "Bad request", detail)
}

// Invalid is a 422 with one entry per invalid field.
func Invalid(errs []FieldError) *Problem {
	p := New(http.StatusUnprocessableEntity, "validation", "Invalid request", "one or more fields are invalid")
	p.Errors = errs
	return p
}

func Unauthorized(detail string) *Problem {
	return New(http.StatusUnauthorized, "unauthorized", "Unauthorized", detail)
}

func Forbidden(detail string) *Problem {
	return New(http.StatusForbidden, "forbidden", "Forbidden", detail)
}

func NotFound(detail string) *Problem {
	return New(http.StatusNotFound, "not-found", "Not found", detail)
}

func Conflict(detail string) *Problem {
	return New(http.StatusConflict, "conflict", "Conflict", detail)
}

func TooManyRequests(detail string, retryAfter int) *Problem {
	p := New(http.StatusTooManyRequests, "rate-limited", "Too many requests", detail)
	p.RetryAfter = retryAfter
	return p
}

// SlowBody is a 408: the request body arrived slower than the server's
// minimum rate, and the server stopped waiting for it.
func SlowBody() *Problem {
	return New(http.StatusRequestTimeout, "request-timeout", "Request timeout",
		"the request body arrived too slowly; send it at a steady pace")
}

func Unavailable(detail string) *Problem {
	return New(http.StatusServiceUnavailable, "unavailable", "Service unavailable", detail)
}

// DatabaseUnavailable answers a request that failed because the service
// could not reach its database in time (a partition, a restart, a server
// out of connections): 503 with Retry-After, since it will likely pass,
// where a 500 would say the request itself was at fault.
func DatabaseUnavailable() *Problem {
	p := Unavailable("the service could not reach its database in time; try again shortly")
	p.RetryAfter = 2
	return p
}

// Internal is what a client sees of an unexpected failure: nothing of it.
func Internal() *Problem {
	return New(http.StatusInternalServerError, "internal", "Internal error", "the server failed to handle the request; it has been logged")
}

// Write sends p as the response. Any header the handler set stays.
func Write(w http.ResponseWriter, r *http.Request, p *Problem) {
	if p.Instance == "" && r != nil {
		p.Instance = r.URL.Path
	}
	if p.RequestID == "" {
		p.RequestID = w.Header().Get("X-Request-Id")
	}
	if p.RetryAfter > 0 {
		w.Header().Set("Retry-After", fmt.Sprint(p.RetryAfter))
	}
	w.Header().Set("Content-Type", ContentType)
	w.Header().Set("X-Content-Type-Options", "nosniff")
	w.WriteHeader(p.Status)
	_ = json.NewEncoder(w).Encode(p)
}

// From returns the problem inside err, or nil when err is not one.
func From(err error) *Problem {
	var p *Problem
	if errors.As(err, &p) {
		return p
	}
	return nil
}
