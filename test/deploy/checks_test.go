package deploy

import (
	"fmt"
	"net"
	"net/url"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"slices"
	"strconv"
	"strings"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/topology"
)

// selects reports whether sel (a LabelSelector) selects a pod with these
// labels. A nil selector selects nothing.
func selects(sel *metav1.LabelSelector, podLabels map[string]string) bool {
	if sel == nil {
		return false
	}
	s, err := metav1.LabelSelectorAsSelector(sel)
	if err != nil {
		return false
	}
	return s.Matches(labels.Set(podLabels))
}

// selectsMap reports whether a Service-style selector (a plain map) selects
// pods with these labels; an empty one selects nothing here (no endpoints).
func selectsMap(sel, podLabels map[string]string) bool {
	if len(sel) == 0 {
		return false
	}
	return labels.SelectorFromSet(sel).Matches(labels.Set(podLabels))
}

// serveTarget returns the service a container's args serve, or "".
func serveTarget(c corev1.Container) string {
	if len(c.Args) == 2 && c.Args[0] == "serve" {
		return c.Args[1]
	}
	return ""
}

// imagePinned says whether an image reference names a tag other than
// latest, or a digest.
func imagePinned(image string) bool {
	if strings.Contains(image, "@sha256:") {
		return true
	}
	slash := strings.LastIndex(image, "/")
	colon := strings.LastIndex(image, ":")
	if colon <= slash {
		return false // no tag: latest by default
	}
	tag := image[colon+1:]
	return tag != "" && tag != "latest"
}

// containerPort resolves a probe's or Service's port (a name or a number)
// against the container's ports.
func containerPort(c corev1.Container, p intstr.IntOrString) (int32, bool) {
	for _, cp := range c.Ports {
		if (p.Type == intstr.String && cp.Name == p.StrVal) || (p.Type == intstr.Int && cp.ContainerPort == p.IntVal) {
			return cp.ContainerPort, true
		}
	}
	return 0, false
}

// check runs every rule over the manifests and returns the problems found.
// complete adds the rules that hold only for the whole tree: every service
// has a Deployment, every database a Cluster.
func (m *manifests) check(complete bool) []string {
	for _, d := range all[*appsv1.Deployment](m) {
		m.checkDeployment(d)
	}
	for _, s := range all[*corev1.Service](m) {
		m.checkService(s)
	}
	for _, h := range all[*autoscalingv2.HorizontalPodAutoscaler](m) {
		m.checkHPA(h)
	}
	for _, p := range all[*policyv1.PodDisruptionBudget](m) {
		m.checkPDB(p)
	}
	for _, np := range all[*networkingv1.NetworkPolicy](m) {
		m.checkNetworkPolicy(np)
	}
	for _, in := range all[*networkingv1.Ingress](m) {
		m.checkIngress(in)
	}
	for _, c := range all[*corev1.ConfigMap](m) {
		m.checkConfigMap(c)
	}
	for _, c := range all[*cnpgCluster](m) {
		m.checkCluster(c)
	}
	scraped := map[string]int{}
	for _, sm := range all[*serviceMonitor](m) {
		m.checkServiceMonitor(sm, scraped)
	}
	if len(all[*serviceMonitor](m)) > 0 {
		// Once each: a second endpoint on the gateway's public port would
		// be a target that is always down (404).
		for _, s := range all[*corev1.Service](m) {
			if servicePorts[s.Name] != 0 && scraped[s.Name] != 1 {
				m.addf("%s: scraped by %d ServiceMonitor endpoints, want 1", m.where(s), scraped[s.Name])
			}
		}
	}
	for _, v := range all[*natsValues](m) {
		m.checkNATSValues(v)
	}
	m.checkProxySecret()
	m.checkCertificates()
	for _, o := range m.objects {
		if k, ok := o.obj.(*kustomization); ok {
			m.checkKustomization(o, k)
		}
		if o.patch && o.kind != "Kustomization" && m.find(o.kind, o.name) == nil {
			m.addf("%s: patches %s/%s, which no manifest defines", o, o.kind, o.name)
		}
	}
	if complete {
		for _, name := range serviceNames() {
			if m.deploymentServing(name) == nil {
				m.addf("no Deployment serves %s", name)
			}
			if ownsDatabase(name) && m.find("Cluster", name+"-db") == nil {
				m.addf("no CloudNativePG Cluster %s-db for %s's database", name, name)
			}
		}
		if len(all[*natsValues](m)) == 0 {
			m.addf("no nats-values.yaml for the NATS Helm chart")
		}
	}
	return m.problems
}

func (m *manifests) deploymentServing(name string) *appsv1.Deployment {
	for _, d := range all[*appsv1.Deployment](m) {
		for _, c := range d.Spec.Template.Spec.Containers {
			if serveTarget(c) == name {
				return d
			}
		}
	}
	return nil
}

// sharedDurations reads a duration from the ConfigMap every service gets.
func (m *manifests) sharedDuration(key string) time.Duration {
	if cm := m.configMap("microshop-config"); cm != nil {
		if d, err := time.ParseDuration(cm.Data[key]); err == nil {
			return d
		}
	}
	return 0
}

func (m *manifests) checkDeployment(d *appsv1.Deployment) {
	where := m.where(d)
	tmpl := d.Spec.Template
	podLabels := tmpl.Labels
	if d.Spec.Selector == nil || !selects(d.Spec.Selector, podLabels) {
		m.addf("%s: the selector does not select the pod template's labels", where)
	}
	pod := tmpl.Spec
	if len(pod.Containers) == 0 {
		m.addf("%s: no containers", where)
	}
	served := ""
	for i, c := range append(slices.Clone(pod.InitContainers), pod.Containers...) {
		init := i < len(pod.InitContainers)
		cw := fmt.Sprintf("%s: container %q", where, c.Name)
		if !imagePinned(c.Image) {
			m.addf("%s: image %q is not pinned to a tag or digest (no tag, or latest)", cw, c.Image)
		}
		m.checkResources(cw, c)
		m.checkSecurity(cw, pod.SecurityContext, c)
		if init {
			continue
		}
		name := serveTarget(c)
		port, known := servicePorts[name]
		switch {
		case name == "":
			m.addf("%s: args %q are not [serve <service>]", cw, c.Args)
		case !known:
			m.addf("%s: args serve %q, which is not a microshop service (%s)", cw, name, strings.Join(serviceNames(), ", "))
		default:
			served = name
		}
		if len(c.Command) > 0 && !slices.Equal(c.Command, []string{"/microshop"}) {
			m.addf("%s: command %q replaces the image's /microshop entrypoint", cw, c.Command)
		}
		if known && !slices.ContainsFunc(c.Ports, func(p corev1.ContainerPort) bool { return p.ContainerPort == port }) {
			m.addf("%s: %s listens on %d, and no container port says so", cw, name, port)
		}
		m.checkProbe(cw, "readinessProbe", c, c.ReadinessProbe, "/readyz")
		m.checkProbe(cw, "livenessProbe", c, c.LivenessProbe, "/healthz")
		if c.StartupProbe != nil {
			m.checkProbe(cw, "startupProbe", c, c.StartupProbe, "/healthz")
		}
		if known {
			m.checkOps(cw, c, name)
			m.checkScrape(cw, tmpl.Annotations, c, name)
			m.checkTLS(cw, pod, c, name)
		}
		m.checkMounts(cw, pod, c)
		m.checkEnv(cw, c, name)
		if lim, ok := c.Resources.Limits[corev1.ResourceMemory]; ok {
			for _, e := range c.Env {
				if e.Name == "GOMEMLIMIT" && e.ValueFrom == nil {
					q, err := resource.ParseQuantity(strings.TrimSuffix(e.Value, "B"))
					if err != nil || q.Cmp(lim) >= 0 {
						m.addf("%s: GOMEMLIMIT=%s is not below the memory limit %s", cw, e.Value, lim.String())
					}
				}
			}
		}
	}
	if grace := pod.TerminationGracePeriodSeconds; grace != nil {
		need := m.sharedDuration("MICROSHOP_DRAIN_DELAY") + m.sharedDuration("MICROSHOP_DRAIN_TIMEOUT")
		if time.Duration(*grace)*time.Second <= need {
			m.addf("%s: terminationGracePeriodSeconds %d leaves no time after drain-delay + drain-timeout (%s)", where, *grace, need)
		}
	}
	if served != "" && podLabels["app.kubernetes.io/name"] != served {
		m.addf("%s: serves %s but its pods are labelled app.kubernetes.io/name=%q", where, served, podLabels["app.kubernetes.io/name"])
	}

	// Its Service, autoscaler and disruption budget.
	hasService := false
	for _, s := range all[*corev1.Service](m) {
		if selectsMap(s.Spec.Selector, podLabels) {
			hasService = true
		}
	}
	if !hasService {
		m.addf("%s: no Service selects its pods", where)
	}
	hasHPA := false
	for _, h := range all[*autoscalingv2.HorizontalPodAutoscaler](m) {
		ref := h.Spec.ScaleTargetRef
		if ref.Kind == "Deployment" && ref.Name == d.Name && ref.APIVersion == "apps/v1" {
			hasHPA = true
		}
	}
	if !hasHPA {
		m.addf("%s: no HorizontalPodAutoscaler targets it", where)
	}
	hasPDB := false
	for _, p := range all[*policyv1.PodDisruptionBudget](m) {
		if selects(p.Spec.Selector, podLabels) {
			hasPDB = true
		}
	}
	if !hasPDB {
		m.addf("%s: no PodDisruptionBudget selects its pods", where)
	}
}

func (m *manifests) checkResources(where string, c corev1.Container) {
	for _, kind := range []string{"requests", "limits"} {
		list := c.Resources.Requests
		if kind == "limits" {
			list = c.Resources.Limits
		}
		for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
			q, ok := list[r]
			if !ok || q.IsZero() {
				m.addf("%s: no %s %s", where, r, kind)
			}
		}
	}
	for _, r := range []corev1.ResourceName{corev1.ResourceCPU, corev1.ResourceMemory} {
		req, okr := c.Resources.Requests[r]
		lim, okl := c.Resources.Limits[r]
		if okr && okl && req.Cmp(lim) > 0 {
			m.addf("%s: the %s request %s is above its limit %s", where, r, req.String(), lim.String())
		}
	}
}

func (m *manifests) checkSecurity(where string, pod *corev1.PodSecurityContext, c corev1.Container) {
	sc := c.SecurityContext
	if sc == nil {
		sc = &corev1.SecurityContext{}
	}
	nonRoot := sc.RunAsNonRoot
	user := sc.RunAsUser
	if pod != nil {
		if nonRoot == nil {
			nonRoot = pod.RunAsNonRoot
		}
		if user == nil {
			user = pod.RunAsUser
		}
	}
	if nonRoot == nil || !*nonRoot {
		m.addf("%s: runAsNonRoot is not true", where)
	}
	if user != nil && *user == 0 {
		m.addf("%s: runs as user 0 (root)", where)
	}
	if sc.ReadOnlyRootFilesystem == nil || !*sc.ReadOnlyRootFilesystem {
		m.addf("%s: readOnlyRootFilesystem is not true", where)
	}
	if sc.AllowPrivilegeEscalation == nil || *sc.AllowPrivilegeEscalation {
		m.addf("%s: allowPrivilegeEscalation is not false", where)
	}
	if sc.Privileged != nil && *sc.Privileged {
		m.addf("%s: is privileged", where)
	}
	if sc.Capabilities == nil || !slices.Contains(sc.Capabilities.Drop, "ALL") {
		m.addf("%s: capabilities do not drop ALL", where)
	}
	if sc.Capabilities != nil && len(sc.Capabilities.Add) > 0 {
		m.addf("%s: adds capabilities %v", where, sc.Capabilities.Add)
	}
}

func (m *manifests) checkProbe(where, name string, c corev1.Container, p *corev1.Probe, path string) {
	if p == nil {
		m.addf("%s: no %s", where, name)
		return
	}
	if p.HTTPGet == nil || p.HTTPGet.Path != path {
		m.addf("%s: %s is not an HTTP GET of %s", where, name, path)
		return
	}
	if _, ok := containerPort(c, p.HTTPGet.Port); !ok {
		m.addf("%s: %s probes port %s, which the container does not expose", where, name, p.HTTPGet.Port.String())
	}
}

// checkMounts: with a read-only root, /tmp and /data must be volumes, and
// the only ones written to.
func (m *manifests) checkMounts(where string, pod corev1.PodSpec, c corev1.Container) {
	vols := map[string]corev1.Volume{}
	for _, v := range pod.Volumes {
		vols[v.Name] = v
	}
	for _, path := range []string{"/tmp", "/data"} {
		i := slices.IndexFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.MountPath == path })
		if i < 0 {
			m.addf("%s: nothing is mounted at %s (the root filesystem is read-only)", where, path)
			continue
		}
		v, ok := vols[c.VolumeMounts[i].Name]
		if !ok {
			m.addf("%s: mounts volume %q, which the pod does not define", where, c.VolumeMounts[i].Name)
		} else if v.EmptyDir == nil {
			m.addf("%s: %s is not an emptyDir", where, path)
		}
	}
}

// checkEnv: every ConfigMap and Secret the container reads exists (or is
// made by CloudNativePG), and the service gets its database, its own
// identity key and everyone's public keys.
func (m *manifests) checkEnv(where string, c corev1.Container, name string) {
	var ownKeySecret bool
	for _, ef := range c.EnvFrom {
		optional := func(b *bool) bool { return b != nil && *b }
		switch {
		case ef.ConfigMapRef != nil:
			if m.configMap(ef.ConfigMapRef.Name) == nil && !optional(ef.ConfigMapRef.Optional) {
				m.addf("%s: envFrom ConfigMap %q is not defined", where, ef.ConfigMapRef.Name)
			}
		case ef.SecretRef != nil:
			if s := m.secret(ef.SecretRef.Name); s == nil {
				if !optional(ef.SecretRef.Optional) {
					m.addf("%s: envFrom Secret %q is not defined (not even as an example)", where, ef.SecretRef.Name)
				}
			} else if slices.Contains(secretKeys(s), "MICROSHOP_SERVICE_KEY") {
				if ef.SecretRef.Name != "microshop-"+name {
					m.addf("%s: takes MICROSHOP_SERVICE_KEY from %s, not its own microshop-%s", where, ef.SecretRef.Name, name)
				}
				ownKeySecret = true
			}
		}
	}
	env := map[string]corev1.EnvVar{}
	for _, e := range c.Env {
		env[e.Name] = e
		if e.ValueFrom == nil {
			continue
		}
		switch {
		case e.ValueFrom.SecretKeyRef != nil:
			ref := e.ValueFrom.SecretKeyRef
			exists, hasKey := m.secretHasKey(ref.Name, ref.Key)
			if !exists {
				m.addf("%s: %s reads Secret %q, which is neither defined nor made by CloudNativePG for a Cluster here", where, e.Name, ref.Name)
			} else if !hasKey {
				m.addf("%s: %s reads key %q of Secret %q, which has no such key", where, e.Name, ref.Key, ref.Name)
			}
		case e.ValueFrom.ConfigMapKeyRef != nil:
			ref := e.ValueFrom.ConfigMapKeyRef
			if cm := m.configMap(ref.Name); cm == nil {
				m.addf("%s: %s reads ConfigMap %q, which is not defined", where, e.Name, ref.Name)
			} else if _, ok := cm.Data[ref.Key]; !ok {
				m.addf("%s: %s reads key %q of ConfigMap %q, which has no such key", where, e.Name, ref.Key, ref.Name)
			}
		}
	}
	if name == "" {
		return
	}
	db, hasDB := env["MICROSHOP_DB"]
	switch {
	case ownsDatabase(name) && !hasDB:
		m.addf("%s: %s keeps a database, and MICROSHOP_DB is not set", where, name)
	case ownsDatabase(name):
		ref := db.ValueFrom
		if ref == nil || ref.SecretKeyRef == nil || ref.SecretKeyRef.Name != name+"-db-app" || ref.SecretKeyRef.Key != "uri" {
			m.addf("%s: MICROSHOP_DB must be the uri of the Secret %s-db-app (its own Cluster's)", where, name)
		}
		if o := m.find("Cluster", name+"-db"); o != nil {
			if got := o.obj.(*cnpgCluster).Spec.Bootstrap.InitDB.Database; got != name {
				m.addf("%s: its Cluster %s-db makes the database %q, not %q", where, name, got, name)
			}
		}
	case hasDB:
		m.addf("%s: %s keeps no database, yet MICROSHOP_DB is set", where, name)
	}
	if !ownKeySecret {
		m.addf("%s: no Secret gives it MICROSHOP_SERVICE_KEY (its own identity key)", where)
	}
	m.checkNATSSeed(where, c, name)
	if _, ok := env["MICROSHOP_SERVICE_KEYS"]; !ok {
		m.addf("%s: MICROSHOP_SERVICE_KEYS (the services' public keys) is not set", where)
	}
}

func (m *manifests) podsOf(sel func(map[string]string) bool) int {
	n := 0
	for _, d := range all[*appsv1.Deployment](m) {
		if sel(d.Spec.Template.Labels) {
			n++
		}
	}
	for _, c := range all[*cnpgCluster](m) {
		if sel(c.podLabels()) {
			n++
		}
	}
	return n
}

func (m *manifests) checkService(s *corev1.Service) {
	where := m.where(s)
	var target *appsv1.Deployment
	for _, d := range all[*appsv1.Deployment](m) {
		if selectsMap(s.Spec.Selector, d.Spec.Template.Labels) {
			target = d
		}
	}
	if target == nil {
		m.addf("%s: selects no Deployment's pods", where)
		return
	}
	for _, p := range s.Spec.Ports {
		tp := p.TargetPort
		if tp.Type == intstr.Int && tp.IntVal == 0 {
			tp = intstr.FromInt32(p.Port)
		}
		found := slices.ContainsFunc(target.Spec.Template.Spec.Containers, func(c corev1.Container) bool {
			_, ok := containerPort(c, tp)
			return ok
		})
		if !found {
			m.addf("%s: port %d targets %s, which no container of %s exposes", where, p.Port, tp.String(), target.Name)
		}
		if name := s.Name; servicePorts[name] != 0 && p.Port != servicePorts[name] && !m.isOpsPort(target, name, tp) {
			m.addf("%s: serves on %d; the services expect %s on %d (MICROSHOP_%s_URL)", where, p.Port, name, servicePorts[name], strings.ToUpper(name))
		}
	}
}

func (m *manifests) checkHPA(h *autoscalingv2.HorizontalPodAutoscaler) {
	where := m.where(h)
	ref := h.Spec.ScaleTargetRef
	if ref.Kind != "Deployment" || m.find("Deployment", ref.Name) == nil {
		m.addf("%s: targets %s %q, which is not a Deployment here", where, ref.Kind, ref.Name)
	}
	if h.Spec.MinReplicas != nil && *h.Spec.MinReplicas > h.Spec.MaxReplicas {
		m.addf("%s: minReplicas %d above maxReplicas %d", where, *h.Spec.MinReplicas, h.Spec.MaxReplicas)
	}
	cpu := slices.ContainsFunc(h.Spec.Metrics, func(ms autoscalingv2.MetricSpec) bool {
		return ms.Type == autoscalingv2.ResourceMetricSourceType && ms.Resource != nil && ms.Resource.Name == corev1.ResourceCPU
	})
	if !cpu {
		m.addf("%s: scales on no CPU metric", where)
	}
}

func (m *manifests) checkPDB(p *policyv1.PodDisruptionBudget) {
	where := m.where(p)
	if m.podsOf(func(l map[string]string) bool { return selects(p.Spec.Selector, l) }) == 0 {
		m.addf("%s: selects no Deployment's pods", where)
	}
	if p.Spec.MinAvailable == nil && p.Spec.MaxUnavailable == nil {
		m.addf("%s: sets neither minAvailable nor maxUnavailable", where)
	}
}

func (m *manifests) checkNetworkPolicy(np *networkingv1.NetworkPolicy) {
	where := m.where(np)
	if m.podsOf(func(l map[string]string) bool { return selects(&np.Spec.PodSelector, l) }) == 0 {
		m.addf("%s: its podSelector selects no app (no Deployment's or Cluster's pods)", where)
	}
	peer := func(p networkingv1.NetworkPolicyPeer) {
		if p.NamespaceSelector == nil && p.PodSelector != nil &&
			m.podsOf(func(l map[string]string) bool { return selects(p.PodSelector, l) }) == 0 {
			m.addf("%s: a rule names pods %s that no app here has", where, metav1.FormatLabelSelector(p.PodSelector))
		}
	}
	for _, r := range np.Spec.Ingress {
		for _, p := range r.From {
			peer(p)
		}
	}
	for _, r := range np.Spec.Egress {
		for _, p := range r.To {
			peer(p)
		}
	}
}

func (m *manifests) checkIngress(in *networkingv1.Ingress) {
	where := m.where(in)
	for _, r := range in.Spec.Rules {
		if r.HTTP == nil {
			continue
		}
		for _, p := range r.HTTP.Paths {
			if p.Backend.Service == nil {
				continue
			}
			o := m.find("Service", p.Backend.Service.Name)
			if o == nil {
				m.addf("%s: routes to Service %q, which is not defined", where, p.Backend.Service.Name)
				continue
			}
			port := p.Backend.Service.Port
			ok := slices.ContainsFunc(o.obj.(*corev1.Service).Spec.Ports, func(sp corev1.ServicePort) bool {
				return (port.Name != "" && sp.Name == port.Name) || (port.Number != 0 && sp.Port == port.Number)
			})
			if !ok {
				m.addf("%s: routes to a port Service %s does not have", where, o.name)
			}
			if o.name != "gateway" {
				m.addf("%s: routes to %s; only the gateway is public", where, o.name)
			}
		}
	}
}

var urlKey = regexp.MustCompile(`^MICROSHOP_([A-Z]+)_URL$`)

// peerURLOK says whether v is the URL of the Service of name, over TLS:
// with --tls-cert a service calls only https:// URLs (and refuses to
// start otherwise), and the host is the DNS name its certificate holds.
func peerURLOK(v, name string, port int32) bool {
	u, err := url.Parse(v)
	return err == nil && u.Scheme == "https" && u.Hostname() == name && u.Port() == strconv.Itoa(int(port)) && strings.Trim(u.Path, "/") == ""
}

// checkConfigMap: every MICROSHOP_<SERVICE>_URL points at that service's
// Service and port, over mutual TLS.
func (m *manifests) checkConfigMap(cm *corev1.ConfigMap) {
	where := m.where(cm)
	for k, v := range cm.Data {
		sub := urlKey.FindStringSubmatch(k)
		if sub == nil {
			continue
		}
		name := strings.ToLower(sub[1])
		port, ok := servicePorts[name]
		if !ok {
			continue // e.g. MICROSHOP_SMTP_URL
		}
		if !peerURLOK(v, name, port) {
			m.addf("%s: %s=%q, want https://%s:%d (mutual TLS, to the Service)", where, k, v, name, port)
			continue
		}
		if m.find("Service", name) == nil {
			m.addf("%s: %s names the Service %s, which is not defined", where, k, name)
		}
	}
	if v, ok := cm.Data["MICROSHOP_STREAM_REPLICAS"]; ok {
		n, err := strconv.Atoi(v)
		for _, nv := range all[*natsValues](m) {
			if err != nil || n < 1 || n > nv.Config.Cluster.Replicas {
				m.addf("%s: MICROSHOP_STREAM_REPLICAS=%q, want 1 to the %d NATS servers", where, v, nv.Config.Cluster.Replicas)
			}
		}
	}
}

func (m *manifests) checkCluster(c *cnpgCluster) {
	where := m.where(c)
	db := c.Spec.Bootstrap.InitDB.Database
	if db == "" || c.Spec.Bootstrap.InitDB.Owner != db {
		m.addf("%s: initdb makes database %q owned by %q; want one owner named after its database", where, db, c.Spec.Bootstrap.InitDB.Owner)
	}
	if c.Name != db+"-db" {
		m.addf("%s: a Cluster for database %q should be named %s-db", where, db, db)
	}
	if _, ok := servicePorts[db]; !ok || !ownsDatabase(db) {
		m.addf("%s: database %q belongs to no service", where, db)
	}
	if c.Spec.Instances < 1 {
		m.addf("%s: instances %d", where, c.Spec.Instances)
	}
	if _, err := resource.ParseQuantity(c.Spec.Storage.Size); err != nil {
		m.addf("%s: storage size %q: %v", where, c.Spec.Storage.Size, err)
	}
	if c.Spec.ImageName != "" && !imagePinned(c.Spec.ImageName) {
		m.addf("%s: imageName %q is not pinned", where, c.Spec.ImageName)
	}
}

// checkServiceMonitor: every endpoint is a port of the Services it
// selects, and reaches the container port where the service serves
// /metrics to Prometheus. scraped counts the endpoints per Service.
func (m *manifests) checkServiceMonitor(sm *serviceMonitor, scraped map[string]int) {
	where := m.where(sm)
	n := 0
	for _, s := range all[*corev1.Service](m) {
		if !selects(&sm.Spec.Selector, s.Labels) {
			continue
		}
		n++
		for _, e := range sm.Spec.Endpoints {
			scraped[s.Name]++
			i := slices.IndexFunc(s.Spec.Ports, func(p corev1.ServicePort) bool { return p.Name == e.Port })
			if i < 0 {
				m.addf("%s: Service %s has no port named %q", where, s.Name, e.Port)
				continue
			}
			c, name := m.serviceContainer(s)
			if c == nil || servicePorts[name] == 0 {
				continue
			}
			want, problem := m.scrapePort(*c, name)
			if problem != "" {
				continue // checkScrape reports it
			}
			tp := s.Spec.Ports[i].TargetPort
			if tp.Type == intstr.Int && tp.IntVal == 0 {
				tp = intstr.FromInt32(s.Spec.Ports[i].Port)
			}
			if got, ok := containerPort(*c, tp); ok && got != want {
				m.addf("%s: scrapes Service %s on port %q, container port %d; %s serves /metrics to Prometheus on %d", where, s.Name, e.Port, got, name, want)
			}
		}
	}
	if n == 0 && len(all[*corev1.Service](m)) > 0 {
		m.addf("%s: selects no Service", where)
	}
}

// metricsAddrVar is the gateway's --metrics-addr: a listener of its own
// for /metrics. In compose, the services in separateMetrics have it and
// serve /metrics on their public port to loopback only, so Prometheus
// reads them there; every other service it reads on its service port. On
// Kubernetes every service's port speaks mutual TLS, and Prometheus reads
// every service on its operations port instead (opsAddrVar).
const metricsAddrVar = "MICROSHOP_METRICS_ADDR"

var separateMetrics = []string{"gateway"}

// addrPort is the port of a listen address such as ":9090".
func addrPort(addr string) (int32, error) {
	_, port, err := net.SplitHostPort(addr)
	if err != nil {
		return 0, err
	}
	n, err := strconv.ParseUint(port, 10, 16)
	if err != nil || n == 0 {
		return 0, fmt.Errorf("port %q", port)
	}
	return int32(n), nil
}

// envValue is a container's variable as the pod would see it: its env,
// else the last envFrom ConfigMap that has it (Secrets hold no listen
// addresses or file paths).
func (m *manifests) envValue(c corev1.Container, v string) (string, bool) {
	for _, e := range c.Env {
		if e.Name == v && e.ValueFrom == nil {
			return e.Value, true
		}
	}
	val, found := "", false
	for _, ef := range c.EnvFrom {
		if ef.ConfigMapRef == nil {
			continue
		}
		key, ok := strings.CutPrefix(v, ef.Prefix)
		if cm := m.configMap(ef.ConfigMapRef.Name); ok && cm != nil {
			if x, ok := cm.Data[key]; ok {
				val, found = x, true
			}
		}
	}
	return val, found
}

// scrapePort is where Prometheus must read the metrics of name, served
// by container c, or a problem that says why it cannot be told: the
// operations port, since the service's own port asks for a client
// certificate (and the gateway's serves /metrics to loopback only).
func (m *manifests) scrapePort(c corev1.Container, name string) (int32, string) {
	return m.opsPort(c, name)
}

// checkScrape: Prometheus is told (prometheus.io/port) the port where the
// service serves it /metrics.
func (m *manifests) checkScrape(where string, annotations map[string]string, c corev1.Container, name string) {
	want, problem := m.scrapePort(c, name)
	if problem != "" {
		return // checkOps reports it
	}
	if annotations["prometheus.io/scrape"] == "true" {
		if got := annotations["prometheus.io/port"]; got != strconv.Itoa(int(want)) {
			m.addf("%s: prometheus.io/port is %q; %s serves /metrics to Prometheus on %d", where, got, name, want)
		}
	}
}

// serviceContainer is the container, and the service it serves, of the
// Deployment a Service selects.
func (m *manifests) serviceContainer(s *corev1.Service) (*corev1.Container, string) {
	for _, d := range all[*appsv1.Deployment](m) {
		if !selectsMap(s.Spec.Selector, d.Spec.Template.Labels) {
			continue
		}
		for i, c := range d.Spec.Template.Spec.Containers {
			if name := serveTarget(c); name != "" {
				return &d.Spec.Template.Spec.Containers[i], name
			}
		}
	}
	return nil, ""
}

// isOpsPort says whether tp is the operations port of the service, which
// a Service may expose beside the service port (for a ServiceMonitor).
func (m *manifests) isOpsPort(d *appsv1.Deployment, name string, tp intstr.IntOrString) bool {
	for _, c := range d.Spec.Template.Spec.Containers {
		want, problem := m.opsPort(c, name)
		if got, ok := containerPort(c, tp); ok && problem == "" && got == want {
			return true
		}
	}
	return false
}

// natsSeedVar is the variable that gives a service its NATS user's seed;
// natsUsersSecret holds the public keys the NATS servers admit.
const (
	natsSeedVar     = "MICROSHOP_NATS_SEED"
	natsUsersSecret = "microshop-nats-users"
)

// checkNATSSeed: a service that uses the broker gets its NATS seed from
// its own Secret and from no other; one that does not gets none; and no
// service reads the NATS servers' Secret.
func (m *manifests) checkNATSSeed(where string, c corev1.Container, name string) {
	var from []string
	for _, ef := range c.EnvFrom {
		if ef.SecretRef == nil {
			continue
		}
		if ef.SecretRef.Name == natsUsersSecret {
			m.addf("%s: reads %s, the NATS servers' Secret", where, natsUsersSecret)
		}
		if s := m.secret(ef.SecretRef.Name); s != nil && slices.Contains(secretKeys(s), natsSeedVar) {
			from = append(from, ef.SecretRef.Name)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil {
			if e.Name == natsSeedVar {
				m.addf("%s: %s is written into the manifest; it must come from the service's Secret", where, natsSeedVar)
			}
			continue
		}
		ref := e.ValueFrom.SecretKeyRef
		if ref.Name == natsUsersSecret {
			m.addf("%s: reads %s, the NATS servers' Secret", where, natsUsersSecret)
		}
		if e.Name == natsSeedVar || ref.Key == natsSeedVar {
			from = append(from, ref.Name)
		}
	}
	for _, s := range from {
		if s != "microshop-"+name {
			m.addf("%s: gets a NATS seed from %s, not from its own microshop-%s", where, s, name)
		}
	}
	switch {
	case name == "":
	case usesBroker(name) && len(from) == 0:
		m.addf("%s: %s uses the broker, and no Secret gives it %s (its NATS user)", where, name, natsSeedVar)
	case !usesBroker(name) && len(from) > 0:
		m.addf("%s: %s does not use the broker, yet gets %s", where, name, natsSeedVar)
	}
}

// brokerUsers are the NATS users the code makes for the services that use
// the broker, each with its key from the environment variable
// NKEY_<SERVICE> as the chart writes it.
func brokerUsers() []broker.User {
	var roles []broker.Role
	keys := map[string]string{}
	for _, s := range topology.Services() {
		if usesBroker(s.Name) {
			roles = append(roles, s.BrokerRole())
			keys[s.Name] = "<< $" + nkeyVar(s.Name) + " >>"
		}
	}
	users, err := broker.Users(roles, keys)
	if err != nil {
		panic(err) // every role has a key above
	}
	return users
}

// nkeyVar is the NATS servers' variable, and the key of their Secret,
// that holds service's public NKey.
func nkeyVar(service string) string { return "NKEY_" + strings.ToUpper(service) }

func (m *manifests) checkNATSValues(v *natsValues) {
	where := m.where(v)
	// The servers admit exactly the services' users, with the permissions
	// the code gives them, each key read from the Secret of public keys.
	got := map[string]broker.Permissions{}
	for _, u := range v.Config.Merge.Authorization.Users {
		if _, dup := got[u.NKey]; dup {
			m.addf("%s: the user %s is listed twice", where, u.NKey)
		}
		got[u.NKey] = u.Permissions
	}
	want := brokerUsers()
	for _, u := range want {
		perms, ok := got[u.NKey]
		if !ok {
			m.addf("%s: no NATS user %s (for %s)", where, u.NKey, u.Name)
			continue
		}
		if !reflect.DeepEqual(perms, u.Permissions) {
			m.addf("%s: the permissions of %s are not what the code gives %s (broker.ServiceUser):\n got %+v\nwant %+v", where, u.NKey, u.Name, perms, u.Permissions)
		}
		delete(got, u.NKey)
		name := strings.TrimSuffix(strings.TrimPrefix(u.NKey, "<< $"), " >>")
		e, ok := v.Container.Env[name]
		if !ok || e.ValueFrom == nil || e.ValueFrom.SecretKeyRef == nil ||
			e.ValueFrom.SecretKeyRef.Name != natsUsersSecret || e.ValueFrom.SecretKeyRef.Key != name {
			m.addf("%s: container.env %s must read key %s of the Secret %s", where, name, name, natsUsersSecret)
		}
		if exists, hasKey := m.secretHasKey(natsUsersSecret, name); exists && !hasKey {
			m.addf("%s: the Secret %s has no %s", where, natsUsersSecret, name)
		}
	}
	for nkey := range got {
		m.addf("%s: the NATS user %s is no service's", where, nkey)
	}
	if len(want) > 0 && m.secret(natsUsersSecret) == nil {
		m.addf("%s: no Secret %s (not even as an example) holds the users' public keys", where, natsUsersSecret)
	}
	js := v.Config.JetStream
	if !js.Enabled || !js.FileStore.Enabled || !js.FileStore.PVC.Enabled {
		m.addf("%s: JetStream with file storage on a persistent volume must be enabled", where)
	}
	if !v.Config.Cluster.Enabled || v.Config.Cluster.Replicas != 3 {
		m.addf("%s: want a cluster of 3 servers, got enabled=%v replicas=%d", where, v.Config.Cluster.Enabled, v.Config.Cluster.Replicas)
	}
}

// checkKustomization: every resource and patch path exists, and every
// manifest file beside it is listed (an *.example.yaml file is not).
func (m *manifests) checkKustomization(o *object, k *kustomization) {
	dir := filepath.Join(m.root, filepath.Dir(o.file))
	listed := map[string]bool{filepath.Base(o.file): true}
	exists := func(what, rel string) {
		p := filepath.Join(dir, rel)
		st, err := os.Stat(p)
		switch {
		case err != nil:
			m.addf("%s: %s %q does not exist", o, what, rel)
		case st.IsDir():
			if _, err := os.Stat(filepath.Join(p, "kustomization.yaml")); err != nil {
				m.addf("%s: %s %q is a folder without a kustomization.yaml", o, what, rel)
			}
		default:
			listed[filepath.Clean(rel)] = true
		}
	}
	for _, r := range k.Resources {
		if strings.Contains(r, "://") {
			m.addf("%s: resource %q is remote; reference, don't fetch at build time", o, r)
			continue
		}
		exists("resource", r)
	}
	for _, p := range k.Patches {
		if p.Path != "" {
			exists("patch", p.Path)
		}
	}
	entries, _ := os.ReadDir(dir)
	for _, e := range entries {
		n := e.Name()
		if e.IsDir() || !(strings.HasSuffix(n, ".yaml") || strings.HasSuffix(n, ".yml")) || strings.HasSuffix(n, ".example.yaml") {
			continue
		}
		if !listed[n] {
			m.addf("%s: %s is beside it but not listed in its resources or patches", o, n)
		}
	}
	for _, img := range k.Images {
		used := slices.ContainsFunc(all[*appsv1.Deployment](m), func(d *appsv1.Deployment) bool {
			return slices.ContainsFunc(d.Spec.Template.Spec.Containers, func(c corev1.Container) bool {
				return strings.HasPrefix(c.Image, img.Name+":") || strings.HasPrefix(c.Image, img.Name+"@")
			})
		})
		if !used {
			m.addf("%s: images names %q, which no Deployment uses", o, img.Name)
		}
		if img.NewTag == "latest" {
			m.addf("%s: images sets the tag latest", o)
		}
	}
	for _, r := range k.Replicas {
		if m.find("Deployment", r.Name) == nil {
			m.addf("%s: replicas names %q, which is not a Deployment", o, r.Name)
		}
	}
}

// proxySecretVar is the secret the gateway sends with every request and
// users checks before it believes X-Forwarded-For; proxySecretSharers are
// the services that hold it (both have --proxy-secret).
const proxySecretVar = "MICROSHOP_PROXY_SECRET"

var proxySecretSharers = []string{"gateway", "users"}

// secretSources lists where a container's variable v comes from, as
// "secret/key": an env secretKeyRef, or an envFrom Secret that has v.
func (m *manifests) secretSources(c corev1.Container, v string) []string {
	var from []string
	for _, ef := range c.EnvFrom {
		if ef.SecretRef == nil {
			continue
		}
		if s := m.secret(ef.SecretRef.Name); s != nil && slices.Contains(secretKeys(s), v) {
			from = append(from, ef.SecretRef.Name+"/"+v)
		}
	}
	for _, e := range c.Env {
		if e.Name == v && e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			from = append(from, e.ValueFrom.SecretKeyRef.Name+"/"+e.ValueFrom.SecretKeyRef.Key)
		}
	}
	return from
}

// secretsRead lists every Secret a container reads, whatever the key.
func secretsRead(c corev1.Container) []string {
	var names []string
	for _, ef := range c.EnvFrom {
		if ef.SecretRef != nil {
			names = append(names, ef.SecretRef.Name)
		}
	}
	for _, e := range c.Env {
		if e.ValueFrom != nil && e.ValueFrom.SecretKeyRef != nil {
			names = append(names, e.ValueFrom.SecretKeyRef.Name)
		}
	}
	return names
}

// checkProxySecret: the gateway and users get the same proxy secret from
// one Secret of its own, which no other Deployment reads. Without it on
// both, users keys every client on the gateway's address, and the password
// limit per (account, address) becomes one per account that anyone can
// spend.
func (m *manifests) checkProxySecret() {
	got := map[string][]string{}   // sharer → its sources
	holders := map[string]string{} // Secret holding the proxy secret → a sharer's Deployment
	for _, d := range all[*appsv1.Deployment](m) {
		where := m.where(d)
		for _, c := range d.Spec.Template.Spec.Containers {
			name := serveTarget(c)
			for _, e := range c.Env {
				if e.Name == proxySecretVar && e.ValueFrom == nil {
					m.addf("%s: %s is written into the manifest; it must come from a Secret", where, proxySecretVar)
				}
			}
			for _, ef := range c.EnvFrom {
				if ef.ConfigMapRef != nil {
					if cm := m.configMap(ef.ConfigMapRef.Name); cm != nil {
						if _, ok := cm.Data[proxySecretVar]; ok {
							m.addf("%s: %s is in the ConfigMap %s; it must come from a Secret", where, proxySecretVar, cm.Name)
						}
					}
				}
			}
			from := m.secretSources(c, proxySecretVar)
			if !slices.Contains(proxySecretSharers, name) {
				if len(from) > 0 {
					m.addf("%s: %s gets %s (from %s); only %s share it", where, name, proxySecretVar, strings.Join(from, ", "), strings.Join(proxySecretSharers, " and "))
				}
				continue
			}
			if len(from) == 0 {
				m.addf("%s: no Secret gives %s %s; without it users keys every client on the gateway's address", where, name, proxySecretVar)
				continue
			}
			got[name] = from
			for _, f := range from {
				secret, _, _ := strings.Cut(f, "/")
				holders[secret] = where
				if s := m.secret(secret); s != nil && len(secretKeys(s)) != 1 {
					m.addf("%s: %s comes from %s, which holds more (%s); give it a Secret of its own", where, proxySecretVar, secret, strings.Join(secretKeys(s), ", "))
				}
			}
		}
	}
	if a, b := got[proxySecretSharers[0]], got[proxySecretSharers[1]]; a != nil && b != nil && !slices.Equal(a, b) {
		m.addf("%s gets %s from %s, %s from %s: they must hold one value", proxySecretSharers[0], proxySecretVar, strings.Join(a, ", "), proxySecretSharers[1], strings.Join(b, ", "))
	}
	// No other Deployment reads that Secret, under any key.
	for _, d := range all[*appsv1.Deployment](m) {
		for _, c := range d.Spec.Template.Spec.Containers {
			if slices.Contains(proxySecretSharers, serveTarget(c)) {
				continue
			}
			for _, s := range secretsRead(c) {
				if _, ok := holders[s]; ok {
					m.addf("%s: reads %s, the proxy secret of %s", m.where(d), s, strings.Join(proxySecretSharers, " and "))
				}
			}
		}
	}
}
