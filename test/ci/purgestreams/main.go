// Command purgestreams deletes microshop's event streams (USERS,
// INVENTORY, ORDERS, PAYMENTS) from a NATS server, so a CI pass against
// the machine's shared NATS starts from nothing, like its fresh databases.
//
//	go run ./test/ci/purgestreams nats://127.0.0.1:4222
package main

import (
	"context"
	"errors"
	"fmt"
	"os"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"
)

func main() {
	if err := run(os.Args[1:]); err != nil {
		fmt.Fprintln(os.Stderr, "purgestreams:", err)
		os.Exit(1)
	}
}

func run(args []string) error {
	if len(args) != 1 {
		return errors.New("usage: purgestreams <nats URL>")
	}
	nc, err := nats.Connect(args[0], nats.Timeout(5*time.Second))
	if err != nil {
		return err
	}
	defer nc.Close()
	js, err := jetstream.New(nc)
	if err != nil {
		return err
	}
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for _, name := range []string{"USERS", "INVENTORY", "ORDERS", "PAYMENTS"} {
		err := js.DeleteStream(ctx, name)
		switch {
		case err == nil:
			fmt.Println("deleted stream", name)
		case errors.Is(err, jetstream.ErrStreamNotFound):
		default:
			return fmt.Errorf("deleting %s: %w", name, err)
		}
	}
	return nil
}
