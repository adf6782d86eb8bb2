// Package ratelimit limits how often a key (an account, a client address)
// may do something, with a token bucket per key.
package ratelimit

import (
	"crypto/subtle"
	"fmt"
	"net"
	"net/http"
	"net/netip"
	"strings"
	"sync"
	"time"

	"golang.org/x/time/rate"
)

// Limiter holds one token bucket per key. Buckets idle for longer than it
// takes to refill are dropped, so memory follows the active keys only.
type Limiter struct {
	every time.Duration
	burst int

	mu      sync.Mutex
	buckets map[string]*bucket
	swept   time.Time
}

type bucket struct {
	lim  *rate.Limiter
	seen time.Time
}

// New allows burst events at once per key and then one every "every".
// A zero every disables the limit.
func New(every time.Duration, burst int) *Limiter {
	return &Limiter{every: every, burst: burst, buckets: make(map[string]*bucket)}
}

// PerMinute allows n events a minute per key, n at once. n <= 0 disables it.
func PerMinute(n int) *Limiter {
	if n <= 0 {
		return New(0, 0)
	}
	return New(time.Minute/time.Duration(n), n)
}

// Allow reports whether key may act now, and if not, how long until it may.
func (l *Limiter) Allow(key string) (bool, time.Duration) {
	if l.every == 0 {
		return true, 0
	}
	now := time.Now()
	l.mu.Lock()
	defer l.mu.Unlock()
	l.sweep(now)
	b, ok := l.buckets[key]
	if !ok {
		b = &bucket{lim: rate.NewLimiter(rate.Every(l.every), l.burst)}
		l.buckets[key] = b
	}
	b.seen = now
	r := b.lim.ReserveN(now, 1)
	if d := r.DelayFrom(now); d > 0 {
		r.CancelAt(now)
		return false, d
	}
	return true, 0
}

// sweep drops buckets that have refilled completely, at most once a minute.
func (l *Limiter) sweep(now time.Time) {
	if now.Sub(l.swept) < time.Minute {
		return
	}
	l.swept = now
	full := l.every * time.Duration(l.burst)
	for k, b := range l.buckets {
		if now.Sub(b.seen) > full {
			delete(l.buckets, k)
		}
	}
}

// ClientIP is the address of the client that sent r. X-Forwarded-For is
// believed only when the request came from a trusted proxy (the gateway),
// and then its last entry, the one that proxy added, is taken.
func ClientIP(r *http.Request, trusted []netip.Prefix) string {
	peer, ok := peerAddr(r)
	if !ok {
		return peer
	}
	a, _ := netip.ParseAddr(peer)
	return clientIP(r, peer, isTrusted(a, trusted))
}

func peerAddr(r *http.Request) (string, bool) {
	host, _, err := net.SplitHostPort(r.RemoteAddr)
	if err != nil {
		host = r.RemoteAddr
	}
	peer, err := netip.ParseAddr(host)
	if err != nil {
		return host, false
	}
	return peer.String(), true
}

// clientIP is the last X-Forwarded-For entry when the sender is trusted,
// else the peer's own address.
func clientIP(r *http.Request, peer string, trusted bool) string {
	// Several header lines are one list (RFC 9110, 5.3): the proxy's entry
	// ends the last line, and the first may be the client's own invention.
	xff := r.Header.Values("X-Forwarded-For")
	if len(xff) == 0 || !trusted {
		return peer
	}
	parts := strings.Split(xff[len(xff)-1], ",")
	last := strings.TrimSpace(parts[len(parts)-1])
	if a, err := netip.ParseAddr(last); err == nil {
		return a.String()
	}
	return peer
}

// ProxySecretHeader carries the secret a proxy shares with the services
// behind it (Proxies.Secret), proving that its X-Forwarded-For is its own.
const ProxySecretHeader = "Microshop-Proxy-Secret"

// Proxies decide whose X-Forwarded-For names the client. An address is
// no proof on a shared machine or network: under `microshop run` every
// local process, not only the gateway, connects from loopback. So the
// gateway sends a secret it shares with the service, and a request that
// carries it is the gateway's whatever its address; Prefixes is for a
// proxy that cannot send the secret (an ingress) on a network the
// operator trusts. The zero value believes nobody.
type Proxies struct {
	Prefixes []netip.Prefix
	Secret   string
}

// ClientIP is the address of the client that sent r, as far as p lets
// the service know it.
func (p Proxies) ClientIP(r *http.Request) string {
	peer, ok := peerAddr(r)
	if !ok {
		return peer
	}
	if p.Secret != "" {
		got := r.Header.Get(ProxySecretHeader)
		if subtle.ConstantTimeCompare([]byte(got), []byte(p.Secret)) == 1 {
			return clientIP(r, peer, true)
		}
	}
	a, _ := netip.ParseAddr(peer)
	return clientIP(r, peer, isTrusted(a, p.Prefixes))
}

func isTrusted(a netip.Addr, trusted []netip.Prefix) bool {
	for _, p := range trusted {
		if p.Contains(a.Unmap()) {
			return true
		}
	}
	return false
}

// ParsePrefixes reads a comma-separated list of CIDRs ("10.0.0.0/8,::1/128")
// or plain addresses, which count as one host each.
func ParsePrefixes(list string) ([]netip.Prefix, error) {
	var out []netip.Prefix
	for _, part := range strings.Split(list, ",") {
		part = strings.TrimSpace(part)
		if part == "" {
			continue
		}
		if p, err := netip.ParsePrefix(part); err == nil {
			out = append(out, p.Masked())
			continue
		}
		a, err := netip.ParseAddr(part)
		if err != nil {
			return nil, fmt.Errorf("%q is neither a CIDR nor an address", part)
		}
		out = append(out, netip.PrefixFrom(a, a.BitLen()))
	}
	return out, nil
}

// Loopback names every proxy on this machine. It is no default: on a
// shared machine any process connects from loopback (see Proxies).
func Loopback() []netip.Prefix {
	return []netip.Prefix{netip.MustParsePrefix("127.0.0.0/8"), netip.MustParsePrefix("::1/128")}
}
