package gateway_test

import (
	"bufio"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"
)

// TestSlowBodyIsAnsweredByTheGateway sends a login whose body trickles:
// the gateway answers 408 itself within its grace and closes the
// connection, rather than holding it, and users never sees a request.
func TestSlowBodyIsAnsweredByTheGateway(t *testing.T) {
	users := newStandIn(t, "users")
	gw := startGateway(t, users.srv.URL, nil, "--body-grace", "300ms", "--body-min-rate", "1024")
	u, _ := url.Parse(gw.URL)
	c, err := net.DialTimeout("tcp", u.Host, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	start := time.Now()
	fmt.Fprintf(c, "POST /api/users/login HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusRequestTimeout || !res.Close {
		t.Fatalf("got %d (close %t), want 408 and the connection closed", res.StatusCode, res.Close)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the 408 took %s", took)
	}
}

// TestConnectionsPerClientAtTheGateway holds the gateway's limit of
// connections from one address open and checks that one more is refused
// with a 503 problem at once.
func TestConnectionsPerClientAtTheGateway(t *testing.T) {
	gw := startGateway(t, newStandIn(t, "users").srv.URL, nil, "--max-conns-per-client", "2")
	u, _ := url.Parse(gw.URL)
	for range 2 {
		c, err := net.DialTimeout("tcp", u.Host, time.Second)
		if err != nil {
			t.Fatal(err)
		}
		defer c.Close()
	}
	time.Sleep(100 * time.Millisecond)
	c, err := net.DialTimeout("tcp", u.Host, time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer c.Close()
	fmt.Fprintf(c, "GET /status HTTP/1.1\r\nHost: x\r\n\r\n")
	_ = c.SetReadDeadline(time.Now().Add(3 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("no answer: %v", err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("a third connection got %d %s", res.StatusCode, res.Header.Get("Content-Type"))
	}
}

// TestMetricsPort reads the gateway's metrics on --metrics-addr; the
// public port serves them to loopback clients only (its check is
// TestMetricsOnlyForLoopback, inside the package).
func TestMetricsPort(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	startGateway(t, newStandIn(t, "users").srv.URL, nil, "--metrics-addr", addr)
	r := do(t, http.MethodGet, "http://"+addr+"/metrics", "", nil)
	if r.Status != http.StatusOK || !strings.Contains(string(r.Body), "http_server_requests_in_flight") {
		t.Fatalf("metrics port: %d %.200s", r.Status, r.Body)
	}
}
