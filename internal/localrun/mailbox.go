package localrun

import (
	"errors"
	"fmt"
	"log/slog"
	"net"
	"net/http"
	"path/filepath"
	"time"

	"github.com/microshop/microshop/internal/mailbox"
)

// runMailbox is the built-in mail server of `run`: SMTP for notifications
// to send to, and a web API (proxied by the gateway at /api/mailbox) to
// read what arrived.
type runMailbox struct {
	*mailbox.Mailbox
	smtpURL, httpURL string
	web              *http.Server
}

func startMailbox(data string, ports Ports, token string, maxBytes int64, log *slog.Logger) (*runMailbox, error) {
	mb, err := mailbox.Open(filepath.Join(data, "mailbox.jsonl"), 1000, maxBytes, log.With("component", "mailbox"))
	if err != nil {
		return nil, err
	}
	smtpAddr := fmt.Sprintf("127.0.0.1:%d", ports.SMTP())
	sln, err := net.Listen("tcp", smtpAddr)
	if err != nil {
		mb.Close()
		return nil, fmt.Errorf("the mailbox's SMTP port: %w", err)
	}
	mb.ListenSMTP(sln)
	webAddr := fmt.Sprintf("127.0.0.1:%d", ports.Mailbox())
	wln, err := net.Listen("tcp", webAddr)
	if err != nil {
		mb.Close()
		return nil, fmt.Errorf("the mailbox's web port: %w", err)
	}
	web := &http.Server{Handler: consoleOnly(token, mb.Handler()), ReadHeaderTimeout: 5 * time.Second}
	go func() {
		if err := web.Serve(wln); err != nil && !errors.Is(err, http.ErrServerClosed) {
			log.Warn("the mailbox's web API stopped", "err", err)
		}
	}()
	return &runMailbox{Mailbox: mb, smtpURL: "smtp://" + smtpAddr, httpURL: "http://" + webAddr, web: web}, nil
}

// Close stops both listeners.
func (m *runMailbox) Close() error {
	_ = m.web.Close()
	return m.Mailbox.Close()
}
