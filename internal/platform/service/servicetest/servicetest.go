// Package servicetest runs a real service in a test: its real runtime,
// a real SQLite file (or Postgres), a real embedded NATS server, and real
// HTTP on a loopback port. Tests talk to it as a client would. A Shop is
// what every service's test stands on: the NATS server, a real users
// service with an admin and a customer, and service identity keys, with
// the service under test, or a whole system, started on it.
package servicetest

import (
	"bufio"
	"context"
	"encoding/json"
	"io"
	"log/slog"
	"net/http"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/platform/service"
)

// NATS starts an embedded JetStream server for t and returns its URL.
func NATS(t testing.TB) string {
	t.Helper()
	log := slog.New(slog.NewTextHandler(io.Discard, nil))
	srv, err := broker.StartEmbedded(t.TempDir(), "127.0.0.1", 0, log)
	if err != nil {
		t.Fatalf("starting embedded nats: %v", err)
	}
	t.Cleanup(srv.Shutdown)
	return srv.URL()
}

// Service is a running service.
type Service struct {
	URL  string
	Logs *Logs
	stop func()

	spec  service.Spec
	again []string // the args that start it again on its address and data
	env   map[string]string
}

// Stop stops the service gracefully and waits for it.
func (s *Service) Stop() { s.stop() }

// Restart starts a stopped service again as it was started, on its
// address and its data directory, and returns it.
func (s *Service) Restart(t testing.TB) *Service {
	t.Helper()
	return Start(t, s.spec, s.again, s.env)
}

// Start runs spec with args (flags of `microshop serve`) and env (the
// MICROSHOP_* variables), on a free loopback port, with its data in a
// temporary directory unless args say otherwise. It returns once /readyz
// answers 200, and stops the service when t ends.
func Start(t testing.TB, spec service.Spec, args []string, env map[string]string) *Service {
	t.Helper()
	getenv := func(k string) string { return env[k] }
	data := t.TempDir()
	full := append([]string{"--addr", "127.0.0.1:0", "--data", data, "--log-level", "debug"}, args...)
	logs := &Logs{addr: make(chan string, 1)}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- service.Run(ctx, spec, full, getenv, logs, logs) }()

	var addr string
	select {
	case addr = <-logs.addr:
	case err := <-done:
		cancel()
		t.Fatalf("%s exited while starting: %v\nlogs:\n%s", spec.Name, err, logs.String())
	case <-time.After(20 * time.Second):
		cancel()
		t.Fatalf("%s did not start listening within 20s\nlogs:\n%s", spec.Name, logs.String())
	}
	url := "http://" + addr
	var once sync.Once
	stop := func() {
		once.Do(func() {
			cancel()
			select {
			case err := <-done:
				if err != nil {
					t.Errorf("%s stopped with an error: %v", spec.Name, err)
				}
			case <-time.After(20 * time.Second):
				t.Errorf("%s did not stop within 20s", spec.Name)
			}
		})
	}
	t.Cleanup(stop)
	WaitReady(t, url, 20*time.Second)
	// A later flag wins: args may name another data directory, and the
	// address comes last.
	again := append(append([]string{"--data", data}, args...), "--addr", addr)
	return &Service{URL: url, Logs: logs, stop: stop, spec: spec, again: again, env: env}
}

// WaitReady polls url/readyz until it answers 200.
func WaitReady(t testing.TB, url string, within time.Duration) {
	t.Helper()
	deadline := time.Now().Add(within)
	var last string
	for time.Now().Before(deadline) {
		resp, err := http.Get(url + "/readyz")
		if err == nil {
			b, _ := io.ReadAll(resp.Body)
			resp.Body.Close()
			if resp.StatusCode == http.StatusOK {
				return
			}
			last = string(b)
		} else {
			last = err.Error()
		}
		time.Sleep(20 * time.Millisecond)
	}
	t.Fatalf("%s was not ready within %s: %s", url, within, last)
}

// Logs collects a service's JSON log lines and spots the line that says
// where it listens.
type Logs struct {
	mu   sync.Mutex
	buf  strings.Builder
	part string
	addr chan string
	sent bool
}

func (l *Logs) Write(p []byte) (int, error) {
	l.mu.Lock()
	defer l.mu.Unlock()
	l.buf.Write(p)
	l.part += string(p)
	sc := bufio.NewScanner(strings.NewReader(l.part))
	consumed := 0
	for sc.Scan() {
		line := sc.Text()
		if consumed+len(line)+1 > len(l.part) {
			break // an unfinished line; keep it for the next write
		}
		consumed += len(line) + 1
		var rec struct {
			Msg  string `json:"msg"`
			Addr string `json:"addr"`
		}
		if json.Unmarshal([]byte(line), &rec) == nil && rec.Msg == "serving" && !l.sent {
			l.sent = true
			l.addr <- rec.Addr
		}
	}
	l.part = l.part[consumed:]
	return len(p), nil
}

// String returns everything logged so far.
func (l *Logs) String() string {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.buf.String()
}

// Contains reports whether any log line contains s.
func (l *Logs) Contains(s string) bool { return strings.Contains(l.String(), s) }
