package main

import (
	"context"
	"fmt"
	"io"
	"sort"
	"strings"

	"github.com/microshop/microshop/internal/platform/service"
	"github.com/microshop/microshop/services/gateway"
	"github.com/microshop/microshop/services/inventory"
	"github.com/microshop/microshop/services/notifications"
	"github.com/microshop/microshop/services/orders"
	"github.com/microshop/microshop/services/payments"
	"github.com/microshop/microshop/services/reports"
	"github.com/microshop/microshop/services/users"
)

// services lists every service the binary holds, in start order: users
// first, since the others fetch its keys.
func services() []service.Spec {
	return []service.Spec{
		users.Spec(),
		inventory.Spec(),
		orders.Spec(),
		payments.Spec(),
		notifications.Spec(),
		reports.Spec(),
		gateway.Spec(),
	}
}

func findService(name string) (service.Spec, bool) {
	for _, s := range services() {
		if s.Name == name {
			return s, true
		}
	}
	return service.Spec{}, false
}

func serviceNames() []string {
	var names []string
	for _, s := range services() {
		names = append(names, s.Name)
	}
	sort.Strings(names)
	return names
}

// migrate applies one service's migrations and exits.
func migrate(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "Usage: microshop migrate <service> [flags]\n\nApplies a service's database migrations and exits. Services: %s\n",
			strings.Join(serviceNames(), ", "))
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			return nil
		}
		return errUsage
	}
	spec, ok := findService(args[0])
	if !ok {
		return fmt.Errorf("unknown service %q; the services are %s", args[0], strings.Join(serviceNames(), ", "))
	}
	return service.Migrate(ctx, spec, args[1:], getenv, stdout, stderr)
}

func serve(ctx context.Context, args []string, getenv func(string) string, stdout, stderr io.Writer) error {
	if len(args) == 0 || strings.HasPrefix(args[0], "-") {
		fmt.Fprintf(stderr, "Usage: microshop serve <service> [flags]\n\nRuns one service. Services: %s\n\nRun \"microshop serve <service> --help\" for its flags.\n",
			strings.Join(serviceNames(), ", "))
		if len(args) > 0 && (args[0] == "-h" || args[0] == "--help" || args[0] == "-help") {
			return nil
		}
		return errUsage
	}
	spec, ok := findService(args[0])
	if !ok {
		return fmt.Errorf("unknown service %q; the services are %s", args[0], strings.Join(serviceNames(), ", "))
	}
	return service.Run(ctx, spec, args[1:], getenv, stdout, stderr)
}
