// Package deploy checks what is under deploy/ without a cluster or a Docker
// engine: every Kubernetes manifest is decoded strictly into the real API
// types and checked against the rules of a production deployment (probes,
// resources, a pinned image, a locked-down security context, a Service, an
// autoscaler and a disruption budget per Deployment, network policies that
// let each service be reached by its callers only); the compose file, the
// Dockerfile, the key generator and the Grafana dashboard are checked
// against the code they deploy. Each checker is fed broken input too, to
// prove it can fail.
package deploy

import (
	"bytes"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"slices"
	"sort"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	autoscalingv2 "k8s.io/api/autoscaling/v2"
	corev1 "k8s.io/api/core/v1"
	networkingv1 "k8s.io/api/networking/v1"
	policyv1 "k8s.io/api/policy/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"

	"github.com/microshop/microshop/internal/platform/broker"
	"github.com/microshop/microshop/internal/topology"
)

// The services and their default ports, as the topology gives them.
var servicePorts = func() map[string]int32 {
	ports := map[string]int32{}
	for _, s := range topology.Services() {
		ports[s.Name] = int32(s.Port)
	}
	return ports
}()

// serviceNames lists the services in a stable order.
func serviceNames() []string {
	names := make([]string, 0, len(servicePorts))
	for n := range servicePorts {
		names = append(names, n)
	}
	sort.Slice(names, func(i, j int) bool { return servicePorts[names[i]] < servicePorts[names[j]] })
	return names
}

// ownsDatabase says the service keeps its own database (it has
// migrations); usesBroker, that it publishes or consumes events.
func ownsDatabase(name string) bool {
	s, _ := topology.Find(name)
	return s.Migrations() != nil
}

func usesBroker(name string) bool {
	s, _ := topology.Find(name)
	return len(s.Publishes) > 0 || len(s.Consumes) > 0
}

// calls is who calls whom over HTTP: the services each one needs, by its
// Spec (those it calls, and users, whose JWKS every other service
// fetches).
var calls = func() map[string][]string {
	out := map[string][]string{}
	for _, s := range topology.Services() {
		out[s.Name] = s.Needs()
	}
	return out
}()

func repoRoot(t testing.TB) string {
	t.Helper()
	root, err := filepath.Abs(filepath.Join("..", ".."))
	if err != nil {
		t.Fatal(err)
	}
	if _, err := os.Stat(filepath.Join(root, "go.mod")); err != nil {
		t.Fatalf("no go.mod at %s: %v", root, err)
	}
	return root
}

// ---- decoding ----

// decodeStrict decodes one JSON value into v, refusing unknown fields and
// trailing data.
func decodeStrict(b []byte, v any) error {
	d := json.NewDecoder(bytes.NewReader(b))
	d.DisallowUnknownFields()
	if err := d.Decode(v); err != nil {
		return err
	}
	if d.More() {
		return fmt.Errorf("trailing data after the document")
	}
	return nil
}

var docSeparator = regexp.MustCompile(`(?m)^---[ \t]*(#.*)?$`)

// splitYAML returns the documents of a multi-document YAML file with their
// JSON form; empty documents (comments only) are dropped.
func splitYAML(content []byte) ([][]byte, error) {
	var out [][]byte
	for i, part := range docSeparator.Split(string(content), -1) {
		j, err := yaml.YAMLToJSONStrict([]byte(part))
		if err != nil {
			return nil, fmt.Errorf("document %d: %w", i+1, err)
		}
		if t := bytes.TrimSpace(j); len(t) == 0 || string(t) == "null" {
			continue
		}
		out = append(out, j)
	}
	return out, nil
}

// kustomization is the part of kustomize.config.k8s.io/v1beta1
// Kustomization these manifests use, and the common fields beside them.
type kustomization struct {
	metav1.TypeMeta   `json:",inline"`
	Metadata          *metav1.ObjectMeta `json:"metadata,omitempty"`
	Namespace         string             `json:"namespace,omitempty"`
	NamePrefix        string             `json:"namePrefix,omitempty"`
	NameSuffix        string             `json:"nameSuffix,omitempty"`
	Resources         []string           `json:"resources,omitempty"`
	Components        []string           `json:"components,omitempty"`
	CommonLabels      map[string]string  `json:"commonLabels,omitempty"`
	CommonAnnotations map[string]string  `json:"commonAnnotations,omitempty"`
	Labels            []struct {
		Pairs            map[string]string `json:"pairs"`
		IncludeSelectors bool              `json:"includeSelectors,omitempty"`
		IncludeTemplates bool              `json:"includeTemplates,omitempty"`
	} `json:"labels,omitempty"`
	Images []struct {
		Name    string `json:"name"`
		NewName string `json:"newName,omitempty"`
		NewTag  string `json:"newTag,omitempty"`
		Digest  string `json:"digest,omitempty"`
	} `json:"images,omitempty"`
	Replicas []struct {
		Name  string `json:"name"`
		Count int64  `json:"count"`
	} `json:"replicas,omitempty"`
	Patches []struct {
		Path   string `json:"path,omitempty"`
		Patch  string `json:"patch,omitempty"`
		Target *struct {
			Group         string `json:"group,omitempty"`
			Version       string `json:"version,omitempty"`
			Kind          string `json:"kind,omitempty"`
			Name          string `json:"name,omitempty"`
			Namespace     string `json:"namespace,omitempty"`
			LabelSelector string `json:"labelSelector,omitempty"`
		} `json:"target,omitempty"`
	} `json:"patches,omitempty"`
}

// cnpgCluster is the part of CloudNativePG's postgresql.cnpg.io/v1 Cluster
// these manifests use.
type cnpgCluster struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Instances             int    `json:"instances"`
		ImageName             string `json:"imageName,omitempty"`
		PrimaryUpdateStrategy string `json:"primaryUpdateStrategy,omitempty"`
		Storage               struct {
			Size         string  `json:"size"`
			StorageClass *string `json:"storageClass,omitempty"`
		} `json:"storage"`
		Bootstrap struct {
			InitDB struct {
				Database string `json:"database"`
				Owner    string `json:"owner"`
			} `json:"initdb"`
		} `json:"bootstrap"`
		Resources  corev1.ResourceRequirements `json:"resources,omitempty"`
		Monitoring *struct {
			EnablePodMonitor bool `json:"enablePodMonitor"`
		} `json:"monitoring,omitempty"`
	} `json:"spec"`
}

// podLabels are the labels CloudNativePG puts on a cluster's pods.
func (c *cnpgCluster) podLabels() map[string]string {
	return map[string]string{"cnpg.io/cluster": c.Name}
}

// generatedSecretKeys are the keys of the <cluster>-app Secret that
// CloudNativePG makes for a Cluster's application user.
var generatedSecretKeys = []string{"username", "password", "host", "port", "dbname", "uri", "jdbc-uri", "pgpass", "fqdn-uri", "fqdn-jdbc-uri"}

// serviceMonitor is the part of the Prometheus Operator's
// monitoring.coreos.com/v1 ServiceMonitor used here.
type serviceMonitor struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		Selector  metav1.LabelSelector `json:"selector"`
		Endpoints []struct {
			Port     string `json:"port"`
			Path     string `json:"path,omitempty"`
			Interval string `json:"interval,omitempty"`
		} `json:"endpoints"`
	} `json:"spec"`
}

// certIssuer is the part of cert-manager's cert-manager.io/v1 Issuer
// used here: a CA issuer.
type certIssuer struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		CA *struct {
			SecretName string `json:"secretName"`
		} `json:"ca,omitempty"`
	} `json:"spec"`
}

// certificate is the part of cert-manager's cert-manager.io/v1
// Certificate used here.
type certificate struct {
	metav1.TypeMeta   `json:",inline"`
	metav1.ObjectMeta `json:"metadata"`
	Spec              struct {
		SecretName     string `json:"secretName"`
		SecretTemplate *struct {
			Labels      map[string]string `json:"labels,omitempty"`
			Annotations map[string]string `json:"annotations,omitempty"`
		} `json:"secretTemplate,omitempty"`
		Duration    string `json:"duration,omitempty"`
		RenewBefore string `json:"renewBefore,omitempty"`
		CommonName  string `json:"commonName,omitempty"`
		Subject     *struct {
			Organizations []string `json:"organizations,omitempty"`
		} `json:"subject,omitempty"`
		URIs       []string `json:"uris,omitempty"`
		DNSNames   []string `json:"dnsNames,omitempty"`
		Usages     []string `json:"usages,omitempty"`
		IsCA       bool     `json:"isCA,omitempty"`
		PrivateKey *struct {
			Algorithm      string `json:"algorithm,omitempty"`
			Size           int    `json:"size,omitempty"`
			Encoding       string `json:"encoding,omitempty"`
			RotationPolicy string `json:"rotationPolicy,omitempty"`
		} `json:"privateKey,omitempty"`
		IssuerRef struct {
			Name  string `json:"name"`
			Kind  string `json:"kind,omitempty"`
			Group string `json:"group,omitempty"`
		} `json:"issuerRef"`
	} `json:"spec"`
}

// natsValues are the values of the official NATS Helm chart (1.x) that
// nats-values.yaml sets.
type natsValues struct {
	Config struct {
		Cluster struct {
			Enabled  bool `json:"enabled"`
			Replicas int  `json:"replicas"`
		} `json:"cluster"`
		JetStream struct {
			Enabled   bool `json:"enabled"`
			FileStore struct {
				Enabled bool   `json:"enabled"`
				Dir     string `json:"dir,omitempty"`
				MaxSize string `json:"maxSize,omitempty"`
				PVC     struct {
					Enabled          bool   `json:"enabled"`
					Size             string `json:"size"`
					StorageClassName string `json:"storageClassName,omitempty"`
				} `json:"pvc"`
			} `json:"fileStore"`
			MemoryStore struct {
				Enabled bool   `json:"enabled"`
				MaxSize string `json:"maxSize,omitempty"`
			} `json:"memoryStore"`
		} `json:"jetstream"`
		Monitor struct {
			Enabled bool `json:"enabled"`
			Port    int  `json:"port"`
		} `json:"monitor"`
		// Merge is merged into the server's configuration as it is.
		Merge struct {
			Authorization struct {
				Users []natsUser `json:"users"`
			} `json:"authorization"`
		} `json:"merge"`
	} `json:"config"`
	Container struct {
		// Env is the servers' environment: a map of name to value or
		// valueFrom, unlike a Pod's list.
		Env   map[string]corev1.EnvVar `json:"env"`
		Merge struct {
			Resources corev1.ResourceRequirements `json:"resources"`
		} `json:"merge"`
	} `json:"container"`
	PodTemplate struct {
		TopologySpreadConstraints map[string]struct {
			MaxSkew           int    `json:"maxSkew"`
			WhenUnsatisfiable string `json:"whenUnsatisfiable"`
		} `json:"topologySpreadConstraints"`
	} `json:"podTemplate"`
	PodDisruptionBudget struct {
		Enabled bool `json:"enabled"`
	} `json:"podDisruptionBudget"`
	PromExporter struct {
		Enabled bool `json:"enabled"`
	} `json:"promExporter"`
	NatsBox struct {
		Enabled bool `json:"enabled"`
	} `json:"natsBox"`
}

// natsUser is a user in the NATS servers' authorization block.
type natsUser struct {
	NKey        string             `json:"nkey"`
	Permissions broker.Permissions `json:"permissions"`
}

// object is one decoded document.
type object struct {
	file  string // slash path under the manifest root
	index int    // 1-based document number in the file
	kind  string
	name  string
	obj   any
	patch bool // named by a Kustomization's patches
}

func (o *object) String() string { return fmt.Sprintf("%s#%d %s/%s", o.file, o.index, o.kind, o.name) }

// decodeObject picks the Go type by apiVersion and kind, and decodes the
// document into it strictly.
func decodeObject(file string, j []byte) (kind, name string, obj any, err error) {
	if strings.HasSuffix(file, "-values.yaml") {
		if filepath.Base(file) != "nats-values.yaml" {
			return "", "", nil, fmt.Errorf("a Helm values file of no known chart")
		}
		v := &natsValues{}
		return "HelmValues", "nats", v, decodeStrict(j, v)
	}
	var tm metav1.TypeMeta
	if err := json.Unmarshal(j, &tm); err != nil {
		return "", "", nil, err
	}
	switch tm.APIVersion + " " + tm.Kind {
	case "apps/v1 Deployment":
		obj = &appsv1.Deployment{}
	case "v1 Service":
		obj = &corev1.Service{}
	case "v1 ConfigMap":
		obj = &corev1.ConfigMap{}
	case "v1 Secret":
		obj = &corev1.Secret{}
	case "v1 Namespace":
		obj = &corev1.Namespace{}
	case "autoscaling/v2 HorizontalPodAutoscaler":
		obj = &autoscalingv2.HorizontalPodAutoscaler{}
	case "policy/v1 PodDisruptionBudget":
		obj = &policyv1.PodDisruptionBudget{}
	case "networking.k8s.io/v1 NetworkPolicy":
		obj = &networkingv1.NetworkPolicy{}
	case "networking.k8s.io/v1 Ingress":
		obj = &networkingv1.Ingress{}
	case "kustomize.config.k8s.io/v1beta1 Kustomization":
		obj = &kustomization{}
	case "postgresql.cnpg.io/v1 Cluster":
		obj = &cnpgCluster{}
	case "monitoring.coreos.com/v1 ServiceMonitor":
		obj = &serviceMonitor{}
	case "cert-manager.io/v1 Issuer":
		obj = &certIssuer{}
	case "cert-manager.io/v1 Certificate":
		obj = &certificate{}
	default:
		return tm.Kind, "", nil, fmt.Errorf("unknown kind %q of apiVersion %q", tm.Kind, tm.APIVersion)
	}
	if err := decodeStrict(j, obj); err != nil {
		return tm.Kind, "", nil, fmt.Errorf("%s: %w", tm.Kind, err)
	}
	if m, ok := obj.(metav1.Object); ok {
		name = m.GetName()
	}
	if k, ok := obj.(*kustomization); ok && k.Metadata != nil {
		name = k.Metadata.Name
	}
	return tm.Kind, name, obj, nil
}

// manifests is every document under one root, and the problems met while
// reading them.
type manifests struct {
	root     string
	objects  []*object
	problems []string
}

func (m *manifests) addf(format string, args ...any) {
	m.problems = append(m.problems, fmt.Sprintf(format, args...))
}

// loadManifests reads every .yaml and .yml file under root.
func loadManifests(root string) *manifests {
	m := &manifests{root: root}
	err := filepath.WalkDir(root, func(path string, d os.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if d.IsDir() || !(strings.HasSuffix(path, ".yaml") || strings.HasSuffix(path, ".yml")) {
			return nil
		}
		rel, _ := filepath.Rel(root, path)
		rel = filepath.ToSlash(rel)
		content, err := os.ReadFile(path)
		if err != nil {
			return err
		}
		docs, err := splitYAML(content)
		if err != nil {
			m.addf("%s: %v", rel, err)
			return nil
		}
		for i, j := range docs {
			kind, name, obj, err := decodeObject(rel, j)
			if err != nil {
				m.addf("%s#%d: %v", rel, i+1, err)
				continue
			}
			if name == "" && kind != "Kustomization" && kind != "HelmValues" {
				m.addf("%s#%d: %s without a name", rel, i+1, kind)
			}
			m.objects = append(m.objects, &object{file: rel, index: i + 1, kind: kind, name: name, obj: obj})
		}
		return nil
	})
	if err != nil {
		m.addf("reading %s: %v", root, err)
	}
	// Documents in patch files are partial: mark them.
	for _, o := range m.objects {
		k, ok := o.obj.(*kustomization)
		if !ok {
			continue
		}
		dir := filepath.Dir(o.file)
		for _, p := range k.Patches {
			if p.Path == "" {
				continue
			}
			target := filepath.ToSlash(filepath.Clean(filepath.Join(dir, p.Path)))
			for _, other := range m.objects {
				if other.file == target {
					other.patch = true
				}
			}
		}
	}
	return m
}

// all returns the whole (not patch) objects of one Go type.
func all[T any](m *manifests) []T {
	var out []T
	for _, o := range m.objects {
		if v, ok := o.obj.(T); ok && !o.patch {
			out = append(out, v)
		}
	}
	return out
}

func (m *manifests) find(kind, name string) *object {
	for _, o := range m.objects {
		if o.kind == kind && o.name == name && !o.patch {
			return o
		}
	}
	return nil
}

func (m *manifests) where(v any) string {
	for _, o := range m.objects {
		if o.obj == v {
			return o.String()
		}
	}
	return "?"
}

func (m *manifests) configMap(name string) *corev1.ConfigMap {
	if o := m.find("ConfigMap", name); o != nil {
		return o.obj.(*corev1.ConfigMap)
	}
	return nil
}

func (m *manifests) secret(name string) *corev1.Secret {
	if o := m.find("Secret", name); o != nil {
		return o.obj.(*corev1.Secret)
	}
	return nil
}

// secretHasKey says whether a Secret named name exists here, or is made by
// CloudNativePG for a Cluster here, with key in it.
func (m *manifests) secretHasKey(name, key string) (exists, hasKey bool) {
	if s := m.secret(name); s != nil {
		_, inData := s.Data[key]
		_, inString := s.StringData[key]
		return true, inData || inString
	}
	if cluster, ok := strings.CutSuffix(name, "-app"); ok && m.find("Cluster", cluster) != nil {
		return true, slices.Contains(generatedSecretKeys, key)
	}
	return false, false
}

// secretKeys lists the keys of a Secret here.
func secretKeys(s *corev1.Secret) []string {
	var keys []string
	for k := range s.Data {
		keys = append(keys, k)
	}
	for k := range s.StringData {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
