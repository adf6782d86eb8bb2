//go:build linux

// Package netlab builds a small network of hosts on this one machine and
// breaks it on purpose: one Linux network namespace per host, each with
// its own address in 198.18.<subnet>.0/24 (a range set aside for
// benchmarking networks, RFC 2544, that nothing else here uses), all
// joined by veth pairs to one bridge. The harness's own process stays in
// the root namespace and reaches every host through the bridge's address,
// .1.
//
// On it, a Shop runs microshop as separate machines would (shop.go), and
// faults are made with the kernel's own tools:
//
//	Cut(host)             the host's link goes down: nothing in or out
//	Block(a, b, oneWay)   nftables drops what a sends to b (and b to a)
//	BlockPort(a, b, port) nftables drops what a sends to b's port
//	Squeeze(host, rate)   tc tbf limits what the host sends
//	Heal()                all of it undone
//
// and Shop.Freeze/Thaw stop and continue a process (SIGSTOP, SIGCONT).
// Everything is made and removed by the Lab; New first removes what a
// crashed run of the same prefix left behind. It needs root, iproute2
// (ip, tc) and nftables (nft).
package netlab

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"runtime"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	"golang.org/x/sys/unix"
)

// Available reports why a Lab cannot be made here, or nil: it needs root
// and the ip, tc and nft commands, and network namespaces.
func Available() error {
	if os.Geteuid() != 0 {
		return errors.New("netlab needs root: it makes network namespaces, veth pairs, a bridge and nftables rules")
	}
	for _, tool := range []string{"ip", "tc", "nft"} {
		if _, err := exec.LookPath(tool); err != nil {
			return fmt.Errorf("netlab needs the %s command (Debian: apt-get install iproute2 nftables)", tool)
		}
	}
	if out, err := exec.Command("ip", "netns", "list").CombinedOutput(); err != nil {
		return fmt.Errorf("ip netns is unavailable here: %v: %s", err, bytes.TrimSpace(out))
	}
	return nil
}

// Options shape a Lab.
type Options struct {
	// Prefix starts the names of everything the lab makes: namespaces
	// "<prefix>-<host>", the bridge "<prefix>br", veths "<prefix>v<n>"
	// ("msl" when empty; at most 6 characters, as interface names are
	// short).
	Prefix string
	// Subnet is x in 198.18.x.0/24 (0 to 255).
	Subnet int
	// Logf, when set, receives each command that changes the network.
	Logf func(format string, args ...any)
}

// Host is one machine of the lab: a network namespace with one address.
type Host struct {
	Name string
	// NS is its network namespace, for "ip netns exec".
	NS string
	// IP is its address.
	IP string
	// veth is the root namespace's end of its link, on the bridge.
	veth string
	n    int
}

// Lab is the network: a bridge and its hosts.
type Lab struct {
	prefix, bridge string
	subnet         int
	logf           func(string, ...any)

	mu       sync.Mutex
	hosts    map[string]*Host
	order    []string
	cut      map[string]bool
	squeezed map[string]string
	drops    map[string][]drop // by the host whose output drops them
}

// drop is one nftables rule: packets to ip (and port, when set) dropped.
type drop struct {
	ip   string
	port int
}

// New removes what an earlier run with the same prefix left, then makes
// the bridge with the address 198.18.<subnet>.1/24.
func New(ctx context.Context, o Options) (*Lab, error) {
	if err := Available(); err != nil {
		return nil, err
	}
	if o.Prefix == "" {
		o.Prefix = "msl"
	}
	if len(o.Prefix) > 6 || strings.ContainsAny(o.Prefix, " /-") {
		return nil, fmt.Errorf("netlab: prefix %q: want up to 6 letters or digits", o.Prefix)
	}
	if o.Subnet < 0 || o.Subnet > 255 {
		return nil, fmt.Errorf("netlab: subnet %d: want 0 to 255", o.Subnet)
	}
	if o.Logf == nil {
		o.Logf = func(string, ...any) {}
	}
	l := &Lab{prefix: o.Prefix, bridge: o.Prefix + "br", subnet: o.Subnet, logf: o.Logf,
		hosts: map[string]*Host{}, cut: map[string]bool{}, squeezed: map[string]string{}, drops: map[string][]drop{}}
	if err := Clean(o.Prefix); err != nil {
		return nil, err
	}
	err := l.run(ctx,
		[]string{"ip", "link", "add", l.bridge, "type", "bridge"},
		[]string{"ip", "addr", "add", l.Gateway() + "/24", "dev", l.bridge},
		[]string{"ip", "link", "set", l.bridge, "up"},
	)
	if err != nil {
		_ = Clean(o.Prefix)
		return nil, err
	}
	return l, nil
}

// Clean removes every namespace and link named with prefix: what a run
// that crashed left behind.
func Clean(prefix string) error {
	out, err := exec.Command("ip", "netns", "list").Output()
	if err != nil {
		return fmt.Errorf("listing network namespaces: %w", err)
	}
	var errs []error
	for _, line := range strings.Split(string(out), "\n") {
		f := strings.Fields(line)
		if len(f) > 0 && strings.HasPrefix(f[0], prefix+"-") {
			// Its processes first: removing a namespace leaves them running.
			if pids, err := exec.Command("ip", "netns", "pids", f[0]).Output(); err == nil {
				for _, pid := range strings.Fields(string(pids)) {
					if n, err := strconv.Atoi(pid); err == nil {
						_ = syscall.Kill(n, syscall.SIGKILL)
					}
				}
			}
			if out, err := exec.Command("ip", "netns", "del", f[0]).CombinedOutput(); err != nil {
				errs = append(errs, fmt.Errorf("removing namespace %s: %v: %s", f[0], err, bytes.TrimSpace(out)))
			}
		}
	}
	links, err := net.Interfaces()
	if err != nil {
		return err
	}
	for _, ifc := range links {
		if ifc.Name == prefix+"br" || strings.HasPrefix(ifc.Name, prefix+"v") {
			// A veth goes with its namespace; what is left is removed.
			if out, err := exec.Command("ip", "link", "del", ifc.Name).CombinedOutput(); err != nil && !bytes.Contains(out, []byte("Cannot find")) {
				errs = append(errs, fmt.Errorf("removing link %s: %v: %s", ifc.Name, err, bytes.TrimSpace(out)))
			}
		}
	}
	return errors.Join(errs...)
}

// Gateway is the bridge's address: the root namespace, where the
// harness runs, as the hosts see it.
func (l *Lab) Gateway() string { return fmt.Sprintf("198.18.%d.1", l.subnet) }

// AddHost makes a host: its namespace, a veth pair with one end in it
// (eth0, with the host's address) and the other on the bridge, and an
// empty nftables table for Block.
func (l *Lab) AddHost(ctx context.Context, name string) (*Host, error) {
	l.mu.Lock()
	if _, ok := l.hosts[name]; ok {
		l.mu.Unlock()
		return nil, fmt.Errorf("netlab: host %s exists", name)
	}
	n := len(l.order) + 2 // .1 is the bridge
	if n > 254 {
		l.mu.Unlock()
		return nil, errors.New("netlab: no address left in the /24")
	}
	h := &Host{Name: name, NS: l.prefix + "-" + name, IP: fmt.Sprintf("198.18.%d.%d", l.subnet, n), veth: fmt.Sprintf("%sv%d", l.prefix, n), n: n}
	l.hosts[name] = h
	l.order = append(l.order, name)
	l.mu.Unlock()
	in := func(args ...string) []string { return append([]string{"ip", "netns", "exec", h.NS}, args...) }
	err := l.run(ctx,
		[]string{"ip", "netns", "add", h.NS},
		[]string{"ip", "link", "add", h.veth, "type", "veth", "peer", "name", "eth0", "netns", h.NS},
		[]string{"ip", "link", "set", h.veth, "master", l.bridge, "up"},
		in("ip", "addr", "add", h.IP+"/24", "dev", "eth0"),
		in("ip", "link", "set", "eth0", "up"),
		in("ip", "link", "set", "lo", "up"),
	)
	if err != nil {
		return nil, fmt.Errorf("making host %s: %w", name, err)
	}
	if err := l.writeRules(ctx, h); err != nil {
		return nil, fmt.Errorf("making host %s: %w", name, err)
	}
	return h, nil
}

// Host returns the named host, or nil.
func (l *Lab) Host(name string) *Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	return l.hosts[name]
}

// Hosts lists the hosts in the order they were made.
func (l *Lab) Hosts() []*Host {
	l.mu.Lock()
	defer l.mu.Unlock()
	out := make([]*Host, 0, len(l.order))
	for _, n := range l.order {
		out = append(out, l.hosts[n])
	}
	return out
}

func (l *Lab) host(name string) (*Host, error) {
	if h := l.Host(name); h != nil {
		return h, nil
	}
	return nil, fmt.Errorf("netlab: no host %s", name)
}

// Cut takes host's link down: it can reach nobody and nobody it, and
// connections to it go silent rather than being refused.
func (l *Lab) Cut(ctx context.Context, host string) error {
	h, err := l.host(host)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.cut[host] = true
	l.mu.Unlock()
	return l.run(ctx, []string{"ip", "link", "set", h.veth, "down"})
}

// Uncut brings host's link up again.
func (l *Lab) Uncut(ctx context.Context, host string) error {
	h, err := l.host(host)
	if err != nil {
		return err
	}
	l.mu.Lock()
	delete(l.cut, host)
	l.mu.Unlock()
	if err := l.run(ctx, []string{"ip", "link", "set", h.veth, "up"}); err != nil {
		return err
	}
	// The host's end takes a moment to see the carrier again; until it
	// does, what it sends is dropped, and a connection's first retry
	// comes a second later. Return once the link carries packets.
	deadline := time.Now().Add(2 * time.Second)
	for {
		out, err := exec.CommandContext(ctx, "ip", "-n", h.NS, "-br", "link", "show", "eth0").Output()
		if err == nil && bytes.Contains(out, []byte(" UP ")) {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%s's link is not up 2s after the heal: %s", host, bytes.TrimSpace(out))
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// Block drops every packet a sends to b and, unless oneWay, every packet
// b sends to a. One way, b's packets still arrive, but nothing a answers
// gets back: b sees a half-open connection.
func (l *Lab) Block(ctx context.Context, a, b string, oneWay bool) error {
	return l.block(ctx, a, b, 0, oneWay, true)
}

// Unblock undoes Block(a, b, oneWay).
func (l *Lab) Unblock(ctx context.Context, a, b string, oneWay bool) error {
	return l.block(ctx, a, b, 0, oneWay, false)
}

// BlockPort drops what a sends to port on b (and b's answers from it):
// a cannot reach that one server on b, and reaches everything else.
func (l *Lab) BlockPort(ctx context.Context, a, b string, port int) error {
	return l.block(ctx, a, b, port, true, true)
}

// UnblockPort undoes BlockPort(a, b, port).
func (l *Lab) UnblockPort(ctx context.Context, a, b string, port int) error {
	return l.block(ctx, a, b, port, true, false)
}

func (l *Lab) block(ctx context.Context, a, b string, port int, oneWay, on bool) error {
	ha, err := l.host(a)
	if err != nil {
		return err
	}
	hb, err := l.host(b)
	if err != nil {
		return err
	}
	l.mu.Lock()
	set := func(from string, d drop) {
		rules := slices.DeleteFunc(l.drops[from], func(x drop) bool { return x == d })
		if on {
			rules = append(rules, d)
		}
		l.drops[from] = rules
	}
	set(a, drop{ip: hb.IP, port: port})
	if !oneWay {
		set(b, drop{ip: ha.IP})
	}
	l.mu.Unlock()
	if err := l.writeRules(ctx, ha); err != nil {
		return err
	}
	if !oneWay {
		return l.writeRules(ctx, hb)
	}
	return nil
}

// writeRules replaces h's nftables table with its current drops. A port
// drop matches both directions of that conversation: packets to the port
// and the answers from it.
func (l *Lab) writeRules(ctx context.Context, h *Host) error {
	l.mu.Lock()
	rules := slices.Clone(l.drops[h.Name])
	l.mu.Unlock()
	var b strings.Builder
	b.WriteString("table inet netlab\ndelete table inet netlab\ntable inet netlab {\n")
	b.WriteString("  chain out {\n    type filter hook output priority 0; policy accept;\n")
	for _, r := range rules {
		if r.port > 0 {
			fmt.Fprintf(&b, "    ip daddr %s tcp dport %d drop\n", r.ip, r.port)
		} else {
			fmt.Fprintf(&b, "    ip daddr %s drop\n", r.ip)
		}
	}
	b.WriteString("  }\n  chain in {\n    type filter hook input priority 0; policy accept;\n")
	for _, r := range rules {
		if r.port > 0 {
			fmt.Fprintf(&b, "    ip saddr %s tcp sport %d drop\n", r.ip, r.port)
		}
	}
	b.WriteString("  }\n}\n")
	cmd := exec.CommandContext(ctx, "ip", "netns", "exec", h.NS, "nft", "-f", "-")
	cmd.Stdin = strings.NewReader(b.String())
	if out, err := cmd.CombinedOutput(); err != nil {
		return fmt.Errorf("nftables in %s: %v: %s", h.Name, err, bytes.TrimSpace(out))
	}
	l.logf("nft %s: %d drops", h.Name, len(rules))
	return nil
}

// Squeeze limits what host sends to rate (tc's units, such as "256kbit")
// with a token bucket (tc tbf); packets that wait longer than 400ms for
// a token are dropped.
func (l *Lab) Squeeze(ctx context.Context, host, rate string) error {
	h, err := l.host(host)
	if err != nil {
		return err
	}
	l.mu.Lock()
	l.squeezed[host] = rate
	l.mu.Unlock()
	return l.run(ctx, []string{"ip", "netns", "exec", h.NS, "tc", "qdisc", "replace", "dev", "eth0", "root", "tbf",
		"rate", rate, "burst", "16kb", "latency", "400ms"})
}

// Unsqueeze removes host's rate limit.
func (l *Lab) Unsqueeze(ctx context.Context, host string) error {
	h, err := l.host(host)
	if err != nil {
		return err
	}
	l.mu.Lock()
	delete(l.squeezed, host)
	l.mu.Unlock()
	return l.run(ctx, []string{"ip", "netns", "exec", h.NS, "tc", "qdisc", "del", "dev", "eth0", "root"})
}

// Heal undoes every Cut, Block and Squeeze.
func (l *Lab) Heal(ctx context.Context) error {
	l.mu.Lock()
	var cut, squeezed, blocked []string
	for h := range l.cut {
		cut = append(cut, h)
	}
	for h := range l.squeezed {
		squeezed = append(squeezed, h)
	}
	for h, d := range l.drops {
		if len(d) > 0 {
			blocked = append(blocked, h)
		}
	}
	l.drops = map[string][]drop{}
	l.mu.Unlock()
	sort.Strings(cut)
	var errs []error
	for _, h := range cut {
		errs = append(errs, l.Uncut(ctx, h))
	}
	for _, h := range squeezed {
		errs = append(errs, l.Unsqueeze(ctx, h))
	}
	for _, name := range blocked {
		if h := l.Host(name); h != nil {
			errs = append(errs, l.writeRules(ctx, h))
		}
	}
	return errors.Join(errs...)
}

// Close removes every host and the bridge.
func (l *Lab) Close() error {
	return Clean(l.prefix)
}

// Command returns cmd to run name with args inside host's namespace.
func (h *Host) Command(ctx context.Context, name string, args ...string) *exec.Cmd {
	return exec.CommandContext(ctx, "ip", append([]string{"netns", "exec", h.NS, name}, args...)...)
}

// DialContext opens a connection from inside h's namespace, so that this
// process (in the root namespace) talks as host h.
func (h *Host) DialContext(ctx context.Context, network, addr string) (net.Conn, error) {
	var c net.Conn
	err := h.Do(func() (err error) {
		d := net.Dialer{Timeout: 5 * time.Second, KeepAlive: 15 * time.Second}
		c, err = d.DialContext(ctx, network, addr)
		return err
	})
	return c, err
}

// Listen listens inside h's namespace.
func (h *Host) Listen(network, addr string) (net.Listener, error) {
	var ln net.Listener
	err := h.Do(func() (err error) {
		ln, err = net.Listen(network, addr)
		return err
	})
	return ln, err
}

// Do runs fn on a thread moved into h's namespace: the sockets fn makes
// belong to h, as a socket belongs to the namespace of the thread that
// made it. The thread is moved back after; if it cannot be, it stays
// locked and ends with its goroutine.
func (h *Host) Do(fn func() error) error {
	done := make(chan error, 1)
	go func() {
		runtime.LockOSThread()
		self, err := os.Open("/proc/thread-self/ns/net")
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer self.Close()
		target, err := os.Open("/var/run/netns/" + h.NS)
		if err != nil {
			runtime.UnlockOSThread()
			done <- err
			return
		}
		defer target.Close()
		if err := unix.Setns(int(target.Fd()), unix.CLONE_NEWNET); err != nil {
			runtime.UnlockOSThread()
			done <- fmt.Errorf("entering %s: %w", h.NS, err)
			return
		}
		err = fn()
		if unix.Setns(int(self.Fd()), unix.CLONE_NEWNET) == nil {
			runtime.UnlockOSThread()
		}
		done <- err
	}()
	return <-done
}

// run runs each command in turn, stopping at the first that fails.
func (l *Lab) run(ctx context.Context, cmds ...[]string) error {
	for _, c := range cmds {
		l.logf("%s", strings.Join(c, " "))
		if out, err := exec.CommandContext(ctx, c[0], c[1:]...).CombinedOutput(); err != nil {
			return fmt.Errorf("%s: %v: %s", strings.Join(c, " "), err, bytes.TrimSpace(out))
		}
	}
	return nil
}
