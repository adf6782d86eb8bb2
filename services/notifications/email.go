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

// mailer sends email over SMTP.
type mailer struct {
	cfg  smtpConfig
	from mail.Address
	// helo is the name this client gives in EHLO.
	helo string
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
// (the reply to the end of DATA); a failure after that point, such as
// QUIT going unanswered, does not make the message unsent.
func (ml *mailer) send(ctx context.Context, m email) error {
	msg, err := ml.build(m)
	if err != nil {
		return permanent(err)
	}
	addr := net.JoinHostPort(ml.cfg.Host, ml.cfg.Port)
	d := net.Dialer{Timeout: ml.cfg.Timeout}
	conn, err := d.DialContext(ctx, "tcp", addr)
	if err != nil {
		return fmt.Errorf("connecting to the SMTP server %s: %w", addr, err)
	}
	defer conn.Close()
	// One deadline for the whole conversation, and cancelling ctx cuts it.
	_ = conn.SetDeadline(time.Now().Add(ml.cfg.Timeout))
	stop := context.AfterFunc(ctx, func() { conn.Close() })
	defer stop()

	c, err := smtp.NewClient(conn, ml.cfg.Host)
	if err != nil {
		return fmt.Errorf("greeting the SMTP server %s: %w", addr, err)
	}
	defer c.Close()
	if err := c.Hello(ml.helo); err != nil {
		return fmt.Errorf("EHLO: %w", err)
	}
	if ml.cfg.StartTLS {
		if ok, _ := c.Extension("STARTTLS"); !ok {
			return fmt.Errorf("the SMTP server %s does not offer STARTTLS, which --smtp-url asks for", addr)
		}
		cfg := &tls.Config{ServerName: ml.cfg.Host, MinVersion: tls.VersionTLS12}
		if ml.cfg.TLS != nil {
			cfg = ml.cfg.TLS.Clone()
		}
		if err := c.StartTLS(cfg); err != nil {
			return fmt.Errorf("STARTTLS: %w", err)
		}
	}
	if ml.cfg.Username != "" {
		if ok, _ := c.Extension("AUTH"); !ok {
			return fmt.Errorf("the SMTP server %s does not offer AUTH, and --smtp-url has credentials", addr)
		}
		if err := c.Auth(smtp.PlainAuth("", ml.cfg.Username, ml.cfg.Password, ml.cfg.Host)); err != nil {
			return fmt.Errorf("AUTH PLAIN: %w", err)
		}
	}
	if err := c.Mail(ml.from.Address); err != nil {
		return fmt.Errorf("MAIL FROM: %w", err)
	}
	if err := c.Rcpt(m.To); err != nil {
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
	_ = c.Quit() // accepted; a lost QUIT changes nothing
	return nil
}
