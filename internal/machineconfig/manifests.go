package machineconfig

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/config/configloader"
	"gopkg.in/yaml.v3"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
	sigsyaml "sigs.k8s.io/yaml"
)

// Names of what the inline manifests create in the cluster.
const (
	InfisicalNamespace  = "infisical"
	InfisicalSecretName = "infisical-machine-identity"
	// InfisicalClientIDKey and InfisicalClientSecretKey are the keys the
	// Infisical operator's universal-auth credentials reference expects.
	InfisicalClientIDKey     = "clientId"
	InfisicalClientSecretKey = "clientSecret"

	TeleportNamespace  = "teleport"
	TeleportAgentName  = "teleport-kube-agent"
	TeleportJoinSecret = "teleport-join-token"
	TeleportTokenKey   = "auth-token"

	// DefaultTeleportAgentVersion is the teleport-distroless image tag of the
	// kube agent; it should match the Teleport cluster's major version.
	DefaultTeleportAgentVersion = "18.0.0"
	teleportImage               = "public.ecr.aws/gravitational/teleport-distroless"
	teleportSecretsDir          = "/etc/teleport-secrets"
	teleportConfigDir           = "/etc/teleport"
	teleportDataDir             = "/var/lib/teleport"
	teleportDiagPort            = 3000
	// teleportUID is the non-root user the teleport-kube-agent chart runs as.
	teleportUID = 9807
)

// The day-two commands' inside route to a locked-down cluster (package
// inside) reaches each node's apid through a hostNetwork pod in
// kube-system and a port-forward to it, and reads the nodes' readiness,
// all through Teleport, which impersonates the Kubernetes groups of the
// operator's Teleport role. The cluster's RBAC then decides; the agent's
// manifest binds InsideRouteGroup to exactly these rights, so a Teleport
// role can grant the route with `kubernetes_groups: [rawkode-cloud:inside-route]`
// instead of system:masters.
const (
	InsideRouteGroup     = "rawkode-cloud:inside-route"
	InsideRouteName      = "rawkode-cloud-inside-route"
	InsideRouteNamespace = "kube-system"
)

// InsideRouteRules are the rights of InsideRouteGroup: Namespaced in
// InsideRouteNamespace (a Role), Cluster on cluster-scoped resources (a
// ClusterRole).
var InsideRouteRules = struct{ Namespaced, Cluster []rbacv1.PolicyRule }{
	Namespaced: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get", "list", "create", "delete"}},
		{APIGroups: []string{""}, Resources: []string{"pods/portforward"}, Verbs: []string{"create"}},
	},
	Cluster: []rbacv1.PolicyRule{
		{APIGroups: []string{""}, Resources: []string{"nodes"}, Verbs: []string{"get", "list"}},
	},
}

// InsideRouteObjects bind InsideRouteGroup to InsideRouteRules: a Role and
// RoleBinding in InsideRouteNamespace, a ClusterRole and
// ClusterRoleBinding. They travel in the Teleport agent's inline manifest.
func InsideRouteObjects() []any {
	labels := map[string]string{"app.kubernetes.io/name": InsideRouteName}
	meta := objectMeta(InsideRouteNamespace, InsideRouteName)
	meta.Labels = labels
	group := []rbacv1.Subject{{Kind: rbacv1.GroupKind, APIGroup: rbacv1.GroupName, Name: InsideRouteGroup}}

	return []any{
		&rbacv1.Role{TypeMeta: typeMeta("rbac.authorization.k8s.io/v1", "Role"), ObjectMeta: meta, Rules: InsideRouteRules.Namespaced},
		&rbacv1.RoleBinding{TypeMeta: typeMeta("rbac.authorization.k8s.io/v1", "RoleBinding"), ObjectMeta: meta,
			RoleRef: rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "Role", Name: InsideRouteName}, Subjects: group},
		&rbacv1.ClusterRole{TypeMeta: typeMeta("rbac.authorization.k8s.io/v1", "ClusterRole"),
			ObjectMeta: metav1.ObjectMeta{Name: InsideRouteName, Labels: labels}, Rules: InsideRouteRules.Cluster},
		&rbacv1.ClusterRoleBinding{TypeMeta: typeMeta("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
			ObjectMeta: metav1.ObjectMeta{Name: InsideRouteName, Labels: labels},
			RoleRef:    rbacv1.RoleRef{APIGroup: rbacv1.GroupName, Kind: "ClusterRole", Name: InsideRouteName}, Subjects: group},
	}
}

// Names of the inline manifests, in the order Talos applies them. The agent
// comes before its token so its Namespace exists when the Secret is created.
const (
	ManifestInfisical     = "infisical-machine-identity"
	ManifestTeleportAgent = "teleport-kube-agent"
	ManifestTeleportToken = "teleport-join-token"
)

// Manifest is one inline manifest of a machine config: a named multi-document
// YAML stream Talos applies to the cluster after bootstrap.
type Manifest struct {
	Name     string
	Contents string
}

type manifestInput struct {
	clusterName           string
	teleportProxy         string
	teleportJoinToken     string
	teleportAgentVersion  string
	teleportAgentLabels   map[string]string
	infisicalClientID     string
	infisicalClientSecret string
}

func inlineManifests(in manifestInput) ([]Manifest, error) {
	agent, err := teleportAgentObjects(in)
	if err != nil {
		return nil, err
	}

	sets := []struct {
		name    string
		objects []any
	}{
		{ManifestInfisical, []any{
			namespace(InfisicalNamespace),
			secret(InfisicalNamespace, InfisicalSecretName, map[string][]byte{
				InfisicalClientIDKey:     []byte(in.infisicalClientID),
				InfisicalClientSecretKey: []byte(in.infisicalClientSecret),
			}),
		}},
		{ManifestTeleportAgent, agent},
		{ManifestTeleportToken, []any{
			secret(TeleportNamespace, TeleportJoinSecret, map[string][]byte{
				TeleportTokenKey: []byte(in.teleportJoinToken),
			}),
		}},
	}

	manifests := make([]Manifest, 0, len(sets))

	for _, set := range sets {
		if set.name == ManifestInfisical && in.infisicalClientID == "" {
			continue // no machine identity to hand over
		}
		contents, err := yamlStream(set.objects)
		if err != nil {
			return nil, fmt.Errorf("render inline manifest %s: %w", set.name, err)
		}

		manifests = append(manifests, Manifest{Name: set.name, Contents: contents})
	}

	return manifests, nil
}

// teleportConfig is the agent's teleport.yaml; only what the agent needs.
type teleportConfig struct {
	Version  string `yaml:"version"`
	Teleport struct {
		JoinParams struct {
			Method    string `yaml:"method"`
			TokenName string `yaml:"token_name"`
		} `yaml:"join_params"`
		ProxyServer string `yaml:"proxy_server"`
		Log         struct {
			Output   string `yaml:"output"`
			Severity string `yaml:"severity"`
		} `yaml:"log"`
	} `yaml:"teleport"`
	KubernetesService struct {
		Enabled         bool              `yaml:"enabled"`
		KubeClusterName string            `yaml:"kube_cluster_name"`
		Labels          map[string]string `yaml:"labels,omitempty"`
	} `yaml:"kubernetes_service"`
	AuthService  enabledOnly `yaml:"auth_service"`
	ProxyService enabledOnly `yaml:"proxy_service"`
	SSHService   enabledOnly `yaml:"ssh_service"`
}

type enabledOnly struct {
	Enabled bool `yaml:"enabled"`
}

func teleportAgentObjects(in manifestInput) ([]any, error) {
	var tc teleportConfig
	tc.Version = "v3"
	tc.Teleport.JoinParams.Method = "token"
	// A path: Teleport reads the token from the mounted Secret, so the
	// token never appears in the ConfigMap.
	tc.Teleport.JoinParams.TokenName = teleportSecretsDir + "/" + TeleportTokenKey
	tc.Teleport.ProxyServer = in.teleportProxy
	tc.Teleport.Log.Output = "stderr"
	tc.Teleport.Log.Severity = "INFO"
	tc.KubernetesService.Enabled = true
	tc.KubernetesService.KubeClusterName = in.clusterName
	tc.KubernetesService.Labels = in.teleportAgentLabels

	teleportYAML, err := yaml.Marshal(tc)
	if err != nil {
		return nil, fmt.Errorf("render teleport.yaml: %w", err)
	}

	labels := map[string]string{"app.kubernetes.io/name": TeleportAgentName}
	meta := objectMeta(TeleportNamespace, TeleportAgentName)
	meta.Labels = labels

	return append([]any{
		namespace(TeleportNamespace),
		&corev1.ServiceAccount{TypeMeta: typeMeta("v1", "ServiceAccount"), ObjectMeta: meta},
		&rbacv1.ClusterRole{
			TypeMeta:   typeMeta("rbac.authorization.k8s.io/v1", "ClusterRole"),
			ObjectMeta: metav1.ObjectMeta{Name: TeleportAgentName, Labels: labels},
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"users", "groups", "serviceaccounts"}, Verbs: []string{"impersonate"}},
				{APIGroups: []string{""}, Resources: []string{"pods"}, Verbs: []string{"get"}},
				{APIGroups: []string{"authorization.k8s.io"}, Resources: []string{"selfsubjectaccessreviews"}, Verbs: []string{"create"}},
			},
		},
		&rbacv1.ClusterRoleBinding{
			TypeMeta:   typeMeta("rbac.authorization.k8s.io/v1", "ClusterRoleBinding"),
			ObjectMeta: metav1.ObjectMeta{Name: TeleportAgentName, Labels: labels},
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: TeleportAgentName},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: TeleportAgentName, Namespace: TeleportNamespace}},
		},
		// The agent keeps its identity in a Secret of its own namespace
		// (Teleport's kubernetes state backend), so a restarted pod keeps
		// its registration without a persistent volume.
		&rbacv1.Role{
			TypeMeta:   typeMeta("rbac.authorization.k8s.io/v1", "Role"),
			ObjectMeta: meta,
			Rules: []rbacv1.PolicyRule{
				{APIGroups: []string{""}, Resources: []string{"secrets"}, Verbs: []string{"create", "get", "update", "patch"}},
			},
		},
		&rbacv1.RoleBinding{
			TypeMeta:   typeMeta("rbac.authorization.k8s.io/v1", "RoleBinding"),
			ObjectMeta: meta,
			RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "Role", Name: TeleportAgentName},
			Subjects:   []rbacv1.Subject{{Kind: "ServiceAccount", Name: TeleportAgentName, Namespace: TeleportNamespace}},
		},
		&corev1.ConfigMap{
			TypeMeta:   typeMeta("v1", "ConfigMap"),
			ObjectMeta: meta,
			Data:       map[string]string{"teleport.yaml": string(teleportYAML)},
		},
		teleportStatefulSet(meta, labels, in.teleportAgentVersion),
	}, InsideRouteObjects()...), nil
}

// teleportStatefulSet mirrors the teleport-kube-agent chart: a StatefulSet
// gives the replica the stable name its state Secret is keyed by.
func teleportStatefulSet(meta metav1.ObjectMeta, labels map[string]string, version string) *appsv1.StatefulSet {
	replicas := int32(1)
	nonRoot := true
	uid := int64(teleportUID)
	noEscalation := false
	readOnlyRoot := true

	fieldEnv := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}

	probe := func(path string) *corev1.Probe {
		return &corev1.Probe{
			ProbeHandler:     corev1.ProbeHandler{HTTPGet: &corev1.HTTPGetAction{Path: path, Port: intstr.FromString("diag")}},
			PeriodSeconds:    5,
			FailureThreshold: 6,
		}
	}

	container := corev1.Container{
		Name:  "teleport",
		Image: teleportImage + ":" + version,
		Args:  []string{fmt.Sprintf("--diag-addr=0.0.0.0:%d", teleportDiagPort)},
		Env: []corev1.EnvVar{
			fieldEnv("TELEPORT_REPLICA_NAME", "metadata.name"),
			fieldEnv("KUBE_NAMESPACE", "metadata.namespace"),
			{Name: "RELEASE_NAME", Value: TeleportAgentName},
		},
		Ports:          []corev1.ContainerPort{{Name: "diag", ContainerPort: teleportDiagPort, Protocol: corev1.ProtocolTCP}},
		LivenessProbe:  probe("/healthz"),
		ReadinessProbe: probe("/readyz"),
		Resources: corev1.ResourceRequirements{
			Requests: corev1.ResourceList{
				corev1.ResourceCPU:    resource.MustParse("50m"),
				corev1.ResourceMemory: resource.MustParse("128Mi"),
			},
		},
		SecurityContext: &corev1.SecurityContext{
			AllowPrivilegeEscalation: &noEscalation,
			ReadOnlyRootFilesystem:   &readOnlyRoot,
			RunAsNonRoot:             &nonRoot,
			RunAsUser:                &uid,
			Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
			SeccompProfile:           &corev1.SeccompProfile{Type: corev1.SeccompProfileTypeRuntimeDefault},
		},
		VolumeMounts: []corev1.VolumeMount{
			{Name: "config", MountPath: teleportConfigDir, ReadOnly: true},
			{Name: "auth-token", MountPath: teleportSecretsDir, ReadOnly: true},
			{Name: "data", MountPath: teleportDataDir},
		},
	}

	return &appsv1.StatefulSet{
		TypeMeta:   typeMeta("apps/v1", "StatefulSet"),
		ObjectMeta: meta,
		Spec: appsv1.StatefulSetSpec{
			Replicas:    &replicas,
			ServiceName: TeleportAgentName,
			Selector:    &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					ServiceAccountName: TeleportAgentName,
					// A single node schedules everything on the control plane.
					Tolerations: []corev1.Toleration{{Key: "node-role.kubernetes.io/control-plane", Operator: corev1.TolerationOpExists, Effect: corev1.TaintEffectNoSchedule}},
					Containers:  []corev1.Container{container},
					Volumes: []corev1.Volume{
						{Name: "config", VolumeSource: corev1.VolumeSource{ConfigMap: &corev1.ConfigMapVolumeSource{LocalObjectReference: corev1.LocalObjectReference{Name: TeleportAgentName}}}},
						{Name: "auth-token", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: TeleportJoinSecret}}},
						{Name: "data", VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{}}},
					},
				},
			},
		},
	}
}

func typeMeta(apiVersion, kind string) metav1.TypeMeta {
	return metav1.TypeMeta{APIVersion: apiVersion, Kind: kind}
}

func objectMeta(namespace, name string) metav1.ObjectMeta {
	return metav1.ObjectMeta{Namespace: namespace, Name: name}
}

func namespace(name string) *corev1.Namespace {
	return &corev1.Namespace{TypeMeta: typeMeta("v1", "Namespace"), ObjectMeta: metav1.ObjectMeta{Name: name}}
}

func secret(namespace, name string, data map[string][]byte) *corev1.Secret {
	return &corev1.Secret{
		TypeMeta:   typeMeta("v1", "Secret"),
		ObjectMeta: objectMeta(namespace, name),
		Type:       corev1.SecretTypeOpaque,
		Data:       data,
	}
}

// yamlStream renders objects as one multi-document YAML stream. The status
// the API types always carry is dropped: it is the server's to fill.
func yamlStream(objects []any) (string, error) {
	docs := make([]string, 0, len(objects))

	for _, obj := range objects {
		raw, err := json.Marshal(obj)
		if err != nil {
			return "", err
		}

		var generic map[string]any
		if err := json.Unmarshal(raw, &generic); err != nil {
			return "", err
		}

		delete(generic, "status")

		doc, err := sigsyaml.Marshal(generic)
		if err != nil {
			return "", err
		}

		docs = append(docs, string(doc))
	}

	return strings.Join(docs, "---\n"), nil
}

// InlineManifests returns the inline manifests of a rendered machine config.
func InlineManifests(cfg []byte) ([]Manifest, error) {
	provider, err := configloader.NewFromBytes(cfg)
	if err != nil {
		return nil, fmt.Errorf("read inline manifests: %w", errUnreadableConfig)
	}

	if provider.Cluster() == nil {
		return nil, errors.New("read inline manifests: config has no cluster section")
	}

	var manifests []Manifest
	for _, m := range provider.Cluster().InlineManifests() {
		manifests = append(manifests, Manifest{Name: m.Name(), Contents: m.Contents()})
	}

	return manifests, nil
}

// errUnreadableConfig replaces the loader's message, which may quote parts
// of a config full of keys.
var errUnreadableConfig = errors.New("not a valid Talos machine config")

// TeleportJoin returns the join token and Kubernetes cluster name the
// Teleport kube agent of a rendered machine config will join with; the
// sandbox's emulated node uses it to register the agent.
func TeleportJoin(cfg []byte) (token, cluster string, err error) {
	a, err := TeleportAgentOf(cfg)
	return a.Token, a.Cluster, err
}

// TeleportAgent is what a node's kube agent joins Teleport with.
type TeleportAgent struct {
	Token, Cluster string
	// Proxy is the Teleport proxy it joins (proxy_server, host:port).
	Proxy string
	// Labels are the static labels it puts on the kube cluster it registers.
	Labels map[string]string
}

// TeleportAgentOf reads the kube agent's join parameters from a machine
// config's inline manifests, as the agent itself would find them.
func TeleportAgentOf(cfg []byte) (TeleportAgent, error) {
	manifests, err := InlineManifests(cfg)
	if err != nil {
		return TeleportAgent{}, err
	}

	var a TeleportAgent
	var tokenFound, clusterFound bool

	for _, m := range manifests {
		switch m.Name {
		case ManifestTeleportToken:
			a.Token, tokenFound, err = findSecretValue(m.Contents, TeleportJoinSecret, TeleportTokenKey)
		case ManifestTeleportAgent:
			var tc teleportConfig
			tc, clusterFound, err = findTeleportConfig(m.Contents)
			a.Cluster, a.Labels, a.Proxy = tc.KubernetesService.KubeClusterName, tc.KubernetesService.Labels, tc.Teleport.ProxyServer
		}

		if err != nil {
			return TeleportAgent{}, fmt.Errorf("read teleport join parameters from inline manifest %s: %w", m.Name, err)
		}
	}

	if !tokenFound || !clusterFound {
		return TeleportAgent{}, fmt.Errorf("read teleport join parameters: inline manifests %s and %s are required", ManifestTeleportToken, ManifestTeleportAgent)
	}

	return a, nil
}

// splitYAML splits a multi-document stream into its non-empty documents.
func splitYAML(stream string) [][]byte {
	var docs [][]byte

	for _, doc := range bytes.Split([]byte("\n"+stream), []byte("\n---")) {
		if len(bytes.TrimSpace(doc)) > 0 {
			docs = append(docs, doc)
		}
	}

	return docs
}

func findSecretValue(stream, name, key string) (string, bool, error) {
	for _, doc := range splitYAML(stream) {
		var s corev1.Secret
		if err := sigsyaml.Unmarshal(doc, &s); err != nil {
			return "", false, errors.New("a document is not a Kubernetes object")
		}

		if s.Kind != "Secret" || s.Name != name {
			continue
		}

		if v, ok := s.Data[key]; ok {
			return string(v), true, nil
		}

		if v, ok := s.StringData[key]; ok {
			return v, true, nil
		}

		return "", false, fmt.Errorf("secret %s has no key %s", name, key)
	}

	return "", false, nil
}

func findTeleportConfig(stream string) (teleportConfig, bool, error) {
	for _, doc := range splitYAML(stream) {
		var cm corev1.ConfigMap
		if err := sigsyaml.Unmarshal(doc, &cm); err != nil {
			return teleportConfig{}, false, errors.New("a document is not a Kubernetes object")
		}

		if cm.Kind != "ConfigMap" || cm.Name != TeleportAgentName {
			continue
		}

		var tc teleportConfig
		if err := yaml.Unmarshal([]byte(cm.Data["teleport.yaml"]), &tc); err != nil {
			return teleportConfig{}, false, fmt.Errorf("configmap %s: teleport.yaml is not YAML", TeleportAgentName)
		}

		if tc.KubernetesService.KubeClusterName == "" {
			return teleportConfig{}, false, fmt.Errorf("configmap %s: teleport.yaml has no kubernetes_service.kube_cluster_name", TeleportAgentName)
		}

		return tc, true, nil
	}

	return teleportConfig{}, false, nil
}
