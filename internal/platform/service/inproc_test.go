package service_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/url"
	"strings"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/client"
	"github.com/microshop/microshop/internal/platform/config"
	"github.com/microshop/microshop/internal/platform/inproc"
	"github.com/microshop/microshop/internal/platform/service"
)

func freeAddr(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	return ln.Addr().String()
}

// Two services in one process with a shared registry: alpha calls beta
// through the runtime's Transport, which hands the call to beta's handler
// (its whole middleware) without a socket; beta drains a call in flight
// when it stops, and refuses new ones once its listener has closed.
func TestServicesSharingARegistryCallEachOtherInProcess(t *testing.T) {
	alphaAddr, betaAddr := freeAddr(t), freeAddr(t)
	release := make(chan struct{})
	inSlow := make(chan struct{}, 1)
	beta := service.Spec{Name: "beta", Port: 1, Setup: func(f *config.Flags) service.Build {
		return func(ctx context.Context, rt *service.Runtime) error {
			internal := rt.Server.Router.With(auth.RequireService(rt.ServiceKeys, "alpha"))
			internal.Get("/internal/peer", func(w http.ResponseWriter, r *http.Request) {
				// RemoteAddr tells how the call came; the request id that
				// the shared middleware set, and the caller the credential
				// named, tell it went through the middleware.
				fmt.Fprintf(w, `{"peer":%q,"request_id":%q}`, r.RemoteAddr,
					r.Header.Get("X-Request-Id")+"/"+auth.CallerFromContext(r.Context()))
			})
			internal.Get("/internal/slow", func(w http.ResponseWriter, r *http.Request) {
				inSlow <- struct{}{}
				<-release
				fmt.Fprint(w, `{"peer":"slow"}`)
			})
			return nil
		}
	}}
	alpha := service.Spec{Name: "alpha", Port: 1, Calls: []string{"beta"}, Setup: func(f *config.Flags) service.Build {
		return func(ctx context.Context, rt *service.Runtime) error {
			if rt.Transport == nil {
				return errors.New("no transport from a runtime with a registry")
			}
			cl := client.New("beta", rt.URL("beta"), rt.Credentials, client.Options{Transport: rt.Transport, Attempts: 1}, rt.ClientMetrics)
			rt.Server.Router.Get("/api/alpha/{what}", func(w http.ResponseWriter, r *http.Request) {
				var out struct {
					Peer      string `json:"peer"`
					RequestID string `json:"request_id"`
				}
				if err := cl.Do(r.Context(), client.Call{Method: http.MethodGet, Path: "/internal/" + r.PathValue("what"), Out: &out}); err != nil {
					http.Error(w, err.Error(), http.StatusBadGateway)
					return
				}
				fmt.Fprintf(w, "%s %s", out.Peer, out.RequestID)
			})
			return nil
		}
	}}

	reg := inproc.NewRegistry()
	dead := "http://" + freeAddr(t) // no users: the key set's fetch just fails
	env := func(string) string { return "" }
	seeds, publics, err := auth.GenerateServiceKeys([]string{"alpha", "beta"})
	if err != nil {
		t.Fatal(err)
	}
	run := func(ctx context.Context, spec service.Spec, args ...string) chan error {
		done := make(chan error, 1)
		go func() {
			done <- service.RunWith(ctx, spec, append(args, "--data", t.TempDir(), "--users-url", dead, "--drain-timeout", "5s",
				"--service-key", seeds[spec.Name], "--service-keys", publics),
				env, io.Discard, io.Discard, service.Options{Registry: reg})
		}()
		return done
	}
	betaCtx, stopBeta := context.WithCancel(context.Background())
	defer stopBeta()
	alphaCtx, stopAlpha := context.WithCancel(context.Background())
	defer stopAlpha()
	betaDone := run(betaCtx, beta, "--addr", betaAddr)
	alphaDone := run(alphaCtx, alpha, "--addr", alphaAddr, "--beta-url", "http://"+betaAddr)
	waitServing(t, reg, "http://"+alphaAddr, "http://"+betaAddr)

	get := func(path string) (int, string) {
		resp, err := http.Get("http://" + alphaAddr + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, _ := io.ReadAll(resp.Body)
		return resp.StatusCode, string(b)
	}
	// The test reaches alpha over the network; alpha reaches beta in-process.
	code, body := get("/api/alpha/peer")
	if peer, id, _ := strings.Cut(body, " "); code != 200 || peer != inproc.RemoteAddr || !strings.HasSuffix(id, "/alpha") || len(id) < 8 {
		t.Fatalf("alpha's call to beta: %d %q", code, body)
	}
	// Beta is on its own port for everyone else.
	resp, err := http.Get("http://" + betaAddr + "/healthz")
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	// Without alpha's credential beta refuses, in-process or not.
	resp, err = reg.Transport().RoundTrip(mustRequest(t, "http://"+betaAddr+"/internal/peer"))
	if err != nil {
		t.Fatal(err)
	}
	resp.Body.Close()
	if resp.StatusCode != http.StatusUnauthorized {
		t.Fatalf("an in-process call without a credential: %d", resp.StatusCode)
	}

	// Stopping beta while alpha's call is in flight: the call finishes.
	slow := make(chan string, 1)
	go func() {
		_, body := get("/api/alpha/slow")
		slow <- body
	}()
	<-inSlow
	stopBeta()
	deadline := time.Now().Add(5 * time.Second)
	for reg.Serves(mustParse(t, "http://"+betaAddr)) && time.Now().Before(deadline) {
		time.Sleep(5 * time.Millisecond)
	}
	if reg.Serves(mustParse(t, "http://"+betaAddr)) {
		t.Fatal("beta is still served in-process after it began to stop")
	}
	// New calls are refused, as by a closed port.
	if code, body := get("/api/alpha/peer"); code != http.StatusBadGateway || !strings.Contains(body, "refused") {
		t.Fatalf("a call to a stopping beta: %d %q", code, body)
	}
	close(release)
	if body := <-slow; !strings.HasPrefix(body, "slow") {
		t.Fatalf("the call in flight while beta stopped: %q", body)
	}
	if err := <-betaDone; err != nil {
		t.Fatalf("beta: %v", err)
	}
	stopAlpha()
	if err := <-alphaDone; err != nil {
		t.Fatalf("alpha: %v", err)
	}
	if reg.Serves(mustParse(t, "http://"+alphaAddr)) {
		t.Fatal("alpha is still registered after it stopped")
	}
}

func waitServing(t *testing.T, reg *inproc.Registry, bases ...string) {
	t.Helper()
	deadline := time.Now().Add(20 * time.Second)
	for _, b := range bases {
		for !reg.Serves(mustParse(t, b)) {
			if time.Now().After(deadline) {
				t.Fatalf("%s was never registered", b)
			}
			time.Sleep(5 * time.Millisecond)
		}
	}
}

func mustRequest(t *testing.T, u string) *http.Request {
	t.Helper()
	r, err := http.NewRequest(http.MethodGet, u, nil)
	if err != nil {
		t.Fatal(err)
	}
	return r
}

func mustParse(t *testing.T, s string) *url.URL {
	t.Helper()
	u, err := url.Parse(s)
	if err != nil {
		t.Fatal(err)
	}
	return u
}
