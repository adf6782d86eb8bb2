package ratelimit_test

import (
	"io"
	"net/http"
	"net/http/httptest"
	"net/netip"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/ratelimit"
)

func TestBurstThenRefusalWithWait(t *testing.T) {
	l := ratelimit.PerMinute(3) // 3 at once, then one every 20s
	for i := range 3 {
		if ok, wait := l.Allow("alice"); !ok || wait != 0 {
			t.Fatalf("event %d of the burst: Allow = %v, %s; want allowed", i+1, ok, wait)
		}
	}
	ok, wait := l.Allow("alice")
	if ok {
		t.Fatal("the event after the burst was allowed")
	}
	if wait <= 0 || wait > 20*time.Second {
		t.Errorf("wait = %s, want a positive wait of at most 20s", wait)
	}
	// A refusal costs nothing: the wait does not grow with more attempts.
	for range 5 {
		if ok, again := l.Allow("alice"); ok || again > wait {
			t.Errorf("a further attempt: Allow = %v, %s; want refused with a wait of at most %s", ok, again, wait)
		}
	}
}

func TestRefillAfterTheWait(t *testing.T) {
	l := ratelimit.New(50*time.Millisecond, 1)
	if ok, _ := l.Allow("k"); !ok {
		t.Fatal("the first event was refused")
	}
	ok, wait := l.Allow("k")
	if ok || wait <= 0 || wait > 50*time.Millisecond {
		t.Fatalf("the second event at once: Allow = %v, %s; want refused with a wait up to 50ms", ok, wait)
	}
	time.Sleep(wait + 10*time.Millisecond)
	if ok, wait := l.Allow("k"); !ok {
		t.Errorf("after waiting as told, Allow = false, %s", wait)
	}
}

func TestKeysAreIndependent(t *testing.T) {
	l := ratelimit.PerMinute(2)
	for range 2 {
		l.Allow("10.0.0.1")
	}
	if ok, _ := l.Allow("10.0.0.1"); ok {
		t.Fatal("10.0.0.1 was allowed past its burst")
	}
	for i := range 2 {
		if ok, wait := l.Allow("10.0.0.2"); !ok {
			t.Errorf("event %d of another key refused (wait %s): keys must not share a bucket", i+1, wait)
		}
	}
	if ok, _ := l.Allow("10.0.0.2"); ok {
		t.Error("10.0.0.2 was allowed past its own burst")
	}
}

func TestZeroDisables(t *testing.T) {
	for _, l := range map[string]*ratelimit.Limiter{
		"PerMinute(0)":  ratelimit.PerMinute(0),
		"PerMinute(-1)": ratelimit.PerMinute(-1),
		"New(0, 0)":     ratelimit.New(0, 0),
	} {
		for i := range 1000 {
			if ok, wait := l.Allow("k"); !ok || wait != 0 {
				t.Fatalf("event %d: Allow = %v, %s; a disabled limiter allows everything", i+1, ok, wait)
			}
		}
	}
}

func TestConcurrentUse(t *testing.T) {
	l := ratelimit.PerMinute(50)
	allowed := make(chan bool, 200)
	for range 200 {
		go func() {
			ok, _ := l.Allow("shared")
			allowed <- ok
		}()
	}
	n := 0
	for range 200 {
		if <-allowed {
			n++
		}
	}
	// A refill may land within the test, but never many.
	if n < 50 || n > 51 {
		t.Errorf("%d of 200 concurrent events were allowed, want the burst of 50", n)
	}
}

func TestClientIP(t *testing.T) {
	trusted := ratelimit.Loopback()
	tests := []struct {
		name    string
		remote  string
		xff     []string // one entry per header line
		trusted []netip.Prefix
		want    string
	}{
		{"direct IPv4", "203.0.113.7:5555", nil, trusted, "203.0.113.7"},
		{"direct IPv6", "[2001:db8::7]:5555", nil, trusted, "2001:db8::7"},
		{"IPv6 is normalised", "[2001:0db8:0000::0007]:5555", nil, trusted, "2001:db8::7"},
		{"a trusted proxy's last entry", "127.0.0.1:40000", []string{"198.51.100.1, 203.0.113.9"}, trusted, "203.0.113.9"},
		{"a trusted proxy's single entry", "127.0.0.1:40000", []string{"203.0.113.9"}, trusted, "203.0.113.9"},
		{"spaces around entries", "127.0.0.1:40000", []string{" 198.51.100.1 ,  203.0.113.9  "}, trusted, "203.0.113.9"},
		{"trusted over IPv6 loopback", "[::1]:40000", []string{"203.0.113.9"}, trusted, "203.0.113.9"},
		{"trusted over IPv4-mapped loopback", "[::ffff:127.0.0.1]:40000", []string{"203.0.113.9"}, trusted, "203.0.113.9"},
		{"an IPv6 client behind the proxy", "127.0.0.1:40000", []string{"203.0.113.9, 2001:db8::42"}, trusted, "2001:db8::42"},
		{"the proxy's entry is on its own header line", "127.0.0.1:40000", []string{"198.51.100.66", "203.0.113.9"}, trusted, "203.0.113.9"},
		{"ignored from an untrusted peer", "203.0.113.7:5555", []string{"198.51.100.1"}, trusted, "203.0.113.7"},
		{"ignored from an untrusted IPv6 peer", "[2001:db8::7]:5555", []string{"198.51.100.1"}, trusted, "2001:db8::7"},
		{"ignored when nothing is trusted", "127.0.0.1:40000", []string{"198.51.100.1"}, nil, "127.0.0.1"},
		{"a custom trusted range", "10.1.2.3:40000", []string{"198.51.100.1"}, []netip.Prefix{netip.MustParsePrefix("10.0.0.0/8")}, "198.51.100.1"},
		{"junk entry falls back to the peer", "127.0.0.1:40000", []string{"not-an-ip"}, trusted, "127.0.0.1"},
		{"junk last entry falls back to the peer", "127.0.0.1:40000", []string{"198.51.100.1, junk"}, trusted, "127.0.0.1"},
		{"an entry with a port is junk", "127.0.0.1:40000", []string{"198.51.100.1:80"}, trusted, "127.0.0.1"},
		{"an empty last entry", "127.0.0.1:40000", []string{"198.51.100.1,"}, trusted, "127.0.0.1"},
		{"an empty header", "127.0.0.1:40000", []string{""}, trusted, "127.0.0.1"},
		{"remote address without a port", "203.0.113.7", nil, trusted, "203.0.113.7"},
		{"junk remote address", "garbage", []string{"198.51.100.1"}, trusted, "garbage"},
		{"empty remote address", "", nil, trusted, ""},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			r := httptest.NewRequest(http.MethodGet, "/", nil)
			r.RemoteAddr = tt.remote
			for _, v := range tt.xff {
				r.Header.Add("X-Forwarded-For", v)
			}
			if got := ratelimit.ClientIP(r, tt.trusted); got != tt.want {
				t.Errorf("ClientIP = %q, want %q", got, tt.want)
			}
		})
	}
}

// TestClientIPOverTheWire sends real requests from loopback, the peer a
// gateway on this machine is, so RemoteAddr is what net/http makes of it.
func TestClientIPOverTheWire(t *testing.T) {
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		io.WriteString(w, ratelimit.ClientIP(r, ratelimit.Loopback())+" "+ratelimit.ClientIP(r, nil))
	}))
	defer srv.Close()
	get := func(xff ...string) string {
		t.Helper()
		req, err := http.NewRequest(http.MethodGet, srv.URL, nil)
		if err != nil {
			t.Fatal(err)
		}
		for _, v := range xff {
			req.Header.Add("X-Forwarded-For", v)
		}
		resp, err := http.DefaultClient.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		b, err := io.ReadAll(resp.Body)
		if err != nil {
			t.Fatal(err)
		}
		return string(b)
	}
	if got := get(); got != "127.0.0.1 127.0.0.1" {
		t.Errorf("without a header: %q, want the peer both ways", got)
	}
	if got := get("192.0.2.1, 192.0.2.2"); got != "192.0.2.2 127.0.0.1" {
		t.Errorf("with a header: %q, want the last entry when loopback is trusted, the peer otherwise", got)
	}
	if got := get("192.0.2.66", "192.0.2.2"); got != "192.0.2.2 127.0.0.1" {
		t.Errorf("with two header lines: %q, want the last line's entry when loopback is trusted", got)
	}
}

func TestLoopback(t *testing.T) {
	in := []string{"127.0.0.1", "127.255.255.254", "::1"}
	out := []string{"10.0.0.1", "192.168.1.1", "::2", "2001:db8::1", "0.0.0.0"}
	contains := func(a netip.Addr) bool {
		for _, p := range ratelimit.Loopback() {
			if p.Contains(a) {
				return true
			}
		}
		return false
	}
	for _, s := range in {
		if !contains(netip.MustParseAddr(s)) {
			t.Errorf("Loopback() does not hold %s", s)
		}
	}
	for _, s := range out {
		if contains(netip.MustParseAddr(s)) {
			t.Errorf("Loopback() holds %s", s)
		}
	}
}

func TestParsePrefixes(t *testing.T) {
	got, err := ratelimit.ParsePrefixes(" 10.0.0.0/8, 192.168.1.7 ,::1/128,")
	if err != nil || len(got) != 3 || got[1].String() != "192.168.1.7/32" {
		t.Fatalf("ParsePrefixes = %v, %v", got, err)
	}
	if _, err := ratelimit.ParsePrefixes("10.0.0.0/8,nonsense"); err == nil {
		t.Fatal("nonsense was accepted")
	}
	if got, err := ratelimit.ParsePrefixes(""); err != nil || len(got) != 0 {
		t.Fatalf("empty list: %v %v", got, err)
	}
}
