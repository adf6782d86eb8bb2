// Command abcheckout measures the CPU of one checkout, summed over every
// process of `microshop run`, for two or more configurations side by
// side: it starts a system per configuration in turn, places checkouts
// one after another (no concurrency, so a busy machine slows it down but
// does not make logins time out as bench/run's load does), and reads
// each process's CPU time from /proc before and after, less what the idle
// system uses in as long (measured just before). Rounds alternate
// the configurations, so drift in the machine's load hits each alike.
//
//	go build -o /tmp/microshop ./cmd/microshop
//	go run ./bench/cmd/abcheckout --bin /tmp/microshop --checkouts 60 --rounds 2 \
//	    mtls= plain=MICROSHOP_MTLS=false
//
// Each argument is name=ENV[,ENV...]: the environment of that
// configuration's run. Linux only.
package main

import (
	"context"
	"flag"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

func main() {
	bin := flag.String("bin", "", "the microshop binary (required)")
	n := flag.Int("checkouts", 60, "checkouts measured per round")
	rounds := flag.Int("rounds", 2, "rounds; each runs every configuration once")
	flag.Parse()
	if *bin == "" || flag.NArg() == 0 {
		fmt.Fprintln(os.Stderr, "usage: abcheckout --bin BIN name=ENV[,ENV...] ...")
		os.Exit(2)
	}
	results := map[string][]float64{}
	var names []string
	for _, a := range flag.Args() {
		name, _, _ := strings.Cut(a, "=")
		names = append(names, name)
	}
	for r := 1; r <= *rounds; r++ {
		for _, a := range flag.Args() {
			name, envs, _ := strings.Cut(a, "=")
			var env []string
			if envs != "" {
				env = strings.Split(envs, ",")
			}
			cpu, wall, err := measure(*bin, env, *n)
			if err != nil {
				fmt.Fprintf(os.Stderr, "%s round %d: %v\n", name, r, err)
				os.Exit(1)
			}
			per := float64(cpu.Microseconds()) / 1000 / float64(*n)
			results[name] = append(results[name], per)
			fmt.Printf("%s round %d: %.2f ms CPU per checkout (%d checkouts in %s)\n", name, r, per, *n, wall.Round(time.Millisecond))
		}
	}
	for _, name := range names {
		v := results[name]
		sort.Float64s(v)
		fmt.Printf("%s: %v ms CPU per checkout\n", name, v)
	}
}

func measure(bin string, env []string, n int) (time.Duration, time.Duration, error) {
	ctx := context.Background()
	env = append([]string{"MICROSHOP_ADMIN_EMAIL=admin@example.com", "MICROSHOP_ADMIN_PASSWORD=admin password 123",
		"MICROSHOP_RATE_LIMIT=0", "OTEL_TRACES_EXPORTER=none"}, env...)
	s, err := localrun.Launch(ctx, localrun.LaunchOptions{Binary: bin, Env: env})
	if err != nil {
		return 0, 0, err
	}
	defer s.Close()
	shop, err := shopclient.New(s.Gateway, shopclient.Options{Timeout: 60 * time.Second})
	if err != nil {
		return 0, 0, err
	}
	email := fmt.Sprintf("ab-%d@example.com", time.Now().UnixNano())
	if _, err := shop.Register(ctx, shopclient.Registration{Email: email, Password: "long enough password", Name: "AB"}); err != nil {
		return 0, 0, err
	}
	sess, err := shop.Login(ctx, email, "long enough password")
	if err != nil {
		return 0, 0, err
	}
	list, err := shop.Products(ctx, shopclient.ProductQuery{Limit: 50})
	if err != nil {
		return 0, 0, err
	}
	var sku string
	var most int64
	for _, p := range list.Items {
		if p.Available > most {
			sku, most = p.SKU, p.Available
		}
	}
	admin, err := shop.Login(ctx, "admin@example.com", "admin password 123")
	if err != nil {
		return 0, 0, err
	}
	if _, err := admin.Restock(ctx, sku, int64(n)+10); err != nil {
		return 0, 0, err
	}
	checkout := func(i int) error {
		o, err := sess.Checkout(ctx, fmt.Sprintf("ab-%d", i), shopclient.Checkout(shopclient.CardApproved, shopclient.Line{SKU: sku, Quantity: 1}))
		if err != nil {
			return err
		}
		if o.Status != ordersapi.StatusConfirmed {
			return fmt.Errorf("order %s is %s", o.ID, o.Status)
		}
		return nil
	}
	for i := range 5 { // warm: connections, caches, prepared statements
		if err := checkout(-1 - i); err != nil {
			return 0, 0, err
		}
	}
	// What the system spends doing nothing (probes, relays, consumers
	// polling), per second, is taken off below.
	idleStart, err := cpu(s)
	if err != nil {
		return 0, 0, err
	}
	time.Sleep(idleFor)
	before, err := cpu(s)
	if err != nil {
		return 0, 0, err
	}
	idle := float64(before-idleStart) / idleFor.Seconds()
	start := time.Now()
	for i := range n {
		if err := checkout(i); err != nil {
			return 0, 0, err
		}
	}
	wall := time.Since(start)
	after, err := cpu(s)
	used := after - before - time.Duration(idle*wall.Seconds())
	return used, wall, err
}

// idleFor is how long the idle system is measured.
const idleFor = 5 * time.Second

// cpu is the CPU time of run and every process it started.
func cpu(s *localrun.System) (time.Duration, error) {
	procs, err := s.Processes()
	if err != nil {
		return 0, err
	}
	pids := map[int]bool{s.Cmd.Process.Pid: true}
	for _, p := range procs {
		if p.Running {
			pids[p.PID] = true
		}
	}
	var total time.Duration
	for pid := range pids {
		b, err := os.ReadFile(filepath.Join("/proc", strconv.Itoa(pid), "stat"))
		if err != nil {
			return 0, err
		}
		// The fields after the command name, which is in parentheses.
		f := strings.Fields(string(b[strings.LastIndexByte(string(b), ')')+2:]))
		utime, _ := strconv.ParseInt(f[11], 10, 64)
		stime, _ := strconv.ParseInt(f[12], 10, 64)
		total += time.Duration(utime+stime) * time.Second / 100 // USER_HZ
	}
	return total, nil
}
