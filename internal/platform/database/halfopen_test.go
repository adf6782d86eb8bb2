package database_test

import (
	"context"
	"net"
	"testing"
	"time"

	"github.com/microshop/microshop/internal/platform/database"
)

// TestOpenPostgresGivesUpOnASilentServer opens a Postgres URL whose
// server accepts the connection and then says nothing, as a frozen
// server or one behind a partition does. Without a connect timeout pgx
// waits for the startup answer forever; with database.ConnectTimeout it
// fails.
func TestOpenPostgresGivesUpOnASilentServer(t *testing.T) {
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	go func() {
		var held []net.Conn // accepted and never answered
		defer func() {
			for _, c := range held {
				c.Close()
			}
		}()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			held = append(held, c)
		}
	}()
	done := make(chan error, 1)
	began := time.Now()
	go func() {
		_, err := database.Open(context.Background(), "postgres://u@"+ln.Addr().String()+"/db?sslmode=disable")
		done <- err
	}()
	select {
	case err := <-done:
		if err == nil {
			t.Fatal("Open against a server that never answers succeeded")
		}
		t.Logf("gave up after %s: %v", time.Since(began).Round(time.Millisecond), err)
	case <-time.After(6 * database.ConnectTimeout):
		t.Fatalf("Open still waits after %s on a server that never answers: no connect timeout", 6*database.ConnectTimeout)
	}
}
