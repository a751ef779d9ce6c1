package emulator

import (
	"fmt"
	"io/fs"
	"slices"
	"strings"
	"sync"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	ciliumchart "github.com/rawkode/rawkode-cloud/third_party/cilium"
)

// What the simulation keeps beside the stored objects.
type clusterState struct {
	// networkReady: node name → its pod network is ready.
	networkReady map[string]bool
	// pending: work scheduled on a timer, by key, so it is scheduled once.
	pending map[string]bool
	// ready: workload key (Kind/ns/name, @node for DaemonSets) → its pods run.
	ready map[string]bool
	// done: one-off effects that happened (CRDs registered, Flux installed).
	done map[string]bool
	// kubeletDown: node name → its kubelet stopped (the node is rebooting).
	kubeletDown map[string]bool
}

func newClusterState() clusterState {
	return clusterState{networkReady: map[string]bool{}, pending: map[string]bool{}, ready: map[string]bool{}, done: map[string]bool{}, kubeletDown: map[string]bool{}}
}

var (
	nodesGR        = schema.GroupResource{Resource: "nodes"}
	deploymentsGR  = schema.GroupResource{Group: "apps", Resource: "deployments"}
	daemonSetsGR   = schema.GroupResource{Group: "apps", Resource: "daemonsets"}
	statefulSetsGR = schema.GroupResource{Group: "apps", Resource: "statefulsets"}
	jobsGR         = schema.GroupResource{Group: "batch", Resource: "jobs"}
	fluxGR         = schema.GroupResource{Group: "fluxcd.controlplane.io", Resource: "fluxinstances"}
)

// cniConfDir is where a CNI plugin writes its config on the host; the
// kubelet reports the node's network ready once a config is there. A
// DaemonSet that mounts it from the host is taken to be the CNI.
const cniConfDir = "/etc/cni/net.d"

// AddNode registers a node, as its kubelet does once the API server
// answers: NotReady, because no CNI has configured its pod network yet.
func (s *Server) AddNode(name string, controlPlane bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()

	labels := map[string]any{"kubernetes.io/hostname": name, "kubernetes.io/os": "linux"}
	if controlPlane {
		labels["node-role.kubernetes.io/control-plane"] = ""
	}

	node := map[string]any{
		"apiVersion": "v1", "kind": "Node",
		"metadata": map[string]any{"name": name, "labels": labels},
	}

	if err := s.createObjectLocked(node); err != nil {
		return fmt.Errorf("register node %s: %w", name, err)
	}

	s.setNodeReadyLocked(name, false)
	s.eventLocked(EventNodeRegistered + name)
	s.reconcileLocked()

	return nil
}

// setNodeReadyLocked writes the node's Ready condition with the kubelet's
// own wording.
func (s *Server) setNodeReadyLocked(name string, ready bool) {
	node := s.store[nodesGR][key("", name)]
	if node == nil {
		return
	}

	cond := map[string]any{
		"type": "Ready", "status": "False", "reason": "KubeletNotReady",
		"message":            "container runtime network not ready: NetworkReady=false reason:NetworkPluginNotReady message:Network plugin returns error: cni plugin not initialized",
		"lastTransitionTime": s.opts.Now().UTC().Format(time.RFC3339),
	}

	if ready {
		cond["status"], cond["reason"], cond["message"] = "True", "KubeletReady", "kubelet is posting ready status"
	}

	node["status"] = map[string]any{"conditions": []any{cond}}
}

func (s *Server) eventLocked(name string) {
	if s.opts.OnEvent != nil {
		s.opts.OnEvent(name, s.opts.Now())
	}
}

// afterLocked runs fn with the lock held after d, once per pending key.
func (s *Server) afterLocked(pendingKey string, d time.Duration, fn func()) {
	s.afterPreparedLocked(pendingKey, d, nil, fn)
}

// afterPreparedLocked is afterLocked with work that needs no lock (prepare)
// done first, so that the API keeps answering meanwhile.
func (s *Server) afterPreparedLocked(pendingKey string, d time.Duration, prepare, fn func()) {
	if s.cluster.pending[pendingKey] || s.closed {
		return
	}

	s.cluster.pending[pendingKey] = true
	run := func() {
		if prepare != nil {
			prepare()
		}

		s.mu.Lock()
		defer s.mu.Unlock()

		if s.closed {
			return
		}

		fn()
		s.reconcileLocked()
	}

	if d <= 0 {
		// Still asynchronous: a controller never acts inside the request
		// that triggered it.
		d = time.Microsecond
	}

	s.timers = append(s.timers, time.AfterFunc(d, run))
}

func (s *Server) nodeNamesLocked() []string {
	var out []string

	for _, k := range s.sortedKeysLocked(nodesGR) {
		out = append(out, strings.TrimPrefix(k, "/"))
	}

	return out
}

// podStatus says whether a pod template can start on a node now, and if
// not, why (the reason a pod would be stuck with).
func (s *Server) podBlockedLocked(namespace string, spec corev1.PodSpec, node string) string {
	if !spec.HostNetwork && !s.cluster.networkReady[node] {
		return "network not ready"
	}

	if sa := spec.ServiceAccountName; sa != "" && sa != "default" {
		if _, ok := s.store[schema.GroupResource{Resource: "serviceaccounts"}][key(namespace, sa)]; !ok {
			return "serviceaccount " + sa + " not found"
		}
	}

	for _, v := range spec.Volumes {
		switch {
		case v.Secret != nil && (v.Secret.Optional == nil || !*v.Secret.Optional):
			if _, ok := s.store[schema.GroupResource{Resource: "secrets"}][key(namespace, v.Secret.SecretName)]; !ok {
				return "secret " + v.Secret.SecretName + " not found"
			}
		case v.ConfigMap != nil && (v.ConfigMap.Optional == nil || !*v.ConfigMap.Optional):
			if _, ok := s.store[schema.GroupResource{Resource: "configmaps"}][key(namespace, v.ConfigMap.Name)]; !ok {
				return "configmap " + v.ConfigMap.Name + " not found"
			}
		}
	}

	return ""
}

func fromMap[T any](obj map[string]any) (*T, error) {
	var out T
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &out); err != nil {
		return nil, err
	}

	return &out, nil
}

// reconcileLocked moves the cluster forward: every controller of the
// simulation looks at the current state once. Work that takes time is put on
// a timer that reconciles again when it is done.
func (s *Server) reconcileLocked() {
	nodes := s.nodeNamesLocked()

	for _, k := range s.sortedKeysLocked(daemonSetsGR) {
		s.reconcileDaemonSetLocked(k, nodes)
	}

	for _, k := range s.sortedKeysLocked(deploymentsGR) {
		s.reconcileDeploymentLocked(k, nodes)
	}

	for _, k := range s.sortedKeysLocked(statefulSetsGR) {
		s.reconcileStatefulSetLocked(k, nodes)
	}

	for _, k := range s.sortedKeysLocked(jobsGR) {
		s.reconcileJobLocked(k, nodes)
	}

	for _, k := range s.sortedKeysLocked(fluxGR) {
		s.reconcileFluxInstanceLocked(k)
	}

	for _, k := range s.sortedKeysLocked(podsGR) {
		s.reconcilePodLocked(k)
	}
}

// startLocked schedules a workload's pods (on node) to become ready after
// the pod start delay; it reports whether they are ready already.
func (s *Server) startLocked(wkey string, blocked string) bool {
	if s.cluster.ready[wkey] {
		return true
	}

	if blocked != "" {
		return false
	}

	s.afterLocked("start:"+wkey, s.opts.PodStartDelay, func() {
		s.cluster.ready[wkey] = true
		s.eventLocked(EventWorkloadReady + wkey)
	})

	return false
}

func (s *Server) reconcileDaemonSetLocked(k string, nodes []string) {
	obj := s.store[daemonSetsGR][k]

	ds, err := fromMap[appsv1.DaemonSet](obj)
	if err != nil {
		return
	}

	isCNI := mountsHostPath(ds.Spec.Template.Spec, cniConfDir)
	ready := 0

	for _, node := range nodes {
		wkey := "DaemonSet/" + k + "@" + node
		if !s.startLocked(wkey, s.podBlockedLocked(ds.Namespace, ds.Spec.Template.Spec, node)) {
			continue
		}

		ready++

		if isCNI && !s.cluster.networkReady[node] && !s.opts.Faults.Peek(FaultCNI, emulator.Never) {
			if !s.cluster.pending["cni:"+node] {
				s.eventLocked(EventCNIRunning + node)
			}
			s.afterLocked("cni:"+node, s.opts.CNIReadyDelay, func() {
				if s.opts.Faults.Peek(FaultCNI, emulator.Never) {
					return
				}

				s.cluster.networkReady[node] = true
				s.setNodeReadyLocked(node, true)
				s.eventLocked(EventNodeReady + node)
			})
		}
	}

	n := int64(len(nodes))
	obj["status"] = map[string]any{
		"desiredNumberScheduled": n, "currentNumberScheduled": n, "updatedNumberScheduled": n,
		"numberReady": int64(ready), "numberAvailable": int64(ready), "numberUnavailable": n - int64(ready),
		"numberMisscheduled": int64(0), "observedGeneration": nested(obj, "metadata", "generation"),
	}
}

func mountsHostPath(spec corev1.PodSpec, path string) bool {
	for _, v := range spec.Volumes {
		if v.HostPath != nil && strings.TrimSuffix(v.HostPath.Path, "/") == path {
			return true
		}
	}

	return false
}

// anyNodeLocked is the first node a pod could start on, with the reason it
// cannot when none can.
func (s *Server) schedulableLocked(namespace string, spec corev1.PodSpec, nodes []string) string {
	if len(nodes) == 0 {
		return "no nodes available to schedule pods"
	}

	var reason string

	for _, node := range nodes {
		if reason = s.podBlockedLocked(namespace, spec, node); reason == "" {
			return ""
		}
	}

	return reason
}

func (s *Server) reconcileDeploymentLocked(k string, nodes []string) {
	obj := s.store[deploymentsGR][k]

	d, err := fromMap[appsv1.Deployment](obj)
	if err != nil {
		return
	}

	replicas := int64(1)
	if d.Spec.Replicas != nil {
		replicas = int64(*d.Spec.Replicas)
	}

	wkey := "Deployment/" + k
	blocked := s.schedulableLocked(d.Namespace, d.Spec.Template.Spec, nodes)
	ready := s.startLocked(wkey, blocked)

	available := "False"
	readyN := int64(0)
	msg := "Deployment does not have minimum availability."

	if ready {
		available, readyN, msg = "True", replicas, "Deployment has minimum availability."
	}

	obj["status"] = map[string]any{
		"observedGeneration": nested(obj, "metadata", "generation"),
		"replicas":           replicas, "updatedReplicas": replicas,
		"readyReplicas": readyN, "availableReplicas": readyN, "unavailableReplicas": replicas - readyN,
		"conditions": []any{map[string]any{"type": "Available", "status": available, "reason": "MinimumReplicasAvailable", "message": msg}},
	}

	if ready {
		s.operatorEffectsLocked(d)
	}
}

func (s *Server) reconcileStatefulSetLocked(k string, nodes []string) {
	obj := s.store[statefulSetsGR][k]

	st, err := fromMap[appsv1.StatefulSet](obj)
	if err != nil {
		return
	}

	replicas := int64(1)
	if st.Spec.Replicas != nil {
		replicas = int64(*st.Spec.Replicas)
	}

	readyN := int64(0)
	if s.startLocked("StatefulSet/"+k, s.schedulableLocked(st.Namespace, st.Spec.Template.Spec, nodes)) {
		readyN = replicas
	}

	obj["status"] = map[string]any{
		"observedGeneration": nested(obj, "metadata", "generation"),
		"replicas":           replicas, "currentReplicas": replicas, "updatedReplicas": replicas,
		"readyReplicas": readyN, "availableReplicas": readyN,
	}
}

func (s *Server) reconcileJobLocked(k string, nodes []string) {
	obj := s.store[jobsGR][k]

	job, err := fromMap[batchv1.Job](obj)
	if err != nil {
		return
	}

	if s.startLocked("Job/"+k, s.schedulableLocked(job.Namespace, job.Spec.Template.Spec, nodes)) {
		obj["status"] = map[string]any{"succeeded": int64(1),
			"conditions": []any{map[string]any{"type": "Complete", "status": "True"}}}
	}
}

// operatorEffectsLocked is what the operators the platform deploys do once
// they run.
func (s *Server) operatorEffectsLocked(d *appsv1.Deployment) {
	for _, c := range d.Spec.Template.Spec.Containers {
		switch {
		case strings.HasPrefix(c.Image, "quay.io/cilium/operator"):
			// Cilium's operator registers its CRDs at start-up (it is
			// started with --skip-crd-creation=false by the chart).
			var crds []preparedCRD

			s.afterPreparedLocked("cilium-crds", s.opts.OperatorDelay,
				func() { crds = ciliumCRDs() },
				func() { s.registerCiliumCRDsLocked(crds) })
		case strings.HasPrefix(c.Image, "ghcr.io/controlplaneio-fluxcd/flux-operator"):
			s.cluster.done["flux-operator"] = true
		}
	}
}

// preparedCRD is a CRD decoded, validated and compiled once.
type preparedCRD struct {
	obj      map[string]any
	crd      *apiextensionsv1.CustomResourceDefinition
	compiled *compiledCRD
}

// ciliumCRDs are the CRDs of Cilium 1.19, from the release's own files.
// Decoding, validating and compiling them costs about a second of CPU (two
// of them are 400 kB of schema), so it is done once per process and shared
// by every emulated cluster; the result is never modified.
var ciliumCRDs = sync.OnceValue(func() []preparedCRD {
	dec := NewDecoder()
	names, _ := fs.Glob(ciliumchart.CRDs, "crds/*.yaml")
	slices.Sort(names)

	var out []preparedCRD

	for _, name := range names {
		data, err := fs.ReadFile(ciliumchart.CRDs, name)
		if err != nil {
			continue
		}

		raw, err := yaml.YAMLToJSON(data)
		if err != nil {
			continue
		}

		d, err := dec.Decode(raw, FieldValidationStrict)
		if err != nil {
			continue // a test checks that every one of them decodes
		}

		crd, err := toCRD(d.Object)
		if err != nil {
			continue
		}

		compiled, err := compileCRD(crd)
		if err != nil {
			continue
		}

		out = append(out, preparedCRD{obj: d.Object, crd: crd, compiled: compiled})
	}

	return out
})

// registerCiliumCRDsLocked creates every Cilium CRD that does not exist
// yet, as the operator does at start-up (the chart starts it with
// --skip-crd-creation=false).
func (s *Server) registerCiliumCRDsLocked(crds []preparedCRD) {
	for _, p := range crds {
		if _, exists := s.store[crdGR][key("", p.crd.Name)]; exists {
			continue
		}

		obj := runtime.DeepCopyJSON(p.obj)
		s.establishCompiledLocked(obj, p.crd, p.compiled)
		_ = s.storeNewLocked(resource{gvr: gvr("apiextensions.k8s.io", "v1", "customresourcedefinitions"), kind: "CustomResourceDefinition"}, obj)
	}

	s.eventLocked(EventCRDsRegistered)
}

// reconcileFluxInstanceLocked plays the Flux Operator: once it runs, it
// installs the instance's controllers; once they run and the sync source's
// credentials exist, the instance is Ready.
func (s *Server) reconcileFluxInstanceLocked(k string) {
	obj := s.store[fluxGR][k]
	ns, _, _ := strings.Cut(k, "/")

	setCondition := func(status, reason, msg string) {
		obj["status"] = map[string]any{"conditions": []any{
			map[string]any{"type": "Ready", "status": status, "reason": reason, "message": msg,
				"lastTransitionTime": s.opts.Now().UTC().Format(time.RFC3339)},
		}}
	}

	if !s.cluster.done["flux-operator"] {
		return // nobody reconciles it yet: no status at all
	}

	installKey := "flux-install:" + k
	if !s.cluster.done[installKey] {
		setCondition("Unknown", "Progressing", "Reconciliation in progress")
		s.afterLocked(installKey, s.opts.OperatorDelay, func() {
			s.installFluxLocked(ns, obj)
			s.cluster.done[installKey] = true
		})

		return
	}

	for _, c := range stringSlice(nested(obj, "spec", "components")) {
		if !s.cluster.ready["Deployment/"+key(ns, c)] {
			setCondition("Unknown", "Progressing", "Waiting for "+c)
			return
		}
	}

	if secret := stringOf(nested(obj, "spec", "sync", "pullSecret")); secret != "" {
		if _, ok := s.store[schema.GroupResource{Resource: "secrets"}][key(ns, secret)]; !ok {
			setCondition("False", "ReconciliationFailed", fmt.Sprintf("GitRepository/%s/%s: secrets %q not found", ns, ns, secret))
			return
		}
	}

	if s.opts.Faults.Peek(FaultFlux, emulator.Never) {
		setCondition("False", "ReconciliationFailed", fmt.Sprintf("Kustomization/%s/%s: health check failed", ns, ns))
		return
	}

	if !s.cluster.done["flux-ready:"+k] {
		s.cluster.done["flux-ready:"+k] = true
		s.eventLocked(EventFluxReady + k)
	}

	setCondition("True", "ReconciliationSucceeded", "Reconciliation finished in 1s")
}

// installFluxLocked creates the Deployments of the instance's components.
func (s *Server) installFluxLocked(ns string, instance map[string]any) {
	registry := stringOf(nested(instance, "spec", "distribution", "registry"))

	for _, c := range stringSlice(nested(instance, "spec", "components")) {
		labels := map[string]any{"app": c}
		_ = s.createObjectLocked(map[string]any{
			"apiVersion": "apps/v1", "kind": "Deployment",
			"metadata": map[string]any{"name": c, "namespace": ns, "labels": labels},
			"spec": map[string]any{
				"replicas": int64(1),
				"selector": map[string]any{"matchLabels": labels},
				"template": map[string]any{
					"metadata": map[string]any{"labels": labels},
					"spec": map[string]any{"containers": []any{
						map[string]any{"name": "manager", "image": registry + "/" + c},
					}},
				},
			},
		})
	}
}

func stringSlice(v any) []string {
	list, _ := v.([]any)
	out := make([]string, 0, len(list))

	for _, e := range list {
		out = append(out, stringOf(e))
	}

	return out
}
