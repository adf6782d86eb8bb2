package deploy

import (
	"fmt"
	"path"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/microshop/microshop/internal/platform/mtls"
)

// On Kubernetes every service speaks mutual TLS on its port: it mounts
// its own certificate from the Secret microshop-<service>-tls and names
// the files with --tls-cert, --tls-key and --tls-ca; it calls the others
// at https:// URLs. The kubelet and Prometheus hold no certificate of
// the system, so they use the operations port (--ops-addr), which serves
// only /healthz, /readyz and /metrics in plain HTTP.

// opsAddrVar is --ops-addr; opsPortName the container port that names it.
const (
	opsAddrVar  = "MICROSHOP_OPS_ADDR"
	opsPortName = "ops"
)

// tlsFiles are the variables of --tls-cert, --tls-key and --tls-ca, and
// the key of a kubernetes.io/tls Secret each must read.
var tlsFiles = []struct{ env, key string }{
	{"MICROSHOP_TLS_CERT", "tls.crt"},
	{"MICROSHOP_TLS_KEY", "tls.key"},
	{"MICROSHOP_TLS_CA", "ca.crt"},
}

// caSecret holds the CA's private key, for an issuer: no service reads it.
const caSecret = "microshop-ca"

func tlsSecret(service string) string { return "microshop-" + service + "-tls" }

// opsPort is the operations port of name, served by container c, or a
// problem that says why there is none.
func (m *manifests) opsPort(c corev1.Container, name string) (int32, string) {
	addr, ok := m.envValue(c, opsAddrVar)
	if !ok || addr == "" {
		return 0, fmt.Sprintf("sets no %s; the kubelet's probes and Prometheus hold no certificate of the system, so %s needs the operations port", opsAddrVar, name)
	}
	port, err := addrPort(addr)
	if err != nil {
		return 0, fmt.Sprintf("%s=%q: %v", opsAddrVar, addr, err)
	}
	if port == servicePorts[name] {
		return 0, fmt.Sprintf("%s=%q is %s's own port", opsAddrVar, addr, name)
	}
	return port, ""
}

// checkOps: the operations port is set, is a container port named ops,
// and every probe goes there: the service's port refuses a client
// without a certificate, and the kubelet's httpGet presents none.
func (m *manifests) checkOps(where string, c corev1.Container, name string) {
	port, problem := m.opsPort(c, name)
	if problem != "" {
		m.addf("%s: %s", where, problem)
		return
	}
	if got, ok := containerPort(c, intstr.FromString(opsPortName)); !ok || got != port {
		m.addf("%s: no container port named %s on %d, where %s serves its operations port (%s)", where, opsPortName, port, name, opsAddrVar)
	}
	for _, p := range []struct {
		name  string
		probe *corev1.Probe
	}{{"readinessProbe", c.ReadinessProbe}, {"livenessProbe", c.LivenessProbe}, {"startupProbe", c.StartupProbe}} {
		if p.probe == nil || p.probe.HTTPGet == nil {
			continue // checkProbe reports it
		}
		if got, ok := containerPort(c, p.probe.HTTPGet.Port); ok && got != port {
			m.addf("%s: %s probes port %d; the kubelet presents no client certificate, so it must probe the operations port %d", where, p.name, got, port)
		}
		if p.probe.HTTPGet.Scheme == corev1.URISchemeHTTPS {
			m.addf("%s: %s probes over HTTPS; the operations port is plain HTTP", where, p.name)
		}
	}
	if addr, ok := m.envValue(c, metricsAddrVar); ok && addr != "" {
		if mp, err := addrPort(addr); err == nil && mp == port {
			m.addf("%s: %s=%q and %s take the same port", where, metricsAddrVar, addr, opsAddrVar)
		}
	}
}

// checkTLS: the service is given its certificate, key and the CA as
// files of its own Secret microshop-<service>-tls, mounted read-only as
// a whole (the kubelet never updates a subPath mount, and the service
// reads a renewed certificate when the file changes), readable by the
// pod's group only; it mounts no other service's certificate nor the CA
// Secret; and every peer URL in its env is https.
func (m *manifests) checkTLS(where string, pod corev1.PodSpec, c corev1.Container, name string) {
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
		if v.Secret == nil {
			continue
		}
		switch sn := v.Secret.SecretName; {
		case sn == caSecret:
			m.addf("%s: the pod mounts %s, the CA's private key; only an issuer reads it", where, caSecret)
		case strings.HasSuffix(sn, "-tls") && sn != tlsSecret(name):
			m.addf("%s: the pod mounts %s, another service's certificate; %s's is %s", where, sn, name, tlsSecret(name))
		}
	}
	for _, f := range tlsFiles {
		file, ok := m.envValue(c, f.env)
		if !ok || file == "" {
			m.addf("%s: sets no %s; without it %s neither proves who it is nor checks whom it calls (mutual TLS)", where, f.env, name)
			continue
		}
		i := slices.IndexFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool {
			return vm.MountPath == path.Dir(file) || (vm.SubPath != "" && vm.MountPath == file)
		})
		if i < 0 {
			m.addf("%s: %s=%s is in no volume mounted into the container", where, f.env, file)
			continue
		}
		vm := c.VolumeMounts[i]
		v, ok := vols[vm.Name]
		if !ok || v.Secret == nil {
			m.addf("%s: %s=%s is not in a Secret volume", where, f.env, file)
			continue
		}
		if v.Secret.SecretName != tlsSecret(name) {
			m.addf("%s: %s=%s comes from the Secret %s, not its own %s", where, f.env, file, v.Secret.SecretName, tlsSecret(name))
		}
		if vm.SubPath != "" {
			m.addf("%s: %s=%s is mounted by subPath, which the kubelet never updates: a renewed certificate would not reach %s", where, f.env, file, name)
			continue
		}
		if !vm.ReadOnly {
			m.addf("%s: the volume %s with its certificate is mounted writable", where, vm.Name)
		}
		key := path.Base(file)
		for _, it := range v.Secret.Items {
			if it.Path == key {
				key = it.Key
			}
		}
		if key != f.key {
			m.addf("%s: %s=%s is the key %s of %s; want %s", where, f.env, file, key, v.Secret.SecretName, f.key)
		}
		exists, hasKey := m.secretHasKey(v.Secret.SecretName, key)
		switch {
		case !exists:
			m.addf("%s: mounts the Secret %s, which is not defined (not even as an example)", where, v.Secret.SecretName)
		case !hasKey:
			m.addf("%s: the Secret %s has no key %s", where, v.Secret.SecretName, key)
		}
		if mode := v.Secret.DefaultMode; mode == nil || *mode&0o007 != 0 {
			m.addf("%s: the Secret volume %s leaves the private key readable by others; set defaultMode 0440 (with fsGroup)", where, vm.Name)
		}
	}
	for _, e := range c.Env {
		if sub := urlKey.FindStringSubmatch(e.Name); sub != nil && e.ValueFrom == nil {
			peer := strings.ToLower(sub[1])
			if port, ok := servicePorts[peer]; ok && !peerURLOK(e.Value, peer, port) {
				m.addf("%s: %s=%q, want https://%s:%d (mutual TLS, to the Service)", where, e.Name, e.Value, peer, port)
			}
		}
	}
}

// checkCertificates: where cert-manager issues the certificates
// (deploy/k8s/cert-manager), every service has one in the Secret its
// Deployment mounts, shaped as gen-keys.sh and run make them: its name as
// the URI a caller checks (mtls.URI) and as the DNS name of its URL, both
// server and client auth, ECDSA P-256, a new key at each renewal, renewed
// well before it ends, from a CA Issuer of the Secret microshop-ca.
func (m *manifests) checkCertificates() {
	certs := all[*certificate](m)
	if len(certs) == 0 {
		return
	}
	bySecret := map[string]*certificate{}
	for _, c := range certs {
		where := m.where(c)
		if other, dup := bySecret[c.Spec.SecretName]; dup {
			m.addf("%s: %s is also the Secret of %s", where, c.Spec.SecretName, m.where(other))
		}
		bySecret[c.Spec.SecretName] = c
		name, ok := strings.CutSuffix(strings.TrimPrefix(c.Spec.SecretName, "microshop-"), "-tls")
		if _, known := servicePorts[name]; !ok || !known {
			m.addf("%s: secretName %s is no service's microshop-<service>-tls", where, c.Spec.SecretName)
			continue
		}
		if want := []string{mtls.URI(name).String()}; !slices.Equal(c.Spec.URIs, want) {
			m.addf("%s: uris %q, want %q: the name a caller checks", where, c.Spec.URIs, want)
		}
		if want := []string{name}; !slices.Equal(c.Spec.DNSNames, want) {
			m.addf("%s: dnsNames %q, want %q: the host of its https:// URL", where, c.Spec.DNSNames, want)
		}
		for _, u := range []string{"server auth", "client auth"} {
			if !slices.Contains(c.Spec.Usages, u) {
				m.addf("%s: usages %q lack %q: each service is both ends of a connection", where, c.Spec.Usages, u)
			}
		}
		if c.Spec.IsCA {
			m.addf("%s: isCA: a service's certificate must not sign others", where)
		}
		if pk := c.Spec.PrivateKey; pk == nil || pk.Algorithm != "ECDSA" || (pk.Size != 0 && pk.Size != 256) || pk.RotationPolicy != "Always" {
			m.addf("%s: privateKey must be ECDSA P-256 (size 256) with rotationPolicy Always, a new key at each renewal", where)
		}
		d, derr := time.ParseDuration(c.Spec.Duration)
		r, rerr := time.ParseDuration(c.Spec.RenewBefore)
		if derr != nil || rerr != nil || r <= 0 || r >= d || r < d/4 {
			m.addf("%s: duration %q, renewBefore %q: renew at least a quarter before the end, so a failed renewal is noticed in time", where, c.Spec.Duration, c.Spec.RenewBefore)
		}
		ref := c.Spec.IssuerRef
		o := m.find("Issuer", ref.Name)
		if (ref.Kind != "" && ref.Kind != "Issuer") || (ref.Group != "" && ref.Group != "cert-manager.io") || o == nil {
			m.addf("%s: issuerRef %s %q is no Issuer here", where, ref.Kind, ref.Name)
		} else if is := o.obj.(*certIssuer); is.Spec.CA == nil || is.Spec.CA.SecretName != caSecret {
			m.addf("%s: its Issuer %s is not the CA of the Secret %s, which every service trusts", where, ref.Name, caSecret)
		}
	}
	for _, name := range serviceNames() {
		if bySecret[tlsSecret(name)] == nil {
			m.addf("no cert-manager Certificate keeps %s (the certificate of %s) current", tlsSecret(name), name)
		}
	}
	for _, is := range all[*certIssuer](m) {
		if is.Spec.CA != nil {
			if exists, hasKey := m.secretHasKey(is.Spec.CA.SecretName, "tls.key"); !exists || !hasKey {
				m.addf("%s: the CA Secret %s is not defined with a tls.key (not even as an example)", m.where(is), is.Spec.CA.SecretName)
			}
		}
	}
}
