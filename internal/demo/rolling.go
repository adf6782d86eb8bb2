package demo

import (
	"context"
	"fmt"
	"slices"
	"time"

	"github.com/microshop/microshop/internal/invariants"
	"github.com/microshop/microshop/internal/loadgen"
	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
)

// rollingDeploy restarts every service in turn under load and counts the
// requests that failed.
func rollingDeploy(ctx context.Context, d *demo) (Verdict, error) {
	var v Verdict
	d.r.step("Set up a product and four customers")
	const sku = "DEMO-ROLL-PEN"
	if err := createProduct(ctx, d.admin, sku, "Demo Pen", 899, 1_000_000); err != nil {
		return v, err
	}
	custs, err := customers(ctx, d.shop, "roll", 4)
	if err != nil {
		return v, err
	}
	d.r.logf("product %s with 1000000 in stock; %d customers logged in", sku, len(custs))
	// Every service but the broker, callers' dependencies first and the
	// gateway, the one public door, last.
	procs, err := d.sys.processes(ctx)
	if err != nil {
		return v, err
	}
	var order []string
	for _, name := range []string{"users", "inventory", "payments", "orders", "notifications", "reports", "gateway"} {
		if slices.ContainsFunc(procs, func(p localrun.Process) bool { return p.Name == name }) {
			order = append(order, name)
		}
	}
	for _, p := range procs {
		if p.Name != "nats" && !slices.Contains(order, p.Name) {
			order = append(order, p.Name)
		}
	}

	d.r.step("Four shoppers browse, log in now and then, check out and read their orders (3s)")
	l := startLoad(d.shop, loadConfig{Shoppers: 4, Customers: custs, SKU: sku, Card: shopclient.CardApproved, Browse: true, Key: "roll"})
	defer l.Stop()
	m := watch(d.r, l)
	defer m.Stop()
	if err := sleep(ctx, 3*time.Second); err != nil {
		return v, err
	}

	type restarted struct {
		name          string
		took          time.Duration
		from, to      []int
		during        loadgen.Counts
		replacedWhole bool
	}
	var done []restarted
	for _, name := range order {
		if name == "gateway" {
			d.r.step("Restart of the gateway: its port is the public address and cannot move, so it is stopped (draining) and started again; clients send refused connections again")
		} else {
			d.r.step("Rolling restart of %s: start a new process, wait until it is ready, then drain and stop the old one", name)
		}
		old, err := d.sys.running(ctx, name)
		if err != nil {
			return v, err
		}
		m.say("restarting " + name)
		a, start := l.Counts(), time.Now()
		reps, err := d.sys.Restart(ctx, name)
		if err != nil {
			return v, err
		}
		rs := restarted{name: name, took: time.Since(start), from: procPIDs(old), to: procPIDs(reps), during: l.Counts().Sub(a)}
		rs.replacedWhole = len(rs.to) > 0
		for _, pid := range rs.to {
			if slices.Contains(rs.from, pid) {
				rs.replacedWhole = false
			}
		}
		done = append(done, rs)
		m.say("")
		d.r.logf("%s replaced in %.1fs: pid %v -> %v; meanwhile %d requests, %d succeeded on a retry, %d failed",
			name, rs.took.Seconds(), rs.from, rs.to, rs.during.Requests, rs.during.RetriedOK, rs.during.Failed)
	}
	if err := sleep(ctx, time.Second); err != nil {
		return v, err
	}
	m.Stop()
	l.Stop()
	total := l.Counts()
	d.r.logf("load stopped: %d requests, %d succeeded on a retry, %d failed; %d checkouts, %d confirmed",
		total.Requests, total.RetriedOK, total.Failed, total.Checkouts, total.Confirmed)
	for _, f := range l.Samples() {
		d.r.logf("failed: %s", f)
	}

	d.r.step("Let every saga finish, then check the invariants")
	chk := &invariants.Checker{Admin: d.admin}
	rep, err := chk.Settle(ctx, 60*time.Second, invariants.Expect{Accepted: l.Accepted(), Keys: l.Keys()})
	if err != nil {
		return v, err
	}
	d.r.logf("%d orders (%d confirmed, %d rejected), %d violations", rep.Orders, rep.Confirmed, rep.Rejected, len(rep.Violations))
	for _, x := range rep.Violations {
		d.r.logf("violation: %s", x)
	}

	var all []string
	notReplaced := 0
	for _, rs := range done {
		all = append(all, fmt.Sprintf("%s %.1fs", rs.name, rs.took.Seconds()))
		if !rs.replacedWhole {
			notReplaced++
		}
	}
	v.figure("services restarted", "%d: %v", len(done), all)
	v.figure("requests", "%d", total.Requests)
	v.figure("failed requests", "%d", total.Failed)
	v.figure("retried then succeeded", "%d (a refused connection or a 503 to a safe request, sent again)", total.RetriedOK)
	v.figure("checkouts", "%d finished, %d confirmed, %d rejected, %d failed", total.Checkouts, total.Confirmed, total.Rejected, total.CheckoutFailed)
	v.figure("invariants", "%d orders checked, %d violations", rep.Orders, len(rep.Violations))

	v.check(total.Failed == 0, "%d requests failed: %v", total.Failed, l.Samples())
	v.check(total.CheckoutFailed == 0, "%d checkouts failed", total.CheckoutFailed)
	v.check(total.Confirmed > 0, "no checkout was confirmed")
	v.check(notReplaced == 0, "%d services kept an old process", notReplaced)
	v.check(len(rep.Violations) == 0, "the invariant checker found %d violations", len(rep.Violations))
	v.check(rep.Confirmed > 0 && countStatus(l.Orders(), ordersapi.StatusConfirmed) == rep.Confirmed,
		"orders holds %d confirmed orders, the shoppers saw %d", rep.Confirmed, countStatus(l.Orders(), ordersapi.StatusConfirmed))
	v.decide(fmt.Sprintf("every service was replaced under load with 0 failed requests (%d requests, %d succeeded on a retry)", total.Requests, total.RetriedOK),
		"a rolling restart cost failed requests or broke an invariant")
	return v, nil
}
