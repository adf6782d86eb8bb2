package demo

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"sync"
	"text/tabwriter"
	"time"

	"github.com/microshop/microshop/internal/invariants"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/inventory/inventoryapi"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/services/payments/paymentsapi"
)

// The slow card answers after sagaSlowCard; orders gives a step
// sagaStepTimeout, so the slow card's order is compensated.
const (
	sagaStepTimeout = 2 * time.Second
	sagaSlowCard    = 6 * time.Second
)

var sagaEnv = []string{
	"MICROSHOP_STEP_TIMEOUT=" + sagaStepTimeout.String(),
	"MICROSHOP_SLOW_CARD_DELAY=" + sagaSlowCard.String(),
}

// sagaCompensation runs checkouts that fail at each step of the saga and
// shows that every one is undone: stock returns, no money is taken.
func sagaCompensation(ctx context.Context, d *demo) (Verdict, error) {
	var v Verdict
	const (
		lamp, lampPrice = "DEMO-SAGA-LAMP", 4900
		last, lastPrice = "DEMO-SAGA-LAST", 12000
		lampStock       = 20
		lastStock       = 3
		racers          = 6
	)
	d.r.step("Set up two products and a customer")
	if err := createProduct(ctx, d.admin, lamp, "Demo Lamp", lampPrice, lampStock); err != nil {
		return v, err
	}
	if err := createProduct(ctx, d.admin, last, "Demo Limited Print", lastPrice, lastStock); err != nil {
		return v, err
	}
	custs, err := customers(ctx, d.shop, "saga", 1)
	if err != nil {
		return v, err
	}
	cust := custs[0]
	d.r.logf("%s at %s (%d in stock), %s at %s (%d in stock); orders' step timeout %s, the slow card answers after %s",
		lamp, money(lampPrice), lampStock, last, money(lastPrice), lastStock, sagaStepTimeout, sagaSlowCard)

	d.r.step("Stock and ledger before")
	stockBefore, err := stock(ctx, d.admin)
	if err != nil {
		return v, err
	}
	ledgerBefore, err := d.admin.Ledger(ctx)
	if err != nil {
		return v, err
	}
	d.r.plain(stockTable(stockBefore, nil, lamp, last))
	d.r.plain(ledgerTable(ledgerBefore))

	var accepted []string
	keys := map[string][]string{}
	outcomes := map[string]int{} // "CONFIRMED", "REJECTED out_of_stock", ...
	n := 0
	place := func(title, card string, lines ...shopclient.Line) (ordersapi.Order, error) {
		n++
		key := fmt.Sprintf("saga-%d", n)
		start := time.Now()
		o, err := checkout(ctx, cust, key, card, lines...)
		if err != nil {
			return o, fmt.Errorf("%s: %w", title, err)
		}
		accepted = append(accepted, o.ID)
		keys[key] = append(keys[key], o.ID)
		outcomes[outcome(o)]++
		log, err := cust.Saga(ctx, o.ID)
		if err != nil {
			return o, err
		}
		d.r.logf("%s: order %s %s after %s", title, o.ID, outcome(o), time.Since(start).Round(time.Millisecond))
		d.r.plain("saga: " + sagaChain(log))
		return o, nil
	}
	expect := func(o ordersapi.Order, status, reason, what string) {
		v.check(o.Status == status && o.Reason == reason, "%s: %s, want %s", what, outcome(o), strings.TrimSpace(status+" "+reason))
	}

	d.r.step("A checkout that succeeds: 2 × %s, card 4242 4242 4242 4242", lamp)
	o, err := place("approved", shopclient.CardApproved, line(lamp, 2))
	if err != nil {
		return v, err
	}
	expect(o, ordersapi.StatusConfirmed, "", "the approved card")

	d.r.step("Declined at the authorize step: the reservation is released")
	o, err = place("card declined (4000 0000 0000 0002)", shopclient.CardDeclined, line(lamp, 1))
	if err != nil {
		return v, err
	}
	expect(o, ordersapi.StatusRejected, ordersapi.ReasonPaymentDeclined, "the declined card")
	o, err = place("insufficient funds (4000 0000 0000 9995)", shopclient.CardInsufficient, line(lamp, 3))
	if err != nil {
		return v, err
	}
	expect(o, ordersapi.StatusRejected, ordersapi.ReasonPaymentDeclined, "the card without funds")

	d.r.step("%d customers race for the last %d units of %s at once", racers, lastStock, last)
	var (
		mu     sync.Mutex
		race   = map[string]int{}
		raceEr error
		wg     sync.WaitGroup
	)
	for i := range racers {
		wg.Go(func() {
			key := fmt.Sprintf("saga-race-%d", i)
			o, err := checkout(ctx, cust, key, shopclient.CardApproved, line(last, 1))
			mu.Lock()
			defer mu.Unlock()
			if err != nil {
				raceEr = err
				return
			}
			accepted = append(accepted, o.ID)
			keys[key] = append(keys[key], o.ID)
			outcomes[outcome(o)]++
			race[outcome(o)]++
		})
	}
	wg.Wait()
	if raceEr != nil {
		return v, raceEr
	}
	d.r.logf("race: %d CONFIRMED, %d REJECTED out_of_stock", race[ordersapi.StatusConfirmed], race[ordersapi.StatusRejected+" "+ordersapi.ReasonOutOfStock])
	v.check(race[ordersapi.StatusConfirmed] == lastStock && race[ordersapi.StatusRejected+" "+ordersapi.ReasonOutOfStock] == racers-lastStock,
		"the race for %d units: %v, want %d confirmed and %d out of stock", lastStock, race, lastStock, racers-lastStock)

	d.r.step("One line out of stock: the whole order is refused, nothing of the other line is held")
	o, err = place("1 × "+lamp+" + 1 × "+last, shopclient.CardApproved, line(lamp, 1), line(last, 1))
	if err != nil {
		return v, err
	}
	expect(o, ordersapi.StatusRejected, ordersapi.ReasonOutOfStock, "the order with a line out of stock")

	d.r.step("A card slower (%s) than orders' step timeout (%s): void, then release", sagaSlowCard, sagaStepTimeout)
	o, err = place("slow card (4000 0000 0000 0077)", shopclient.CardSlow, line(lamp, 1))
	if err != nil {
		return v, err
	}
	expect(o, ordersapi.StatusRejected, ordersapi.ReasonPaymentUnavailable, "the slow card")

	d.r.step("Stock and ledger after")
	chk := &invariants.Checker{Admin: d.admin}
	rep, err := chk.Settle(ctx, 30*time.Second, invariants.Expect{Accepted: accepted, Keys: keys,
		Received: map[string]int64{lamp: lampStock, last: lastStock}})
	if err != nil {
		return v, err
	}
	stockAfter, err := stock(ctx, d.admin)
	if err != nil {
		return v, err
	}
	ledgerAfter, err := d.admin.Ledger(ctx)
	if err != nil {
		return v, err
	}
	d.r.plain(stockTable(stockAfter, stockBefore, lamp, last))
	d.r.plain(ledgerTable(ledgerAfter))

	d.r.step("The invariant checker reads every service through the gateway")
	d.r.logf("%d orders: %d confirmed, %d rejected, %d pending; %d violations", rep.Orders, rep.Confirmed, rep.Rejected, rep.Pending, len(rep.Violations))
	for _, x := range rep.Violations {
		d.r.logf("violation: %s", x)
	}

	wantRevenue := int64(2*lampPrice + lastStock*lastPrice)
	revenue := balance(ledgerAfter, paymentsapi.AccountMerchantRevenue) - balance(ledgerBefore, paymentsapi.AccountMerchantRevenue)
	held := balance(ledgerAfter, paymentsapi.AccountAuthorizationsHeld)
	la, lb := stockAfter[lamp], stockAfter[last]

	var outs []string
	for k, c := range outcomes {
		outs = append(outs, fmt.Sprintf("%d %s", c, k))
	}
	sort.Strings(outs)
	v.figure("orders", "%d: %s", len(accepted), strings.Join(outs, ", "))
	v.figure(lamp, "received %d = available %d + reserved %d + sold %d", la.Received, la.Available, la.Reserved, la.Sold)
	v.figure(last, "received %d = available %d + reserved %d + sold %d", lb.Received, lb.Available, lb.Reserved, lb.Sold)
	v.figure("ledger", "%d entries (was %d), balanced %t, total %s; revenue %s; authorizations still held %s",
		ledgerAfter.Entries, ledgerBefore.Entries, ledgerAfter.Balanced, money(ledgerAfter.TotalCents), money(revenue), money(held))
	v.figure("invariant violations", "%d", len(rep.Violations))

	v.check(la.Sold == 2 && la.Reserved == 0 && la.Available == lampStock-2, "%s: %+v, want 2 sold and nothing held", lamp, la)
	v.check(lb.Sold == lastStock && lb.Reserved == 0 && lb.Available == 0, "%s: %+v, want all %d sold", last, lb, lastStock)
	v.check(ledgerAfter.Balanced && ledgerAfter.TotalCents == 0, "the ledger does not balance")
	v.check(revenue == wantRevenue, "revenue %s, want %s (the confirmed orders)", money(revenue), money(wantRevenue))
	v.check(held == 0, "%s is still held on cards", money(held))
	v.check(len(rep.Violations) == 0, "the invariant checker found %d violations", len(rep.Violations))
	v.decide(fmt.Sprintf("every failed checkout was compensated: stock back, no money taken, ledger balanced, %d invariant violations", len(rep.Violations)),
		"a failed checkout was not compensated as it should be")
	return v, nil
}

func outcome(o ordersapi.Order) string {
	return strings.TrimSpace(o.Status + " " + o.Reason)
}

// sagaChain tells an order's saga log in one line: each step with how it
// ended, in the order they ran.
func sagaChain(log []ordersapi.SagaEntry) string {
	sort.SliceStable(log, func(i, j int) bool { return log[i].At.Before(log[j].At) })
	var steps []string
	end := map[string]string{}
	retries := map[string]int{}
	for _, e := range log {
		if _, seen := end[e.Step]; !seen {
			steps = append(steps, e.Step)
			end[e.Step] = ""
		}
		switch e.Event {
		case "succeeded":
			end[e.Step] = "ok"
		case "failed":
			reason, _, _ := strings.Cut(e.Detail, ":")
			end[e.Step] = "FAILED (" + reason + ")"
		case "retrying":
			retries[e.Step]++
		}
	}
	var parts []string
	for _, s := range steps {
		p := s + " " + end[s]
		if retries[s] > 0 {
			p += fmt.Sprintf(" after %d retries", retries[s])
		}
		parts = append(parts, strings.TrimSpace(p))
	}
	return strings.Join(parts, " -> ")
}

func stockTable(now, before map[string]inventoryapi.StockLevel, skus ...string) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	fmt.Fprintln(tw, "SKU\tRECEIVED\tAVAILABLE\tRESERVED\tSOLD\t")
	for _, sku := range skus {
		s := now[sku]
		if before == nil {
			fmt.Fprintf(tw, "%s\t%d\t%d\t%d\t%d\t\n", sku, s.Received, s.Available, s.Reserved, s.Sold)
			continue
		}
		p := before[sku]
		fmt.Fprintf(tw, "%s\t%d\t%d (%+d)\t%d (%+d)\t%d (%+d)\t\n", sku, s.Received, s.Available, s.Available-p.Available,
			s.Reserved, s.Reserved-p.Reserved, s.Sold, s.Sold-p.Sold)
	}
	tw.Flush()
	return b.String()
}

func ledgerTable(l paymentsapi.Ledger) string {
	var b strings.Builder
	tw := tabwriter.NewWriter(&b, 0, 0, 2, ' ', tabwriter.AlignRight)
	if len(l.Accounts) == 0 {
		return fmt.Sprintf("ledger: no entries yet, total %s, balanced %t", money(l.TotalCents), l.Balanced)
	}
	fmt.Fprintln(tw, "ACCOUNT\tCURRENCY\tBALANCE\t")
	for _, a := range l.Accounts {
		fmt.Fprintf(tw, "%s\t%s\t%s\t\n", a.Account, a.Currency, money(a.BalanceCents))
	}
	tw.Flush()
	fmt.Fprintf(&b, "ledger: %d entries, total %s, balanced %t", l.Entries, money(l.TotalCents), l.Balanced)
	return b.String()
}

// balance is an account's balance in USD.
func balance(l paymentsapi.Ledger, account string) int64 {
	for _, a := range l.Accounts {
		if a.Account == account && a.Currency == "USD" {
			return a.BalanceCents
		}
	}
	return 0
}
