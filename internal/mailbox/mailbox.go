// Package mailbox is the built-in mail server of `microshop run`: a real
// SMTP listener that keeps every message it receives, and an HTTP API that
// lists them. It stands in for an outside mail provider so a newcomer sees
// the shop's emails with no setup; notifications talks to it over SMTP
// exactly as it would to any other server.
package mailbox

import (
	"bufio"
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"log/slog"
	"mime"
	"mime/multipart"
	"mime/quotedprintable"
	"net"
	"net/http"
	"net/mail"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/emersion/go-smtp"
)

// Message is one email as received.
type Message struct {
	ID         int       `json:"id"`
	MessageID  string    `json:"message_id"`
	From       string    `json:"from"`
	To         []string  `json:"to"`
	Subject    string    `json:"subject"`
	Text       string    `json:"text"`
	HTML       string    `json:"html,omitempty"`
	ReceivedAt time.Time `json:"received_at"`
}

// Mailbox keeps received messages in memory, newest last, and appends
// each to a JSON-lines file so they survive a restart of `run`.
type Mailbox struct {
	log  *slog.Logger
	max  int
	path string

	mu   sync.Mutex
	msgs []Message
	next int
	file *os.File
	smtp *smtp.Server
}

// Open loads the mailbox at path (created if missing), keeping at most
// limit messages in memory.
func Open(path string, limit int, log *slog.Logger) (*Mailbox, error) {
	m := &Mailbox{log: log, max: limit, path: path, next: 1}
	if b, err := os.ReadFile(path); err == nil {
		sc := bufio.NewScanner(bytes.NewReader(b))
		sc.Buffer(make([]byte, 1<<20), 8<<20)
		for sc.Scan() {
			var msg Message
			if json.Unmarshal(sc.Bytes(), &msg) == nil {
				m.keep(msg)
				m.next = max(m.next, msg.ID+1)
			}
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading the mailbox %s: %w", path, err)
	}
	f, err := os.OpenFile(path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return nil, fmt.Errorf("opening the mailbox %s: %w", path, err)
	}
	m.file = f
	return m, nil
}

func (m *Mailbox) keep(msg Message) {
	m.msgs = append(m.msgs, msg)
	if len(m.msgs) > m.max {
		m.msgs = m.msgs[len(m.msgs)-m.max:]
	}
}

// add stores a message and returns it with its id.
func (m *Mailbox) add(msg Message) (Message, error) {
	m.mu.Lock()
	defer m.mu.Unlock()
	msg.ID = m.next
	m.next++
	b, err := json.Marshal(msg)
	if err != nil {
		return Message{}, err
	}
	if _, err := m.file.Write(append(b, '\n')); err != nil {
		return Message{}, fmt.Errorf("storing the message: %w", err)
	}
	m.keep(msg)
	return msg, nil
}

// Messages returns the kept messages, oldest first.
func (m *Mailbox) Messages() []Message {
	m.mu.Lock()
	defer m.mu.Unlock()
	return append([]Message(nil), m.msgs...)
}

// ListenSMTP accepts mail on ln until Close.
func (m *Mailbox) ListenSMTP(ln net.Listener) {
	s := smtp.NewServer(backend{m})
	s.Domain = "mailbox.microshop.local"
	s.MaxMessageBytes = 10 << 20
	s.MaxRecipients = 100
	s.AllowInsecureAuth = true
	s.ReadTimeout = time.Minute
	s.WriteTimeout = time.Minute
	m.mu.Lock()
	m.smtp = s
	m.mu.Unlock()
	go func() {
		if err := s.Serve(ln); err != nil && !errors.Is(err, smtp.ErrServerClosed) && !errors.Is(err, net.ErrClosed) {
			m.log.Warn("the mailbox's SMTP server stopped", "err", err)
		}
	}()
}

// Close stops the SMTP server and closes the file.
func (m *Mailbox) Close() error {
	m.mu.Lock()
	s := m.smtp
	m.mu.Unlock()
	if s != nil {
		_ = s.Close()
	}
	return m.file.Close()
}

type backend struct{ m *Mailbox }

func (b backend) NewSession(*smtp.Conn) (smtp.Session, error) { return &session{m: b.m}, nil }

type session struct {
	m    *Mailbox
	from string
	to   []string
}

func (s *session) AuthPlain(string, string) error { return nil } // any credentials: it is a local test server

func (s *session) Mail(from string, _ *smtp.MailOptions) error {
	s.from = from
	return nil
}

func (s *session) Rcpt(to string, _ *smtp.RcptOptions) error {
	s.to = append(s.to, to)
	return nil
}

func (s *session) Data(r io.Reader) error {
	raw, err := io.ReadAll(r)
	if err != nil {
		return err
	}
	msg := parse(raw)
	msg.From, msg.To, msg.ReceivedAt = s.from, s.to, time.Now().UTC()
	if _, err := s.m.add(msg); err != nil {
		return &smtp.SMTPError{Code: 451, EnhancedCode: smtp.EnhancedCode{4, 3, 0}, Message: "could not store the message"}
	}
	return nil
}

func (s *session) Reset()        { s.from, s.to = "", nil }
func (s *session) Logout() error { return nil }

// parse reads the headers and the text and HTML parts of a message. A
// message it cannot parse is kept with its raw text as the body.
func parse(raw []byte) Message {
	mm, err := mail.ReadMessage(bytes.NewReader(raw))
	if err != nil {
		return Message{Text: string(raw)}
	}
	dec := new(mime.WordDecoder)
	subject, err := dec.DecodeHeader(mm.Header.Get("Subject"))
	if err != nil {
		subject = mm.Header.Get("Subject")
	}
	msg := Message{MessageID: strings.Trim(mm.Header.Get("Message-Id"), "<>"), Subject: subject}
	readPart(&msg, mm.Header.Get("Content-Type"), mm.Header.Get("Content-Transfer-Encoding"), mm.Body)
	return msg
}

func readPart(msg *Message, contentType, encoding string, body io.Reader) {
	if strings.EqualFold(encoding, "quoted-printable") {
		body = quotedprintable.NewReader(body)
	}
	mt, params, err := mime.ParseMediaType(contentType)
	if err != nil {
		mt = "text/plain"
	}
	if strings.HasPrefix(mt, "multipart/") {
		mr := multipart.NewReader(body, params["boundary"])
		for {
			p, err := mr.NextRawPart()
			if err != nil {
				return
			}
			readPart(msg, p.Header.Get("Content-Type"), p.Header.Get("Content-Transfer-Encoding"), p)
		}
	}
	b, _ := io.ReadAll(io.LimitReader(body, 1<<20))
	switch mt {
	case "text/html":
		msg.HTML = string(b)
	default:
		if msg.Text == "" {
			msg.Text = string(b)
		}
	}
}

// Handler serves the mailbox over HTTP:
//
//	GET /api/mailbox/messages?to=&subject=&limit=   newest first
//	GET /api/mailbox/messages/{id}
func (m *Mailbox) Handler() http.Handler {
	mux := http.NewServeMux()
	mux.HandleFunc("GET /api/mailbox/messages", func(w http.ResponseWriter, r *http.Request) {
		q := r.URL.Query()
		limit := 100
		if v := q.Get("limit"); v != "" {
			n, err := strconv.Atoi(v)
			if err != nil || n < 1 || n > 1000 {
				writeProblem(w, http.StatusUnprocessableEntity, "limit must be an integer from 1 to 1000")
				return
			}
			limit = n
		}
		to, subject := strings.ToLower(q.Get("to")), strings.ToLower(q.Get("subject"))
		msgs := m.Messages()
		out := []Message{}
		for i := len(msgs) - 1; i >= 0 && len(out) < limit; i-- {
			msg := msgs[i]
			if to != "" && !strings.Contains(strings.ToLower(strings.Join(msg.To, ",")), to) {
				continue
			}
			if subject != "" && !strings.Contains(strings.ToLower(msg.Subject), subject) {
				continue
			}
			out = append(out, msg)
		}
		writeJSON(w, map[string]any{"items": out})
	})
	mux.HandleFunc("GET /api/mailbox/messages/{id}", func(w http.ResponseWriter, r *http.Request) {
		id, err := strconv.Atoi(r.PathValue("id"))
		if err == nil {
			for _, msg := range m.Messages() {
				if msg.ID == id {
					writeJSON(w, msg)
					return
				}
			}
		}
		writeProblem(w, http.StatusNotFound, "no such message")
	})
	// Probes, so the gateway's health panel sees the mailbox like a service.
	mux.HandleFunc("GET /healthz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, map[string]string{"status": "alive"}) })
	mux.HandleFunc("GET /readyz", func(w http.ResponseWriter, r *http.Request) { writeJSON(w, map[string]string{"smtp": "ok"}) })
	mux.HandleFunc("/", func(w http.ResponseWriter, r *http.Request) {
		writeProblem(w, http.StatusNotFound, "no route for "+r.Method+" "+r.URL.Path)
	})
	return mux
}

func writeJSON(w http.ResponseWriter, v any) {
	w.Header().Set("Content-Type", "application/json")
	_ = json.NewEncoder(w).Encode(v)
}

func writeProblem(w http.ResponseWriter, status int, detail string) {
	w.Header().Set("Content-Type", "application/problem+json")
	w.WriteHeader(status)
	_ = json.NewEncoder(w).Encode(map[string]any{"type": "about:blank", "title": http.StatusText(status), "status": status, "detail": detail})
}
