// Package balancer spreads calls over the replicas of a service and stops
// sending to a replica that fails its readiness check, without a restart:
// it probes every replica's /readyz in the background and round-robins
// over the ready ones. A replica that refuses a connection is marked down
// at once, before the next probe.
//
// The replica list may name more replicas than run: `microshop run` hands
// every service all the ports a service's replicas may use, and the probes
// find the ones that are up. So scaling out or in needs no reconfiguration.
// Any program may listen on such a port, though: another service, or
// another system's (a second `microshop run`, tests running side by
// side). With Expect, a replica counts only if its readiness answer names
// the expected service and system (IdentityHeader); one that names
// anything else, or nothing, is a stranger and is never called.
package balancer

import (
	"context"
	"errors"
	"net/http"
	"net/url"
	"strings"
	"sync"
	"sync/atomic"
	"time"
)

// IdentityHeader is the header of a service's /readyz answer that names
// it as "<service>@<system>" (see auth.ServiceKeys.System).
const IdentityHeader = "Microshop-Service"

// Balancer chooses among the replicas of one service.
type Balancer struct {
	replicas []*replica
	next     atomic.Uint64
	probe    *http.Client
	interval time.Duration
	expect   string // the identity a replica must answer with; "" for any
}

type replica struct {
	url   *url.URL
	ready atomic.Bool
	// stranger: the last probe was answered by something that is not the
	// expected service of this system.
	stranger atomic.Bool
}

// New returns a balancer over a comma-separated list of base URLs. With
// one URL there is nothing to balance and no probing: that replica is
// always chosen (a Kubernetes Service, say, balances behind it).
func New(urls string) (*Balancer, error) {
	b := &Balancer{interval: time.Second, probe: &http.Client{Timeout: time.Second}}
	for _, raw := range strings.Split(urls, ",") {
		raw = strings.TrimSpace(raw)
		if raw == "" {
			continue
		}
		u, err := url.Parse(raw)
		if err != nil || u.Scheme == "" || u.Host == "" {
			return nil, &url.Error{Op: "parse", URL: raw, Err: errBadURL}
		}
		r := &replica{url: u}
		r.ready.Store(true) // optimistic until the first probe says otherwise
		b.replicas = append(b.replicas, r)
	}
	if len(b.replicas) == 0 {
		return nil, &url.Error{Op: "parse", URL: urls, Err: errBadURL}
	}
	return b, nil
}

var errBadURL = errors.New("want one or more base URLs such as http://127.0.0.1:8082, comma-separated")

// Expect makes the probes accept only replicas whose readiness answer
// carries IdentityHeader with this value, such as "inventory@3f9a1c0b72de".
// Call it before the first probe.
func (b *Balancer) Expect(identity string) { b.expect = identity }

// ProbeWith makes the probes go through rt, such as the callers' own
// transport, whose mutual TLS proves a replica's identity before its
// readiness answer is read. Call it before the first probe.
func (b *Balancer) ProbeWith(rt http.RoundTripper) {
	b.probe = &http.Client{Timeout: time.Second, Transport: rt}
}

// Run probes the replicas every interval until ctx ends; the balancer's
// owner runs it for as long as it uses the balancer. It does nothing for a
// single replica. Without Run, a replica is marked down only when it
// refuses a connection and up only by ProbeAll.
func (b *Balancer) Run(ctx context.Context) {
	if len(b.replicas) < 2 {
		return
	}
	for {
		b.ProbeAll(ctx)
		select {
		case <-ctx.Done():
			return
		case <-time.After(b.interval):
		}
	}
}

// ProbeAll checks every replica's /readyz now. Owners call it once
// before the first Pick, so the first calls go to replicas that are up
// and never to a stranger; it takes at most the probe timeout, a second.
// Like Run, it does nothing for a single replica, which is always chosen.
func (b *Balancer) ProbeAll(ctx context.Context) {
	if len(b.replicas) < 2 {
		return
	}
	var wg sync.WaitGroup
	for _, r := range b.replicas {
		wg.Add(1)
		go func() {
			defer wg.Done()
			req, err := http.NewRequestWithContext(ctx, http.MethodGet, r.url.String()+"/readyz", nil)
			if err != nil {
				return
			}
			resp, err := b.probe.Do(req)
			stranger := err == nil && b.expect != "" && resp.Header.Get(IdentityHeader) != b.expect
			ok := err == nil && resp.StatusCode == http.StatusOK && !stranger
			if resp != nil {
				resp.Body.Close()
			}
			if ctx.Err() == nil {
				r.stranger.Store(stranger)
				r.ready.Store(ok)
			}
		}()
	}
	wg.Wait()
}

// Pick returns the next ready replica's base URL, skipping those in
// exclude (replicas that just failed this call). When none is known to be
// ready it still returns one, so a call can find out for itself; never a
// stranger while any replica is not known to be one.
func (b *Balancer) Pick(exclude ...*url.URL) *url.URL {
	n := len(b.replicas)
	if n == 1 {
		return b.replicas[0].url
	}
	// Round-robin over the ready replicas only: counting the empty slots
	// would hand their turns to whichever ready replica follows them.
	var ready [maxPick]*url.URL
	count := 0
	var fallback *url.URL
	for _, r := range b.replicas {
		if excluded(r.url, exclude) || r.stranger.Load() {
			continue
		}
		if r.ready.Load() && count < maxPick {
			ready[count] = r.url
			count++
		} else if fallback == nil {
			fallback = r.url
		}
	}
	if count > 0 {
		return ready[b.next.Add(1)%uint64(count)]
	}
	if fallback == nil {
		start := b.next.Add(1)
		fallback = b.replicas[start%uint64(n)].url
		for k := range uint64(n) {
			if r := b.replicas[(start+k)%uint64(n)]; !r.stranger.Load() {
				fallback = r.url
				break
			}
		}
	}
	return fallback
}

// maxPick bounds the replicas Pick chooses among without allocating.
const maxPick = 32

func excluded(u *url.URL, list []*url.URL) bool {
	for _, x := range list {
		if x == u {
			return true
		}
	}
	return false
}

// Down marks a replica not ready until its next good probe: the caller
// could not connect to it.
func (b *Balancer) Down(u *url.URL) {
	for _, r := range b.replicas {
		if r.url == u && len(b.replicas) > 1 {
			r.ready.Store(false)
		}
	}
}

// All returns every replica's base URL.
func (b *Balancer) All() []*url.URL {
	out := make([]*url.URL, len(b.replicas))
	for i, r := range b.replicas {
		out[i] = r.url
	}
	return out
}

// Find returns the replica whose base URL has u's scheme and host, or nil.
func (b *Balancer) Find(u *url.URL) *url.URL {
	for _, r := range b.replicas {
		if r.url.Scheme == u.Scheme && r.url.Host == u.Host {
			return r.url
		}
	}
	return nil
}

// Len is the number of replicas the balancer knows of.
func (b *Balancer) Len() int { return len(b.replicas) }

// Ready counts the replicas that passed their last probe.
func (b *Balancer) Ready() int {
	n := 0
	for _, r := range b.replicas {
		if r.ready.Load() {
			n++
		}
	}
	return n
}
