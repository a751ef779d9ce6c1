// Package emulator is a stand-in for a cluster's Kubernetes API: it speaks
// the real REST protocol (discovery, get, list, create, update, delete, with
// kube-apiserver's status errors and warnings), so client-go talks to it as
// to a real API server, and it plays the parts of the cluster that decide
// the order of things at first boot.
//
// What it checks, as kube-apiserver would: every built-in object is decoded
// strictly into its k8s.io/api type; every custom resource is pruned,
// defaulted and validated against the structural schema (OpenAPI and CEL
// rules) of its CRD, with apiextensions-apiserver's own code; a custom
// resource whose CRD does not exist is not served (404, and a NoMatch in a
// client's REST mapper); objects go only into namespaces that exist.
//
// What it simulates (see cluster.go): nodes stay NotReady until a CNI
// DaemonSet runs on them; pods that need the pod network do not start before
// it; Cilium's operator registers Cilium's CRDs once it runs; a FluxInstance
// becomes Ready once the Flux Operator and the controllers it installs run.
package emulator

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/labels"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/apimachinery/pkg/util/uuid"
	"k8s.io/apimachinery/pkg/version"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
)

// Fault points of the emulated cluster.
//
//	kubernetes.cni   never: the CNI's pods run but never make a node's pod
//	                 network ready, so every node stays NotReady and pods
//	                 that need the network never start.
//	kubernetes.flux  never: the Flux controllers run but the FluxInstance
//	                 never becomes Ready (as when the sync source cannot be
//	                 read).
const (
	FaultCNI  = "kubernetes.cni"
	FaultFlux = "kubernetes.flux"
)

// FaultPoints lists the fault points, for help texts.
func FaultPoints() []string { return []string{FaultCNI, FaultFlux} }

// Options configure a Server. Zero delays make everything happen at once.
type Options struct {
	// GitVersion is what /version reports; default v1.35.1.
	GitVersion string
	// PodStartDelay is how long a workload's pods take from schedulable to
	// ready (image pull, start, readiness probe).
	PodStartDelay time.Duration
	// CNIReadyDelay is the time from a CNI's pod running on a node until
	// the node's pod network is ready.
	CNIReadyDelay time.Duration
	// OperatorDelay is the time from an operator running until it has done
	// its first work (Cilium's CRDs registered, Flux installed).
	OperatorDelay time.Duration
	Faults        *emulator.Faults
	Now           func() time.Time
	// DialNode connects to port on the named node from the node itself (a
	// hostNetwork pod's view: the node's network namespace, loopback
	// included). Port-forwards to hostNetwork pods use it; nil makes them
	// fail as to a node that cannot be reached.
	DialNode func(ctx context.Context, node string, port int) (net.Conn, error)
	// OnEvent is told of each simulated milestone (the Event* names) as it
	// happens. It runs with the server's lock held: it must return quickly
	// and must not call the Server.
	OnEvent func(name string, at time.Time)
}

// Milestones reported through Options.OnEvent.
const (
	EventNodeRegistered = "node-registered:" // + node name
	EventNodeReady      = "node-ready:"      // + node name
	// EventCNIRunning: the CNI's pod runs on the node (+ node name); the
	// node's pod network is ready CNIReadyDelay later (EventNodeReady).
	EventCNIRunning     = "cni-running:"
	EventWorkloadReady  = "workload-ready:" // + Kind/namespace/name
	EventCRDsRegistered = "cilium-crds-registered"
	EventFluxReady      = "flux-ready:" // + namespace/name
)

var crdGR = schema.GroupResource{Group: "apiextensions.k8s.io", Resource: "customresourcedefinitions"}

// Server is the emulated API server and the cluster behind it.
type Server struct {
	opts     Options
	counters *emulator.Counters

	mu      sync.Mutex
	closed  bool
	dec     *Decoder
	store   map[schema.GroupResource]map[string]map[string]any // key: namespace/name
	rv      int
	timers  []*time.Timer
	cluster clusterState
	// served caches resourcesLocked; nil after a CRD came or went.
	served []resource
	// crdTyped holds every established CRD, by name.
	crdTyped map[string]*apiextensionsv1.CustomResourceDefinition
}

// New returns an empty cluster: the default namespaces exist, no node does.
func New(opts Options) *Server {
	if opts.GitVersion == "" {
		opts.GitVersion = "v1.35.1"
	}

	if opts.Now == nil {
		opts.Now = time.Now
	}

	s := &Server{
		opts:     opts,
		counters: emulator.NewCounters(),
		dec:      NewDecoder(),
		store:    map[schema.GroupResource]map[string]map[string]any{},
		cluster:  newClusterState(),
		crdTyped: map[string]*apiextensionsv1.CustomResourceDefinition{},
	}

	s.mu.Lock()
	defer s.mu.Unlock()

	for _, ns := range []string{"default", "kube-system", "kube-public", "kube-node-lease"} {
		_ = s.createObjectLocked(map[string]any{"apiVersion": "v1", "kind": "Namespace", "metadata": map[string]any{"name": ns}})
	}

	return s
}

// Counters counts the requests served, by verb and resource.
func (s *Server) Counters() *emulator.Counters { return s.counters }

// Close stops the simulation's timers.
func (s *Server) Close() {
	s.mu.Lock()
	defer s.mu.Unlock()

	s.closed = true
	for _, t := range s.timers {
		t.Stop()
	}
}

func key(namespace, name string) string { return namespace + "/" + name }

func (s *Server) sortedKeysLocked(gr schema.GroupResource) []string {
	keys := make([]string, 0, len(s.store[gr]))
	for k := range s.store[gr] {
		keys = append(keys, k)
	}

	slices.Sort(keys)

	return keys
}

func toCRD(obj map[string]any) (*apiextensionsv1.CustomResourceDefinition, error) {
	var crd apiextensionsv1.CustomResourceDefinition
	if err := runtime.DefaultUnstructuredConverter.FromUnstructured(obj, &crd); err != nil {
		return nil, err
	}

	return &crd, nil
}

// ServeHTTP serves the REST API.
func (s *Server) ServeHTTP(w http.ResponseWriter, r *http.Request) {
	path := strings.Trim(r.URL.Path, "/")
	parts := strings.Split(path, "/")

	if _, err := s.admit(r); err != nil {
		s.counters.Inc("forbidden")
		writeStatus(w, err)
		return
	}

	if ns, name, ok := portForwardPath(parts); ok {
		s.portForward(w, r, ns, name)
		return
	}

	switch {
	case path == "version":
		s.counters.Inc("version")
		writeJSON(w, http.StatusOK, s.version())
	case path == "api":
		s.counters.Inc("discovery")
		writeJSON(w, http.StatusOK, &metav1.APIVersions{TypeMeta: metav1.TypeMeta{Kind: "APIVersions"}, Versions: []string{"v1"}})
	case path == "apis":
		s.counters.Inc("discovery")
		s.mu.Lock()
		list := s.apiGroupListLocked()
		s.mu.Unlock()
		writeJSON(w, http.StatusOK, list)
	case parts[0] == "api" && len(parts) >= 2:
		s.serveGroupVersion(w, r, schema.GroupVersion{Version: parts[1]}, parts[2:])
	case parts[0] == "apis" && len(parts) >= 3:
		s.serveGroupVersion(w, r, schema.GroupVersion{Group: parts[1], Version: parts[2]}, parts[3:])
	default:
		writeStatus(w, apierrors.NewNotFound(schema.GroupResource{}, path))
	}
}

func (s *Server) version() *version.Info {
	v := strings.TrimPrefix(s.opts.GitVersion, "v")
	major, rest, _ := strings.Cut(v, ".")
	minor, _, _ := strings.Cut(rest, ".")

	return &version.Info{Major: major, Minor: minor, GitVersion: s.opts.GitVersion, Platform: "linux/amd64"}
}

// request is one parsed resource request.
type request struct {
	res         resource
	namespace   string
	name        string
	subresource string
}

func (s *Server) serveGroupVersion(w http.ResponseWriter, r *http.Request, gv schema.GroupVersion, rest []string) {
	s.mu.Lock()
	defer s.mu.Unlock()

	if len(rest) == 0 {
		s.counters.Inc("discovery")

		list, ok := s.apiResourceListLocked(gv)
		if !ok {
			writeStatus(w, apierrors.NewNotFound(schema.GroupResource{Group: gv.Group}, gv.String()))
			return
		}

		writeJSON(w, http.StatusOK, list)

		return
	}

	var req request

	if rest[0] == "namespaces" && len(rest) >= 3 {
		req.namespace, rest = rest[1], rest[2:]
	}

	res, ok := s.findResourceLocked(gv.Group, gv.Version, rest[0])
	if !ok {
		// kube-apiserver answers an unknown resource path with a bare 404.
		writeStatus(w, apierrors.NewNotFound(schema.GroupResource{Group: gv.Group, Resource: rest[0]}, ""))
		return
	}

	req.res = res
	if len(rest) > 1 {
		req.name = rest[1]
	}

	if len(rest) > 2 {
		req.subresource = rest[2]
	}

	if res.namespaced != (req.namespace != "") && !(res.namespaced && req.name == "" && r.Method == http.MethodGet) {
		writeStatus(w, apierrors.NewNotFound(res.gvr.GroupResource(), req.name))
		return
	}

	verb := strings.ToLower(r.Method)
	if r.Method == http.MethodGet && req.name == "" {
		verb = "list"
	}

	s.counters.Inc(verb + " " + res.gvr.Resource)

	if r.URL.Query().Get("watch") == "true" || r.URL.Query().Get("watch") == "1" {
		writeStatus(w, apierrors.NewMethodNotSupported(res.gvr.GroupResource(), "watch"))
		return
	}

	switch {
	case r.Method == http.MethodGet && req.name == "":
		s.list(w, r, req)
	case r.Method == http.MethodGet:
		s.get(w, req)
	case r.Method == http.MethodPost && req.name == "":
		s.create(w, r, req)
	case r.Method == http.MethodPut && req.name != "":
		s.update(w, r, req)
	case r.Method == http.MethodDelete && req.name != "":
		s.delete(w, req)
	default:
		writeStatus(w, apierrors.NewMethodNotSupported(res.gvr.GroupResource(), strings.ToLower(r.Method)))
	}
}

// view is a stored object as served at the requested version.
func view(obj map[string]any, res resource) map[string]any {
	out := runtime.DeepCopyJSON(obj)
	out["apiVersion"] = res.gvr.GroupVersion().String()

	return out
}

func (s *Server) get(w http.ResponseWriter, req request) {
	obj, ok := s.store[req.res.gvr.GroupResource()][key(req.namespace, req.name)]
	if !ok || (req.subresource != "" && req.subresource != "status") {
		writeStatus(w, apierrors.NewNotFound(req.res.gvr.GroupResource(), req.name))
		return
	}

	writeJSON(w, http.StatusOK, view(obj, req.res))
}

func (s *Server) list(w http.ResponseWriter, r *http.Request, req request) {
	selector, err := labels.Parse(r.URL.Query().Get("labelSelector"))
	if err != nil {
		writeStatus(w, apierrors.NewBadRequest(err.Error()))
		return
	}

	gr := req.res.gvr.GroupResource()
	items := []any{}

	for _, k := range s.sortedKeysLocked(gr) {
		obj := s.store[gr][k]
		ns, _, _ := strings.Cut(k, "/")

		if req.namespace != "" && ns != req.namespace {
			continue
		}

		if !selector.Matches(labels.Set(stringMap(nested(obj, "metadata", "labels")))) {
			continue
		}

		items = append(items, view(obj, req.res))
	}

	writeJSON(w, http.StatusOK, map[string]any{
		"apiVersion": req.res.gvr.GroupVersion().String(),
		"kind":       req.res.kind + "List",
		"metadata":   map[string]any{"resourceVersion": strconv.Itoa(s.rv)},
		"items":      items,
	})
}

func (s *Server) readBody(w http.ResponseWriter, r *http.Request, req request) (*Decoded, bool) {
	body, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 3<<20))
	if err != nil {
		writeStatus(w, apierrors.NewRequestEntityTooLargeError(err.Error()))
		return nil, false
	}

	var raw json.RawMessage

	switch ct, _, _ := strings.Cut(r.Header.Get("Content-Type"), ";"); ct {
	case "", "application/json":
		if err := json.Unmarshal(body, &raw); err != nil {
			writeStatus(w, apierrors.NewBadRequest("the body of the request could not be decoded: "+err.Error()))
			return nil, false
		}
	case "application/vnd.kubernetes.protobuf":
		// client-go's default for built-in kinds: protobuf carries no
		// unknown fields, so only the JSON path has strictness to check.
		if raw, err = s.dec.protobufToJSON(body); err != nil {
			writeStatus(w, apierrors.NewBadRequest("the body of the request could not be decoded: "+err.Error()))
			return nil, false
		}
	default:
		writeStatus(w, apierrors.NewGenericServerResponse(http.StatusUnsupportedMediaType, "create", req.res.gvr.GroupResource(), "",
			"the body of the request was in an unknown format - accepted media types include: application/json, application/vnd.kubernetes.protobuf", 0, false))
		return nil, false
	}

	mode := FieldValidation(r.URL.Query().Get("fieldValidation"))
	if mode == "" {
		mode = FieldValidationWarn
	}

	d, err := s.dec.Decode(raw, mode)
	if err != nil {
		writeStatus(w, s.decodeError(req, err))
		return nil, false
	}

	if d.GVK != req.res.gvk() {
		writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("the API version in the data (%s) does not match the expected API version (%s)",
			d.GVK.GroupVersion(), req.res.gvr.GroupVersion())))
		return nil, false
	}

	if ns, _ := nested(d.Object, "metadata", "namespace").(string); ns != "" && ns != req.namespace {
		writeStatus(w, apierrors.NewBadRequest("the namespace of the provided object does not match the namespace sent on the request"))
		return nil, false
	}

	for _, warning := range d.Warnings {
		w.Header().Add("Warning", `299 - "`+strings.ReplaceAll(warning, `"`, `\"`)+`"`)
	}

	return d, true
}

func (s *Server) decodeError(req request, err error) error {
	var noKind *NoKindError

	switch {
	case errors.As(err, &noKind):
		return apierrors.NewNotFound(req.res.gvr.GroupResource(), "")
	case errors.Is(err, errInvalid):
		return newInvalid(req.res.gvk().GroupKind(), req.name, strings.TrimPrefix(err.Error(), errInvalid.Error()+": "))
	default:
		return apierrors.NewBadRequest(strings.TrimPrefix(err.Error(), errBadRequest.Error()+": "))
	}
}

func (s *Server) create(w http.ResponseWriter, r *http.Request, req request) {
	d, ok := s.readBody(w, r, req)
	if !ok {
		return
	}

	if req.namespace != "" {
		setNested(d.Object, req.namespace, "metadata", "namespace")
	}

	if err := s.storeNewLocked(req.res, d.Object); err != nil {
		writeStatus(w, err)
		return
	}

	writeJSON(w, http.StatusCreated, view(d.Object, req.res))
}

// newInvalid is kube-apiserver's 422 answer for an object that fails
// validation.
func newInvalid(gk schema.GroupKind, name, msg string) error {
	return &apierrors.StatusError{ErrStatus: metav1.Status{
		Status:  metav1.StatusFailure,
		Code:    http.StatusUnprocessableEntity,
		Reason:  metav1.StatusReasonInvalid,
		Message: fmt.Sprintf("%s %q is invalid: %s", gk.String(), name, msg),
		Details: &metav1.StatusDetails{Name: name, Group: gk.Group, Kind: gk.Kind},
	}}
}

// storeNewLocked stores a decoded object, as the create path after
// admission does.
func (s *Server) storeNewLocked(res resource, obj map[string]any) error {
	gr := res.gvr.GroupResource()
	meta, _ := obj["metadata"].(map[string]any)
	ns, _ := meta["namespace"].(string)
	name, _ := meta["name"].(string)

	if name == "" {
		if gen, _ := meta["generateName"].(string); gen != "" {
			name = gen + strconv.Itoa(s.rv+1)
			meta["name"] = name
		}
	}

	if res.namespaced {
		if _, ok := s.store[schema.GroupResource{Resource: "namespaces"}][key("", ns)]; !ok {
			return apierrors.NewNotFound(schema.GroupResource{Resource: "namespaces"}, ns)
		}
	}

	if _, exists := s.store[gr][key(ns, name)]; exists {
		return apierrors.NewAlreadyExists(gr, name)
	}

	// A CRD the cluster registers itself arrives already compiled.
	if _, compiled := s.crdTyped[name]; gr == crdGR && !compiled {
		if err := s.establishCRDLocked(obj); err != nil {
			return err
		}
	}

	s.rv++
	meta["uid"] = string(uuid.NewUUID())
	meta["resourceVersion"] = strconv.Itoa(s.rv)
	meta["creationTimestamp"] = s.opts.Now().UTC().Format(time.RFC3339)
	meta["generation"] = int64(1)

	if gr.Resource == "namespaces" && gr.Group == "" {
		obj["status"] = map[string]any{"phase": "Active"}
	}

	if s.store[gr] == nil {
		s.store[gr] = map[string]map[string]any{}
	}

	s.store[gr][key(ns, name)] = obj
	s.reconcileLocked()

	return nil
}

// createObjectLocked creates an object on behalf of the cluster itself (a
// controller, Talos's bootstrap): same decoding, no client.
func (s *Server) createObjectLocked(obj map[string]any) error {
	raw, err := json.Marshal(obj)
	if err != nil {
		return err
	}

	d, err := s.dec.Decode(raw, FieldValidationStrict)
	if err != nil {
		return err
	}

	res, ok := s.resourceForKindLocked(d.GVK)
	if !ok {
		return &NoKindError{GVK: d.GVK}
	}

	if !res.namespaced {
		if meta, ok := d.Object["metadata"].(map[string]any); ok {
			delete(meta, "namespace")
		}
	}

	return s.storeNewLocked(res, d.Object)
}

func (s *Server) resourceForKindLocked(gvk schema.GroupVersionKind) (resource, bool) {
	for _, r := range s.resourcesLocked() {
		if r.gvk() == gvk {
			return r, true
		}
	}

	return resource{}, false
}

// establishCRDLocked makes a new CRD's kinds servable and marks it
// Established, as the apiextensions controllers do.
func (s *Server) establishCRDLocked(obj map[string]any) error {
	crd, err := toCRD(obj)
	if err != nil {
		return apierrors.NewBadRequest(err.Error())
	}

	for _, r := range s.resourcesLocked() {
		if r.crd == nil && r.gvr.Group == crd.Spec.Group && r.gvr.Resource == crd.Spec.Names.Plural {
			return newInvalid(schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}, crd.Name,
				"spec.group: a built-in resource already has this name")
		}
	}

	compiled, err := compileCRD(crd)
	if err != nil {
		return newInvalid(schema.GroupKind{Group: "apiextensions.k8s.io", Kind: "CustomResourceDefinition"}, crd.Name, err.Error())
	}

	s.establishCompiledLocked(obj, crd, compiled)

	return nil
}

// establishCompiledLocked serves a compiled CRD and writes its status.
func (s *Server) establishCompiledLocked(obj map[string]any, crd *apiextensionsv1.CustomResourceDefinition, compiled *compiledCRD) {
	s.dec.addCompiled(compiled)
	s.crdTyped[crd.Name] = crd
	s.served = nil

	now := s.opts.Now().UTC().Format(time.RFC3339)
	names, _ := runtime.DefaultUnstructuredConverter.ToUnstructured(&crd.Spec.Names)
	obj["status"] = map[string]any{
		"acceptedNames": names,
		"storedVersions": func() []any {
			for _, v := range crd.Spec.Versions {
				if v.Storage {
					return []any{v.Name}
				}
			}
			return nil
		}(),
		"conditions": []any{
			map[string]any{"type": "NamesAccepted", "status": "True", "reason": "NoConflicts", "lastTransitionTime": now},
			map[string]any{"type": "Established", "status": "True", "reason": "InitialNamesAccepted", "lastTransitionTime": now},
		},
	}
}

func (s *Server) update(w http.ResponseWriter, r *http.Request, req request) {
	gr := req.res.gvr.GroupResource()

	old, ok := s.store[gr][key(req.namespace, req.name)]
	if !ok {
		writeStatus(w, apierrors.NewNotFound(gr, req.name))
		return
	}

	d, ok := s.readBody(w, r, req)
	if !ok {
		return
	}

	meta, _ := d.Object["metadata"].(map[string]any)
	oldMeta, _ := old["metadata"].(map[string]any)

	if rv, _ := meta["resourceVersion"].(string); rv != "" && rv != oldMeta["resourceVersion"] {
		writeStatus(w, apierrors.NewConflict(gr, req.name, errors.New("the object has been modified; please apply your changes to the latest version and try again")))
		return
	}

	s.rv++
	for _, k := range []string{"uid", "creationTimestamp", "generation"} {
		meta[k] = oldMeta[k]
	}

	meta["namespace"] = oldMeta["namespace"]
	meta["resourceVersion"] = strconv.Itoa(s.rv)

	if req.subresource == "status" {
		merged := runtime.DeepCopyJSON(old)
		merged["status"] = d.Object["status"]
		merged["metadata"] = meta
		d.Object = merged
	} else {
		d.Object["status"] = old["status"]
	}

	s.store[gr][key(req.namespace, req.name)] = d.Object
	s.reconcileLocked()
	writeJSON(w, http.StatusOK, view(d.Object, req.res))
}

func (s *Server) delete(w http.ResponseWriter, req request) {
	gr := req.res.gvr.GroupResource()

	obj, ok := s.store[gr][key(req.namespace, req.name)]
	if !ok {
		writeStatus(w, apierrors.NewNotFound(gr, req.name))
		return
	}

	delete(s.store[gr], key(req.namespace, req.name))

	if gr == crdGR {
		if crd, err := toCRD(obj); err == nil {
			s.dec.RemoveCRD(crd)
			delete(s.crdTyped, crd.Name)
			s.served = nil
			delete(s.store, schema.GroupResource{Group: crd.Spec.Group, Resource: crd.Spec.Names.Plural})
		}
	}

	s.reconcileLocked()
	writeJSON(w, http.StatusOK, &metav1.Status{TypeMeta: metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}, Status: metav1.StatusSuccess,
		Details: &metav1.StatusDetails{Name: req.name, Kind: gr.Resource, UID: types.UID(stringOf(nested(obj, "metadata", "uid")))}})
}

func writeJSON(w http.ResponseWriter, code int, v any) {
	w.Header().Set("Content-Type", "application/json")
	w.WriteHeader(code)
	_ = json.NewEncoder(w).Encode(v)
}

func writeStatus(w http.ResponseWriter, err error) {
	var se *apierrors.StatusError
	if !errors.As(err, &se) {
		se = apierrors.NewInternalError(err)
	}

	st := se.ErrStatus
	st.TypeMeta = metav1.TypeMeta{Kind: "Status", APIVersion: "v1"}
	writeJSON(w, int(st.Code), &st)
}

// nested reads a value at a path of map keys.
func nested(obj map[string]any, path ...string) any {
	var cur any = obj

	for _, p := range path {
		m, ok := cur.(map[string]any)
		if !ok {
			return nil
		}

		cur = m[p]
	}

	return cur
}

func setNested(obj map[string]any, value any, path ...string) {
	cur := obj

	for _, p := range path[:len(path)-1] {
		next, ok := cur[p].(map[string]any)
		if !ok {
			next = map[string]any{}
			cur[p] = next
		}

		cur = next
	}

	cur[path[len(path)-1]] = value
}

func stringOf(v any) string {
	s, _ := v.(string)
	return s
}

func stringMap(v any) map[string]string {
	m, _ := v.(map[string]any)
	out := make(map[string]string, len(m))

	for k, v := range m {
		out[k] = stringOf(v)
	}

	return out
}
