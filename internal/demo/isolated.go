package demo

import (
	"context"
	"fmt"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/invariants"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/reports/reportsapi"
)

// isoPause is each shopper's think time: about 20 checkouts a second in
// all, so the run stays far below the mailbox's 1000 messages.
const isoPause = 150 * time.Millisecond

// isolatedFailure: checkouts go on while notifications and reports are
// dead, and both catch up exactly once they are back.
func isolatedFailure(ctx context.Context, d *demo) (Verdict, error) {
	var v Verdict
	victims := []string{"notifications"}
	if ok, err := d.sys.has(ctx, "reports"); err != nil {
		return v, err
	} else if ok {
		victims = append(victims, "reports")
	} else {
		d.r.logf("this build has no reports service: only notifications is killed")
	}
	down := strings.Join(victims, " and ")

	d.r.step("Set up a product and four customers")
	const sku, price = "DEMO-ISO-MUG", 1250
	if err := createProduct(ctx, d.admin, sku, "Demo Mug", price, 100_000); err != nil {
		return v, err
	}
	custs, err := customers(ctx, d.shop, "iso", 4)
	if err != nil {
		return v, err
	}
	d.r.logf("product %s at %s with 100000 in stock; %d customers logged in", sku, money(price), len(custs))

	d.r.step("Four shoppers check out, each every %s or so, every service up (4s)", isoPause)
	// The mailbox keeps 1000 messages: stay well below.
	l := startLoad(d.shop, loadConfig{Shoppers: 4, Customers: custs, SKU: sku, Card: shopclient.CardApproved, Pause: isoPause,
		MaxCheckouts: 700, Key: "iso"})
	defer l.Stop()
	m := watch(d.r, l)
	defer m.Stop()
	if err := sleep(ctx, 4*time.Second); err != nil {
		return v, err
	}
	up := l.Counts()

	d.r.step("SIGKILL %s", down)
	for _, name := range victims {
		pids, err := d.sys.KillAll(ctx, name)
		if err != nil {
			return v, err
		}
		d.r.logf("killed %s (pid %v)", name, pids)
	}
	m.say(down + " DOWN")
	atKill, _, err := d.admin.Receipts(ctx, "")
	if err != nil {
		return v, err
	}
	before := l.Counts()
	start := time.Now()
	if err := sleep(ctx, 8*time.Second); err != nil {
		return v, err
	}
	during := l.Counts().Sub(before)
	downFor := time.Since(start)
	whileDown, _, err := d.admin.Receipts(ctx, "")
	if err != nil {
		return v, err
	}
	d.r.logf("while %s were down (%.1fs): %d checkouts finished, %d confirmed (%s), %d failed; receipts sent: %d",
		down, downFor.Seconds(), during.Checkouts, during.Confirmed, pct(during.Confirmed, during.Checkouts),
		during.CheckoutFailed, len(whileDown)-len(atKill))

	d.r.step("Start %s again", down)
	for _, name := range victims {
		p, err := d.sys.Start(ctx, name)
		if err != nil {
			return v, err
		}
		d.r.logf("%s is back: pid %d, ready", name, p.PID)
	}
	m.say("")
	backAt := time.Now()
	if err := sleep(ctx, 3*time.Second); err != nil {
		return v, err
	}
	m.Stop()
	l.Stop()
	total := l.Counts()
	d.r.logf("load stopped: %d checkouts, %d confirmed, %d failed", total.Checkouts, total.Confirmed, total.CheckoutFailed)

	d.r.step("Wait for %s to catch up, then count", down)
	chk := &invariants.Checker{Admin: d.admin}
	all, err := chk.Orders(ctx)
	if err != nil {
		return v, err
	}
	var confirmed []ordersapi.Order
	var revenue int64
	for _, o := range all {
		if o.Status == ordersapi.StatusConfirmed {
			confirmed = append(confirmed, o)
			revenue += o.TotalCents
		}
	}
	d.r.logf("orders holds %d orders, %d CONFIRMED, %s in total", len(all), len(confirmed), money(revenue))
	hasReports := len(victims) == 2
	var (
		receipts, messageIDs map[string]int
		sum                  reportsapi.Summary
		caughtUp             time.Duration
	)
	// A consumer killed while it held messages gets them back from
	// JetStream once their ack wait (30s) has passed: allow for that.
	deadline := time.Now().Add(60 * time.Second)
	lastLine, lastAt, explained := "", time.Time{}, false
	for {
		receipts, messageIDs, err = d.admin.Receipts(ctx, "")
		if err != nil {
			return v, err
		}
		have := 0
		for _, o := range confirmed {
			if receipts[o.ID] > 0 {
				have++
			}
		}
		line := fmt.Sprintf("receipts for %d of %d confirmed orders", have, len(confirmed))
		done := have == len(confirmed)
		if hasReports {
			sum, err = d.admin.Summary(ctx, "USD")
			if err != nil {
				line += fmt.Sprintf("; reports: %v", err)
				done = false
			} else {
				line += fmt.Sprintf("; reports: %d orders, %s", sum.OrdersConfirmed, money(sum.NetCents))
				// Captures come on payments' stream, through a consumer of
				// their own: a capture in the hands of the killed process
				// is redelivered after its ack wait, like the orders' events.
				done = done && sum.OrdersConfirmed == int64(len(confirmed)) && sum.NetCents == revenue && sum.CapturedCents == revenue
			}
		}
		if line != lastLine || time.Since(lastAt) >= 5*time.Second || done {
			d.r.logf("%s", line)
			lastLine, lastAt = line, time.Now()
		}
		if done {
			caughtUp = time.Since(backAt)
			break
		}
		if !explained && time.Since(backAt) > 5*time.Second {
			explained = true
			d.r.logf("the rest were in the hands of a killed process when it died: JetStream redelivers them once their ack wait (30s) has passed")
		}
		if time.Now().After(deadline) {
			break
		}
		if err := sleep(ctx, time.Second); err != nil {
			return v, err
		}
	}
	// Anything doubled would have landed by now; read once more.
	if err := sleep(ctx, 2*time.Second); err != nil {
		return v, err
	}
	if receipts, messageIDs, err = d.admin.Receipts(ctx, ""); err != nil {
		return v, err
	}
	if hasReports {
		if sum, err = d.admin.Summary(ctx, "USD"); err != nil {
			return v, err
		}
	}

	missing, doubled, strays := 0, 0, 0
	isConfirmed := map[string]bool{}
	for _, o := range confirmed {
		isConfirmed[o.ID] = true
		switch n := receipts[o.ID]; {
		case n == 0:
			missing++
		case n > 1:
			doubled++
		}
	}
	for id := range receipts {
		if !isConfirmed[id] {
			strays++
		}
	}
	sameMessage := 0
	for _, n := range messageIDs {
		if n > 1 {
			sameMessage++
		}
	}

	v.figure("checkouts while up", "%d finished, %d confirmed (%s)", up.Checkouts, up.Confirmed, pct(up.Confirmed, up.Checkouts))
	v.figure("checkouts while down", "%d finished in %.1fs, %d confirmed (%s), %d failed", during.Checkouts, downFor.Seconds(),
		during.Confirmed, pct(during.Confirmed, during.Checkouts), during.CheckoutFailed)
	v.figure("receipts sent while down", "%d", len(whileDown)-len(atKill))
	v.figure("confirmed orders", "%d, %s in total (%d checkouts, %d failed requests)", len(confirmed), money(revenue), total.Checkouts, total.Failed)
	v.figure("receipts", "%d for %d confirmed orders: %d missing, %d doubled, %d for unknown orders", len(receipts), len(confirmed), missing, doubled, strays)
	if hasReports {
		v.figure("reports summary", "%d confirmed orders, revenue %s, net %s, captured %s", sum.OrdersConfirmed, money(sum.RevenueCents), money(sum.NetCents), money(sum.CapturedCents))
	} else {
		v.figure("reports summary", "not in this build")
	}
	if caughtUp > 0 {
		v.figure("caught up", "%.1fs after the restart", caughtUp.Seconds())
	} else {
		v.figure("caught up", "not within 60s")
	}

	v.check(during.Checkouts > 0, "no checkout finished while %s were down", down)
	v.check(during.Confirmed == during.Checkouts && during.CheckoutFailed == 0,
		"only %d of %d checkouts were confirmed while %s were down", during.Confirmed, during.Checkouts, down)
	v.check(total.Failed == 0, "%d requests failed: %v", total.Failed, l.Samples())
	v.check(len(confirmed) > 0 && int64(len(confirmed)) == total.Confirmed,
		"orders holds %d confirmed orders, the shoppers saw %d", len(confirmed), total.Confirmed)
	v.check(missing == 0, "%d confirmed orders have no receipt", missing)
	v.check(doubled == 0 && sameMessage == 0, "%d orders have more than one receipt (%d Message-IDs arrived twice)", doubled, sameMessage)
	v.check(strays == 0, "%d receipts name orders that are not confirmed", strays)
	if hasReports {
		v.check(sum.OrdersConfirmed == int64(len(confirmed)), "reports counts %d confirmed orders, orders holds %d", sum.OrdersConfirmed, len(confirmed))
		v.check(sum.RevenueCents == revenue && sum.NetCents == revenue, "reports' revenue %s (net %s) is not the confirmed orders' %s",
			money(sum.RevenueCents), money(sum.NetCents), money(revenue))
		v.check(sum.CapturedCents == revenue, "reports saw %s captured, the confirmed orders total %s", money(sum.CapturedCents), money(revenue))
	}
	v.decide(fmt.Sprintf("checkouts kept succeeding with %s down (%s), and once back they caught up: one receipt per confirmed order%s",
		down, pct(during.Confirmed, during.Checkouts), map[bool]string{true: ", reports' totals equal the orders'", false: ""}[hasReports]),
		fmt.Sprintf("a failure of %s did not stay isolated, or they did not catch up exactly", down))
	return v, nil
}
