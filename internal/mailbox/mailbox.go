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
	"unicode/utf8"
	"unsafe"

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

// Mailbox keeps the newest received messages in memory, within a count
// and a budget of bytes, newest last, and appends each to a JSON-lines
// file so they survive a restart of `run`.
type Mailbox struct {
	log      *slog.Logger
	max      int
	maxBytes int64
	path     string

	mu    sync.Mutex
	msgs  []Message
	bytes int64 // what msgs hold, as messageSize counts it
	next  int
	file  *os.File
	size  int64 // of the file, to know when to compact it (it only grows)
	smtp  *smtp.Server
}

// DefaultBytes is the mailbox's budget when none is given: about a
// thousand of the shop's receipts.
const DefaultBytes = 2 << 20

// messageSize is an estimate of what msg takes in memory: the struct and
// its strings.
func messageSize(msg Message) int64 {
	n := int64(unsafe.Sizeof(msg)) + int64(len(msg.MessageID)+len(msg.From)+len(msg.Subject)+len(msg.Text)+len(msg.HTML))
	for _, to := range msg.To {
		n += 16 + int64(len(to))
	}
	return n
}

// Open loads the mailbox at path (created if missing), keeping at most
// limit messages and maxBytes of them in memory (DefaultBytes when 0 or
// less). The file is read a line at a time, so a long history is never
// in memory whole; when it holds much more than is kept, it is rewritten
// with the kept messages only.
func Open(path string, limit int, maxBytes int64, log *slog.Logger) (*Mailbox, error) {
	if maxBytes <= 0 {
		maxBytes = DefaultBytes
	}
	m := &Mailbox{log: log, max: limit, maxBytes: maxBytes, path: path, next: 1}
	if f, err := os.Open(path); err == nil {
		err := m.load(f)
		f.Close()
		if err != nil {
			return nil, fmt.Errorf("reading the mailbox %s: %w", path, err)
		}
	} else if !errors.Is(err, os.ErrNotExist) {
		return nil, fmt.Errorf("reading the mailbox %s: %w", path, err)
	}
	if err := m.openFile(); err != nil {
		return nil, err
	}
	return m, nil
}

// load reads the messages of f one line at a time, keeping the newest.
func (m *Mailbox) load(f *os.File) error {
	r := bufio.NewReaderSize(f, 64<<10)
	for {
		line, err := r.ReadSlice('\n')
		if errors.Is(err, bufio.ErrBufferFull) {
			// A line longer than the buffer: read the rest of it.
			long := append([]byte(nil), line...)
			for errors.Is(err, bufio.ErrBufferFull) {
				line, err = r.ReadSlice('\n')
				long = append(long, line...)
			}
			line = long
		}
		if len(bytes.TrimSpace(line)) > 0 {
			var msg Message
			if json.Unmarshal(line, &msg) == nil {
				m.keep(msg)
				m.next = max(m.next, msg.ID+1)
			}
		}
		if errors.Is(err, io.EOF) {
			return nil
		}
		if err != nil {
			return err
		}
	}
}

// openFile opens the file to append to, first rewriting it with the
// kept messages when it has grown to more than twice the budget.
func (m *Mailbox) openFile() error {
	if st, err := os.Stat(m.path); err == nil && st.Size() > 2*m.maxBytes+(1<<20) {
		if err := m.compact(); err != nil {
			return err
		}
	}
	f, err := os.OpenFile(m.path, os.O_CREATE|os.O_WRONLY|os.O_APPEND, 0o600)
	if err != nil {
		return fmt.Errorf("opening the mailbox %s: %w", m.path, err)
	}
	st, err := f.Stat()
	if err != nil {
		f.Close()
		return fmt.Errorf("opening the mailbox %s: %w", m.path, err)
	}
	m.file, m.size = f, st.Size()
	return nil
}

// compact rewrites the file with the kept messages only, atomically.
func (m *Mailbox) compact() error {
	tmp := m.path + ".tmp"
	f, err := os.OpenFile(tmp, os.O_CREATE|os.O_WRONLY|os.O_TRUNC, 0o600)
	if err != nil {
		return fmt.Errorf("compacting the mailbox: %w", err)
	}
	w := bufio.NewWriter(f)
	enc := json.NewEncoder(w)
	for _, msg := range m.msgs {
		if err := enc.Encode(msg); err != nil {
			f.Close()
			return fmt.Errorf("compacting the mailbox: %w", err)
		}
	}
	if err := errors.Join(w.Flush(), f.Sync(), f.Close()); err != nil {
		return fmt.Errorf("compacting the mailbox: %w", err)
	}
	return os.Rename(tmp, m.path)
}

// keep adds msg and drops the oldest messages beyond either bound. A
// message larger than a quarter of the budget is kept with its bodies
// cut, so one huge message cannot push every other one out.
func (m *Mailbox) keep(msg Message) {
	if quarter := m.maxBytes / 4; messageSize(msg) > quarter {
		const note = "\n[cut by the mailbox of microshop run: the message was larger than a quarter of its memory budget]"
		room := max(int(quarter)-int(messageSize(Message{MessageID: msg.MessageID, From: msg.From, To: msg.To, Subject: msg.Subject}))-2*len(note), 0)
		msg.Text = cut(msg.Text, room/2) + note
		msg.HTML = cut(msg.HTML, room/2)
		if msg.HTML != "" {
			msg.HTML += note
		}
	}
	m.msgs = append(m.msgs, msg)
	m.bytes += messageSize(msg)
	drop := 0
	for drop < len(m.msgs)-1 && (len(m.msgs)-drop > m.max || m.bytes > m.maxBytes) {
		m.bytes -= messageSize(m.msgs[drop])
		drop++
	}
	if drop > 0 {
		clear(m.msgs[:drop]) // so the dropped messages' strings can be freed
		m.msgs = append(m.msgs[:0], m.msgs[drop:]...)
	}
}

// cut shortens s to at most n bytes, on a character boundary.
func cut(s string, n int) string {
	if len(s) <= n {
		return s
	}
	for n > 0 && !utf8.RuneStart(s[n]) {
		n--
	}
	return s[:n]
}

// Bytes is what the kept messages take in memory, as the mailbox counts
// it: never more than its budget.
func (m *Mailbox) Bytes() int64 {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.bytes
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
	m.size += int64(len(b) + 1)
	m.keep(msg)
	if m.size > 2*m.maxBytes+(1<<20) {
		// The file only grows: rewrite it with what is kept, as Open does.
		if err := m.file.Close(); err != nil {
			m.log.Warn("closing the mailbox file to compact it", "err", err)
		}
		if err := m.openFile(); err != nil {
			return Message{}, err
		}
	}
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
