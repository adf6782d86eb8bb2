package mailbox

import (
	"encoding/json"
	"io"
	"log/slog"
	"net"
	"net/http"
	"net/http/httptest"
	"net/smtp"
	"path/filepath"
	"strings"
	"testing"
)

func start(t *testing.T, path string) (*Mailbox, string) {
	t.Helper()
	m, err := Open(path, 3, slog.New(slog.NewTextHandler(io.Discard, nil)))
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
