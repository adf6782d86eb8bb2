package notifications

import (
	"bytes"
	"context"
	"crypto/hmac"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"net/http"
	"strconv"
	"strings"
	"time"
)

// Headers of a webhook request.
const (
	HeaderEventID    = "Microshop-Event-Id"
	HeaderEventType  = "Microshop-Event-Type"
	HeaderDeliveryID = "Microshop-Delivery-Id"
	HeaderSignature  = "Microshop-Signature"
)

// Sign returns the Microshop-Signature header value for body sent at t
// with secret: "t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<body>")>".
// Receivers compute the same and compare (docs/notifications.md).
func Sign(secret string, t time.Time, body []byte) string {
	ts := strconv.FormatInt(t.Unix(), 10)
	m := hmac.New(sha256.New, []byte(secret))
	m.Write([]byte(ts))
	m.Write([]byte("."))
	m.Write(body)
	return "t=" + ts + ",v1=" + hex.EncodeToString(m.Sum(nil))
}

// webhooks posts events to webhook endpoints.
type webhooks struct {
	client *http.Client
	key    signingKey
}

func newWebhooks(g guard, key signingKey, timeout time.Duration) *webhooks {
	transport := &http.Transport{
		// Never through a proxy: the guard must see the address dialed.
		Proxy:                 nil,
		DialContext:           g.dialer(timeout).DialContext,
		TLSHandshakeTimeout:   timeout,
		ResponseHeaderTimeout: timeout,
		MaxIdleConns:          64,
		MaxIdleConnsPerHost:   8,
		IdleConnTimeout:       90 * time.Second,
		ForceAttemptHTTP2:     true,
	}
	return &webhooks{key: key, client: &http.Client{
		Transport: transport,
		Timeout:   timeout,
		// A redirect is not a delivery: following it could lead past the
		// guard's intent to another host. It counts as a failure.
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}}
}

// send posts d's body, signed, and succeeds on a 2xx answer.
func (w *webhooks) send(ctx context.Context, d outgoing) error {
	body := []byte(d.Body)
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, d.Recipient, bytes.NewReader(body))
	if err != nil {
		return permanent(fmt.Errorf("building the request: %w", err))
	}
	req.Header.Set("Content-Type", "application/json")
	req.Header.Set("User-Agent", "microshop-notifications/1")
	req.Header.Set(HeaderEventID, d.EventID)
	req.Header.Set(HeaderEventType, d.EventType)
	req.Header.Set(HeaderDeliveryID, d.ID)
	req.Header.Set(HeaderSignature, Sign(w.key.secret(d.EndpointID), time.Now(), body))
	resp, err := w.client.Do(req)
	if err != nil {
		return fmt.Errorf("posting to %s: %w", redactURL(d.Recipient), unwrapURLError(err))
	}
	defer resp.Body.Close()
	_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 64<<10)) // so the connection is reused
	if resp.StatusCode >= 200 && resp.StatusCode < 300 {
		return nil
	}
	// The status code only: echoing what the receiver said would let
	// whoever registers a webhook read answers from hosts they cannot
	// reach themselves.
	return fmt.Errorf("the receiver answered %d", resp.StatusCode)
}

// unwrapURLError drops *url.Error's "Post <url>:" prefix; the caller names
// the host itself.
func unwrapURLError(err error) error {
	var ue interface{ Unwrap() error }
	if errors.As(err, &ue) {
		if inner := ue.Unwrap(); inner != nil && strings.HasPrefix(err.Error(), "Post ") {
			return inner
		}
	}
	return err
}

// redactURL keeps a URL's scheme, host and path: its query may carry a
// token the receiver asked for.
func redactURL(raw string) string {
	if i := strings.IndexAny(raw, "?#"); i >= 0 {
		return raw[:i]
	}
	return raw
}
