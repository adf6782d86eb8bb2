//go:build unix

package mtls_test

import (
	"bufio"
	"context"
	"io"
	"net"
	"net/http"
	"strings"
	"syscall"
	"testing"
)

// BenchmarkHandshake: what a new connection between two services costs,
// both ends together, with one small request on it: plain TCP, a full
// mutual TLS handshake (certificates exchanged and verified both ways),
// and a resumed one (a session ticket from an earlier connection to the
// same replica). Connections are kept alive between calls, so this is
// paid per connection, not per call.
//
//	go test -run '^$' -bench Handshake ./internal/platform/mtls
func BenchmarkHandshake(b *testing.B) {
	dir := system(b, "orders", "inventory")
	orders := identity(b, dir, "orders")
	srv := identity(b, dir, "inventory").ServerConfig()
	hello := http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) { io.WriteString(w, "ok") })

	b.Run("plain", func(b *testing.B) {
		ln, _ := net.Listen("tcp", "127.0.0.1:0")
		go http.Serve(ln, hello)
		defer ln.Close()
		d := &net.Dialer{}
		measure(b, func() net.Conn {
			c, err := d.Dial("tcp", ln.Addr().String())
			if err != nil {
				b.Fatal(err)
			}
			return c
		})
	})
	for _, resume := range []bool{false, true} {
		name := "full"
		if resume {
			name = "resumed"
		}
		b.Run(name, func(b *testing.B) {
			ln, _ := net.Listen("tcp", "127.0.0.1:0")
			go (&http.Server{Handler: hello, TLSConfig: srv.Clone()}).ServeTLS(ln, "", "")
			defer ln.Close()
			dial := orders.DialTLS("inventory")
			measure(b, func() net.Conn {
				if !resume {
					dial = orders.DialTLS("inventory") // a new session cache: nothing to resume
				}
				c, err := dial(context.Background(), "tcp", ln.Addr().String())
				if err != nil {
					b.Fatal(err)
				}
				return c
			})
		})
	}
}

// measure opens a connection with open, sends one request on it, reads
// the answer and closes it, per iteration, and reports the CPU of both
// ends per connection.
func measure(b *testing.B, open func() net.Conn) {
	one := func() {
		c := open()
		io.WriteString(c, "GET / HTTP/1.1\r\nHost: inventory\r\nConnection: close\r\n\r\n")
		resp, err := http.ReadResponse(bufio.NewReader(c), nil)
		if err != nil {
			b.Fatal(err)
		}
		body, _ := io.ReadAll(resp.Body)
		c.Close()
		if !strings.Contains(string(body), "ok") {
			b.Fatalf("answer %q", body)
		}
	}
	one() // a session to resume
	b.ReportAllocs()
	start := cpuTime()
	for b.Loop() {
		one()
	}
	b.ReportMetric(float64(cpuTime()-start)/float64(b.N), "cpu-ns/op")
}

func cpuTime() int64 {
	var ru syscall.Rusage
	_ = syscall.Getrusage(syscall.RUSAGE_SELF, &ru)
	return ru.Utime.Nano() + ru.Stime.Nano()
}
