package deploy

import (
	"fmt"
	"net/netip"
	"slices"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// The namespace the manifests are applied to, and the ones around it that
// the policies name (base/networkpolicies.yaml says so in its header).
const appNamespace = "microshop"

// endpoint is one end of a connection: a pod (its namespace's labels and
// its own) or an address outside the cluster.
type endpoint struct {
	name      string
	namespace string
	pod       map[string]string
	ip        netip.Addr       // for addresses outside the cluster
	ports     map[string]int32 // named container ports
}

func (e endpoint) nsLabels() map[string]string {
	return map[string]string{"kubernetes.io/metadata.name": e.namespace}
}

func (e endpoint) inApp() bool { return e.namespace == appNamespace && e.pod != nil }

// peerMatches says whether a rule's peer admits the endpoint.
func peerMatches(p networkingv1.NetworkPolicyPeer, e endpoint) bool {
	if p.IPBlock != nil {
		if !e.ip.IsValid() {
			return false // pods: the in-cluster ranges, which no ipBlock here admits
		}
		cidr, err := netip.ParsePrefix(p.IPBlock.CIDR)
		if err != nil || !cidr.Contains(e.ip) {
			return false
		}
		for _, ex := range p.IPBlock.Except {
			if x, err := netip.ParsePrefix(ex); err == nil && x.Contains(e.ip) {
				return false
			}
		}
		return true
	}
	if e.pod == nil {
		return false
	}
	if p.NamespaceSelector == nil {
		if e.namespace != appNamespace {
			return false
		}
	} else if !selects(p.NamespaceSelector, e.nsLabels()) {
		return false
	}
	return p.PodSelector == nil || selects(p.PodSelector, e.pod)
}

func portMatches(ports []networkingv1.NetworkPolicyPort, e endpoint, port int32, proto corev1.Protocol) bool {
	if len(ports) == 0 {
		return true
	}
	for _, p := range ports {
		pr := corev1.ProtocolTCP
		if p.Protocol != nil {
			pr = *p.Protocol
		}
		if pr != proto {
			continue
		}
		if p.Port == nil {
			return true
		}
		n := p.Port.IntVal
		if p.Port.Type == intstr.String {
			n = e.ports[p.Port.StrVal]
		}
		if n == port || (p.EndPort != nil && port >= n && port <= *p.EndPort) {
			return true
		}
	}
	return false
}

// allowed evaluates the network policies as Kubernetes does for a
// connection from src to dst:port: the ingress side is checked when dst is
// a pod of the app's namespace, the egress side when src is; a side that no
// policy selects with that direction is open.
func allowed(policies []*networkingv1.NetworkPolicy, src, dst endpoint, port int32, proto corev1.Protocol) bool {
	ingressOK, egressOK := true, true
	if dst.inApp() {
		isolated, ok := false, false
		for _, np := range policies {
			if !selects(&np.Spec.PodSelector, dst.pod) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeIngress) {
				continue
			}
			isolated = true
			for _, r := range np.Spec.Ingress {
				if (len(r.From) == 0 || slices.ContainsFunc(r.From, func(p networkingv1.NetworkPolicyPeer) bool { return peerMatches(p, src) })) &&
					portMatches(r.Ports, dst, port, proto) {
					ok = true
				}
			}
		}
		ingressOK = !isolated || ok
	}
	if src.inApp() {
		isolated, ok := false, false
		for _, np := range policies {
			if !selects(&np.Spec.PodSelector, src.pod) || !slices.Contains(np.Spec.PolicyTypes, networkingv1.PolicyTypeEgress) {
				continue
			}
			isolated = true
			for _, r := range np.Spec.Egress {
				if (len(r.To) == 0 || slices.ContainsFunc(r.To, func(p networkingv1.NetworkPolicyPeer) bool { return peerMatches(p, dst) })) &&
					portMatches(r.Ports, dst, port, proto) {
					ok = true
				}
			}
		}
		egressOK = !isolated || ok
	}
	return ingressOK && egressOK
}

// networkMatrix checks the policies against the intended graph: each
// service reaches exactly its callees, users (for the JWKS), NATS, its own
// database, DNS and the trace collector; it is reached only by its
// callers, the ingress controller (the gateway only) and Prometheus.
func (m *manifests) networkMatrix() []string {
	var problems []string
	policies := all[*networkingv1.NetworkPolicy](m)
	pods := map[string]endpoint{}
	scrape := map[string]int32{} // where Prometheus reads each service
	for _, name := range serviceNames() {
		d := m.deploymentServing(name)
		if d == nil {
			problems = append(problems, fmt.Sprintf("no Deployment serves %s", name))
			continue
		}
		ports := map[string]int32{}
		for _, c := range d.Spec.Template.Spec.Containers {
			for _, p := range c.Ports {
				ports[p.Name] = p.ContainerPort
			}
		}
		pods[name] = endpoint{name: name, namespace: appNamespace, pod: d.Spec.Template.Labels, ports: ports}
		for _, c := range d.Spec.Template.Spec.Containers {
			if serveTarget(c) != name {
				continue
			}
			port, problem := m.scrapePort(c, name)
			if problem != "" {
				problems = append(problems, name+": "+problem)
			}
			scrape[name] = port
		}
	}
	tcp, udp := corev1.ProtocolTCP, corev1.ProtocolUDP
	expect := func(src, dst endpoint, port int32, proto corev1.Protocol, want bool) {
		if got := allowed(policies, src, dst, port, proto); got != want {
			verb := "is allowed"
			if !got {
				verb = "is refused"
			}
			problems = append(problems, fmt.Sprintf("%s → %s:%d/%s %s; want the opposite", src.name, dst.name, port, proto, verb))
		}
	}
	outsiders := []endpoint{
		{name: "ingress controller", namespace: "ingress-nginx", pod: map[string]string{"app.kubernetes.io/name": "ingress-nginx"}},
		{name: "prometheus", namespace: "monitoring", pod: map[string]string{"app.kubernetes.io/name": "prometheus"}},
		{name: "a stray pod in the namespace", namespace: appNamespace, pod: map[string]string{"app": "debug"}},
		{name: "a pod in another namespace", namespace: "default", pod: map[string]string{"app": "other"}},
		{name: "the internet", ip: netip.MustParseAddr("203.0.113.10")},
	}
	nats := endpoint{name: "nats", namespace: "nats", pod: map[string]string{"app.kubernetes.io/name": "nats", "app.kubernetes.io/instance": "nats"}}
	dns := endpoint{name: "kube-dns", namespace: "kube-system", pod: map[string]string{"k8s-app": "kube-dns"}}
	collector := endpoint{name: "otlp collector", namespace: "observability", pod: map[string]string{"app.kubernetes.io/name": "jaeger"}}
	internet := outsiders[len(outsiders)-1]
	for _, src := range serviceNames() {
		s, ok := pods[src]
		if !ok {
			continue
		}
		for _, dst := range serviceNames() {
			d, ok := pods[dst]
			if !ok || dst == src {
				continue
			}
			expect(s, d, servicePorts[dst], tcp, slices.Contains(calls[src], dst))
			// The operations port is Prometheus' alone, even for callers.
			if scrape[dst] != 0 {
				expect(s, d, scrape[dst], tcp, false)
			}
		}
		for _, o := range outsiders {
			if o.pod == nil {
				continue
			}
			// Prometheus reaches the service port only where /metrics is
			// served, and nobody else reaches the operations port.
			metricsThere := scrape[src] == servicePorts[src]
			want := (o.namespace == "monitoring" && metricsThere) || (o.namespace == "ingress-nginx" && src == "gateway")
			expect(o, s, servicePorts[src], tcp, want)
			if !metricsThere && scrape[src] != 0 {
				expect(o, s, scrape[src], tcp, o.namespace == "monitoring")
			}
		}
		expect(s, nats, 4222, tcp, usesBroker(src))
		expect(s, dns, 53, udp, true)
		expect(s, collector, 4318, tcp, true)
		expect(s, internet, 443, tcp, src == "notifications")
		for _, c := range all[*cnpgCluster](m) {
			db := endpoint{name: c.Name, namespace: appNamespace, pod: c.podLabels()}
			expect(s, db, 5432, tcp, c.Name == src+"-db")
		}
		// Nothing else in the namespace is reachable: not the databases'
		// other ports, not a stray pod.
		expect(s, outsiders[2], 8080, tcp, false)
	}
	return problems
}
