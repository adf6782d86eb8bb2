package deploy

import (
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

func TestKubernetesManifests(t *testing.T) {
	root := filepath.Join(repoRoot(t), "deploy", "k8s")
	m := loadManifests(root)
	for _, p := range m.check(true) {
		t.Error(p)
	}
	kinds := map[string]int{}
	for _, o := range m.objects {
		kinds[o.kind]++
	}
	t.Logf("decoded %d documents under deploy/k8s: %v", len(m.objects), kinds)
	for _, want := range []string{"Deployment", "Service", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "ConfigMap", "Secret", "Kustomization", "Cluster", "HelmValues"} {
		if kinds[want] == 0 {
			t.Errorf("no %s under deploy/k8s", want)
		}
	}
}

func TestNetworkPoliciesLetOnlyCallersIn(t *testing.T) {
	m := loadManifests(filepath.Join(repoRoot(t), "deploy", "k8s"))
	for _, p := range m.networkMatrix() {
		t.Error(p)
	}
}

// TestNetworkMatrixFindsHoles proves the evaluator can fail: each case
// loosens or tightens one policy and expects the matrix to say so.
func TestNetworkMatrixFindsHoles(t *testing.T) {
	policy := func(m *manifests, name string) *networkingv1.NetworkPolicy {
		o := m.find("NetworkPolicy", name)
		if o == nil {
			t.Fatalf("no NetworkPolicy %s", name)
		}
		return o.obj.(*networkingv1.NetworkPolicy)
	}
	tests := []struct {
		name   string
		change func(m *manifests)
		want   string
	}{
		{"inventory no longer admits orders", func(m *manifests) {
			np := policy(m, "inventory-ingress")
			np.Spec.Ingress[0].From = np.Spec.Ingress[0].From[:1] // the gateway only
		}, "orders → inventory:8082/TCP is refused"},
		{"the gateway admits anyone", func(m *manifests) {
			np := policy(m, "gateway-ingress")
			np.Spec.Ingress = append(np.Spec.Ingress, networkingv1.NetworkPolicyIngressRule{})
		}, "a stray pod in the namespace → gateway:8080/TCP is allowed"},
		{"payments may reach every database, and orders' database admits anyone", func(m *manifests) {
			np := policy(m, "payments-egress")
			for i, r := range np.Spec.Egress {
				for j, p := range r.To {
					if p.PodSelector != nil && p.PodSelector.MatchLabels["cnpg.io/cluster"] != "" {
						np.Spec.Egress[i].To[j].PodSelector.MatchLabels = nil
					}
				}
			}
			policy(m, "orders-db").Spec.Ingress = []networkingv1.NetworkPolicyIngressRule{{}}
		}, "payments → orders-db:5432/TCP is allowed"},
		{"Prometheus on the gateway's public port", func(m *manifests) {
			np := policy(m, "gateway-ingress")
			np.Spec.Ingress[1].Ports[0].Port.IntVal = 8080
		}, "prometheus → gateway:9090/TCP is refused"},
		{"Prometheus on both of the gateway's ports", func(m *manifests) {
			np := policy(m, "gateway-ingress")
			np.Spec.Ingress[1].Ports = append(np.Spec.Ingress[1].Ports, np.Spec.Ingress[0].Ports...)
		}, "prometheus → gateway:8080/TCP is allowed"},
		{"the ingress controller reaches the gateway's metrics", func(m *manifests) {
			np := policy(m, "gateway-ingress")
			np.Spec.Ingress[0].Ports = append(np.Spec.Ingress[0].Ports, np.Spec.Ingress[1].Ports...)
		}, "ingress controller → gateway:9090/TCP is allowed"},
		{"reports cut off from NATS", func(m *manifests) {
			np := policy(m, "reports-egress")
			var kept []networkingv1.NetworkPolicyEgressRule
			for _, r := range np.Spec.Egress {
				if len(r.Ports) == 0 || r.Ports[0].Port == nil || r.Ports[0].Port.IntVal != 4222 {
					kept = append(kept, r)
				}
			}
			np.Spec.Egress = kept
		}, "reports → nats:4222/TCP is refused"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := loadManifests(filepath.Join(repoRoot(t), "deploy", "k8s"))
			tt.change(m)
			problems := m.networkMatrix()
			if !containsProblem(problems, tt.want) {
				t.Errorf("the matrix did not report %q; it reported:\n%s", tt.want, strings.Join(problems, "\n"))
			}
		})
	}
}

// TestNATSValuesFollowTheCode proves the check of the NATS servers' users
// can fail: each case changes them and expects it reported.
func TestNATSValuesFollowTheCode(t *testing.T) {
	values := func(m *manifests) *natsValues {
		v := all[*natsValues](m)
		if len(v) != 1 {
			t.Fatalf("%d nats values files", len(v))
		}
		return v[0]
	}
	user := func(v *natsValues, nkey string) *natsUser {
		for i, u := range v.Config.Merge.Authorization.Users {
			if u.NKey == nkey {
				return &v.Config.Merge.Authorization.Users[i]
			}
		}
		t.Fatalf("no user %s", nkey)
		return nil
	}
	tests := []struct {
		name   string
		change func(v *natsValues)
		want   string
	}{
		{"inventory may publish orders' events", func(v *natsValues) {
			u := user(v, "<< $NKEY_INVENTORY >>")
			u.Permissions.Publish.Allow = append(u.Permissions.Publish.Allow, "orders.>")
		}, "the permissions of << $NKEY_INVENTORY >> are not what the code gives inventory"},
		{"reports may pull notifications' durables", func(v *natsValues) {
			user(v, "<< $NKEY_REPORTS >>").Permissions.Publish.Deny = nil
		}, "the permissions of << $NKEY_REPORTS >> are not what the code gives reports"},
		{"a user for no service", func(v *natsValues) {
			v.Config.Merge.Authorization.Users = append(v.Config.Merge.Authorization.Users, natsUser{NKey: "UANYONE"})
		}, "the NATS user UANYONE is no service's"},
		{"orders' key from another Secret", func(v *natsValues) {
			v.Container.Env["NKEY_ORDERS"].ValueFrom.SecretKeyRef.Name = "microshop-orders"
		}, "container.env NKEY_ORDERS must read key NKEY_ORDERS of the Secret microshop-nats-users"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := loadManifests(filepath.Join(repoRoot(t), "deploy", "k8s"))
			tt.change(values(m))
			m.problems = nil
			m.checkNATSValues(values(m))
			if !containsProblem(m.problems, tt.want) {
				t.Errorf("want a problem containing %q; got:\n%s", tt.want, strings.Join(m.problems, "\n"))
			}
		})
	}
}

// container returns the container of the Deployment that serves name.
func container(t *testing.T, m *manifests, name string) *corev1.Container {
	t.Helper()
	d := m.deploymentServing(name)
	if d == nil {
		t.Fatalf("no Deployment serves %s", name)
	}
	return &d.Spec.Template.Spec.Containers[0]
}

// withoutEnv drops the variable v from a container's env.
func withoutEnv(t *testing.T, c *corev1.Container, v string) {
	t.Helper()
	i := slices.IndexFunc(c.Env, func(e corev1.EnvVar) bool { return e.Name == v })
	if i < 0 {
		t.Fatalf("container %s sets no %s", c.Name, v)
	}
	c.Env = slices.Delete(c.Env, i, i+1)
}

func fromSecret(v, secret, key string) corev1.EnvVar {
	return corev1.EnvVar{Name: v, ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
		LocalObjectReference: corev1.LocalObjectReference{Name: secret}, Key: key}}}
}

// TestProxySecretCheckFindsBreakage proves the check of the proxy secret
// can fail: each case changes who gets it, or from where, in the real
// manifests and expects the check to say so.
func TestProxySecretCheckFindsBreakage(t *testing.T) {
	tests := []struct {
		name   string
		change func(t *testing.T, m *manifests)
		want   string
	}{
		{"users without it", func(t *testing.T, m *manifests) {
			withoutEnv(t, container(t, m, "users"), proxySecretVar)
		}, "no Secret gives users MICROSHOP_PROXY_SECRET"},
		{"the gateway without it", func(t *testing.T, m *manifests) {
			withoutEnv(t, container(t, m, "gateway"), proxySecretVar)
		}, "no Secret gives gateway MICROSHOP_PROXY_SECRET"},
		{"orders gets it too", func(t *testing.T, m *manifests) {
			c := container(t, m, "orders")
			c.Env = append(c.Env, fromSecret(proxySecretVar, "microshop-proxy-secret", proxySecretVar))
		}, "orders gets MICROSHOP_PROXY_SECRET"},
		{"reports reads its Secret under another name", func(t *testing.T, m *manifests) {
			c := container(t, m, "reports")
			c.Env = append(c.Env, fromSecret("MICROSHOP_SECRET", "microshop-proxy-secret", proxySecretVar))
		}, "reads microshop-proxy-secret, the proxy secret of gateway and users"},
		{"users' from its own Secret", func(t *testing.T, m *manifests) {
			c := container(t, m, "users")
			withoutEnv(t, c, proxySecretVar)
			c.Env = append(c.Env, fromSecret(proxySecretVar, "microshop-users", "MICROSHOP_ADMIN_PASSWORD"))
		}, "gateway gets MICROSHOP_PROXY_SECRET from microshop-proxy-secret/MICROSHOP_PROXY_SECRET, users from microshop-users/MICROSHOP_ADMIN_PASSWORD"},
		{"a Secret shared with other keys", func(t *testing.T, m *manifests) {
			m.secret("microshop-proxy-secret").StringData["MICROSHOP_SERVICE_KEYS"] = "x"
		}, "comes from microshop-proxy-secret, which holds more"},
		{"written into the manifest", func(t *testing.T, m *manifests) {
			c := container(t, m, "gateway")
			withoutEnv(t, c, proxySecretVar)
			c.Env = append(c.Env, corev1.EnvVar{Name: proxySecretVar, Value: "s3cret"})
		}, "MICROSHOP_PROXY_SECRET is written into the manifest"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := loadManifests(filepath.Join(repoRoot(t), "deploy", "k8s"))
			tt.change(t, m)
			problems := m.check(true)
			if !containsProblem(problems, tt.want) {
				t.Errorf("want a problem containing %q; got:\n%s", tt.want, strings.Join(problems, "\n"))
			}
		})
	}
}

// TestScrapeCheckFindsBreakage proves the checks of where Prometheus
// reads /metrics can fail: every service on its operations port, since
// its own port asks for a client certificate (and the gateway's public
// port serves /metrics to loopback only).
func TestScrapeCheckFindsBreakage(t *testing.T) {
	monitor := func(t *testing.T, m *manifests) *serviceMonitor {
		o := m.find("ServiceMonitor", "microshop")
		if o == nil {
			t.Fatal("no ServiceMonitor microshop")
		}
		return o.obj.(*serviceMonitor)
	}
	tests := []struct {
		name   string
		change func(t *testing.T, m *manifests)
		want   string
	}{
		{"the gateway annotated with its public port", func(t *testing.T, m *manifests) {
			m.deploymentServing("gateway").Spec.Template.Annotations["prometheus.io/port"] = "8080"
		}, `prometheus.io/port is "8080"; gateway serves /metrics to Prometheus on 9090`},
		{"users annotated with its service port", func(t *testing.T, m *manifests) {
			m.deploymentServing("users").Spec.Template.Annotations["prometheus.io/port"] = "8081"
		}, `prometheus.io/port is "8081"; users serves /metrics to Prometheus on 9090`},
		{"no operations port", func(t *testing.T, m *manifests) {
			delete(m.configMap("microshop-config").Data, opsAddrVar)
		}, "sets no MICROSHOP_OPS_ADDR"},
		{"the operations port on the service's port", func(t *testing.T, m *manifests) {
			m.configMap("microshop-config").Data[opsAddrVar] = ":8083"
		}, `MICROSHOP_OPS_ADDR=":8083" is orders's own port`},
		{"the gateway's metrics listener on the operations port", func(t *testing.T, m *manifests) {
			m.configMap("microshop-gateway").Data[metricsAddrVar] = ":9090"
		}, `MICROSHOP_METRICS_ADDR=":9090" and MICROSHOP_OPS_ADDR take the same port`},
		{"no container port for it", func(t *testing.T, m *manifests) {
			c := container(t, m, "reports")
			c.Ports = c.Ports[:1]
		}, "no container port named ops on 9090"},
		{"scraped on the service ports", func(t *testing.T, m *manifests) {
			monitor(t, m).Spec.Endpoints[0].Port = "http"
		}, `scrapes Service payments on port "http", container port 8084; payments serves /metrics to Prometheus on 9090`},
		{"scraped twice", func(t *testing.T, m *manifests) {
			sm := monitor(t, m)
			sm.Spec.Endpoints = append(sm.Spec.Endpoints, sm.Spec.Endpoints[0])
		}, "Service/gateway: scraped by 2 ServiceMonitor endpoints, want 1"},
		{"scraped on a port the Services do not have", func(t *testing.T, m *manifests) {
			monitor(t, m).Spec.Endpoints[0].Port = "metrics"
		}, `Service users has no port named "metrics"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := loadManifests(filepath.Join(repoRoot(t), "deploy", "k8s"))
			tt.change(t, m)
			problems := m.check(true)
			if !containsProblem(problems, tt.want) {
				t.Errorf("want a problem containing %q; got:\n%s", tt.want, strings.Join(problems, "\n"))
			}
		})
	}
}

// TestMutualTLSCheckFindsBreakage proves the checks of mutual TLS on the
// real manifests can fail: each case takes back one piece of the wiring,
// as the manifests were before it, or gets it subtly wrong.
func TestMutualTLSCheckFindsBreakage(t *testing.T) {
	volume := func(t *testing.T, m *manifests, name string) *corev1.Volume {
		pod := &m.deploymentServing(name).Spec.Template.Spec
		i := slices.IndexFunc(pod.Volumes, func(v corev1.Volume) bool { return v.Secret != nil && v.Secret.SecretName == tlsSecret(name) })
		if i < 0 {
			t.Fatalf("%s mounts no %s", name, tlsSecret(name))
		}
		return &pod.Volumes[i]
	}
	mount := func(t *testing.T, m *manifests, name string) *corev1.VolumeMount {
		c := container(t, m, name)
		v := volume(t, m, name)
		i := slices.IndexFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.Name == v.Name })
		if i < 0 {
			t.Fatalf("%s does not mount the volume %s", name, v.Name)
		}
		return &c.VolumeMounts[i]
	}
	cert := func(t *testing.T, m *manifests, name string) *certificate {
		o := m.find("Certificate", "microshop-"+name)
		if o == nil {
			t.Fatalf("no Certificate microshop-%s", name)
		}
		return o.obj.(*certificate)
	}
	tests := []struct {
		name   string
		change func(t *testing.T, m *manifests)
		want   string
	}{
		{"a peer URL in plain HTTP", func(t *testing.T, m *manifests) {
			m.configMap("microshop-config").Data["MICROSHOP_PAYMENTS_URL"] = "http://payments:8084"
		}, `MICROSHOP_PAYMENTS_URL="http://payments:8084", want https://payments:8084`},
		{"a peer URL by IP, which no certificate names", func(t *testing.T, m *manifests) {
			m.configMap("microshop-config").Data["MICROSHOP_USERS_URL"] = "https://10.0.0.7:8081"
		}, `MICROSHOP_USERS_URL="https://10.0.0.7:8081", want https://users:8081`},
		{"a peer URL in plain HTTP in a Deployment", func(t *testing.T, m *manifests) {
			c := container(t, m, "orders")
			c.Env = append(c.Env, corev1.EnvVar{Name: "MICROSHOP_INVENTORY_URL", Value: "http://inventory:8082"})
		}, `MICROSHOP_INVENTORY_URL="http://inventory:8082", want https://inventory:8082`},
		{"readiness on the service's port", func(t *testing.T, m *manifests) {
			container(t, m, "payments").ReadinessProbe.HTTPGet.Port = intstr.FromString("http")
		}, "readinessProbe probes port 8084; the kubelet presents no client certificate"},
		{"startup on the gateway's public port", func(t *testing.T, m *manifests) {
			container(t, m, "gateway").StartupProbe.HTTPGet.Port = intstr.FromInt32(8080)
		}, "startupProbe probes port 8080"},
		{"no certificate", func(t *testing.T, m *manifests) {
			withoutEnv(t, container(t, m, "inventory"), "MICROSHOP_TLS_CERT")
		}, "inventory\": sets no MICROSHOP_TLS_CERT"},
		{"no CA", func(t *testing.T, m *manifests) {
			withoutEnv(t, container(t, m, "gateway"), "MICROSHOP_TLS_CA")
		}, "gateway\": sets no MICROSHOP_TLS_CA"},
		{"the Secret not mounted", func(t *testing.T, m *manifests) {
			c := container(t, m, "notifications")
			c.VolumeMounts = slices.DeleteFunc(c.VolumeMounts, func(vm corev1.VolumeMount) bool { return vm.MountPath == "/etc/microshop/tls" })
		}, "MICROSHOP_TLS_CERT=/etc/microshop/tls/tls.crt is in no volume mounted into the container"},
		{"another service's certificate", func(t *testing.T, m *manifests) {
			volume(t, m, "reports").Secret.SecretName = tlsSecret("payments")
		}, "comes from the Secret microshop-payments-tls, not its own microshop-reports-tls"},
		{"the CA's key mounted", func(t *testing.T, m *manifests) {
			pod := &m.deploymentServing("users").Spec.Template.Spec
			pod.Volumes = append(pod.Volumes, corev1.Volume{Name: "ca", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: caSecret}}})
		}, "the pod mounts microshop-ca, the CA's private key"},
		{"the certificate by subPath", func(t *testing.T, m *manifests) {
			c := container(t, m, "orders")
			vm := mount(t, m, "orders")
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: vm.Name, MountPath: "/etc/tls.crt", SubPath: "tls.crt", ReadOnly: true})
			c.Env = append(c.Env, corev1.EnvVar{Name: "MICROSHOP_TLS_CERT", Value: "/etc/tls.crt"})
			withoutEnv(t, c, "MICROSHOP_TLS_CERT") // the first, from the manifest
		}, "is mounted by subPath, which the kubelet never updates"},
		{"the key mounted writable", func(t *testing.T, m *manifests) {
			mount(t, m, "payments").ReadOnly = false
		}, "with its certificate is mounted writable"},
		{"the key readable by everyone", func(t *testing.T, m *manifests) {
			mode := int32(0o644)
			volume(t, m, "users").Secret.DefaultMode = &mode
		}, "leaves the private key readable by others"},
		{"the key file named after the wrong key", func(t *testing.T, m *manifests) {
			c := container(t, m, "inventory")
			withoutEnv(t, c, "MICROSHOP_TLS_KEY")
			c.Env = append(c.Env, corev1.EnvVar{Name: "MICROSHOP_TLS_KEY", Value: "/etc/microshop/tls/ca.crt"})
		}, "MICROSHOP_TLS_KEY=/etc/microshop/tls/ca.crt is the key ca.crt of microshop-inventory-tls; want tls.key"},
		{"a certificate without client auth", func(t *testing.T, m *manifests) {
			cert(t, m, "orders").Spec.Usages = []string{"digital signature", "server auth"}
		}, `lack "client auth"`},
		{"a certificate naming another service", func(t *testing.T, m *manifests) {
			cert(t, m, "payments").Spec.URIs = []string{"spiffe://microshop/orders"}
		}, `Certificate/microshop-payments: uris ["spiffe://microshop/orders"], want ["spiffe://microshop/payments"]`},
		{"a key kept at renewal", func(t *testing.T, m *manifests) {
			cert(t, m, "users").Spec.PrivateKey.RotationPolicy = "Never"
		}, "Certificate/microshop-users: privateKey must be ECDSA P-256 (size 256) with rotationPolicy Always"},
		{"renewed at the last minute", func(t *testing.T, m *manifests) {
			cert(t, m, "gateway").Spec.RenewBefore = "1h"
		}, `Certificate/microshop-gateway: duration "720h", renewBefore "1h"`},
		{"an Issuer of another CA", func(t *testing.T, m *manifests) {
			m.find("Issuer", "microshop-ca").obj.(*certIssuer).Spec.CA.SecretName = "another-ca"
		}, "is not the CA of the Secret microshop-ca"},
		{"a service without a Certificate", func(t *testing.T, m *manifests) {
			m.objects = slices.DeleteFunc(m.objects, func(o *object) bool { return o.kind == "Certificate" && o.name == "microshop-reports" })
		}, "no cert-manager Certificate keeps microshop-reports-tls"},
		{"no example of the Secret", func(t *testing.T, m *manifests) {
			m.objects = slices.DeleteFunc(m.objects, func(o *object) bool { return o.kind == "Secret" && o.name == tlsSecret("orders") })
		}, "mounts the Secret microshop-orders-tls, which is not defined"},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := loadManifests(filepath.Join(repoRoot(t), "deploy", "k8s"))
			tt.change(t, m)
			problems := m.check(true)
			if !containsProblem(problems, tt.want) {
				t.Errorf("want a problem containing %q; got:\n%s", tt.want, strings.Join(problems, "\n"))
			}
		})
	}
}

func containsProblem(problems []string, want string) bool {
	for _, p := range problems {
		if strings.Contains(p, want) {
			return true
		}
	}
	return false
}

// A small, complete set of manifests for one service that passes every
// check; each case of TestCheckerFindsBrokenManifests breaks one thing.
var fixture = map[string]string{
	"kustomization.yaml": `apiVersion: kustomize.config.k8s.io/v1beta1
kind: Kustomization
resources:
  - app.yaml
  - config.yaml
  - db.yaml
  - netpol.yaml
`,
	"app.yaml": `apiVersion: apps/v1
kind: Deployment
metadata:
  name: orders
spec:
  selector:
    matchLabels: {app.kubernetes.io/name: orders}
  template:
    metadata:
      labels: {app.kubernetes.io/name: orders}
      annotations: {prometheus.io/scrape: "true", prometheus.io/port: "9090"}
    spec:
      terminationGracePeriodSeconds: 45
      securityContext:
        runAsNonRoot: true
        runAsUser: 65532
      containers:
        - name: orders
          image: ghcr.io/microshop/microshop:v0.1.0
          args: ["serve", "orders"]
          ports:
            - {name: http, containerPort: 8083}
            - {name: ops, containerPort: 9090}
          envFrom:
            - configMapRef: {name: microshop-config}
            - secretRef: {name: microshop-orders}
          env:
            - name: MICROSHOP_DB
              valueFrom:
                secretKeyRef: {name: orders-db-app, key: uri}
            - name: MICROSHOP_SERVICE_KEYS
              valueFrom:
                secretKeyRef: {name: microshop-service-keys, key: MICROSHOP_SERVICE_KEYS}
            - {name: MICROSHOP_TLS_CERT, value: /etc/microshop/tls/tls.crt}
            - {name: MICROSHOP_TLS_KEY, value: /etc/microshop/tls/tls.key}
            - {name: MICROSHOP_TLS_CA, value: /etc/microshop/tls/ca.crt}
            - name: GOMEMLIMIT
              value: 230MiB
          resources:
            requests: {cpu: 100m, memory: 128Mi}
            limits: {cpu: "1", memory: 256Mi}
          readinessProbe:
            httpGet: {path: /readyz, port: ops}
          livenessProbe:
            httpGet: {path: /healthz, port: ops}
          securityContext:
            readOnlyRootFilesystem: true
            allowPrivilegeEscalation: false
            capabilities: {drop: ["ALL"]}
          volumeMounts:
            - {name: tmp, mountPath: /tmp}
            - {name: data, mountPath: /data}
            - {name: tls, mountPath: /etc/microshop/tls, readOnly: true}
      volumes:
        - {name: tmp, emptyDir: {}}
        - {name: data, emptyDir: {}}
        - {name: tls, secret: {secretName: microshop-orders-tls, defaultMode: 0440}}
---
apiVersion: v1
kind: Service
metadata:
  name: orders
spec:
  selector: {app.kubernetes.io/name: orders}
  ports:
    - {name: http, port: 8083, targetPort: http}
---
apiVersion: autoscaling/v2
kind: HorizontalPodAutoscaler
metadata:
  name: orders
spec:
  scaleTargetRef: {apiVersion: apps/v1, kind: Deployment, name: orders}
  minReplicas: 2
  maxReplicas: 4
  metrics:
    - type: Resource
      resource: {name: cpu, target: {type: Utilization, averageUtilization: 70}}
---
apiVersion: policy/v1
kind: PodDisruptionBudget
metadata:
  name: orders
spec:
  maxUnavailable: 1
  selector:
    matchLabels: {app.kubernetes.io/name: orders}
`,
	"config.yaml": `apiVersion: v1
kind: ConfigMap
metadata:
  name: microshop-config
data:
  MICROSHOP_DRAIN_DELAY: 5s
  MICROSHOP_DRAIN_TIMEOUT: 20s
  MICROSHOP_OPS_ADDR: ":9090"
  MICROSHOP_ORDERS_URL: https://orders:8083
`,
	"secrets.example.yaml": `apiVersion: v1
kind: Secret
metadata:
  name: microshop-orders
stringData:
  MICROSHOP_SERVICE_KEY: REPLACE
  MICROSHOP_NATS_SEED: REPLACE
---
apiVersion: v1
kind: Secret
metadata:
  name: microshop-service-keys
stringData:
  MICROSHOP_SERVICE_KEYS: REPLACE
---
apiVersion: v1
kind: Secret
metadata:
  name: microshop-orders-tls
type: kubernetes.io/tls
stringData: {tls.crt: REPLACE, tls.key: REPLACE, ca.crt: REPLACE}
`,
	"db.yaml": `apiVersion: postgresql.cnpg.io/v1
kind: Cluster
metadata:
  name: orders-db
spec:
  instances: 2
  storage: {size: 1Gi}
  bootstrap:
    initdb: {database: orders, owner: orders}
`,
	"netpol.yaml": `apiVersion: networking.k8s.io/v1
kind: NetworkPolicy
metadata:
  name: orders-ingress
spec:
  podSelector:
    matchLabels: {app.kubernetes.io/name: orders}
  policyTypes: ["Ingress"]
`,
}

func writeFixture(t *testing.T, edit func(files map[string]string)) string {
	t.Helper()
	files := map[string]string{}
	for k, v := range fixture {
		files[k] = v
	}
	if edit != nil {
		edit(files)
	}
	dir := t.TempDir()
	for name, content := range files {
		if err := os.WriteFile(filepath.Join(dir, name), []byte(content), 0o644); err != nil {
			t.Fatal(err)
		}
	}
	return dir
}

// replace returns an edit that replaces old with new in file, failing the
// test when old is not there (so a case cannot pass by editing nothing).
func replace(t *testing.T, file, old, new string) func(map[string]string) {
	return func(files map[string]string) {
		if !strings.Contains(files[file], old) {
			t.Fatalf("the fixture's %s does not contain %q", file, old)
		}
		files[file] = strings.Replace(files[file], old, new, 1)
	}
}

// dropDoc removes the document of kind from a multi-document file.
func dropDoc(t *testing.T, file, kind string) func(map[string]string) {
	return func(files map[string]string) {
		docs := strings.Split(files[file], "---\n")
		var kept []string
		for _, d := range docs {
			if !strings.Contains(d, "kind: "+kind+"\n") {
				kept = append(kept, d)
			}
		}
		if len(kept) == len(docs) {
			t.Fatalf("the fixture's %s has no %s", file, kind)
		}
		files[file] = strings.Join(kept, "---\n")
	}
}

func TestCheckerPassesTheFixture(t *testing.T) {
	m := loadManifests(writeFixture(t, nil))
	if p := m.check(false); len(p) > 0 {
		t.Fatalf("the fixture is meant to pass; problems:\n%s", strings.Join(p, "\n"))
	}
	if len(m.objects) != 11 {
		t.Errorf("decoded %d documents of the fixture, want 11", len(m.objects))
	}
}

// TestCheckerFindsBrokenManifests proves the checks can fail: each case
// breaks one rule in the fixture and expects that rule to be reported.
func TestCheckerFindsBrokenManifests(t *testing.T) {
	tests := []struct {
		name string
		edit func(t *testing.T) func(map[string]string)
		want string
	}{
		{"missing readiness probe", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "          readinessProbe:\n            httpGet: {path: /readyz, port: ops}\n", "")
		}, "no readinessProbe"},
		{"liveness on the wrong path", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "path: /healthz", "path: /readyz")
		}, "livenessProbe is not an HTTP GET of /healthz"},
		{"probe on a port the container lacks", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "{path: /readyz, port: ops}", "{path: /readyz, port: 9999}")
		}, "readinessProbe probes port 9999"},
		{"a :latest image", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "microshop:v0.1.0", "microshop:latest")
		}, "is not pinned"},
		{"an untagged image", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "ghcr.io/microshop/microshop:v0.1.0", "ghcr.io/microshop/microshop")
		}, "is not pinned"},
		{"privileged", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "allowPrivilegeEscalation: false", "allowPrivilegeEscalation: true\n            privileged: true")
		}, "is privileged"},
		{"privilege escalation allowed", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "            allowPrivilegeEscalation: false\n", "")
		}, "allowPrivilegeEscalation is not false"},
		{"root", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "runAsNonRoot: true\n        runAsUser: 65532", "runAsUser: 0")
		}, "runAsNonRoot is not true"},
		{"a writable root filesystem", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "readOnlyRootFilesystem: true", "readOnlyRootFilesystem: false")
		}, "readOnlyRootFilesystem is not true"},
		{"capabilities kept", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", `capabilities: {drop: ["ALL"]}`, `capabilities: {drop: ["NET_RAW"]}`)
		}, "capabilities do not drop ALL"},
		{"no memory limit", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", `limits: {cpu: "1", memory: 256Mi}`, `limits: {cpu: "1"}`)
		}, "no memory limits"},
		{"no cpu request", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "requests: {cpu: 100m, memory: 128Mi}", "requests: {memory: 128Mi}")
		}, "no cpu requests"},
		{"GOMEMLIMIT above the limit", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "value: 230MiB", "value: 300MiB")
		}, "GOMEMLIMIT=300MiB is not below"},
		{"Deployment without PDB", func(t *testing.T) func(map[string]string) {
			return dropDoc(t, "app.yaml", "PodDisruptionBudget")
		}, "no PodDisruptionBudget selects its pods"},
		{"Deployment without HPA", func(t *testing.T) func(map[string]string) {
			return dropDoc(t, "app.yaml", "HorizontalPodAutoscaler")
		}, "no HorizontalPodAutoscaler targets it"},
		{"Deployment without Service", func(t *testing.T) func(map[string]string) {
			return dropDoc(t, "app.yaml", "Service")
		}, "no Service selects its pods"},
		{"a service that does not exist", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", `args: ["serve", "orders"]`, `args: ["serve", "shipping"]`)
		}, `args serve "shipping", which is not a microshop service`},
		{"args that serve nothing", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", `args: ["serve", "orders"]`, `args: ["run"]`)
		}, "are not [serve <service>]"},
		{"another service's database", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "{name: orders-db-app, key: uri}", "{name: payments-db-app, key: uri}")
		}, `reads Secret "payments-db-app", which is neither defined`},
		{"a Secret nobody defines", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "secretRef: {name: microshop-orders}", "secretRef: {name: microshop-shipping}")
		}, `envFrom Secret "microshop-shipping" is not defined`},
		{"no NATS seed for a service that uses the broker", func(t *testing.T) func(map[string]string) {
			return replace(t, "secrets.example.yaml", "  MICROSHOP_NATS_SEED: REPLACE\n", "")
		}, "orders uses the broker, and no Secret gives it MICROSHOP_NATS_SEED"},
		{"another service's NATS seed", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "            - name: GOMEMLIMIT\n",
				"            - name: MICROSHOP_NATS_SEED\n              valueFrom:\n                secretKeyRef: {name: microshop-payments, key: MICROSHOP_NATS_SEED}\n            - name: GOMEMLIMIT\n")
		}, "gets a NATS seed from microshop-payments, not from its own microshop-orders"},
		{"the NATS servers' Secret", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "            - secretRef: {name: microshop-orders}\n",
				"            - secretRef: {name: microshop-orders}\n            - secretRef: {name: microshop-nats-users, optional: true}\n")
		}, "reads microshop-nats-users, the NATS servers' Secret"},
		{"a NATS seed written into the manifest", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "            - name: GOMEMLIMIT\n",
				"            - name: MICROSHOP_NATS_SEED\n              value: SUAAAA\n            - name: GOMEMLIMIT\n")
		}, "MICROSHOP_NATS_SEED is written into the manifest"},
		{"scraped on another port", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", `prometheus.io/port: "9090"`, `prometheus.io/port: "8083"`)
		}, `prometheus.io/port is "8083"; orders serves /metrics to Prometheus on 9090`},
		{"a URL to the wrong port", func(t *testing.T) func(map[string]string) {
			return replace(t, "config.yaml", "https://orders:8083", "https://orders:8084")
		}, `MICROSHOP_ORDERS_URL="https://orders:8084", want https://orders:8083`},
		{"a peer URL in plain HTTP", func(t *testing.T) func(map[string]string) {
			return replace(t, "config.yaml", "https://orders:8083", "http://orders:8083")
		}, `MICROSHOP_ORDERS_URL="http://orders:8083", want https://orders:8083`},
		{"probes on the service's port", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "{path: /healthz, port: ops}", "{path: /healthz, port: http}")
		}, "livenessProbe probes port 8083; the kubelet presents no client certificate"},
		{"no operations port", func(t *testing.T) func(map[string]string) {
			return replace(t, "config.yaml", "  MICROSHOP_OPS_ADDR: \":9090\"\n", "")
		}, "sets no MICROSHOP_OPS_ADDR"},
		{"no certificate", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "            - {name: MICROSHOP_TLS_CERT, value: /etc/microshop/tls/tls.crt}\n", "")
		}, "sets no MICROSHOP_TLS_CERT"},
		{"the TLS Secret not mounted", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "            - {name: tls, mountPath: /etc/microshop/tls, readOnly: true}\n", "")
		}, "MICROSHOP_TLS_KEY=/etc/microshop/tls/tls.key is in no volume mounted"},
		{"another service's certificate", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "secretName: microshop-orders-tls", "secretName: microshop-payments-tls")
		}, "the pod mounts microshop-payments-tls, another service's certificate"},
		{"a key readable by everyone", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", ", defaultMode: 0440}", "}")
		}, "leaves the private key readable by others"},
		{"a grace period shorter than the drain", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "terminationGracePeriodSeconds: 45", "terminationGracePeriodSeconds: 10")
		}, "terminationGracePeriodSeconds 10"},
		{"an unknown field", func(t *testing.T) func(map[string]string) {
			return replace(t, "app.yaml", "livenessProbe:", "livenesProbe:")
		}, `unknown field "livenesProbe"`},
		{"an unknown kind", func(t *testing.T) func(map[string]string) {
			return func(files map[string]string) {
				files["job.yaml"] = "apiVersion: batch/v1\nkind: CronJob\nmetadata: {name: x}\n"
			}
		}, `unknown kind "CronJob"`},
		{"a Kustomization resource that does not exist", func(t *testing.T) func(map[string]string) {
			return replace(t, "kustomization.yaml", "  - db.yaml\n", "  - db.yaml\n  - missing.yaml\n")
		}, `resource "missing.yaml" does not exist`},
		{"a manifest the Kustomization forgets", func(t *testing.T) func(map[string]string) {
			return replace(t, "kustomization.yaml", "  - netpol.yaml\n", "")
		}, "netpol.yaml is beside it but not listed"},
		{"a NetworkPolicy for no app", func(t *testing.T) func(map[string]string) {
			return replace(t, "netpol.yaml", "{app.kubernetes.io/name: orders}", "{app.kubernetes.io/name: ordres}")
		}, "selects no app"},
		{"a Cluster whose database is not the service's", func(t *testing.T) func(map[string]string) {
			return replace(t, "db.yaml", "{database: orders, owner: orders}", "{database: app, owner: app}")
		}, `makes the database "app", not "orders"`},
	}
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			m := loadManifests(writeFixture(t, tt.edit(t)))
			problems := m.check(false)
			if !containsProblem(problems, tt.want) {
				t.Errorf("want a problem containing %q; got:\n%s", tt.want, strings.Join(problems, "\n"))
			}
		})
	}
}
