// Package broker connects services to NATS JetStream, and runs the
// embedded JetStream server that `microshop run` uses so a newcomer needs
// no outside broker.
package broker

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"strconv"
	"time"

	"github.com/nats-io/nats-server/v2/server"
	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/platform/events"
)

// Embedded is a NATS server with JetStream running inside this process.
type Embedded struct {
	srv *server.Server
}

// StartEmbedded starts a JetStream-enabled NATS server listening on
// host:port (port 0 picks a free one) and keeping its streams under dir.
// It admits anyone to everything, as an outside NATS without
// authentication does; StartEmbeddedWithUsers admits only the shop's.
func StartEmbedded(dir, host string, port int, log *slog.Logger) (*Embedded, error) {
	return StartEmbeddedWithUsers(dir, host, port, nil, log)
}

// StartEmbeddedWithUsers is StartEmbedded admitting only users, each with
// its permissions. With no users it admits anyone.
func StartEmbeddedWithUsers(dir, host string, port int, users []User, log *slog.Logger) (*Embedded, error) {
	return StartEmbeddedLimited(dir, host, port, users, DefaultMaxMemory, log)
}

// DefaultMaxMemory is JetStream's memory storage limit (max_memory_store)
// of an embedded server. The shop's streams are on disk; this bounds only
// memory-stored streams someone adds.
const DefaultMaxMemory = 64 << 20

// StartEmbeddedLimited is StartEmbeddedWithUsers with JetStream's memory
// storage bounded to maxMemory bytes (DefaultMaxMemory when 0 or less).
func StartEmbeddedLimited(dir, host string, port int, users []User, maxMemory int64, log *slog.Logger) (*Embedded, error) {
	if maxMemory <= 0 {
		maxMemory = DefaultMaxMemory
	}
	if port == 0 {
		port = server.RANDOM_PORT // nats-server reads 0 as "the default port"
	}
	opts := &server.Options{
		ServerName: "microshop-embedded",
		Host:       host,
		Port:       port,
		JetStream:  true,
		StoreDir:   dir,
		NoSigs:     true,
		// JetStream limits sized for a laptop; the streams keep every event
		// (on disk) so reports can be rebuilt by replaying them.
		JetStreamMaxMemory: maxMemory,
		JetStreamMaxStore:  4 << 30,
	}
	if len(users) > 0 {
		nkeyUsers, err := serverUsers(users)
		if err != nil {
			return nil, err
		}
		opts.Nkeys = nkeyUsers
	}
	srv, err := server.NewServer(opts)
	if err != nil {
		return nil, fmt.Errorf("configuring embedded nats: %w", err)
	}
	srv.SetLoggerV2(&natsLogger{log: log.With("component", "nats")}, false, false, false)
	go srv.Start()
	if !srv.ReadyForConnections(15 * time.Second) {
		srv.Shutdown()
		return nil, fmt.Errorf("embedded nats did not start on %s within 15s (is the port taken?)", net.JoinHostPort(host, strconv.Itoa(port)))
	}
	return &Embedded{srv: srv}, nil
}

// URL is the client URL of the embedded server.
func (e *Embedded) URL() string { return e.srv.ClientURL() }

// Shutdown stops the server and waits for it, flushing its stores.
func (e *Embedded) Shutdown() {
	e.srv.Shutdown()
	e.srv.WaitForShutdown()
}

// Liveness of the connection to the broker. A broker that vanished
// without closing the connection (a partition, a host cut off, a frozen
// process) sends nothing and acknowledges nothing, and TCP alone would
// keep the connection "up" for minutes. The client pings every
// PingInterval and drops the connection after MaxPingsOutstanding
// unanswered pings, so a half-open connection is noticed within about
// PingInterval*(MaxPingsOutstanding+1) and the client reconnects to
// another node of the cluster. nats.go's defaults are 2 minutes and 2.
const (
	PingInterval        = 5 * time.Second
	MaxPingsOutstanding = 2
	// DialTimeout bounds one connection attempt to a node.
	DialTimeout = 2 * time.Second
)

// Connect dials NATS at url as cred and keeps reconnecting for as long as
// the process lives: a broker outage must delay events, never stop a
// service. It does not fail when the broker is down at start; readiness
// reports it.
func Connect(url string, cred Credential, log *slog.Logger) (*nats.Conn, jetstream.JetStream, error) {
	opts, err := cred.Options()
	if err != nil {
		return nil, nil, err
	}
	nc, err := nats.Connect(url, append(opts,
		nats.PingInterval(PingInterval),
		nats.MaxPingsOutstanding(MaxPingsOutstanding),
		nats.Timeout(DialTimeout),
		nats.RetryOnFailedConnect(true),
		nats.MaxReconnects(-1),
		nats.ReconnectWait(250*time.Millisecond),
		nats.ReconnectJitter(250*time.Millisecond, time.Second),
		nats.DisconnectErrHandler(func(_ *nats.Conn, err error) {
			if err != nil {
				log.Warn("nats disconnected", "err", err)
			}
		}),
		nats.ReconnectHandler(func(c *nats.Conn) { log.Info("nats reconnected", "url", c.ConnectedUrlRedacted()) }),
		// Among these are permission violations: a refused publish or
		// pull only times out, so the reason must be seen here.
		nats.ErrorHandler(func(_ *nats.Conn, _ *nats.Subscription, err error) {
			log.Error("nats reported an error", "err", err)
		}),
	)...)
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to nats at %s: %w", url, err)
	}
	// An async publish whose ack never comes (it went to a node cut
	// from its peers) is forgotten after events.PublishTimeout instead of
	// holding one of the connection's 4000 slots for outstanding acks.
	js, err := jetstream.New(nc, jetstream.WithPublishAsyncTimeout(events.PublishTimeout))
	if err != nil {
		nc.Close()
		return nil, nil, fmt.Errorf("opening jetstream: %w", err)
	}
	return nc, js, nil
}

// Check reports whether nc is connected; it backs readiness.
func Check(nc *nats.Conn) func(context.Context) error {
	return func(context.Context) error {
		if s := nc.Status(); s != nats.CONNECTED {
			return errors.New("nats: " + s.String())
		}
		return nil
	}
}

// natsLogger sends the embedded server's log through slog.
type natsLogger struct{ log *slog.Logger }

func (l *natsLogger) Noticef(format string, v ...any) { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Warnf(format string, v ...any)   { l.log.Warn(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Fatalf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Errorf(format string, v ...any)  { l.log.Error(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Debugf(format string, v ...any)  { l.log.Debug(fmt.Sprintf(format, v...)) }
func (l *natsLogger) Tracef(format string, v ...any)  {}
