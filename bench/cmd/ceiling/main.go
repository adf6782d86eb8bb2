// Command ceiling is the yardstick of bench/run: the least a Go HTTP
// server can do. Alone it answers every request with 50 bytes; with
// --next it is the first hop of a two-hop chain: it calls the next server
// over loopback (keep-alive, a pool sized to --conns) and answers with
// what that one said. microshop is measured against these two on the
// same machine, with the same load generator.
//
//	ceiling --addr 127.0.0.1:0                       # one hop
//	ceiling --addr 127.0.0.1:0 --next http://B       # two hops: A calls B
//
// It prints "listening http://host:port" on stdout once it accepts
// connections, and stops on SIGINT or SIGTERM.
package main

import (
	"context"
	"errors"
	"flag"
	"fmt"
	"io"
	"net"
	"net/http"
	"os"
	"os/signal"
	"syscall"
	"time"
)

// body is the 50-byte answer.
var body = []byte(`{"status":"ok","service":"ceiling","n":1234567890}`)

func main() {
	addr := flag.String("addr", "127.0.0.1:0", "address to listen on (loopback only)")
	next := flag.String("next", "", "base URL of the server to call for every request (two-hop chain)")
	conns := flag.Int("conns", 256, "keep-alive connections to --next")
	flag.Parse()
	if len(body) != 50 {
		panic("the answer must be 50 bytes")
	}
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	defer stop()
	if err := serve(ctx, *addr, *next, *conns, os.Stdout); err != nil {
		fmt.Fprintln(os.Stderr, "ceiling:", err)
		os.Exit(1)
	}
}

func serve(ctx context.Context, addr, next string, conns int, out io.Writer) error {
	host, _, err := net.SplitHostPort(addr)
	if err != nil {
		return err
	}
	if ip := net.ParseIP(host); host != "localhost" && (ip == nil || !ip.IsLoopback()) {
		return fmt.Errorf("--addr %s: listen on loopback only", addr)
	}
	ln, err := net.Listen("tcp", addr)
	if err != nil {
		return err
	}
	h := http.Handler(http.HandlerFunc(answer))
	if next != "" {
		h = chain(next, conns)
	}
	srv := &http.Server{Handler: h, ReadHeaderTimeout: 5 * time.Second, IdleTimeout: 2 * time.Minute}
	fmt.Fprintf(out, "listening http://%s\n", ln.Addr())
	errc := make(chan error, 1)
	go func() { errc <- srv.Serve(ln) }()
	select {
	case err := <-errc:
		return err
	case <-ctx.Done():
	}
	sctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	if err := srv.Shutdown(sctx); err != nil && !errors.Is(err, http.ErrServerClosed) {
		return err
	}
	return nil
}

func answer(w http.ResponseWriter, _ *http.Request) {
	w.Header().Set("Content-Type", "application/json")
	_, _ = w.Write(body)
}

// chain answers each request by calling next and passing its answer on.
func chain(next string, conns int) http.Handler {
	hc := &http.Client{
		Timeout: 10 * time.Second,
		Transport: &http.Transport{
			Proxy:               nil,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns, // Go's default of 2 would dial for most calls
			IdleConnTimeout:     90 * time.Second,
		},
	}
	url := next + "/"
	return http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		req, err := http.NewRequestWithContext(r.Context(), http.MethodGet, url, nil)
		if err != nil {
			http.Error(w, err.Error(), http.StatusInternalServerError)
			return
		}
		resp, err := hc.Do(req)
		if err != nil {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		defer resp.Body.Close()
		var buf [512]byte
		n, err := io.ReadFull(resp.Body, buf[:])
		if err != nil && !errors.Is(err, io.ErrUnexpectedEOF) && !errors.Is(err, io.EOF) {
			http.Error(w, err.Error(), http.StatusBadGateway)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		w.WriteHeader(resp.StatusCode)
		_, _ = w.Write(buf[:n])
	})
}
