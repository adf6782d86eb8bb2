package notifications

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"net/url"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"time"
)

// MaxURLLength bounds a webhook URL.
const MaxURLLength = 2048

// guard keeps webhooks from reaching the shop's own network (server-side
// request forgery): a webhook URL is chosen by whoever registers it, and
// without the guard it could point the service at a database port, an
// admin page or a cloud metadata endpoint behind the firewall. The check
// runs at registration, where the admin gets the reason, and again on
// every dial (net.Dialer.Control sees the address actually connected to),
// so a name that resolved to a public address at registration and to a
// private one later (DNS rebinding) is refused too.
type guard struct {
	// allowPrivate lets webhooks reach private and loopback addresses:
	// for a machine where the receivers run locally (`microshop run`).
	allowPrivate bool
	// allow are receivers let through although the guard would block
	// them, each named by address and port: a developer's local
	// receiver, without opening every other port of the machine.
	allow []netip.AddrPort
	// own are this host's interface addresses: a public one still leads
	// to the host's own services.
	own      []netip.Addr
	resolver *net.Resolver
}

// ownAddresses lists the addresses of this host's interfaces. It is read
// once, at start; an address added later is still caught when it is in a
// blocked range.
func ownAddresses() ([]netip.Addr, error) {
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return nil, fmt.Errorf("listing this host's addresses: %w", err)
	}
	var out []netip.Addr
	for _, a := range addrs {
		if p, err := netip.ParsePrefix(a.String()); err == nil {
			out = append(out, p.Addr().Unmap())
		}
	}
	return out, nil
}

// ParseAllow reads --webhook-allow: comma-separated address:port pairs.
func ParseAllow(list string) ([]netip.AddrPort, error) {
	var out []netip.AddrPort
	for _, part := range strings.Split(list, ",") {
		if part = strings.TrimSpace(part); part == "" {
			continue
		}
		ap, err := netip.ParseAddrPort(part)
		if err != nil {
			return nil, fmt.Errorf("%q: want an address and port, such as 127.0.0.1:9000", part)
		}
		out = append(out, netip.AddrPortFrom(ap.Addr().Unmap(), ap.Port()))
	}
	return out, nil
}

// problem says why the receiver at ap may not get webhooks, or "".
func (g guard) problem(ap netip.AddrPort) string {
	ip := ap.Addr().Unmap()
	if g.allowPrivate || slices.Contains(g.allow, netip.AddrPortFrom(ip, ap.Port())) {
		return ""
	}
	if why := addressProblem(ip); why != "" {
		return why
	}
	if slices.Contains(g.own, ip) {
		return "an address of this host"
	}
	return ""
}

// blocked are the ranges a webhook may not reach, beyond what netip's
// predicates name: shared (carrier-grade NAT) space, where some clouds
// keep their metadata service, and ranges that are not the public internet.
var blocked = []struct {
	prefix netip.Prefix
	what   string
}{
	{netip.MustParsePrefix("0.0.0.0/8"), "a \"this network\" address"},
	{netip.MustParsePrefix("100.64.0.0/10"), "a shared (carrier-grade NAT) address"},
	{netip.MustParsePrefix("192.0.0.0/24"), "an IETF protocol address"},
	{netip.MustParsePrefix("192.0.2.0/24"), "a documentation address"},
	{netip.MustParsePrefix("198.51.100.0/24"), "a documentation address"},
	{netip.MustParsePrefix("203.0.113.0/24"), "a documentation address"},
	{netip.MustParsePrefix("2001:db8::/32"), "a documentation address"},
	{netip.MustParsePrefix("198.18.0.0/15"), "a benchmarking address"},
	{netip.MustParsePrefix("240.0.0.0/4"), "a reserved address"},
	{netip.MustParsePrefix("64:ff9b::/96"), "a NAT64 address"},
	{netip.MustParsePrefix("64:ff9b:1::/48"), "a NAT64 address"},
	{netip.MustParsePrefix("2002::/16"), "a 6to4 address"},
}

// addressProblem says why ip may not receive webhooks, or "" when it may.
func addressProblem(ip netip.Addr) string {
	ip = ip.Unmap()
	switch {
	case !ip.IsValid():
		return "not an IP address"
	case ip.IsUnspecified():
		return "an unspecified address"
	case ip.IsLoopback():
		return "a loopback address"
	case ip.IsLinkLocalUnicast(), ip.IsLinkLocalMulticast():
		return "a link-local address"
	case ip.IsMulticast(), ip.IsInterfaceLocalMulticast():
		return "a multicast address"
	case ip.IsPrivate():
		return "a private address"
	case ip == netip.AddrFrom4([4]byte{255, 255, 255, 255}):
		return "the broadcast address"
	}
	for _, b := range blocked {
		if b.prefix.Contains(ip) {
			return b.what
		}
	}
	return ""
}

// checkShape says why raw may not be a webhook URL on its own, without
// looking up its host, or "" when it may.
func checkShape(raw string) string {
	if len(raw) > MaxURLLength {
		return fmt.Sprintf("must be at most %d bytes", MaxURLLength)
	}
	u, err := url.Parse(raw)
	if err != nil {
		return "is not a URL"
	}
	if u.Scheme != "http" && u.Scheme != "https" {
		return "must be an http:// or https:// URL"
	}
	if u.Host == "" || u.Hostname() == "" || u.Opaque != "" {
		return "must name a host"
	}
	if u.User != nil {
		return "must not carry credentials; the signature authenticates the sender"
	}
	return ""
}

// checkURL says why raw may not be a webhook URL, or "" when it may. It
// resolves the host to check the addresses it names now.
func (g guard) checkURL(ctx context.Context, raw string) string {
	if why := checkShape(raw); why != "" {
		return why
	}
	if g.allowPrivate {
		return ""
	}
	u, _ := url.Parse(raw) // checkShape parsed it
	host := u.Hostname()
	port := uint16(80)
	if u.Scheme == "https" {
		port = 443
	}
	if n, err := strconv.ParseUint(u.Port(), 10, 16); err == nil {
		port = uint16(n)
	}
	if ip, err := netip.ParseAddr(host); err == nil {
		if why := g.problem(netip.AddrPortFrom(ip, port)); why != "" {
			return fmt.Sprintf("points at %s, %s; webhooks may reach only public addresses", host, why)
		}
		return ""
	}
	ctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	defer cancel()
	addrs, err := g.resolver.LookupNetIP(ctx, "ip", host)
	if err != nil || len(addrs) == 0 {
		return fmt.Sprintf("has a host, %s, that does not resolve", host)
	}
	for _, ip := range addrs {
		if why := g.problem(netip.AddrPortFrom(ip, port)); why != "" {
			return fmt.Sprintf("has a host, %s, that resolves to %s, %s; webhooks may reach only public addresses", host, ip.Unmap(), why)
		}
	}
	return ""
}

// control is the dialer's last word: it refuses to connect to a blocked
// address, whatever name led there.
func (g guard) control(_, address string, _ syscall.RawConn) error {
	ap, err := netip.ParseAddrPort(address)
	if err != nil {
		return fmt.Errorf("refusing to dial %q: %w", address, err)
	}
	if why := g.problem(ap); why != "" {
		return fmt.Errorf("refusing to connect to %s: %s (webhooks may reach only public addresses)", ap.Addr().Unmap(), why)
	}
	return nil
}

// dialer returns a dialer whose every connection passes the guard.
func (g guard) dialer(timeout time.Duration) *net.Dialer {
	return &net.Dialer{Timeout: timeout, KeepAlive: 30 * time.Second, Control: g.control}
}
