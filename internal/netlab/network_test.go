//go:build linux

package netlab

import (
	"context"
	"io"
	"net"
	"testing"
	"time"
)

// TestFaults makes two hosts and checks that each fault does what it
// says to a TCP conversation between them, and that Heal undoes it.
func TestFaults(t *testing.T) {
	if err := Available(); err != nil {
		t.Skipf("netlab is not available here: %v", err)
	}
	ctx := context.Background()
	lab, err := New(ctx, Options{Prefix: "mslt", Subnet: 251, Logf: t.Logf})
	if err != nil {
		t.Fatal(err)
	}
	defer func() {
		if err := lab.Close(); err != nil {
			t.Error(err)
		}
	}()
	a, err := lab.AddHost(ctx, "a")
	if err != nil {
		t.Fatal(err)
	}
	b, err := lab.AddHost(ctx, "b")
	if err != nil {
		t.Fatal(err)
	}
	ln, err := b.Listen("tcp", b.IP+":7000")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			go func() { defer c.Close(); _, _ = io.Copy(c, c) }()
		}
	}()
	// reaches says whether a gets an echo from b within a second.
	reaches := func(from *Host) bool {
		dctx, cancel := context.WithTimeout(ctx, time.Second)
		defer cancel()
		c, err := from.DialContext(dctx, "tcp", b.IP+":7000")
		if err != nil {
			return false
		}
		defer c.Close()
		_ = c.SetDeadline(time.Now().Add(time.Second))
		if _, err := c.Write([]byte("x")); err != nil {
			return false
		}
		buf := make([]byte, 1)
		_, err = io.ReadFull(c, buf)
		return err == nil
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	if !reaches(a) {
		t.Fatal("a does not reach b on a healthy lab")
	}
	// The harness, in the root namespace, reaches the hosts through the bridge.
	if c, err := net.DialTimeout("tcp", b.IP+":7000", time.Second); err != nil {
		t.Fatalf("the root namespace does not reach b: %v", err)
	} else {
		c.Close()
	}
	must(lab.Cut(ctx, "a"))
	if reaches(a) {
		t.Error("a reaches b although its link is down")
	}
	must(lab.Heal(ctx))
	// A healed link may drop the first packets while the bridge port
	// comes back; a host must reach b again within a few seconds.
	healed := false
	for deadline := time.Now().Add(5 * time.Second); !healed && time.Now().Before(deadline); {
		healed = reaches(a)
	}
	if !healed {
		t.Error("a does not reach b 5s after the heal of a cut")
	}
	must(lab.Block(ctx, "a", "b", true))
	if reaches(a) {
		t.Error("a reaches b although a's packets to b are dropped")
	}
	must(lab.Unblock(ctx, "a", "b", true))
	if !reaches(a) {
		t.Error("a does not reach b after Unblock")
	}
	must(lab.BlockPort(ctx, "a", "b", 7000))
	if reaches(a) {
		t.Error("a reaches b's port 7000 although it is blocked")
	}
	must(lab.Heal(ctx))
	must(lab.Squeeze(ctx, "a", "64kbit"))
	if !reaches(a) {
		t.Error("a squeezed does not reach b at all")
	}
	must(lab.Heal(ctx))
	if !reaches(a) {
		t.Error("a does not reach b after the last heal")
	}
}
