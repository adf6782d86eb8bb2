package notifications

import (
	"bytes"
	"context"
	"crypto/tls"
	"errors"
	"fmt"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/mail"
	"net/smtp"
	"net/textproto"
	"net/url"
	"strconv"
	"strings"
	"sync"
	"time"
)

// smtpConfig is where and how email is sent, from --smtp-url:
// smtp://[user:pass@]host[:port][?starttls=true].
type smtpConfig struct {
	Host     string
	Port     string
	Username string
	Password string
	// StartTLS upgrades the connection before anything else is said, and
	// fails the delivery when the server does not offer it.
	StartTLS bool
	// TLS, when set, replaces the default TLS settings (tests use it to
	// trust their own certificate).
	TLS     *tls.Config
	Timeout time.Duration
}

// parseSMTPURL reads an --smtp-url.
func parseSMTPURL(raw string) (smtpConfig, error) {
	u, err := url.Parse(raw)
	if err != nil || u.Scheme != "smtp" || u.Hostname() == "" || u.Opaque != "" {
		return smtpConfig{}, fmt.Errorf("--smtp-url %q must look like smtp://[user:pass@]host[:port][?starttls=true]", redactSMTP(raw))
	}
	c := smtpConfig{Host: u.Hostname(), Port: u.Port()}
	if c.Port == "" {
		c.Port = "25"
	}
	if p, err := strconv.Atoi(c.Port); err != nil || p < 1 || p > 65535 {
		return smtpConfig{}, fmt.Errorf("--smtp-url: %q is not a port", c.Port)
	}
	for k, v := range u.Query() {
		switch k {
		case "starttls":
			b, err := strconv.ParseBool(v[0])
			if err != nil {
				return smtpConfig{}, fmt.Errorf("--smtp-url: starttls=%q must be true or false", v[0])
			}
			c.StartTLS = b
		default:
			return smtpConfig{}, fmt.Errorf("--smtp-url: unknown parameter %q (only starttls)", k)
		}
	}
	if u.User != nil {
		c.Username = u.User.Username()
		c.Password, _ = u.User.Password()
		// PLAIN sends the password as it is: only over TLS, or to a
		// server on this machine (net/smtp enforces the same).
		if !c.StartTLS && !isLocal(c.Host) {
			return smtpConfig{}, errors.New("--smtp-url has credentials but no ?starttls=true: the password would cross the network in clear")
		}
	}
	return c, nil
}

func isLocal(host string) bool {
	if host == "localhost" {
		return true
	}
	ip := net.ParseIP(host)
	return ip != nil && ip.IsLoopback()
}

// redactSMTP hides the password of an SMTP URL, for messages and logs.
func redactSMTP(raw string) string {
	u, err := url.Parse(raw)
	if err != nil || u.User == nil {
		return raw
	}
	if _, ok := u.User.Password(); ok {
		u.User = url.UserPassword(u.User.Username(), "xxxxx")
	}
	return u.String()
}

// mailer sends email over SMTP. It keeps the sessions it opened and
// sends the next message over one of them, after RSET, instead of
// connecting, greeting and authenticating again for every message: under
// load the new connection per message was most of notifications' email
// work and most of what the mail server did.
type mailer struct {
	cfg  smtpConfig
	from mail.Address
	// helo is the name this client gives in EHLO.
	helo string
	// keep is how many idle sessions are kept (smtpIdleMax when zero):
	// as many as messages are sent at once, so none is closed only to be
	// opened again.
	keep int

	mu   sync.Mutex
	idle []*smtpSession // the most recently used last
}

// How long an unused session is kept, how many are kept by default, and how many
// messages one session carries before it says QUIT. Servers drop a
// client that stays silent for minutes (RFC 5321 asks them to wait at
// least 5); leaving well before that keeps a RSET from finding a session
// the server has already closed.
const (
	smtpIdleFor     = 30 * time.Second
	smtpIdleMax     = 4
	smtpSessionMsgs = 200
)

// smtpSession is an open, greeted and authenticated SMTP conversation.
type smtpSession struct {
	conn net.Conn
	c    *smtp.Client
	sent int
	used time.Time
}

func (ss *smtpSession) close() {
	_ = ss.c.Close()
	_ = ss.conn.Close()
}

// email is one message to send.
type email struct {
	// MessageID is deterministic (<event id>.<channel>@microshop), so a
	// message sent twice after a crash is recognisable as one.
	MessageID string
	To        string
	Subject   string
	Text      string
	HTML      string
	Date      time.Time
	// Boundary separates the parts; any token that cannot occur in them.
	Boundary string
}

// messageID is the Message-ID of the email of an event on a channel.
func messageID(eventID, channel string) string { return eventID + "." + channel + "@microshop" }

// build writes m as a multipart/alternative message: text, then HTML.
func (ml *mailer) build(m email) ([]byte, error) {
	var b bytes.Buffer
	h := func(k, v string) { fmt.Fprintf(&b, "%s: %s\r\n", k, v) }
	h("From", ml.from.String())
	h("To", (&mail.Address{Address: m.To}).String())
	h("Subject", mime.QEncoding.Encode("utf-8", oneLine(m.Subject)))
	h("Date", m.Date.Format(time.RFC1123Z))
	h("Message-ID", "<"+m.MessageID+">")
	h("MIME-Version", "1.0")
	h("Auto-Submitted", "auto-generated")
	mw := multipart.NewWriter(&b)
	if err := mw.SetBoundary(m.Boundary); err != nil {
		return nil, fmt.Errorf("setting the MIME boundary: %w", err)
	}
	h("Content-Type", "multipart/alternative; boundary="+mw.Boundary())
	b.WriteString("\r\n")
	for _, part := range []struct{ ctype, body string }{{"text/plain", m.Text}, {"text/html", m.HTML}} {
		w, err := mw.CreatePart(textproto.MIMEHeader{
			"Content-Type":              {part.ctype + "; charset=utf-8"},
			"Content-Transfer-Encoding": {"quoted-printable"},
		})
		if err != nil {
			return nil, fmt.Errorf("writing the %s part: %w", part.ctype, err)
		}
		qp := quotedprintable.NewWriter(w)
		if _, err := qp.Write([]byte(crlf(part.body))); err != nil {
			return nil, fmt.Errorf("writing the %s part: %w", part.ctype, err)
		}
		if err := qp.Close(); err != nil {
			return nil, fmt.Errorf("writing the %s part: %w", part.ctype, err)
		}
	}
	if err := mw.Close(); err != nil {
		return nil, fmt.Errorf("closing the message: %w", err)
	}
	return b.Bytes(), nil
}

// oneLine keeps a header value on one line, whatever the data put in it.
func oneLine(s string) string {
	return strings.Join(strings.FieldsFunc(s, func(r rune) bool { return r == '\r' || r == '\n' }), " ")
}

// crlf makes every line end in CRLF, as SMTP wants.
func crlf(s string) string {
	return strings.ReplaceAll(strings.ReplaceAll(s, "\r\n", "\n"), "\n", "\r\n")
}

// send delivers m. It returns once the server has accepted the message
// (the reply to the end of DATA). It uses an idle session when there is
// one: RSET first, which also shows that the server still holds it; a
// session that fails RSET is dropped and a new one opened, since nothing
// of m was sent yet.
func (ml *mailer) send(ctx context.Context, m email) error {
	msg, err := ml.build(m)
	if err != nil {
		return permanent(err)
	}
	ss := ml.take()
	if ss != nil {
		// One deadline for the whole message, and cancelling ctx cuts it.
		_ = ss.conn.SetDeadline(time.Now().Add(ml.cfg.Timeout))
		if err := ss.c.Reset(); err != nil {
			ss.close()
			ss = nil
		}
	}
	if ss == nil {
		if ss, err = ml.open(ctx); err != nil {
			return err
		}
		_ = ss.conn.SetDeadline(time.Now().Add(ml.cfg.Timeout))
	}
	stop := context.AfterFunc(ctx, func() { ss.conn.Close() })
	err = ml.deliver(ss.c, m.To, msg)
	if !stop() || err != nil {
		// Cut by ctx, or the conversation failed: what state the server
		// is in is unknown, so the session is not used again.
		ss.close()
		return err
	}
	ml.put(ss)
	return nil
}

// take returns the most recently used idle session that is still fresh,
// closing those that are not, or nil.
func (ml *mailer) take() *smtpSession {
	ml.mu.Lock()
	defer ml.mu.Unlock()
	for len(ml.idle) > 0 {
		ss := ml.idle[len(ml.idle)-1]
		ml.idle = ml.idle[:len(ml.idle)-1]
		if time.Since(ss.used) < smtpIdleFor {
			return ss
		}
		go ss.close()
	}
	return nil
}

// put keeps ss for the next message, or says QUIT when it has carried
// enough or enough sessions are kept already.
func (ml *mailer) put(ss *smtpSession) {
	ss.sent++
	ss.used = time.Now()
	keep := ml.keep
	if keep <= 0 {
		keep = smtpIdleMax
	}
	ml.mu.Lock()
	if ss.sent < smtpSessionMsgs && len(ml.idle) < keep {
		ml.idle = append(ml.idle, ss)
		ss = nil
	}
	ml.mu.Unlock()
	if ss != nil {
		_ = ss.c.Quit() // the message was accepted; a lost QUIT changes nothing
		ss.conn.Close()
	}
}

// close ends the idle sessions with QUIT.
func (ml *mailer) close() {
	ml.mu.Lock()
	idle := ml.idle
	ml.idle = nil
	ml.mu.Unlock()
	for _, ss := range idle {
		_ = ss.conn.SetDeadline(time.Now().Add(time.Second))
		_ = ss.c.Quit()
		ss.conn.Close()
	}
}

// open connects, greets, upgrades to TLS when asked and authenticates.
func (ml *mailer) open(ctx context.Context) (_ *smtpSession, err error) {
	addr := net.JoinHostPort(ml.cfg.Host, ml.cfg.Port)
	d := net.Dialer{Timeout: ml.cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return nil, fmt.Errorf("connecting to the SMTP server %s: %w", addr, err)
	}
	defer func() {
		if err != nil {
			conn.Close()
		}
	}()
	_ = conn.SetDeadline(time.Now().Add(ml.cfg.Timeout))
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, err := smtp.NewClient(conn, ml.cfg.Host)
	if err != nil {
		return nil, fmt.Errorf("greeting the SMTP server %s: %w", addr, err)
	}
	if err := c.Hello(ml.helo); err != nil {
		return nil, fmt.Errorf("EHLO: %w", err)
	}
	if ml.cfg.StartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return nil, fmt.Errorf("the SMTP server %s does not offer STARTTLS, which --smtp-url asks for", addr)
		}
		cfg := &tls.Config{ServerName: ml.cfg.Host, MinVersion: tls.VersionTLS12}
		if ml.cfg.TLS != nil {
			cfg = ml.cfg.TLS.Clone()
		}
		if err := c.StartTLS(cfg); err != nil {
			return nil, fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if ml.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return nil, fmt.Errorf("the SMTP server %s does not offer AUTH, and --smtp-url has credentials", addr)
		}
		if err := c.Auth(smtp.PlainAuth("", ml.cfg.Username, ml.cfg.Password, ml.cfg.Host)); err != nil {
			return nil, fmt.Errorf("AUTH PLAIN: %w", err)
		}
	}
	if ctx.Err() != nil {
		return nil, ctx.Err()
	}
	return &smtpSession{conn: conn, c: c}, nil
}

// deliver sends one message on an open session: MAIL, RCPT, DATA.
func (ml *mailer) deliver(c *smtp.Client, to string, msg []byte) error {
	if err := c.Mail(ml.from.Address); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := c.Rcpt(to); err != nil {
		// 5xx: the server refuses this recipient for good.
		var te *textproto.Error
		if errors.As(err, &te) && te.Code >= 500 {
			return permanent(fmt.Errorf("RCPT TO: %w", err))
		}
		return fmt.Errorf("RCPT TO: %w", err)
	}
	w, err := c.Data()
	if err != nil {
		return fmt.Errorf("DATA: %w", err)
	}
	if _, err := w.Write(msg); err != nil {
		return fmt.Errorf("writing the message: %w", err)
	}
	if err := w.Close(); err != nil {
		return fmt.Errorf("the server did not accept the message: %w", err)
	}
	return nil
}
