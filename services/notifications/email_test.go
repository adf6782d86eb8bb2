package notifications

import (
	"bytes"
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"io"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http/httptest"
	"net/mail"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/emersion/go-sasl"
	"github.com/emersion/go-smtp"
)

func TestParseSMTPURL(t *testing.T) {
	for _, c := range []struct {
		url  string
		want smtpConfig
		err  string
	}{
		{url: "smtp://127.0.0.1:8088", want: smtpConfig{Host: "127.0.0.1", Port: "8088"}},
		{url: "smtp://mail.example.com", want: smtpConfig{Host: "mail.example.com", Port: "25"}},
		{url: "smtp://shop:s3cret@mail.example.com:587?starttls=true",
			want: smtpConfig{Host: "mail.example.com", Port: "587", Username: "shop", Password: "s3cret", StartTLS: true}},
		{url: "smtp://shop:pw@localhost:2525", want: smtpConfig{Host: "localhost", Port: "2525", Username: "shop", Password: "pw"}},
		{url: "smtp://shop:s3cret@mail.example.com:587", err: "in clear"},
		{url: "smtps://mail.example.com", err: "must look like"},
		{url: "http://mail.example.com", err: "must look like"},
		{url: "smtp://mail.example.com:99999", err: "not a port"},
		{url: "smtp://mail.example.com?starttls=maybe", err: "true or false"},
		{url: "smtp://mail.example.com?tls=1", err: "unknown parameter"},
	} {
		got, err := parseSMTPURL(c.url)
		if c.err != "" {
			if err == nil || !strings.Contains(err.Error(), c.err) {
				t.Errorf("%s: %v, want an error saying %q", c.url, err, c.err)
			}
			if err != nil && strings.Contains(err.Error(), "s3cret") {
				t.Errorf("%s: the error shows the password: %v", c.url, err)
			}
			continue
		}
		if err != nil || got != c.want {
			t.Errorf("%s: %+v %v, want %+v", c.url, got, err, c.want)
		}
	}
}

// smtpServer is a go-smtp server with STARTTLS and AUTH PLAIN, as a mail
// provider runs one.
type smtpServer struct {
	addr  string
	roots *x509.CertPool

	mu       sync.Mutex
	received [][]byte
	authed   []string
	tls      []bool
	conns    []*smtp.Conn // every session the server opened
	resets   int
}

// sessions is how many connections the server has had.
func (ss *smtpServer) sessions() int {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	return len(ss.conns)
}

// dropAll closes every connection from the server's side, as a server
// that timed an idle client out does.
func (ss *smtpServer) dropAll() {
	ss.mu.Lock()
	defer ss.mu.Unlock()
	for _, c := range ss.conns {
		c.Close()
	}
}

func startSMTP(t *testing.T, withTLS bool) *smtpServer {
	t.Helper()
	// httptest's certificate is valid for 127.0.0.1; borrow it.
	certSrv := httptest.NewTLSServer(nil)
	certs := certSrv.TLS.Certificates
	roots := x509.NewCertPool()
	roots.AddCert(certSrv.Certificate())
	certSrv.Close()

	ss := &smtpServer{roots: roots}
	s := smtp.NewServer(smtp.BackendFunc(func(c *smtp.Conn) (smtp.Session, error) {
		ss.mu.Lock()
		if !slices.Contains(ss.conns, c) { // STARTTLS starts a second session on the same connection
			ss.conns = append(ss.conns, c)
		}
		ss.mu.Unlock()
		return &testSession{srv: ss, conn: c}, nil
	}))
	s.Domain = "mx.test"
	if withTLS {
		s.TLSConfig = &tls.Config{Certificates: certs}
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	go func() { _ = s.Serve(ln) }()
	t.Cleanup(func() { s.Close() })
	ss.addr = ln.Addr().String()
	return ss
}

type testSession struct {
	srv  *smtpServer
	conn *smtp.Conn
	user string
	to   string
}

func (s *testSession) AuthMechanisms() []string { return []string{sasl.Plain} }

func (s *testSession) Auth(string) (sasl.Server, error) {
	return sasl.NewPlainServer(func(_, user, pass string) error {
		if user != "shop" || pass != "s3cret" {
			return errors.New("bad credentials")
		}
		s.user = user
		return nil
	}), nil
}

func (s *testSession) Mail(string, *smtp.MailOptions) error { return nil }

func (s *testSession) Rcpt(to string, _ *smtp.RcptOptions) error {
	if strings.HasPrefix(to, "nobody@") {
		return &smtp.SMTPError{Code: 550, EnhancedCode: smtp.EnhancedCode{5, 1, 1}, Message: "no such mailbox"}
	}
	if strings.HasPrefix(to, "busy@") {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "try later"}
	}
	s.to = to
	return nil
}

func (s *testSession) Data(r io.Reader) error {
	b, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	_, isTLS := s.conn.TLSConnectionState()
	s.srv.mu.Lock()
	defer s.srv.mu.Unlock()
	s.srv.received = append(s.srv.received, b)
	s.srv.authed = append(s.srv.authed, s.user)
	s.srv.tls = append(s.srv.tls, isTLS)
	return nil
}

func (s *testSession) Reset() {
	s.srv.mu.Lock()
	s.srv.resets++
	s.srv.mu.Unlock()
}
func (s *testSession) Logout() error { return nil }

func testMailer(t *testing.T, srv *smtpServer, url string) *mailer {
	t.Helper()
	cfg, err := parseSMTPURL(strings.Replace(url, "ADDR", srv.addr, 1))
	if err != nil {
		t.Fatal(err)
	}
	cfg.Timeout = 5 * time.Second
	cfg.TLS = &tls.Config{RootCAs: srv.roots, ServerName: "127.0.0.1", MinVersion: tls.VersionTLS12}
	return &mailer{cfg: cfg, from: mail.Address{Name: "microshop", Address: "shop@microshop.local"}, helo: "test.local"}
}

func testEmail(to string) email {
	return email{MessageID: messageID("01evt", ChannelEmail), To: to, Subject: "Your order ✓ is confirmed",
		Text: "Total: $14.00\nthanks, a line long enough to need a soft line break in quoted-printable encoding, surely by now",
		HTML: "<p>Total: <b>$14.00</b></p>", Date: time.Date(2025, 1, 2, 3, 4, 5, 0, time.UTC), Boundary: "microshop-01del"}
}

// TestSMTPStartTLSAndAuth sends over STARTTLS with AUTH PLAIN, and checks
// the message a real SMTP server received part by part.
func TestSMTPStartTLSAndAuth(t *testing.T) {
	srv := startSMTP(t, true)
	m := testMailer(t, srv, "smtp://shop:s3cret@ADDR?starttls=true")
	if err := m.send(context.Background(), testEmail("ada@example.com")); err != nil {
		t.Fatal(err)
	}
	srv.mu.Lock()
	raw, user, overTLS := srv.received[0], srv.authed[0], srv.tls[0]
	srv.mu.Unlock()
	if user != "shop" || !overTLS {
		t.Errorf("authenticated as %q, over TLS %v", user, overTLS)
	}
	msg, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		t.Fatal(err)
	}
	subject, _ := new(mime.WordDecoder).DecodeHeader(msg.Header.Get("Subject"))
	if subject != "Your order ✓ is confirmed" || msg.Header.Get("Message-Id") != "<01evt.email@microshop>" ||
		msg.Header.Get("From") != `"microshop" <shop@microshop.local>` || msg.Header.Get("To") != "<ada@example.com>" {
		t.Errorf("headers: %v (subject %q)", msg.Header, subject)
	}
	mt, params, _ := mime.ParseMediaType(msg.Header.Get("Content-Type"))
	if mt != "multipart/alternative" {
		t.Fatalf("content type %q", mt)
	}
	mr := multipart.NewReader(msg.Body, params["boundary"])
	var parts []string
	for {
		p, err := mr.NextRawPart()
		if err == io.EOF {
			break
		}
		if err != nil {
			t.Fatal(err)
		}
		b, _ := io.ReadAll(quotedprintable.NewReader(p))
		parts = append(parts, p.Header.Get("Content-Type")+"|"+string(b))
	}
	if len(parts) != 2 || !strings.HasPrefix(parts[0], "text/plain; charset=utf-8|Total: $14.00\r\nthanks, a line long enough") ||
		!strings.Contains(parts[0], "surely by now") || parts[1] != "text/html; charset=utf-8|<p>Total: <b>$14.00</b></p>" {
		t.Errorf("parts: %q", parts)
	}
}

func TestSMTPFailures(t *testing.T) {
	tlsSrv := startSMTP(t, true)
	plainSrv := startSMTP(t, false)
	for _, c := range []struct {
		name      string
		srv       *smtpServer
		url, to   string
		want      string
		permanent bool
	}{
		{"wrong password", tlsSrv, "smtp://shop:wrong@ADDR?starttls=true", "ada@example.com", "AUTH PLAIN", false},
		{"no STARTTLS offered", plainSrv, "smtp://ADDR?starttls=true", "ada@example.com", "does not offer STARTTLS", false},
		{"recipient refused for good", tlsSrv, "smtp://ADDR", "nobody@example.com", "550", true},
		{"recipient refused for now", tlsSrv, "smtp://ADDR", "busy@example.com", "451", false},
		{"nobody listening", &smtpServer{addr: "127.0.0.1:1"}, "smtp://ADDR", "ada@example.com", "connecting", false},
	} {
		t.Run(c.name, func(t *testing.T) {
			err := testMailer(t, c.srv, c.url).send(context.Background(), testEmail(c.to))
			if err == nil || !strings.Contains(err.Error(), c.want) || isPermanent(err) != c.permanent {
				t.Errorf("%v (permanent %v), want %q (permanent %v)", err, isPermanent(err), c.want, c.permanent)
			}
		})
	}
}

// TestSMTPSessionReused: messages one after another share one session
// (RSET between them, no new greeting or AUTH); a session the server has
// dropped, or one whose message failed, is replaced by a new one and the
// message still goes.
func TestSMTPSessionReused(t *testing.T) {
	srv := startSMTP(t, true)
	m := testMailer(t, srv, "smtp://shop:s3cret@ADDR?starttls=true")
	send := func(to string) error { return m.send(context.Background(), testEmail(to)) }
	for range 5 {
		if err := send("ada@example.com"); err != nil {
			t.Fatal(err)
		}
	}
	srv.mu.Lock()
	got, resets, authed := len(srv.received), srv.resets, srv.authed
	srv.mu.Unlock()
	if got != 5 || srv.sessions() != 1 || resets < 4 {
		t.Fatalf("5 messages: %d received over %d connections with %d resets; want 5 over 1, reset before each reuse", got, srv.sessions(), resets)
	}
	for i, u := range authed {
		if u != "shop" {
			t.Errorf("message %d was accepted from %q, not the authenticated user", i, u)
		}
	}

	srv.dropAll()
	if err := send("ada@example.com"); err != nil {
		t.Fatalf("after the server dropped the session: %v", err)
	}
	if n := srv.sessions(); n != 2 {
		t.Errorf("after the server dropped the session: %d sessions, want a second one", n)
	}

	if err := send("busy@example.com"); err == nil || !strings.Contains(err.Error(), "451") {
		t.Fatalf("a refused recipient: %v, want the 451", err)
	}
	if err := send("ada@example.com"); err != nil {
		t.Fatal(err)
	}
	if n := srv.sessions(); n != 3 {
		t.Errorf("after a failed message: %d sessions, want a third (the failed one is not reused)", n)
	}

	m.close()
	srv.mu.Lock()
	got = len(srv.received)
	srv.mu.Unlock()
	if got != 7 {
		t.Errorf("%d messages received in all, want 7", got)
	}
}
