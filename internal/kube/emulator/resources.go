package emulator

import (
	"slices"
	"strings"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// resource is one REST resource the server serves.
type resource struct {
	gvr        schema.GroupVersionResource
	kind       string
	namespaced bool
	// crd is set for custom resources.
	crd *apiextensionsv1.CustomResourceDefinition
}

func (r resource) gvk() schema.GroupVersionKind { return r.gvr.GroupVersion().WithKind(r.kind) }

// builtinResources are the built-in resources served: what Talos's
// bootstrap manifests, the Cilium and democratic-csi charts, the Teleport
// agent and the Flux Operator create, and what verification reads. A kind outside this list is
// not served, as a kind of a disabled API group would not be.
var builtinResources = []resource{
	{gvr: gvr("", "v1", "namespaces"), kind: "Namespace"},
	{gvr: gvr("", "v1", "nodes"), kind: "Node"},
	{gvr: gvr("", "v1", "pods"), kind: "Pod", namespaced: true},
	{gvr: gvr("", "v1", "services"), kind: "Service", namespaced: true},
	{gvr: gvr("", "v1", "secrets"), kind: "Secret", namespaced: true},
	{gvr: gvr("", "v1", "configmaps"), kind: "ConfigMap", namespaced: true},
	{gvr: gvr("", "v1", "serviceaccounts"), kind: "ServiceAccount", namespaced: true},
	{gvr: gvr("", "v1", "persistentvolumeclaims"), kind: "PersistentVolumeClaim", namespaced: true},
	{gvr: gvr("apps", "v1", "deployments"), kind: "Deployment", namespaced: true},
	{gvr: gvr("apps", "v1", "daemonsets"), kind: "DaemonSet", namespaced: true},
	{gvr: gvr("apps", "v1", "statefulsets"), kind: "StatefulSet", namespaced: true},
	{gvr: gvr("batch", "v1", "jobs"), kind: "Job", namespaced: true},
	{gvr: gvr("batch", "v1", "cronjobs"), kind: "CronJob", namespaced: true},
	{gvr: gvr("rbac.authorization.k8s.io", "v1", "clusterroles"), kind: "ClusterRole"},
	{gvr: gvr("rbac.authorization.k8s.io", "v1", "clusterrolebindings"), kind: "ClusterRoleBinding"},
	{gvr: gvr("rbac.authorization.k8s.io", "v1", "roles"), kind: "Role", namespaced: true},
	{gvr: gvr("rbac.authorization.k8s.io", "v1", "rolebindings"), kind: "RoleBinding", namespaced: true},
	{gvr: gvr("policy", "v1", "poddisruptionbudgets"), kind: "PodDisruptionBudget", namespaced: true},
	{gvr: gvr("networking.k8s.io", "v1", "networkpolicies"), kind: "NetworkPolicy", namespaced: true},
	{gvr: gvr("coordination.k8s.io", "v1", "leases"), kind: "Lease", namespaced: true},
	{gvr: gvr("scheduling.k8s.io", "v1", "priorityclasses"), kind: "PriorityClass"},
	{gvr: gvr("storage.k8s.io", "v1", "storageclasses"), kind: "StorageClass"},
	{gvr: gvr("storage.k8s.io", "v1", "csidrivers"), kind: "CSIDriver"},
	{gvr: gvr("apiextensions.k8s.io", "v1", "customresourcedefinitions"), kind: "CustomResourceDefinition"},
}

func gvr(group, version, res string) schema.GroupVersionResource {
	return schema.GroupVersionResource{Group: group, Version: version, Resource: res}
}

// resourcesLocked is every resource served now: the built-ins and the
// served versions of every established CRD.
func (s *Server) resourcesLocked() []resource {
	if s.served == nil {
		s.served = s.computeResourcesLocked()
	}

	return s.served
}

// computeResourcesLocked builds the served list; it is cached until a CRD
// comes or goes, as decoding big CRDs on every request would be slow.
func (s *Server) computeResourcesLocked() []resource {
	out := append([]resource(nil), builtinResources...)

	names := make([]string, 0, len(s.crdTyped))
	for name := range s.crdTyped {
		names = append(names, name)
	}

	slices.Sort(names)

	for _, name := range names {
		crd := s.crdTyped[name]

		for _, v := range crd.Spec.Versions {
			if !v.Served {
				continue
			}

			out = append(out, resource{
				gvr:        gvr(crd.Spec.Group, v.Name, crd.Spec.Names.Plural),
				kind:       crd.Spec.Names.Kind,
				namespaced: crd.Spec.Scope == apiextensionsv1.NamespaceScoped,
				crd:        crd,
			})
		}
	}

	return out
}

func (s *Server) findResourceLocked(group, version, res string) (resource, bool) {
	for _, r := range s.resourcesLocked() {
		if r.gvr.Group == group && r.gvr.Version == version && r.gvr.Resource == res {
			return r, true
		}
	}

	return resource{}, false
}

// discovery documents, in the legacy (non-aggregated) form client-go falls
// back to when the server does not offer the aggregated one.

func (s *Server) apiGroupListLocked() *metav1.APIGroupList {
	list := &metav1.APIGroupList{TypeMeta: metav1.TypeMeta{Kind: "APIGroupList", APIVersion: "v1"}}
	index := map[string]int{}

	for _, r := range s.resourcesLocked() {
		if r.gvr.Group == "" {
			continue
		}

		gv := metav1.GroupVersionForDiscovery{GroupVersion: r.gvr.GroupVersion().String(), Version: r.gvr.Version}

		i, ok := index[r.gvr.Group]
		if !ok {
			index[r.gvr.Group] = len(list.Groups)
			list.Groups = append(list.Groups, metav1.APIGroup{Name: r.gvr.Group, PreferredVersion: gv, Versions: []metav1.GroupVersionForDiscovery{gv}})

			continue
		}

		// The first version seen stays preferred: for a CRD, its first
		// listed version, as kube-apiserver orders them.
		if g := &list.Groups[i]; !containsGV(g.Versions, gv) {
			g.Versions = append(g.Versions, gv)
		}
	}

	return list
}

func containsGV(list []metav1.GroupVersionForDiscovery, gv metav1.GroupVersionForDiscovery) bool {
	for _, v := range list {
		if v.GroupVersion == gv.GroupVersion {
			return true
		}
	}

	return false
}

func (s *Server) apiResourceListLocked(gv schema.GroupVersion) (*metav1.APIResourceList, bool) {
	list := &metav1.APIResourceList{
		TypeMeta:     metav1.TypeMeta{Kind: "APIResourceList", APIVersion: "v1"},
		GroupVersion: gv.String(),
	}
	found := false

	for _, r := range s.resourcesLocked() {
		if r.gvr.GroupVersion() != gv {
			continue
		}

		found = true
		verbs := metav1.Verbs{"create", "delete", "get", "list", "update"}
		singular := strings.ToLower(r.kind)

		if r.crd != nil {
			singular = r.crd.Spec.Names.Singular
		}

		list.APIResources = append(list.APIResources, metav1.APIResource{
			Name: r.gvr.Resource, SingularName: singular, Namespaced: r.namespaced, Kind: r.kind, Verbs: verbs,
		})

		if r.kind == "Deployment" || r.kind == "DaemonSet" || r.kind == "StatefulSet" || r.kind == "Node" || r.crd != nil {
			list.APIResources = append(list.APIResources, metav1.APIResource{
				Name: r.gvr.Resource + "/status", Namespaced: r.namespaced, Kind: r.kind, Verbs: metav1.Verbs{"get", "update"},
			})
		}
	}

	return list, found
}
