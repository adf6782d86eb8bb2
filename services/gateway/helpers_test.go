package gateway_test

import (
	"bufio"
	"bytes"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/json"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"net/url"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/golang-jwt/jwt/v5"

	"github.com/microshop/microshop/internal/platform/auth"
	"github.com/microshop/microshop/internal/platform/problem"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/gateway"
	"github.com/microshop/microshop/services/users"
)

// seen is one request a stand-in service received.
type seen struct {
	Method  string
	Path    string // as sent, still escaped
	Header  http.Header
	Service string
}

// standIn is a real HTTP server in the place of a service that is not
// built yet. It records what reaches it and answers 200 with JSON, except
// on a few paths that misbehave on purpose.
type standIn struct {
	name string
	srv  *httptest.Server

	mu   sync.Mutex
	seen []seen
}

func newStandIn(t *testing.T, name string) *standIn {
	t.Helper()
	s := &standIn{name: name}
	s.srv = httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		s.mu.Lock()
		s.seen = append(s.seen, seen{Method: r.Method, Path: r.URL.EscapedPath(), Header: r.Header.Clone(), Service: name})
		s.mu.Unlock()
		if _, err := io.Copy(io.Discard, r.Body); err != nil {
			return
		}
		switch {
		case strings.HasSuffix(r.URL.Path, "/boom"):
			w.Header().Set("Content-Type", "text/plain")
			w.WriteHeader(http.StatusInternalServerError)
			io.WriteString(w, "the "+name+" stand-in exploded")
			return
		case strings.HasSuffix(r.URL.Path, "/slow"):
			select {
			case <-r.Context().Done():
			case <-time.After(5 * time.Second):
			}
			return
		}
		w.Header().Set("Content-Type", "application/json")
		json.NewEncoder(w).Encode(map[string]string{"service": name, "path": r.URL.EscapedPath()})
	}))
	t.Cleanup(s.srv.Close)
	return s
}

// requests returns what reached the stand-in so far.
func (s *standIn) requests() []seen {
	s.mu.Lock()
	defer s.mu.Unlock()
	return append([]seen(nil), s.seen...)
}

func (s *standIn) count() int { return len(s.requests()) }

func (s *standIn) last(t *testing.T) seen {
	t.Helper()
	r := s.requests()
	if len(r) == 0 {
		t.Fatalf("nothing reached %s", s.name)
	}
	return r[len(r)-1]
}

// closedURL is the URL of a loopback port that nothing listens on.
func closedURL(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.Addr().String()
	ln.Close()
	return "http://" + addr
}

// startUsers runs a shop: the real users service on its own NATS, with
// an admin and a customer.
func startUsers(t *testing.T) *servicetest.Shop {
	t.Helper()
	return servicetest.NewShop(t, users.Spec(), servicetest.ShopOptions{UsersEnv: map[string]string{"MICROSHOP_ACCESS_TTL": "5m"}})
}

// startGateway runs the real gateway in front of users and the stand-ins;
// a nil stand-in points at a closed port.
func startGateway(t *testing.T, usersURL string, others map[string]*standIn, extra ...string) *servicetest.Service {
	t.Helper()
	routes := []string{"users", "inventory", "orders", "payments", "notifications", "reports"}
	args := []string{"--users-url", usersURL}
	for _, name := range routes[1:] {
		u := closedURL(t)
		if s := others[name]; s != nil {
			u = s.srv.URL
		}
		args = append(args, "--"+name+"-url", u)
	}
	return servicetest.Start(t, gateway.Spec(routes...), append(args, extra...), nil)
}

// client is a test's HTTP client; it never follows redirects.
var client = &http.Client{
	Timeout:       10 * time.Second,
	CheckRedirect: func(*http.Request, []*http.Request) error { return http.ErrUseLastResponse },
}

type response struct {
	Status int
	Header http.Header
	Body   []byte
}

func (r response) String() string { return fmt.Sprintf("%d %s", r.Status, r.Body) }

func do(t *testing.T, method, url, token string, body any, header ...string) response {
	t.Helper()
	var rd io.Reader
	if body != nil {
		b, err := json.Marshal(body)
		if err != nil {
			t.Fatal(err)
		}
		rd = bytes.NewReader(b)
	}
	req, err := http.NewRequest(method, url, rd)
	if err != nil {
		t.Fatal(err)
	}
	if body != nil {
		req.Header.Set("Content-Type", "application/json")
	}
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := client.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// raw sends a GET whose request target is exactly target, byte for byte,
// so no client library cleans or re-encodes the path.
func raw(t *testing.T, base, target, token string) response {
	t.Helper()
	u, err := url.Parse(base)
	if err != nil {
		t.Fatal(err)
	}
	conn, err := net.DialTimeout("tcp", u.Host, 5*time.Second)
	if err != nil {
		t.Fatal(err)
	}
	defer conn.Close()
	conn.SetDeadline(time.Now().Add(10 * time.Second))
	req := "GET " + target + " HTTP/1.1\r\nHost: " + u.Host + "\r\nConnection: close\r\n"
	if token != "" {
		req += "Authorization: Bearer " + token + "\r\n"
	}
	if _, err := io.WriteString(conn, req+"\r\n"); err != nil {
		t.Fatal(err)
	}
	res, err := http.ReadResponse(bufio.NewReader(conn), nil)
	if err != nil {
		t.Fatalf("GET %s: %v", target, err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return response{Status: res.StatusCode, Header: res.Header, Body: b}
}

// wantProblem checks that res is a problem+json with status and returns it.
func wantProblem(t *testing.T, res response, status int) problem.Problem {
	t.Helper()
	if res.Status != status {
		t.Fatalf("status = %s, want %d", res, status)
	}
	if ct := res.Header.Get("Content-Type"); ct != problem.ContentType {
		t.Fatalf("Content-Type = %q, want %s (body %s)", ct, problem.ContentType, res.Body)
	}
	var p problem.Problem
	if err := json.Unmarshal(res.Body, &p); err != nil {
		t.Fatalf("decoding the problem: %v (%s)", err, res.Body)
	}
	if p.Status != status {
		t.Errorf("problem status = %d, want %d", p.Status, status)
	}
	return p
}

// account registers a customer through the gateway and logs in.
func account(t *testing.T, gw, email string) (token string) {
	t.Helper()
	servicetest.Register(t, gw, email, servicetest.Password, "Test Customer")
	return servicetest.Login(t, gw, email, servicetest.Password).AccessToken
}

// forge signs a token that looks right in every way but the key: kid is
// a kid users really publishes, or any id of the same format.
func forge(t *testing.T, kid string) string {
	t.Helper()
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	now := time.Now()
	tok := jwt.NewWithClaims(jwt.SigningMethodEdDSA, auth.Claims{
		Email: "mallory@example.com",
		Roles: []string{auth.RoleAdmin},
		RegisteredClaims: jwt.RegisteredClaims{
			Issuer: auth.Issuer, Subject: "01JFORGEDFORGEDFORGEDFORGE", Audience: jwt.ClaimStrings{auth.Audience},
			IssuedAt: jwt.NewNumericDate(now), ExpiresAt: jwt.NewNumericDate(now.Add(10 * time.Minute)),
		},
	})
	tok.Header["kid"] = kid
	s, err := tok.SignedString(priv)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// kidOf reads the kid of a token without checking it.
func kidOf(t *testing.T, token string) string {
	t.Helper()
	tok, _, err := jwt.NewParser().ParseUnverified(token, &auth.Claims{})
	if err != nil {
		t.Fatal(err)
	}
	kid, _ := tok.Header["kid"].(string)
	return kid
}
