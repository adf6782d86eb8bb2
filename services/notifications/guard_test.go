package notifications

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func TestAddressProblem(t *testing.T) {
	for addr, want := range map[string]string{
		"127.0.0.1":         "loopback",
		"127.9.9.9":         "loopback",
		"::1":               "loopback",
		"::ffff:127.0.0.1":  "loopback",
		"10.0.0.1":          "private",
		"172.16.5.4":        "private",
		"192.168.1.1":       "private",
		"fd00::1":           "private",
		"169.254.169.254":   "link-local",
		"fe80::1":           "link-local",
		"0.0.0.0":           "unspecified",
		"::":                "unspecified",
		"239.1.2.3":         "multicast",
		"ff05::1":           "multicast",
		"224.0.0.1":         "link-local",
		"100.100.100.200":   "shared",
		"255.255.255.255":   "broadcast",
		"0.1.2.3":           "this network",
		"64:ff9b::a00:1":    "NAT64",
		"2002:7f00:1::":     "6to4",
		"93.184.215.14":     "",
		"2606:4700::6810:1": "",
		"8.8.8.8":           "",
	} {
		got := addressProblem(netip.MustParseAddr(addr))
		if (want == "") != (got == "") || !strings.Contains(got, want) {
			t.Errorf("addressProblem(%s) = %q, want one saying %q", addr, got, want)
		}
	}
}

func TestCheckURL(t *testing.T) {
	strict := guard{resolver: net.DefaultResolver}
	open := guard{allowPrivate: true, resolver: net.DefaultResolver}
	long := "https://example.com/" + strings.Repeat("a", MaxURLLength)
	for _, c := range []struct {
		url          string
		strict, open string // "" allowed, else a word of the reason
	}{
		{"file:///etc/passwd", "http", "http"},
		{"ftp://example.com/x", "http", "http"},
		{"gopher://example.com", "http", "http"},
		{"http:///nohost", "host", "host"},
		{"https://user:pw@example.com/x", "credentials", "credentials"},
		{long, "2048", "2048"},
		{"http://127.0.0.1:9/hook", "loopback", ""},
		{"http://[::1]/hook", "loopback", ""},
		{"http://169.254.169.254/latest/meta-data", "link-local", ""},
		{"http://10.0.0.1/hook", "private", ""},
		{"http://0.0.0.0/hook", "unspecified", ""},
		{"http://localhost:8080/hook", "loopback", ""},
		{"http://93.184.215.14/hook", "", ""},
	} {
		for _, g := range []struct {
			guard guard
			want  string
		}{{strict, c.strict}, {open, c.open}} {
			got := g.guard.checkURL(context.Background(), c.url)
			if (g.want == "") != (got == "") || !strings.Contains(got, g.want) {
				t.Errorf("checkURL(%.60q, allowPrivate=%v) = %q, want one saying %q", c.url, g.guard.allowPrivate, got, g.want)
			}
		}
	}
}

// TestDialTimeGuard: a URL that passed registration is checked again
// where it is dialed, so a name that now resolves to a private address
// (DNS rebinding) reaches nothing.
func TestDialTimeGuard(t *testing.T) {
	var hits atomic.Int32
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { hits.Add(1) }))
	defer srv.Close()
	key := signingKey(strings.Repeat("k", 32))
	port := srv.URL[strings.LastIndex(srv.URL, ":"):]
	for _, url := range []string{srv.URL + "/hook", "http://localhost" + port + "/hook"} {
		d := outgoing{ID: "d1", EventID: "e1", EventType: "users.registered", EndpointID: "ep", Recipient: url, Body: "{}"}
		strict := newWebhooks(guard{resolver: net.DefaultResolver}, key, 2*time.Second)
		err := strict.send(context.Background(), d)
		if err == nil || !strings.Contains(err.Error(), "refusing to connect to 127.0.0.1: a loopback address") {
			t.Errorf("%s without allow-private: %v", url, err)
		}
		open := newWebhooks(guard{allowPrivate: true, resolver: net.DefaultResolver}, key, 2*time.Second)
		if err := open.send(context.Background(), d); err != nil {
			t.Errorf("%s with allow-private: %v", url, err)
		}
	}
	if n := hits.Load(); n != 2 {
		t.Errorf("the receiver got %d requests, want 2 (only the allowed ones)", n)
	}
}

func TestWebhookAnswers(t *testing.T) {
	status := http.StatusOK
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if status == http.StatusFound {
			http.Redirect(w, r, "http://169.254.169.254/", status)
			return
		}
		if status == 0 {
			time.Sleep(300 * time.Millisecond)
			return
		}
		w.WriteHeader(status)
		_, _ = w.Write([]byte("nope\r\nsecond line"))
	}))
	defer srv.Close()
	w := newWebhooks(guard{allowPrivate: true, resolver: net.DefaultResolver}, signingKey(strings.Repeat("k", 32)), 100*time.Millisecond)
	d := outgoing{ID: "d1", EventID: "e1", EventType: "users.registered", EndpointID: "ep", Recipient: srv.URL + "/hook?token=abc", Body: "{}"}
	for _, c := range []struct {
		status int
		want   string
	}{
		{http.StatusOK, ""},
		{http.StatusNoContent, ""},
		{http.StatusInternalServerError, "the receiver answered 500"},
		{http.StatusBadRequest, "answered 400"},
		{http.StatusFound, "answered 302"}, // a redirect is not followed
		{0, "Timeout"},                     // slower than --webhook-timeout
	} {
		status = c.status
		err := w.send(context.Background(), d)
		if (c.want == "") != (err == nil) || (err != nil && !strings.Contains(err.Error(), c.want)) {
			t.Errorf("status %d: %v, want %q", c.status, err, c.want)
		}
		if err != nil && strings.Contains(err.Error(), "nope") {
			t.Errorf("the error shows what the receiver answered: %v", err)
		}
		if err != nil && strings.Contains(err.Error(), "token=abc") {
			t.Errorf("the error shows the URL's query: %v", err)
		}
	}
}
