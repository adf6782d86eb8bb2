package main

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"time"
)

// The control socket lets tools and tests act on a running `microshop run`
// without knowing its secrets: <data>/control.sock, plain HTTP over a unix
// socket that only the owner can open.
//
//	GET  /status                    the processes, as in run.json, with liveness
//	POST /services/{name}/start     start a process that has stopped
//	POST /services/{name}/scale?n=N run N replicas of a service
//	POST /services/{name}/restart   replace every replica, one at a time

func controlPath(data string) string { return filepath.Join(data, "control.sock") }

func (s *supervisor) serveControl(ctx context.Context) (net.Listener, error) {
	path := controlPath(s.data)
	_ = os.Remove(path) // a stale socket from a run that was killed
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("opening the control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(s.snapshot())
	})
	mux.HandleFunc("POST /services/{name}/start", func(w http.ResponseWriter, r *http.Request) {
		c, err := s.start(r.PathValue("name"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		if err := waitReady(r.Context(), []*child{c}, 30*time.Second); err != nil {
			http.Error(w, err.Error(), http.StatusServiceUnavailable)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(c)
	})
	mux.HandleFunc("POST /services/{name}/scale", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil {
			http.Error(w, "n must be a number of replicas", http.StatusBadRequest)
			return
		}
		replicas, err := s.scale(r.Context(), r.PathValue("name"), n)
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(replicas)
	})
	mux.HandleFunc("POST /services/{name}/restart", func(w http.ResponseWriter, r *http.Request) {
		replicas, err := s.restart(r.Context(), r.PathValue("name"))
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(replicas)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			s.log.Warn("control socket stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
		_ = os.Remove(path)
	}()
	return ln, nil
}

// controlClient talks to the control socket of the system using data.
func controlClient(data string) *http.Client {
	return &http.Client{
		Timeout: 5 * time.Minute, // a rolling restart of five replicas takes a while
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", controlPath(data))
		}},
	}
}
