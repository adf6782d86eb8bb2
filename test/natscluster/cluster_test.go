// Package natscluster runs the shop on a three-node NATS JetStream cluster
// (real nats-server processes clustered on loopback), kills one node in
// the middle of checkouts, and checks that checkouts keep confirming and
// that no event is lost: every confirmed order gets its receipt, once.
package natscluster

import (
	"context"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/nats-io/nats.go"
	"github.com/nats-io/nats.go/jetstream"

	"github.com/microshop/microshop/internal/localrun"
	"github.com/microshop/microshop/internal/shopclient"
	"github.com/microshop/microshop/services/orders/ordersapi"
	"github.com/microshop/microshop/test/systemtest"
)

// natsServer finds the nats-server binary: $MICROSHOP_NATS_SERVER, the
// PATH, or Debian's /usr/sbin/nats-server.
func natsServer(t *testing.T) string {
	if p := os.Getenv("MICROSHOP_NATS_SERVER"); p != "" {
		return p
	}
	if p, err := exec.LookPath("nats-server"); err == nil {
		return p
	}
	if _, err := os.Stat("/usr/sbin/nats-server"); err == nil {
		return "/usr/sbin/nats-server"
	}
	t.Skip("no nats-server binary (apt-get install nats-server, or set MICROSHOP_NATS_SERVER); skipping the cluster test")
	return ""
}

func freePort(t *testing.T) int {
	for range 100 {
		p := 20000 + rand.IntN(12000)
		if l, err := net.Listen("tcp", fmt.Sprintf("127.0.0.1:%d", p)); err == nil {
			l.Close()
			return p
		}
	}
	t.Fatal("no free port")
	return 0
}

type node struct {
	name   string
	client int
	cmd    *exec.Cmd
}

// startCluster starts three clustered JetStream servers.
func startCluster(t *testing.T) []*node {
	bin := natsServer(t)
	var nodes []*node
	var routes []string
	clusterPorts := make([]int, 3)
	for i := range 3 {
		clusterPorts[i] = freePort(t)
		routes = append(routes, fmt.Sprintf("nats-route://127.0.0.1:%d", clusterPorts[i]))
	}
	for i := range 3 {
		n := &node{name: fmt.Sprintf("n%d", i+1), client: freePort(t)}
		dir := t.TempDir()
		n.cmd = exec.Command(bin, "-a", "127.0.0.1", "-p", fmt.Sprint(n.client), "-js", "-sd", dir,
			"--server_name", n.name, "--cluster_name", "microshop-test",
			"--cluster", fmt.Sprintf("nats://127.0.0.1:%d", clusterPorts[i]), "--routes", strings.Join(routes, ","))
		logf, err := os.Create(filepath.Join(dir, "nats.log"))
		if err != nil {
			t.Fatal(err)
		}
		n.cmd.Stdout, n.cmd.Stderr = logf, logf
		localrun.DieWithParent(n.cmd)
		if err := n.cmd.Start(); err != nil {
			t.Fatal(err)
		}
		t.Cleanup(func() {
			_ = n.cmd.Process.Kill()
			_ = n.cmd.Wait()
			logf.Close()
		})
		nodes = append(nodes, n)
	}
	// Wait for every node to take clients and the cluster to elect its
	// JetStream meta leader (the services create their streams at start).
	deadline := time.Now().Add(30 * time.Second)
	for _, n := range nodes {
		for {
			if c, err := net.Dial("tcp", fmt.Sprintf("127.0.0.1:%d", n.client)); err == nil {
				c.Close()
				break
			}
			if time.Now().After(deadline) {
				t.Fatalf("%s did not start", n.name)
			}
			time.Sleep(50 * time.Millisecond)
		}
	}
	return nodes
}

func TestCheckoutsSurviveLosingANATSNode(t *testing.T) {
	if testing.Short() {
		t.Skip("starts a NATS cluster and the whole system")
	}
	ctx := context.Background()
	nodes := startCluster(t)
	var urls []string
	for _, n := range nodes {
		urls = append(urls, fmt.Sprintf("nats://127.0.0.1:%d", n.client))
	}
	s := systemtest.Start(t, systemtest.ShopEnv(
		"MICROSHOP_NATS="+strings.Join(urls, ","), // run's --nats: use this cluster
		"MICROSHOP_STREAM_REPLICAS=3",             // every stream on all three nodes
	)...)
	shop := systemtest.Shop(s.Gateway)
	admin := systemtest.Login(t, shop, systemtest.AdminEmail, systemtest.AdminPassword)
	customer := systemtest.Customer(t, shop, "cluster")
	list, err := shop.Products(ctx, shopclient.ProductQuery{Limit: 30})
	if err != nil {
		t.Fatal(err)
	}
	sku := ""
	for _, p := range list.Items {
		if p.Available >= 40 {
			sku = p.SKU
			break
		}
	}

	var confirmed []string
	buy := func(n int, prefix string) {
		for i := range n {
			o, done, err := customer.PlaceOrder(ctx, fmt.Sprintf("%s-%d", prefix, i),
				shopclient.Checkout(shopclient.CardApproved, shopclient.Line{SKU: sku, Quantity: 1}))
			if err != nil || !done || o.Status != ordersapi.StatusConfirmed {
				t.Fatalf("order %s-%d: answered at once %v, %+v, %v", prefix, i, done, o, err)
			}
			confirmed = append(confirmed, o.ID)
		}
	}
	buy(10, "before")
	// The streams really live on all three nodes.
	nc, err := nats.Connect(urls[0])
	if err != nil {
		t.Fatal(err)
	}
	defer nc.Close()
	js, _ := jetstream.New(nc)
	jctx, cancel := context.WithTimeout(ctx, 10*time.Second)
	defer cancel()
	for _, name := range []string{"ORDERS", "PAYMENTS", "INVENTORY", "USERS"} {
		st, err := js.Stream(jctx, name)
		if err != nil {
			t.Fatalf("stream %s: %v", name, err)
		}
		if r := st.CachedInfo().Config.Replicas; r != 3 {
			t.Fatalf("stream %s has %d replicas, want 3", name, r)
		}
	}
	// Kill one node outright.
	if err := nodes[1].cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatal(err)
	}
	_ = nodes[1].cmd.Wait()
	buy(10, "after")

	// No event lost: every confirmed order's receipt arrives, exactly once.
	deadline := time.Now().Add(60 * time.Second)
	for {
		per, _, err := admin.Receipts(ctx, customer.Email)
		if err != nil {
			t.Fatal(err)
		}
		missing := 0
		for _, id := range confirmed {
			if per[id] == 0 {
				missing++
			}
			if per[id] > 1 {
				t.Fatalf("order %s has %d receipts", id, per[id])
			}
		}
		if missing == 0 {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("%d of %d confirmed orders have no receipt after losing a NATS node", missing, len(confirmed))
		}
		time.Sleep(250 * time.Millisecond)
	}
}
