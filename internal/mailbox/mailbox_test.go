package mailbox

import (
	"encoding/json"
	"fmt"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"os"
	"path/filepath"
	"runtime"
	"strings"
	"sync/atomic"
	"testing"
	"time"
	"unicode/utf8"
)

func start(t *testing.T, path string) (*Mailbox, string) {
	t.Helper()
	m, err := Open(path, 3, 0, slog.New(slog.NewTextHandler(io.Discard, nil)))
	if err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	m.ListenSMTP(ln)
	t.Cleanup(func() { m.Close() })
	return m, ln.Addr().String()
}

const multipartMail = "From: shop@microshop.local\r\nTo: ada@example.com\r\nSubject: =?utf-8?q?Your_order_=E2=9C=93?=\r\n" +
	"Message-Id: <evt-1.email@microshop>\r\nMIME-Version: 1.0\r\nContent-Type: multipart/alternative; boundary=XX\r\n\r\n" +
	"--XX\r\nContent-Type: text/plain; charset=utf-8\r\nContent-Transfer-Encoding: quoted-printable\r\n\r\nTotal: 14.00 USD=\r\n, thanks\r\n" +
	"--XX\r\nContent-Type: text/html; charset=utf-8\r\n\r\n<p>Total: <b>14.00 USD</b></p>\r\n--XX--\r\n"

func TestReceivesOverRealSMTPAndKeepsAcrossRestart(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailbox.jsonl")
	m, addr := start(t, path)
	if err := smtp.SendMail(addr, nil, "shop@microshop.local", []string{"ada@example.com"}, []byte(multipartMail)); err != nil {
		t.Fatal(err)
	}
	msgs := m.Messages()
	if len(msgs) != 1 {
		t.Fatalf("%d messages", len(msgs))
	}
	got := msgs[0]
	if got.Subject != "Your order ✓" || got.MessageID != "evt-1.email@microshop" || got.To[0] != "ada@example.com" ||
		!strings.Contains(got.Text, "Total: 14.00 USD, thanks") || !strings.Contains(got.HTML, "<b>14.00 USD</b>") {
		t.Fatalf("parsed %+v", got)
	}
	m.Close()

	// A new mailbox on the same file has the message, and numbers on.
	m2, addr2 := start(t, path)
	if err := smtp.SendMail(addr2, nil, "shop@microshop.local", []string{"grace@example.com"}, []byte("Subject: plain\r\n\r\nhello\r\n")); err != nil {
		t.Fatal(err)
	}
	msgs = m2.Messages()
	if len(msgs) != 2 || msgs[1].ID != 2 || msgs[1].Text != "hello\r\n" {
		t.Fatalf("after restart: %+v", msgs)
	}
}

func TestHTTPListsNewestFirstWithFilters(t *testing.T) {
	m, addr := start(t, filepath.Join(t.TempDir(), "mb.jsonl"))
	for _, to := range []string{"a@example.com", "b@example.com", "a@example.com", "c@example.com"} {
		if err := smtp.SendMail(addr, nil, "shop@x.io", []string{to}, []byte("Subject: hi "+to+"\r\n\r\nbody\r\n")); err != nil {
			t.Fatal(err)
		}
	}
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	get := func(path string) (int, []Message) {
		resp, err := http.Get(srv.URL + path)
		if err != nil {
			t.Fatal(err)
		}
		defer resp.Body.Close()
		var out struct{ Items []Message }
		_ = json.NewDecoder(resp.Body).Decode(&out)
		return resp.StatusCode, out.Items
	}
	// Only the newest 3 are kept in memory (the limit given to Open).
	_, all := get("/api/mailbox/messages")
	if len(all) != 3 || all[0].To[0] != "c@example.com" {
		t.Fatalf("all: %+v", all)
	}
	if _, a := get("/api/mailbox/messages?to=A@EXAMPLE.COM"); len(a) != 1 {
		t.Fatalf("filter by recipient: %+v", a)
	}
	if _, one := get("/api/mailbox/messages?limit=1"); len(one) != 1 {
		t.Fatalf("limit: %+v", one)
	}
	if code, _ := get("/api/mailbox/messages?limit=0"); code != http.StatusUnprocessableEntity {
		t.Fatalf("bad limit: %d", code)
	}
	resp, _ := http.Get(srv.URL + "/api/mailbox/messages/4")
	if resp.StatusCode != 200 {
		t.Fatalf("one message: %d", resp.StatusCode)
	}
	resp, _ = http.Get(srv.URL + "/api/mailbox/messages/99")
	if resp.StatusCode != 404 || resp.Header.Get("Content-Type") != "application/problem+json" {
		t.Fatalf("missing message: %d", resp.StatusCode)
	}
}

func TestProbes(t *testing.T) {
	m, _ := start(t, filepath.Join(t.TempDir(), "mb.jsonl"))
	srv := httptest.NewServer(m.Handler())
	defer srv.Close()
	for _, p := range []string{"/healthz", "/readyz"} {
		resp, err := http.Get(srv.URL + p)
		if err != nil || resp.StatusCode != http.StatusOK {
			t.Fatalf("%s: %v %v", p, resp, err)
		}
	}
}

// receipt is a message the size of the shop's receipts.
func receipt(n int) Message {
	return Message{MessageID: fmt.Sprintf("evt-%d.email@microshop", n), From: "shop@microshop.local", To: []string{"ada@example.com"},
		Subject: fmt.Sprintf("Order ord_%d is confirmed", n), Text: strings.Repeat("thank you ", 40), HTML: strings.Repeat("<p>thank you</p>", 100)}
}

// Fed many times its budget, the mailbox keeps no more than the budget
// and the newest messages; opened again, it reads its file back within
// the budget too, and has rewritten the file with what it keeps.
func TestKeepsMessagesWithinItsBudgetOfBytes(t *testing.T) {
	const budget = 64 << 10
	path := filepath.Join(t.TempDir(), "mailbox.jsonl")
	m, err := Open(path, 1_000_000, budget, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	const n = 2000 // about 2.6 MB
	var fed int64
	for i := range n {
		if _, err := m.add(receipt(i)); err != nil {
			t.Fatal(err)
		}
		fed += messageSize(receipt(i))
		if got := m.Bytes(); got > budget {
			t.Fatalf("after %d messages the mailbox holds %d bytes, over its budget of %d", i+1, got, budget)
		}
	}
	check := func(m *Mailbox, when string) {
		t.Helper()
		msgs := m.Messages()
		var sum int64
		for _, msg := range msgs {
			sum += messageSize(msg)
		}
		if sum != m.Bytes() || sum > budget {
			t.Fatalf("%s: %d messages of %d bytes, the mailbox counts %d, budget %d", when, len(msgs), sum, m.Bytes(), budget)
		}
		if len(msgs) < 10 || msgs[len(msgs)-1].ID != n || msgs[0].ID == 1 {
			t.Fatalf("%s: kept ids %d..%d of 1..%d", when, msgs[0].ID, msgs[len(msgs)-1].ID, n)
		}
	}
	check(m, "while running")
	t.Logf("fed %d bytes; kept %d messages, %d bytes", fed, len(m.Messages()), m.Bytes())
	m.Close()
	st, _ := os.Stat(path)
	if st.Size() > 2*budget+(1<<20)+(4<<10) {
		t.Errorf("the file holds %d bytes: it was not compacted", st.Size())
	}

	m2, err := Open(path, 1_000_000, budget, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer m2.Close()
	check(m2, "opened again")
}

// A file much larger than the budget is read a line at a time: the heap
// never holds it whole (reading it whole and then parsing it, as before,
// holds the file and the messages at once).
func TestOpenStreamsALargeFile(t *testing.T) {
	path := filepath.Join(t.TempDir(), "mailbox.jsonl")
	f, err := os.Create(path)
	if err != nil {
		t.Fatal(err)
	}
	enc := json.NewEncoder(f)
	for i := range 6_000 { // about 25 MB
		msg := receipt(i)
		msg.ID = i + 1
		if err := enc.Encode(msg); err != nil {
			t.Fatal(err)
		}
	}
	f.Close()
	st, _ := os.Stat(path)

	runtime.GC()
	var base runtime.MemStats
	runtime.ReadMemStats(&base)
	var peak atomic.Uint64
	stop := make(chan struct{})
	sampled := make(chan struct{})
	go func() {
		defer close(sampled)
		var ms runtime.MemStats
		for {
			runtime.ReadMemStats(&ms)
			if ms.HeapInuse > peak.Load() {
				peak.Store(ms.HeapInuse)
			}
			select {
			case <-stop:
				return
			case <-time.After(time.Millisecond):
			}
		}
	}()
	m, err := Open(path, 1_000_000, 256<<10, slog.New(slog.DiscardHandler))
	close(stop)
	<-sampled
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	grew := int64(peak.Load()) - int64(base.HeapInuse)
	t.Logf("a file of %d bytes: the heap grew by at most %d bytes while opening it; %d messages kept", st.Size(), grew, len(m.Messages()))
	if grew > st.Size()/2 {
		t.Errorf("opening a file of %d bytes grew the heap by %d bytes", st.Size(), grew)
	}
	if msgs := m.Messages(); msgs[len(msgs)-1].ID != 6_000 || m.Bytes() > 256<<10 {
		t.Errorf("kept up to id %d, %d bytes", msgs[len(msgs)-1].ID, m.Bytes())
	}
}

// A message larger than a quarter of the budget is kept with its bodies
// cut, and the budget holds.
func TestCutsAHugeMessage(t *testing.T) {
	const budget = 64 << 10
	m, err := Open(filepath.Join(t.TempDir(), "mb.jsonl"), 100, budget, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer m.Close()
	big := receipt(1)
	big.Text = strings.Repeat("é", budget)
	got, err := m.add(big)
	if err != nil {
		t.Fatal(err)
	}
	kept := m.Messages()[0]
	if m.Bytes() > budget/4 || !strings.Contains(kept.Text, "[cut by the mailbox") || !utf8.ValidString(kept.Text) || got.ID != 1 {
		t.Fatalf("kept %d bytes; text %q...", m.Bytes(), kept.Text[:min(40, len(kept.Text))])
	}
}
