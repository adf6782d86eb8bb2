package server

import (
	"context"
	"errors"
	"io"
	"log/slog"
	"net"
	"net/http"
	"sync"
	"testing"
	"time"
)

func TestShedsLoadPastMaxInFlightButNotProbes(t *testing.T) {
	release := make(chan struct{})
	s := New(Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), MaxInFlight: 2})
	s.Router.Get("/slow", func(w http.ResponseWriter, r *http.Request) { <-release })
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	go s.Serve(ctx, ln, time.Second)
	defer cancel()
	url := "http://" + ln.Addr().String()

	var wg sync.WaitGroup
	for range 2 {
		wg.Add(1)
		go func() {
			defer wg.Done()
			resp, err := http.Get(url + "/slow")
			if err == nil {
				resp.Body.Close()
			}
		}()
	}
	// The requests above may not have reached the handler yet, and then
	// this one takes their slot and waits for release: a timeout lets
	// the loop go on (that slot stays held, so the next one is shed).
	probe := &http.Client{Timeout: 500 * time.Millisecond}
	deadline := time.Now().Add(5 * time.Second)
	for {
		if time.Now().After(deadline) {
			t.Fatal("a third request was never shed")
		}
		resp, err := probe.Get(url + "/slow")
		var ne net.Error
		if errors.As(err, &ne) && ne.Timeout() {
			continue
		}
		if err != nil {
			t.Fatal(err)
		}
		resp.Body.Close()
		if resp.StatusCode == http.StatusServiceUnavailable {
			if resp.Header.Get("Retry-After") != "1" || resp.Header.Get("Content-Type") != "application/problem+json" {
				t.Fatalf("shed answer: %v", resp.Header)
			}
			break
		}
		if time.Now().After(deadline) {
			t.Fatal("a third request was never shed")
		}
	}
	if resp, _ := http.Get(url + "/readyz"); resp.StatusCode != http.StatusOK {
		t.Fatalf("a probe was shed: %d", resp.StatusCode)
	}
	close(release)
	wg.Wait()
}

func TestDrainDelayKeepsServingUnready(t *testing.T) {
	// Two seconds of delay: on a busy machine with -race, the two requests
	// below must both land inside it.
	s := New(Options{Log: slog.New(slog.NewTextHandler(io.Discard, nil)), DrainDelay: 2 * time.Second})
	s.Router.Get("/work", func(w http.ResponseWriter, r *http.Request) {})
	ln, _ := net.Listen("tcp", "127.0.0.1:0")
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- s.Serve(ctx, ln, time.Second) }()
	url := "http://" + ln.Addr().String()
	cancel()
	time.Sleep(50 * time.Millisecond)
	resp, err := http.Get(url + "/readyz")
	if err != nil || resp.StatusCode != http.StatusServiceUnavailable {
		t.Fatalf("during the drain delay /readyz must answer 503: %v %v", resp, err)
	}
	if resp, err := http.Get(url + "/work"); err != nil || resp.StatusCode != 200 {
		t.Fatalf("during the drain delay requests are still served: %v %v", resp, err)
	}
	if err := <-done; err != nil {
		t.Fatal(err)
	}
	if _, err := http.Get(url + "/work"); err == nil {
		t.Fatal("still listening after the drain")
	}
}
