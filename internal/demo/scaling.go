package demo

import (
	"bufio"
	"context"
	"fmt"
	"maps"
	"net/http"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/microshop/microshop/internal/loadgen"
	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/shopclient"
)

// The simulated card processor of independent-scaling (payments'
// --processor simulator; no card network is called): every authorization
// takes processorLatency, and a payments process has processorConnections
// of them in flight at most. One replica then authorizes at most
// connections / latency checkouts a second, and each replica adds as many.
const (
	processorLatency     = 200 * time.Millisecond
	processorConnections = 2
	scalingShoppers      = 16
	// minRatio is "clearly higher": half as much again. An even split
	// over three replicas gives 3x.
	minRatio = 1.5
)

var scalingEnv = []string{
	"MICROSHOP_PROCESSOR_LATENCY=" + processorLatency.String(),
	fmt.Sprintf("MICROSHOP_PROCESSOR_CONNECTIONS=%d", processorConnections),
}

// independentScaling measures checkout throughput with one, three and
// one payments replicas, touching no other service.
func independentScaling(ctx context.Context, d *demo) (Verdict, error) {
	var v Verdict
	ceiling := float64(processorConnections) / processorLatency.Seconds()
	d.r.step("Set up a product and four customers")
	const sku = "DEMO-SCALE-BEANS"
	if err := createProduct(ctx, d.admin, sku, "Demo Beans", 1650, 1_000_000); err != nil {
		return v, err
	}
	custs, err := customers(ctx, d.shop, "scale", 4)
	if err != nil {
		return v, err
	}
	d.r.logf("payments' card processor is simulated: %s per authorization, %d connections per process, so one replica authorizes at most %.0f/s",
		processorLatency, processorConnections, ceiling)
	before, err := d.pids(ctx)
	if err != nil {
		return v, err
	}

	d.r.step("%d shoppers check out without pause; payments has 1 replica", scalingShoppers)
	l := startLoad(d.shop, loadConfig{Shoppers: scalingShoppers, Customers: custs, SKU: sku, Card: shopclient.CardApproved, Key: "scale"})
	defer l.Stop()
	m := watch(d.r, l)
	defer m.Stop()
	m.say("payments ×1")
	// measure waits warm (callers find new replicas by probing every
	// second), then counts confirmed checkouts for span.
	measure := func(warm, span time.Duration) (float64, loadgen.Counts, error) {
		if err := sleep(ctx, warm); err != nil {
			return 0, loadgen.Counts{}, err
		}
		a, at := l.Counts(), time.Now()
		if err := sleep(ctx, span); err != nil {
			return 0, loadgen.Counts{}, err
		}
		c := l.Counts().Sub(a)
		return float64(c.Confirmed) / time.Since(at).Seconds(), c, nil
	}
	one, c1, err := measure(2*time.Second, 8*time.Second)
	if err != nil {
		return v, err
	}
	d.r.logf("1 replica: %.1f checkouts/s confirmed (%d in the window)", one, c1.Confirmed)

	d.r.step("Scale payments to 3 replicas through run's control socket")
	start := time.Now()
	reps, err := d.sys.Scale(ctx, "payments", 3)
	if err != nil {
		return v, err
	}
	asks := 1
	for len(reps) < 3 && asks < 3 {
		d.r.logf("run answered with %d replicas of payments, not 3: asking again", len(reps))
		if reps, err = d.sys.Scale(ctx, "payments", 3); err != nil {
			return v, err
		}
		asks++
	}
	d.r.logf("payments has %d replicas, all ready, after %.1fs: pids %v", len(reps), time.Since(start).Seconds(), procPIDs(reps))
	m.say("payments ×3")
	if err := sleep(ctx, 2*time.Second); err != nil {
		return v, err
	}
	split0, err := authorizations(ctx, d.sys.ServiceClient("payments"), reps)
	if err != nil {
		return v, err
	}
	three, c3, err := measure(0, 8*time.Second)
	if err != nil {
		return v, err
	}
	split1, err := authorizations(ctx, d.sys.ServiceClient("payments"), reps)
	if err != nil {
		return v, err
	}
	shares := shareOf(split0, split1)
	d.r.logf("3 replicas: %.1f checkouts/s confirmed (%d in the window); authorizations per replica: %s", three, c3.Confirmed, shares)
	if uneven(split0, split1) {
		d.r.logf("the split is uneven: orders' balancer hands replica 1 the turns of the replica slots that run keeps free (5 in all), so replica 1 caps the throughput")
	}

	d.r.step("Scale payments back to 1 replica")
	start = time.Now()
	reps, err = d.sys.Scale(ctx, "payments", 1)
	if err != nil {
		return v, err
	}
	d.r.logf("payments has %d replica after %.1fs (the others drained and stopped): pid %v", len(reps), time.Since(start).Seconds(), procPIDs(reps))
	m.say("payments ×1")
	back, cb, err := measure(2*time.Second, 6*time.Second)
	if err != nil {
		return v, err
	}
	d.r.logf("1 replica again: %.1f checkouts/s confirmed (%d in the window)", back, cb.Confirmed)
	m.Stop()
	l.Stop()
	total := l.Counts()

	d.r.step("Check that no other service was touched")
	after, err := d.pids(ctx)
	if err != nil {
		return v, err
	}
	var touched, same []string
	for name, pids := range before {
		if name == "payments" {
			continue
		}
		if slices.Equal(pids, after[name]) {
			same = append(same, name)
		} else {
			touched = append(touched, fmt.Sprintf("%s %v -> %v", name, pids, after[name]))
		}
	}
	sort.Strings(same)
	d.r.logf("same processes as at the start: %s", strings.Join(same, ", "))

	ratio := 0.0
	if one > 0 {
		ratio = three / one
	}
	v.figure("processor", "simulated: %s per authorization, %d connections per payments process (ceiling %.0f/s per replica)", processorLatency, processorConnections, ceiling)
	v.figure("throughput, 1 replica", "%.1f checkouts/s", one)
	v.figure("throughput, 3 replicas", "%.1f checkouts/s", three)
	v.figure("throughput, back to 1", "%.1f checkouts/s", back)
	v.figure("ratio 3 : 1", "%.2fx (3x if the replicas shared the work evenly)", ratio)
	v.figure("split over 3 replicas", "%s of the authorizations", shares)
	v.figure("other services", "%d untouched (same pids), %d restarted", len(same), len(touched))
	v.figure("checkouts", "%d finished, %d confirmed, %d failed; %d failed requests", total.Checkouts, total.Confirmed, total.CheckoutFailed, total.Failed)

	v.check(ratio >= minRatio, "3 replicas gave %.2fx the throughput of 1, want at least %.1fx", ratio, minRatio)
	v.check(back < 0.8*three, "back at 1 replica the throughput (%.1f/s) did not fall from 3 replicas' %.1f/s", back, three)
	v.check(len(touched) == 0, "other services were restarted: %s", strings.Join(touched, "; "))
	v.check(total.Failed == 0 && total.CheckoutFailed == 0, "%d requests and %d checkouts failed: %v", total.Failed, total.CheckoutFailed, l.Samples())
	v.decide(fmt.Sprintf("payments alone scaled out: 3 replicas carried %.2fx the checkouts of 1 (%.1f/s vs %.1f/s), no other service touched", ratio, three, one),
		"scaling payments out did not clearly raise the throughput, or touched other services")
	return v, nil
}

func procPIDs(ps []localrun.Process) []int {
	var out []int
	for _, p := range ps {
		out = append(out, p.PID)
	}
	sort.Ints(out)
	return out
}

// authorizations reads each replica's /metrics and returns how many
// authorizations it has answered, by replica.
func authorizations(ctx context.Context, hc *http.Client, reps []localrun.Process) (map[int]float64, error) {
	out := map[int]float64{}
	for _, p := range reps {
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, p.URL+"/metrics", nil)
		if err != nil {
			return nil, err
		}
		resp, err := hc.Do(req)
		if err != nil {
			return nil, fmt.Errorf("reading the metrics of payments replica %d: %w", p.Replica+1, err)
		}
		sc := bufio.NewScanner(resp.Body)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			if !strings.HasPrefix(l, "http_server_requests_total{") || !strings.Contains(l, `route="/internal/payments/authorize"`) {
				continue
			}
			if i := strings.LastIndexByte(l, ' '); i > 0 {
				if n, err := strconv.ParseFloat(l[i+1:], 64); err == nil {
					out[p.Replica] += n
				}
			}
		}
		resp.Body.Close()
	}
	return out, nil
}

// shareOf says how the authorizations between two readings were split
// over the replicas, as "replica 1 60%, replica 2 20%, ...".
func shareOf(before, after map[int]float64) string {
	total := 0.0
	for k, n := range after {
		total += n - before[k]
	}
	var parts []string
	for _, k := range slices.Sorted(maps.Keys(after)) {
		share := 0.0
		if total > 0 {
			share = 100 * (after[k] - before[k]) / total
		}
		parts = append(parts, fmt.Sprintf("replica %d %.0f%%", k+1, share))
	}
	return strings.Join(parts, ", ")
}

// uneven reports whether one replica took more than 45% of the work.
func uneven(before, after map[int]float64) bool {
	total, top := 0.0, 0.0
	for k, n := range after {
		total += n - before[k]
		top = max(top, n-before[k])
	}
	return total > 0 && len(after) > 2 && top/total > 0.45
}
