package localrun

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"time"
)

// The control API lets tools and tests act on a running `microshop run`
// without knowing its secrets: plain HTTP over the unix socket
// <data>/control.sock, which only the owner can open (Windows 10 and
// later have unix sockets too).
//
//	GET  /status                    the processes, as in run.json, with liveness
//	POST /services/{name}/start     start a process that has stopped
//	POST /services/{name}/scale?n=N run N replicas of a service
//	POST /services/{name}/restart   replace every replica, one at a time
//
// Both modes serve it; a monolith answers status and refuses the rest.

// ControlPath is the control socket of the run keeping its data in data.
func ControlPath(data string) string { return filepath.Join(data, "control.sock") }

// controller is what the control API acts on: the supervisor in
// microservices mode, the monolith otherwise.
type controller interface {
	snapshot() State
	start(ctx context.Context, name string) (Process, error)
	scale(ctx context.Context, name string, n int) ([]Process, error)
	restart(ctx context.Context, name string) ([]Process, error)
}

// serveControl answers the control API on <data>/control.sock until ctx
// ends.
func serveControl(ctx context.Context, data string, ctl controller, log *slog.Logger) (net.Listener, error) {
	path := ControlPath(data)
	_ = os.Remove(path) // a stale socket from a run that was killed
	ln, err := net.Listen("unix", path)
	if err != nil {
		return nil, fmt.Errorf("opening the control socket %s: %w", path, err)
	}
	if err := os.Chmod(path, 0o600); err != nil {
		ln.Close()
		return nil, err
	}
	reply := func(w http.ResponseWriter, v any, err error) {
		if err != nil {
			http.Error(w, err.Error(), http.StatusConflict)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		_ = json.NewEncoder(w).Encode(v)
	}
	mux := http.NewServeMux()
	mux.HandleFunc("GET /status", func(w http.ResponseWriter, r *http.Request) {
		reply(w, ctl.snapshot(), nil)
	})
	mux.HandleFunc("POST /services/{name}/start", func(w http.ResponseWriter, r *http.Request) {
		p, err := ctl.start(r.Context(), r.PathValue("name"))
		reply(w, p, err)
	})
	mux.HandleFunc("POST /services/{name}/scale", func(w http.ResponseWriter, r *http.Request) {
		n, err := strconv.Atoi(r.URL.Query().Get("n"))
		if err != nil {
			http.Error(w, "n must be a number of replicas", http.StatusBadRequest)
			return
		}
		ps, err := ctl.scale(r.Context(), r.PathValue("name"), n)
		reply(w, ps, err)
	})
	mux.HandleFunc("POST /services/{name}/restart", func(w http.ResponseWriter, r *http.Request) {
		ps, err := ctl.restart(r.Context(), r.PathValue("name"))
		reply(w, ps, err)
	})
	srv := &http.Server{Handler: mux, ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := srv.Serve(ln); err != nil && !errors.Is(err, http.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			log.Warn("control socket stopped", "err", err)
		}
	}()
	go func() {
		<-ctx.Done()
		_ = srv.Close()
		_ = os.Remove(path)
	}()
	return ln, nil
}

// Client talks to the control API of the run keeping its data in a
// directory.
type Client struct {
	data string
	hc   *http.Client
}

// NewClient returns a client of the run whose data directory is data.
func NewClient(data string) *Client {
	return &Client{data: data, hc: &http.Client{
		Timeout: 5 * time.Minute, // a rolling restart of five replicas takes a while
		Transport: &http.Transport{DialContext: func(ctx context.Context, _, _ string) (net.Conn, error) {
			var d net.Dialer
			return d.DialContext(ctx, "unix", ControlPath(data))
		}},
	}}
}

// Status lists the processes of the run, with liveness.
func (c *Client) Status(ctx context.Context) (State, error) {
	var st State
	err := c.do(ctx, http.MethodGet, "/status", &st)
	return st, err
}

// Start starts a stopped process again, returning once it is ready.
func (c *Client) Start(ctx context.Context, name string) (Process, error) {
	var p Process
	err := c.do(ctx, http.MethodPost, "/services/"+name+"/start", &p)
	return p, err
}

// Scale runs n replicas of name, returning once the new ones are ready.
func (c *Client) Scale(ctx context.Context, name string, n int) ([]Process, error) {
	var ps []Process
	err := c.do(ctx, http.MethodPost, fmt.Sprintf("/services/%s/scale?n=%d", name, n), &ps)
	return ps, err
}

// Restart replaces every replica of name, one at a time.
func (c *Client) Restart(ctx context.Context, name string) ([]Process, error) {
	var ps []Process
	err := c.do(ctx, http.MethodPost, "/services/"+name+"/restart", &ps)
	return ps, err
}

// do calls the control API and decodes its JSON answer into out.
func (c *Client) do(ctx context.Context, method, path string, out any) error {
	req, err := http.NewRequestWithContext(ctx, method, "http://run"+path, nil)
	if err != nil {
		return err
	}
	resp, err := c.hc.Do(req)
	if err != nil {
		return fmt.Errorf("reaching the running system under %s (is `microshop run --data %s` running?): %w", c.data, c.data, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return errors.New(strings.TrimSpace(string(body)))
	}
	return json.Unmarshal(body, out)
}
