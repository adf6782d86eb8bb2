package server_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/server"
)

// serve runs s on a real loopback port until the test ends.
func serve(t *testing.T, s *server.Server) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan struct{})
	go func() { defer close(done); _ = s.Serve(ctx, ln, time.Second) }()
	t.Cleanup(func() { cancel(); <-done })
	return ln.Addr().String()
}

// dialFrom connects to addr from the loopback address from, so a test can
// be two clients; it skips where only 127.0.0.1 is loopback (macOS).
func dialFrom(t *testing.T, from, addr string) net.Conn {
	t.Helper()
	d := net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(from)}, Timeout: time.Second}
	c, err := d.Dial("tcp", addr)
	if err != nil {
		t.Skipf("cannot connect from %s: %v", from, err)
	}
	return c
}

// readAnswer reads one HTTP answer from c within a second.
func readAnswer(t *testing.T, c net.Conn) *http.Response {
	t.Helper()
	_ = c.SetReadDeadline(time.Now().Add(2 * time.Second))
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		t.Fatalf("reading the answer: %v", err)
	}
	t.Cleanup(func() { res.Body.Close() })
	return res
}

func TestSlowBodyIs408AndCloses(t *testing.T) {
	addr := serve(t, newServer(t, server.Options{Limits: &server.Limits{BodyGrace: 300 * time.Millisecond, BodyMinRate: 1 << 10}}))
	c := dialFrom(t, "127.0.0.1", addr)
	defer c.Close()
	start := time.Now()
	fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 1000\r\n\r\n{")
	res := readAnswer(t, c)
	if res.StatusCode != http.StatusRequestTimeout || !res.Close {
		t.Fatalf("answer %d, Connection: close %t; want 408 and close", res.StatusCode, res.Close)
	}
	if p := decodeProblem(t, res); p.Type != problem.SlowBody().Type {
		t.Errorf("problem %+v", p)
	}
	if took := time.Since(start); took > time.Second {
		t.Errorf("the 408 took %s", took)
	}
	if _, err := c.Read(make([]byte, 1)); err != io.EOF {
		t.Errorf("the connection stayed open: %v", err)
	}
}

func TestSteadySlowUploadGoesThrough(t *testing.T) {
	// 1.5 s for a body, well past the grace: a whole-request deadline of
	// that length would cut it; the minimum rate lets it through.
	addr := serve(t, newServer(t, server.Options{Limits: &server.Limits{BodyGrace: 300 * time.Millisecond, BodyMinRate: 1 << 10}}))
	c := dialFrom(t, "127.0.0.1", addr)
	defer c.Close()
	body := `{"text":"` + strings.Repeat("a", 3000) + `"}`
	fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: %d\r\n\r\n", len(body))
	for chunk := range slicesOf(body, 300) {
		if _, err := io.WriteString(c, chunk); err != nil {
			t.Fatal(err)
		}
		time.Sleep(150 * time.Millisecond) // 2 KiB/s
	}
	if res := readAnswer(t, c); res.StatusCode != http.StatusOK {
		t.Fatalf("a steady upload got %d", res.StatusCode)
	}
}

func slicesOf(s string, n int) func(func(string) bool) {
	return func(yield func(string) bool) {
		for len(s) > 0 {
			k := min(n, len(s))
			if !yield(s[:k]) {
				return
			}
			s = s[k:]
		}
	}
}

func TestHugeHeadersAre431Problem(t *testing.T) {
	addr := serve(t, newServer(t, server.Options{}))
	req, _ := http.NewRequest(http.MethodGet, "http://"+addr+"/healthz", nil)
	req.Header.Set("X-Big", strings.Repeat("b", 40<<10))
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	if res.StatusCode != http.StatusRequestHeaderFieldsTooLarge {
		t.Fatalf("status %d, want 431", res.StatusCode)
	}
	if p := decodeProblem(t, res); p.Status != http.StatusRequestHeaderFieldsTooLarge {
		t.Errorf("problem %+v", p)
	}
}

func TestConnectionsPerClient(t *testing.T) {
	lim := server.DefaultLimits()
	lim.MaxConnsPerClient = 3
	addr := serve(t, newServer(t, server.Options{Limits: &lim}))
	var held []net.Conn
	for range 3 {
		c := dialFrom(t, "127.0.0.1", addr)
		defer c.Close()
		held = append(held, c)
	}
	// Accepting is asynchronous: give the server a moment to count them.
	time.Sleep(100 * time.Millisecond)
	over := dialFrom(t, "127.0.0.1", addr)
	defer over.Close()
	fmt.Fprintf(over, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	res := readAnswer(t, over)
	if res.StatusCode != http.StatusServiceUnavailable || res.Header.Get("Retry-After") == "" {
		t.Fatalf("a fourth connection got %d %v", res.StatusCode, res.Header)
	}
	decodeProblem(t, res)

	other := dialFrom(t, "127.0.0.2", addr)
	defer other.Close()
	fmt.Fprintf(other, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
	if res := readAnswer(t, other); res.StatusCode != http.StatusOK {
		t.Fatalf("another address got %d", res.StatusCode)
	}

	held[0].Close()
	deadline := time.Now().Add(2 * time.Second)
	for {
		c := dialFrom(t, "127.0.0.1", addr)
		fmt.Fprintf(c, "GET /healthz HTTP/1.1\r\nHost: x\r\n\r\n")
		res := readAnswer(t, c)
		c.Close()
		if res.StatusCode == http.StatusOK {
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a closed connection never gave its slot back")
		}
		time.Sleep(50 * time.Millisecond)
	}
}

// TestSlowBodyFloodLeavesOthersServed floods a server from 127.0.0.1 with
// uploads that send a byte every 300 ms, more of them than the server
// handles at once, and asks it something from 127.0.0.2 meanwhile. With
// the limits on, the other address is answered within a second; with
// them off, the same flood starves it, which shows the test can fail.
func TestSlowBodyFloodLeavesOthersServed(t *testing.T) {
	limited := &server.Limits{BodyGrace: 300 * time.Millisecond, BodyMinRate: 1 << 10, MaxConnsPerClient: 8}
	for _, c := range []struct {
		name    string
		limits  *server.Limits
		starved bool
	}{
		{"limits on", limited, false},
		{"limits off", &server.Limits{}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			addr := serve(t, newServer(t, server.Options{MaxInFlight: 16, Limits: c.limits}))
			probe := dialFrom(t, "127.0.0.2", addr)
			probe.Close()

			ctx, stop := context.WithCancel(context.Background())
			var wg sync.WaitGroup
			for range 40 {
				wg.Go(func() { trickle(ctx, addr) })
			}
			defer func() { stop(); wg.Wait() }()
			time.Sleep(time.Second) // the flood takes every slot it can

			var worst time.Duration
			failed := 0
			for range 5 {
				start := time.Now()
				ok := ask(t, addr)
				worst = max(worst, time.Since(start))
				if !ok || time.Since(start) > time.Second {
					failed++
				}
				time.Sleep(200 * time.Millisecond)
			}
			switch {
			case !c.starved && failed > 0:
				t.Fatalf("%d of 5 requests from another address failed or took over 1s (worst %s)", failed, worst)
			case c.starved && failed == 0:
				t.Fatalf("without limits the flood should starve the server, yet every request was answered (worst %s)", worst)
			}
		})
	}
}

// trickle keeps uploading a body a byte every 300 ms, reconnecting
// whenever the server ends a connection, until ctx ends.
func trickle(ctx context.Context, addr string) {
	for ctx.Err() == nil {
		c, err := net.DialTimeout("tcp", addr, time.Second)
		if err != nil {
			time.Sleep(50 * time.Millisecond)
			continue
		}
		_, err = fmt.Fprintf(c, "POST /echo HTTP/1.1\r\nHost: x\r\nContent-Type: application/json\r\nContent-Length: 100000\r\n\r\n{")
		for err == nil && ctx.Err() == nil {
			select {
			case <-ctx.Done():
			case <-time.After(300 * time.Millisecond):
				_, err = c.Write([]byte(" "))
			}
		}
		c.Close()
	}
}

// ask sends one request from 127.0.0.2 and reports whether it got a 200.
func ask(t *testing.T, addr string) bool {
	c := dialFrom(t, "127.0.0.2", addr)
	defer c.Close()
	_ = c.SetDeadline(time.Now().Add(3 * time.Second))
	fmt.Fprintf(c, "GET /things/1 HTTP/1.1\r\nHost: x\r\n\r\n")
	res, err := http.ReadResponse(bufio.NewReader(c), nil)
	if err != nil {
		return false
	}
	res.Body.Close()
	return res.StatusCode == http.StatusOK
}
