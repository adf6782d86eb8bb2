package problem_test

import (
	"encoding/json"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"testing"

	"github.com/microshop/microshop/internal/platform/problem"
)

func TestWrite(t *testing.T) {
	r := httptest.NewRequest(http.MethodGet, "/api/orders/42?x=1", nil)
	w := httptest.NewRecorder()
	w.Header().Set("X-Request-Id", "req-123")
	w.Header().Set("X-Handler", "kept")

	problem.Write(w, r, problem.TooManyRequests("slow down", 7))

	res := w.Result()
	if res.StatusCode != http.StatusTooManyRequests {
		t.Errorf("status = %d, want 429", res.StatusCode)
	}
	if ct := res.Header.Get("Content-Type"); ct != problem.ContentType {
		t.Errorf("Content-Type = %q, want %q", ct, problem.ContentType)
	}
	if got := res.Header.Get("Retry-After"); got != "7" {
		t.Errorf("Retry-After = %q, want 7", got)
	}
	if got := res.Header.Get("X-Content-Type-Options"); got != "nosniff" {
		t.Errorf("X-Content-Type-Options = %q, want nosniff", got)
	}
	if got := res.Header.Get("X-Handler"); got != "kept" {
		t.Errorf("a header the handler set was lost: X-Handler = %q", got)
	}
	var body map[string]any
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatalf("decoding the body: %v", err)
	}
	want := map[string]any{
		"type":       "https://microshop.dev/problems/rate-limited",
		"title":      "Too many requests",
		"status":     float64(429),
		"detail":     "slow down",
		"instance":   "/api/orders/42",
		"request_id": "req-123",
	}
	for k, v := range want {
		if body[k] != v {
			t.Errorf("body[%q] = %v, want %v", k, body[k], v)
		}
	}
	if _, ok := body["RetryAfter"]; ok {
		t.Errorf("RetryAfter leaked into the body: %v", body)
	}
}

func TestWriteKeepsExplicitFieldsAndOmitsRetryAfter(t *testing.T) {
	r := httptest.NewRequest(http.MethodPost, "/a", nil)
	w := httptest.NewRecorder()
	w.Header().Set("X-Request-Id", "from-header")
	p := problem.NotFound("no such order")
	p.Instance = "/orders/1"
	p.RequestID = "explicit"
	problem.Write(w, r, p)

	if w.Code != http.StatusNotFound {
		t.Errorf("status = %d, want 404", w.Code)
	}
	if got := w.Header().Get("Retry-After"); got != "" {
		t.Errorf("Retry-After = %q, want none", got)
	}
	var got problem.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Instance != "/orders/1" || got.RequestID != "explicit" {
		t.Errorf("instance, request_id = %q, %q; want the explicit values", got.Instance, got.RequestID)
	}
}

func TestWriteWithNilRequest(t *testing.T) {
	w := httptest.NewRecorder()
	problem.Write(w, nil, problem.Internal())
	if w.Code != http.StatusInternalServerError {
		t.Errorf("status = %d, want 500", w.Code)
	}
}

func TestInvalidListsFields(t *testing.T) {
	w := httptest.NewRecorder()
	problem.Write(w, httptest.NewRequest(http.MethodPost, "/x", nil),
		problem.Invalid([]problem.FieldError{{Field: "email", Reason: "required"}}))
	if w.Code != http.StatusUnprocessableEntity {
		t.Errorf("status = %d, want 422", w.Code)
	}
	var got problem.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if len(got.Errors) != 1 || got.Errors[0].Field != "email" || got.Errors[0].Reason != "required" {
		t.Errorf("errors = %+v, want one for email", got.Errors)
	}
}

func TestConstructors(t *testing.T) {
	for _, tc := range []struct {
		p      *problem.Problem
		status int
	}{
		{problem.BadRequest("x"), 400},
		{problem.Unauthorized("x"), 401},
		{problem.Forbidden("x"), 403},
		{problem.NotFound("x"), 404},
		{problem.Conflict("x"), 409},
		{problem.Invalid(nil), 422},
		{problem.TooManyRequests("x", 1), 429},
		{problem.Internal(), 500},
		{problem.Unavailable("x"), 503},
	} {
		if tc.p.Status != tc.status {
			t.Errorf("%s: status = %d, want %d", tc.p.Title, tc.p.Status, tc.status)
		}
		if tc.p.Type == "" || tc.p.Title == "" {
			t.Errorf("%d: type and title must be set: %+v", tc.status, tc.p)
		}
	}
}

func TestFromAndError(t *testing.T) {
	p := problem.Conflict("email taken")
	wrapped := fmt.Errorf("registering: %w", p)
	if got := problem.From(wrapped); got != p {
		t.Errorf("From(wrapped) = %v, want the problem", got)
	}
	if got := problem.From(errors.New("plain")); got != nil {
		t.Errorf("From(plain error) = %v, want nil", got)
	}
	if got := problem.From(nil); got != nil {
		t.Errorf("From(nil) = %v, want nil", got)
	}
	if got, want := p.Error(), "409 Conflict: email taken"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := problem.Invalid(nil).Error(), "422 Invalid request: one or more fields are invalid"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
	if got, want := (&problem.Problem{Status: 418, Title: "Teapot"}).Error(), "418 Teapot"; got != want {
		t.Errorf("Error() = %q, want %q", got, want)
	}
}

// Extension members (RFC 9457 section 3.2) travel beside the standard
// ones and survive a decode, so a client can act on them.
func TestExtensionsRoundTrip(t *testing.T) {
	p := problem.New(http.StatusPaymentRequired, "payment-declined", "Payment declined", "the card was declined")
	p.Extensions = map[string]any{"reason": "insufficient_funds", "status": "ignored"}
	w := httptest.NewRecorder()
	problem.Write(w, httptest.NewRequest(http.MethodPost, "/pay", nil), p)

	var raw map[string]any
	if err := json.Unmarshal(w.Body.Bytes(), &raw); err != nil {
		t.Fatal(err)
	}
	if raw["reason"] != "insufficient_funds" || raw["status"] != float64(402) || raw["instance"] != "/pay" {
		t.Errorf("body = %s", w.Body)
	}
	var got problem.Problem
	if err := json.Unmarshal(w.Body.Bytes(), &got); err != nil {
		t.Fatal(err)
	}
	if got.Status != 402 || got.Detail != "the card was declined" || len(got.Extensions) != 1 || got.Extensions["reason"] != "insufficient_funds" {
		t.Errorf("decoded = %+v", got)
	}

	// Without extensions the document is exactly the standard members.
	plain, _ := json.Marshal(problem.NotFound("x"))
	if want := `{"type":"https://microshop.dev/problems/not-found","title":"Not found","status":404,"detail":"x"}`; string(plain) != want {
		t.Errorf("plain problem = %s, want %s", plain, want)
	}
	if err := json.Unmarshal([]byte(`[1]`), &got); err == nil {
		t.Error("an array decoded as a problem")
	}
}
