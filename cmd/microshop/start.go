package main

import (
	"context"
	"flag"
	"fmt"
	"io"
	"net/http"
	"strings"
)

// start asks a running `microshop run` to start one of its services again
// after it stopped or was killed.
func start(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	fs := flag.NewFlagSet("microshop start", flag.ContinueOnError)
	fs.SetOutput(stderr)
	data := fs.String("data", "data", "the data directory of the running system")
	fs.Usage = func() {
		fmt.Fprintf(stderr, "Usage: microshop start <service> [--data DIR]\n\nStarts a service of a running `microshop run` whose process has stopped\n(for example after it was killed), on its own port, with its own data.\n\nFlags:\n")
		fs.PrintDefaults()
	}
	name := ""
	if len(args) > 0 && !strings.HasPrefix(args[0], "-") {
		name, args = args[0], args[1:]
	}
	if helped, err := parseFlags(fs, args); helped || err != nil {
		return err
	}
	if name == "" {
		fs.Usage()
		return errUsage
	}
	req, err := http.NewRequestWithContext(ctx, http.MethodPost, "http://run/services/"+name+"/start", nil)
	if err != nil {
		return err
	}
	resp, err := controlClient(*data).Do(req)
	if err != nil {
		return fmt.Errorf("reaching the running system under %s (is `microshop run --data %s` running?): %w", *data, *data, err)
	}
	defer resp.Body.Close()
	body, _ := io.ReadAll(resp.Body)
	if resp.StatusCode != http.StatusOK {
		return fmt.Errorf("starting %s: %s", name, strings.TrimSpace(string(body)))
	}
	fmt.Fprintf(stdout, "%s started and ready: %s", name, body)
	return nil
}
