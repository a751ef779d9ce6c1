package emulator

import (
	"slices"
	"strings"
)

// NodeInventory is one node and whether it is Ready.
type NodeInventory struct {
	Name  string `json:"name"`
	Ready bool   `json:"ready"`
}

// Inventory is what the cluster holds: its nodes, and every object as
// Kind/namespace/name (Kind/name when cluster-scoped), sorted. The default
// namespaces every cluster has are left out.
type Inventory struct {
	Nodes   []NodeInventory `json:"nodes"`
	Objects []string        `json:"objects"`
	// DefaultStorageClass names the StorageClasses annotated as the
	// default (comma-separated, sorted, when there are several: Kubernetes
	// then picks the newest, which is rarely what was meant).
	DefaultStorageClass string `json:"default_storage_class,omitempty"`
}

// defaultClassAnnotation marks the default StorageClass
// (k8s.io/api/storage/v1 "storageclass.kubernetes.io/is-default-class").
const defaultClassAnnotation = "storageclass.kubernetes.io/is-default-class"

var defaultNamespaces = []string{"default", "kube-system", "kube-public", "kube-node-lease"}

// Inventory lists what the cluster holds now.
func (s *Server) Inventory() Inventory {
	s.mu.Lock()
	defer s.mu.Unlock()

	inv := Inventory{Nodes: []NodeInventory{}, Objects: []string{}}

	for _, name := range s.nodeNamesLocked() {
		inv.Nodes = append(inv.Nodes, NodeInventory{Name: name, Ready: s.nodeReadyLocked(name)})
	}

	var defaults []string
	for gr, objects := range s.store {
		if gr == nodesGR {
			continue
		}

		for k, obj := range objects {
			kind := stringOf(obj["kind"])
			ns, name, _ := strings.Cut(k, "/")
			if kind == "StorageClass" && isDefaultClass(obj) {
				defaults = append(defaults, name)
			}

			switch {
			case kind == "Namespace" && slices.Contains(defaultNamespaces, name):
				continue
			case ns == "":
				inv.Objects = append(inv.Objects, kind+"/"+name)
			default:
				inv.Objects = append(inv.Objects, kind+"/"+ns+"/"+name)
			}
		}
	}

	slices.Sort(inv.Objects)
	slices.Sort(defaults)
	inv.DefaultStorageClass = strings.Join(defaults, ",")

	return inv
}

// Has reports whether an object exists, named as in the inventory.
func (s *Server) Has(object string) bool {
	return slices.Contains(s.Inventory().Objects, object)
}

// WorkloadReady reports whether a workload's pods all run (for a
// DaemonSet: on every node), e.g. for a sandbox that lets the Teleport
// agent register only once its pod would really run.
func (s *Server) WorkloadReady(kind, namespace, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()

	wkey := kind + "/" + key(namespace, name)
	if kind != "DaemonSet" {
		return s.cluster.ready[wkey]
	}

	nodes := s.nodeNamesLocked()
	for _, n := range nodes {
		if !s.cluster.ready[wkey+"@"+n] {
			return false
		}
	}

	return len(nodes) > 0
}

// FluxInstanceReady reports whether a FluxInstance has condition Ready=True.
func (s *Server) FluxInstanceReady(namespace, name string) bool {
	s.mu.Lock()
	defer s.mu.Unlock()

	obj := s.store[fluxGR][key(namespace, name)]
	conds, _ := nested(obj, "status", "conditions").([]any)

	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Ready" && m["status"] == "True" {
			return true
		}
	}

	return false
}

// isDefaultClass reads the annotation as the API server's admission plugin
// does: exactly "true".
func isDefaultClass(obj map[string]any) bool {
	meta, _ := obj["metadata"].(map[string]any)
	ann, _ := meta["annotations"].(map[string]any)
	return ann[defaultClassAnnotation] == "true"
}
