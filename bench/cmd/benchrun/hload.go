package main

import (
	"context"
	"io"
	"math"
	"net"
	"net/http"
	"strconv"
	"sync"
	"sync/atomic"
	"time"

	"github.com/HdrHistogram/hdrhistogram-go"

	"github.com/microshop/microshop/internal/loadgen"
)

// benchrun's own load generator for one URL: GETs on kept-alive
// connections, closed loop (N workers, each sending when the last answer
// is in) or open loop (a request due every 1/R seconds, its latency
// counted from when it was due, so a stall shows). It loads the ceiling
// servers and the gateway's product list alike, so their figures compare.

// hits is what one run of the loader measured.
type hits struct {
	Requests int64            `json:"requests"`
	Errors   int64            `json:"errors"`
	ByKind   map[string]int64 `json:"errors_by_kind,omitempty"`
	Seconds  float64          `json:"seconds"`
	Rate     float64          `json:"rate"` // answered requests a second, errors included
	Unsent   int64            `json:"unsent,omitempty"`
	Lat      latency          `json:"latency_ms"`
}

type latency struct {
	P50, P90, P99, Max float64
}

const requestTimeout = 10 * time.Second

func newHTTPClient(conns int) *http.Client {
	return &http.Client{
		Timeout: requestTimeout,
		Transport: &http.Transport{
			Proxy:               nil, // loopback targets only, never a proxy
			DialContext:         (&net.Dialer{Timeout: 3 * time.Second, KeepAlive: 30 * time.Second}).DialContext,
			MaxIdleConns:        conns,
			MaxIdleConnsPerHost: conns, // Go's default of 2 would dial for most requests
			IdleConnTimeout:     90 * time.Second,
		},
		CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
	}
}

// recorder is one worker's figures; workers merge theirs at the end.
type recorder struct {
	h      *hdrhistogram.Histogram
	n, err int64
	kinds  map[string]int64
}

func newRecorder() *recorder {
	return &recorder{h: hdrhistogram.New(1, int64(time.Hour/time.Microsecond), 3), kinds: map[string]int64{}}
}

func (r *recorder) add(d time.Duration, kind string) {
	_ = r.h.RecordValue(max(1, d.Microseconds()))
	r.n++
	if kind != "" {
		r.err++
		r.kinds[kind]++
	}
}

func merge(rs []*recorder, elapsed time.Duration) hits {
	all := newRecorder()
	for _, r := range rs {
		all.h.Merge(r.h)
		all.n += r.n
		all.err += r.err
		for k, v := range r.kinds {
			all.kinds[k] += v
		}
	}
	out := hits{Requests: all.n, Errors: all.err, Seconds: elapsed.Seconds()}
	if len(all.kinds) > 0 {
		out.ByKind = all.kinds
	}
	if elapsed > 0 {
		out.Rate = float64(all.n) / elapsed.Seconds()
	}
	ms := func(us int64) float64 { return float64(us) / 1000 }
	if all.n > 0 {
		out.Lat = latency{P50: ms(all.h.ValueAtQuantile(50)), P90: ms(all.h.ValueAtQuantile(90)),
			P99: ms(all.h.ValueAtQuantile(99)), Max: ms(all.h.Max())}
	}
	return out
}

// get sends one GET and reads the whole answer; kind is "" for a 200.
func get(ctx context.Context, hc *http.Client, url string) string {
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return "bad_request"
	}
	resp, err := hc.Do(req)
	if err != nil {
		return loadgen.KindOf(ctx, err)
	}
	_, err = io.Copy(io.Discard, resp.Body)
	resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return "status_" + strconv.Itoa(resp.StatusCode)
	}
	return loadgen.KindOf(ctx, err)
}

// closedLoop runs workers GETs at once for d and measures the rate.
func closedLoop(ctx context.Context, url string, workers int, d time.Duration) hits {
	hc := newHTTPClient(workers)
	defer hc.CloseIdleConnections()
	ctx, cancel := context.WithCancel(ctx)
	defer cancel()
	start := time.Now()
	end := start.Add(d)
	rs := make([]*recorder, workers)
	var wg sync.WaitGroup
	for w := range workers {
		rs[w] = newRecorder()
		wg.Go(func() {
			r := rs[w]
			for ctx.Err() == nil && time.Now().Before(end) {
				t := time.Now()
				kind := get(ctx, hc, url)
				if ctx.Err() != nil {
					return
				}
				r.add(time.Since(t), kind)
			}
		})
	}
	wg.Wait()
	return merge(rs, time.Since(start))
}

// openLoop sends a GET every 1/rate seconds for d, whatever the answers,
// with at most maxInFlight outstanding; latency counts from when each was
// due.
func openLoop(ctx context.Context, url string, rate float64, d time.Duration, maxInFlight int) hits {
	slots := int64(math.Ceil(d.Seconds()*rate - 1e-9))
	workers := int(min(int64(maxInFlight), max(slots, 1)))
	hc := newHTTPClient(workers)
	defer hc.CloseIdleConnections()
	start := time.Now()
	end := start.Add(d)
	due := func(i int64) time.Time { return start.Add(time.Duration(float64(i) * float64(time.Second) / rate)) }
	var next, sent atomic.Int64
	rs := make([]*recorder, workers)
	var wg sync.WaitGroup
	for w := range workers {
		rs[w] = newRecorder()
		wg.Go(func() {
			r := rs[w]
			for ctx.Err() == nil && time.Now().Before(end) {
				i := next.Add(1) - 1
				if i >= slots {
					return
				}
				at := due(i)
				if wait := time.Until(at); wait > 0 {
					select {
					case <-ctx.Done():
						return
					case <-time.After(wait):
					}
				}
				sent.Add(1)
				kind := get(ctx, hc, url)
				if ctx.Err() != nil {
					return
				}
				r.add(time.Since(at), kind)
			}
		})
	}
	wg.Wait()
	out := merge(rs, min(time.Since(start), d))
	out.Rate = float64(out.Requests) / d.Seconds()
	out.Unsent = max(0, slots-sent.Load())
	return out
}
