package broker_test

import (
	"bufio"
	"io"
	"log/slog"
	"net"
	"strings"
	"testing"
	"time"

	"github.com/nats-io/nats.go"

	"github.com/microshop/microshop/internal/platform/broker"
)

// silentServer speaks just enough of the NATS protocol to let a client
// connect (INFO, then PONG to the client's first PING), and from then on
// reads everything and answers nothing: a broker behind a partition, or
// frozen, whose TCP connection still looks open.
func silentServer(t *testing.T) string {
	t.Helper()
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { ln.Close() })
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() {
				defer c.Close()
				_, _ = io.WriteString(c, `INFO {"server_id":"silent","version":"2.10.0","proto":1,"max_payload":1048576,"headers":true}`+"\r\n")
				r := bufio.NewReader(c)
				answered := false
				for {
					line, err := r.ReadString('\n')
					if err != nil {
						return
					}
					if strings.HasPrefix(line, "PING") && !answered {
						answered = true
						_, _ = io.WriteString(c, "PONG\r\n")
					}
				}
			}()
		}
	}()
	return "nats://" + ln.Addr().String()
}

// TestConnectNoticesASilentBroker connects to a broker that stops
// answering once the connection is up. The client must drop the
// connection on its own, by its pings going unanswered (broker.PingInterval,
// broker.MaxPingsOutstanding), and not keep it for nats.go's default
// of two minutes between pings.
func TestConnectNoticesASilentBroker(t *testing.T) {
	url := silentServer(t)
	nc, _, err := broker.Connect(url, broker.Credential{}, slog.New(slog.DiscardHandler))
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	deadline := time.Now().Add(10 * time.Second)
	for nc.Status() != nats.CONNECTED {
		if time.Now().After(deadline) {
			t.Fatalf("never connected to the stand-in broker: %s", nc.Status())
		}
		time.Sleep(20 * time.Millisecond)
	}
	connected := time.Now()
	bound := broker.PingInterval*time.Duration(broker.MaxPingsOutstanding+1) + 15*time.Second
	for nc.Status() == nats.CONNECTED {
		if time.Since(connected) > bound {
			t.Fatalf("the client still counts a broker that answers nothing as connected after %s", bound)
		}
		time.Sleep(100 * time.Millisecond)
	}
	t.Logf("the silent broker was noticed after %s (status now %s)", time.Since(connected).Round(100*time.Millisecond), nc.Status())
}
