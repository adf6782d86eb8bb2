package notifications

import (
	"context"
	"net"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"
)

func TestGuardBlocksDocumentationRangesAndOwnAddresses(t *testing.T) {
	own, err := ownAddresses()
	if err != nil {
		t.Fatal(err)
	}
	g := guard{own: append(own, netip.MustParseAddr("93.184.215.14")), resolver: net.DefaultResolver}
	for _, c := range []struct{ addr, want string }{
		{"192.0.2.7:80", "documentation"},
		{"198.51.100.1:443", "documentation"},
		{"203.0.113.200:8080", "documentation"},
		{"[2001:db8::1]:80", "documentation"},
		{"93.184.215.14:80", "this host"}, // a public address, but the host's own
		{"8.8.8.8:443", ""},
	} {
		got := g.problem(netip.MustParseAddrPort(c.addr))
		if (c.want == "") != (got == "") || !strings.Contains(got, c.want) {
			t.Errorf("%s: %q, want one saying %q", c.addr, got, c.want)
		}
	}
}

// TestAllowedReceiverOnly lets one named loopback receiver through and
// keeps every other local port blocked, at registration and on the dial.
func TestAllowedReceiverOnly(t *testing.T) {
	named := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer named.Close()
	other := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {}))
	defer other.Close()
	allow, err := ParseAllow(strings.TrimPrefix(named.URL, "http://"))
	if err != nil {
		t.Fatal(err)
	}
	g := guard{allow: allow, resolver: net.DefaultResolver}
	if why := g.checkURL(context.Background(), named.URL+"/hook"); why != "" {
		t.Errorf("the named receiver: %s", why)
	}
	if why := g.checkURL(context.Background(), other.URL+"/hook"); !strings.Contains(why, "loopback") {
		t.Errorf("another local port: %q, want it refused", why)
	}
	w := newWebhooks(g, signingKey(strings.Repeat("k", 32)), time.Second)
	d := outgoing{ID: "d1", EventID: "e1", EventType: "users.registered", EndpointID: "ep", Body: "{}"}
	d.Recipient = named.URL + "/hook"
	if err := w.send(context.Background(), d); err != nil {
		t.Errorf("delivering to the named receiver: %v", err)
	}
	d.Recipient = other.URL + "/hook"
	if err := w.send(context.Background(), d); err == nil || !strings.Contains(err.Error(), "refusing") {
		t.Errorf("delivering to another local port: %v, want it refused", err)
	}
	if _, err := ParseAllow("localhost"); err == nil {
		t.Error("ParseAllow took a name without a port")
	}
}
