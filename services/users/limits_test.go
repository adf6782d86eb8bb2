package users_test

import (
	"bytes"
	"encoding/json"
	"io"
	"net"
	"net/http"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/ratelimit"
	"github.com/microshop/microshop/internal/platform/service/servicetest"
	"github.com/microshop/microshop/services/users"
	"github.com/microshop/microshop/services/users/usersapi"
)

// from is a client whose connections leave from the loopback address
// addr, so one test can be several clients (Linux routes all of
// 127.0.0.0/8 to loopback; elsewhere the test is skipped).
func from(t *testing.T, addr string) *http.Client {
	t.Helper()
	ln, err := net.Listen("tcp", net.JoinHostPort(addr, "0"))
	if err != nil {
		t.Skipf("cannot use %s: %v", addr, err)
	}
	ln.Close()
	d := &net.Dialer{LocalAddr: &net.TCPAddr{IP: net.ParseIP(addr)}, Timeout: 2 * time.Second}
	return &http.Client{Timeout: 10 * time.Second, Transport: &http.Transport{DialContext: d.DialContext}}
}

// send posts or patches body as JSON and returns the status and body.
func send(t *testing.T, c *http.Client, method, url, token string, body any, header ...string) (int, []byte) {
	t.Helper()
	b, _ := json.Marshal(body)
	req, _ := http.NewRequest(method, url, bytes.NewReader(b))
	req.Header.Set("Content-Type", "application/json")
	if token != "" {
		req.Header.Set("Authorization", "Bearer "+token)
	}
	for i := 0; i+1 < len(header); i += 2 {
		req.Header.Set(header[i], header[i+1])
	}
	res, err := c.Do(req)
	if err != nil {
		t.Fatalf("%s %s: %v", method, url, err)
	}
	defer res.Body.Close()
	out, _ := io.ReadAll(res.Body)
	return res.StatusCode, out
}

// startLimited runs users with the password limits on: 10 checks a
// minute per account and address, 60 per address.
func startLimited(t *testing.T, extra ...string) string {
	t.Helper()
	svc := servicetest.Start(t, users.Spec(), append([]string{"--nats", servicetest.NATS(t)}, extra...), map[string]string{
		"MICROSHOP_REGISTER_RATE_IP":   "0",
		"MICROSHOP_LOGIN_RATE_IP":      "60",
		"MICROSHOP_LOGIN_RATE_ACCOUNT": "10",
	})
	return svc.URL
}

func TestWrongLoginsDoNotLockTheOwnerOut(t *testing.T) {
	url := startLimited(t)
	attacker, owner := from(t, "127.0.0.1"), from(t, "127.0.0.2")
	servicetest.Register(t, url, "owner@example.com", "the right password", "Owner")
	creds := map[string]string{"email": "owner@example.com", "password": "a wrong password"}
	// The limit is 10 a minute and refills one every 6 s; on a busy
	// machine a password check can take a second or two, so a refill may
	// slip in. The attacker must be refused before 40 tries (40 tries
	// outrun any refill by far), and never within the first 10.
	refused := 0
	for i := range 40 {
		st, b := send(t, attacker, "POST", url+"/api/users/login", "", creds)
		if st == http.StatusTooManyRequests {
			if i < 10 {
				t.Fatalf("wrong login %d refused with 429; the limit is 10", i+1)
			}
			refused = i + 1
			break
		}
		if st != http.StatusUnauthorized {
			t.Fatalf("wrong login %d: %d %s", i+1, st, b)
		}
	}
	if refused == 0 {
		t.Fatal("40 wrong logins from one address, and no 429")
	}
	creds["password"] = "the right password"
	if st, b := send(t, owner, "POST", url+"/api/users/login", "", creds); st != http.StatusOK {
		t.Fatalf("the owner, from another address, got %d %s", st, b)
	}
}

func TestPasswordGuessingThroughPatchMeIsLimited(t *testing.T) {
	url := startLimited(t)
	attacker, owner := from(t, "127.0.0.1"), from(t, "127.0.0.2")
	servicetest.Register(t, url, "stolen@example.com", "the right password", "Stolen")
	// The attacker holds a stolen access token.
	st, b := send(t, attacker, "POST", url+"/api/users/login", "", map[string]string{"email": "stolen@example.com", "password": "the right password"})
	if st != http.StatusOK {
		t.Fatalf("login: %d %s", st, b)
	}
	var tok usersapi.Tokens
	_ = json.Unmarshal(b, &tok)
	guess := map[string]string{"password": "a new password!", "current_password": "guess"}
	limited := false
	for i := range 40 { // 40, not 11: see TestWrongLoginsDoNotLockTheOwnerOut
		st, b := send(t, attacker, "PATCH", url+"/api/users/me", tok.AccessToken, guess)
		if st == http.StatusTooManyRequests {
			limited = true
			break
		}
		if st != http.StatusUnprocessableEntity {
			t.Fatalf("guess %d: %d %s", i+1, st, b)
		}
	}
	if !limited {
		t.Fatal("40 guesses of current_password through PATCH /me, and no 429")
	}
	// A rename checks no password and is not limited.
	if st, b := send(t, attacker, "PATCH", url+"/api/users/me", tok.AccessToken, map[string]string{"name": "Renamed"}); st != http.StatusOK {
		t.Fatalf("rename: %d %s", st, b)
	}
	if st, b := send(t, owner, "POST", url+"/api/users/login", "", map[string]string{"email": "stolen@example.com", "password": "the right password"}); st != http.StatusOK {
		t.Fatalf("the owner, from another address, got %d %s", st, b)
	}
}

func TestRefreshIsLimitedBeforeItsBodyIsRead(t *testing.T) {
	url := startLimited(t, "--login-rate-ip", "2")
	c := from(t, "127.0.0.1")
	var last int
	for range 3 {
		req, _ := http.NewRequest("POST", url+"/api/users/refresh", bytes.NewReader([]byte("not json")))
		req.Header.Set("Content-Type", "application/json")
		res, err := c.Do(req)
		if err != nil {
			t.Fatal(err)
		}
		res.Body.Close()
		last = res.StatusCode
	}
	if last != http.StatusTooManyRequests {
		t.Fatalf("the third refresh got %d; the limit must answer before the body is decoded", last)
	}
}

func TestForwardedForIsBelievedOnlyWithTheProxySecret(t *testing.T) {
	url := startLimited(t, "--login-rate-ip", "2", "--proxy-secret", "s3cret")
	c := from(t, "127.0.0.1")
	creds := map[string]string{"email": "nobody@example.com", "password": "whatever it is"}
	// A local process that names a new client address each time is
	// still one address: loopback earns no trust.
	var st int
	for i := range 3 {
		st, _ = send(t, c, "POST", url+"/api/users/login", "", creds, "X-Forwarded-For", net.IPv4(203, 0, 113, byte(i)).String())
	}
	if st != http.StatusTooManyRequests {
		t.Fatalf("spoofed X-Forwarded-For escaped the per-address limit: %d", st)
	}
	// The gateway, which holds the secret, speaks for its clients.
	for i := range 3 {
		st, _ = send(t, c, "POST", url+"/api/users/login", "", creds,
			"X-Forwarded-For", net.IPv4(198, 51, 100, byte(i)).String(), ratelimit.ProxySecretHeader, "s3cret")
		if st != http.StatusUnauthorized {
			t.Fatalf("a forwarded client %d got %d, want 401", i, st)
		}
	}
}
