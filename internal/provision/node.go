package provision

import (
	"fmt"

	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// Role is what a node does in the cluster.
type Role string

const (
	ControlPlane Role = "controlplane"
	Worker       Role = "worker"
)

// Machine is what a topology tells the shared steps about the machine a
// node runs on: enough to name it in the summary, in hints and in undo.
type Machine struct {
	ID   string // the provider's ID (an Elastic Metal server ID)
	Zone string
}

// Node is one member of the cluster and everything the run learns about it.
// Each field is filled by one step; the promises let later work wait for a
// node's part without waiting for the whole phase.
type Node struct {
	Name  string
	Role  Role
	Index int // 1-based within its role

	// Machine is set by the topology in phase 1.
	Machine Machine
	// Address is the node's public IPv4, kept by the topology in phase 2 as
	// soon as it is known (long before the node is reachable).
	Address *pipeline.Promise[string]
	// Installed is kept by the topology once the machine's own install is
	// over and only the pivot to Talos remains: the earliest moment a join
	// token's TTL may start.
	Installed *pipeline.Promise[struct{}]

	// Rendered in phase 4 (see nodeconfig.go): the config applied in phase 5
	// and the one without the operator's openings applied in phase 6.
	config, lockdown []byte
	lockedDown       bool
}

func newNode(name string, role Role, index int) *Node {
	return &Node{Name: name, Role: role, Index: index,
		Address: pipeline.NewPromise[string](), Installed: pipeline.NewPromise[struct{}]()}
}

// IP is the node's address once phase 2 made it known ("" before).
func (n *Node) IP() string {
	ip, _ := n.Address.Peek()
	return ip
}

// planNodes names the cluster's nodes. A single-node cluster's only node
// carries the cluster's own name, as it always has.
func planNodes(cluster string, controlPlanes, workers int) []*Node {
	if controlPlanes == 1 && workers == 0 {
		return []*Node{newNode(cluster, ControlPlane, 1)}
	}
	var nodes []*Node
	for i := 1; i <= controlPlanes; i++ {
		nodes = append(nodes, newNode(fmt.Sprintf("%s-cp-%d", cluster, i), ControlPlane, i))
	}
	for i := 1; i <= workers; i++ {
		nodes = append(nodes, newNode(fmt.Sprintf("%s-worker-%d", cluster, i), Worker, i))
	}
	return nodes
}

// PlannedNode is one node as provision will name it, for plan.
type PlannedNode struct {
	Name string
	Role Role
}

// PlannedNodes names the nodes of a cluster of controlPlanes and workers
// exactly as provision does.
func PlannedNodes(cluster string, controlPlanes, workers int) []PlannedNode {
	var out []PlannedNode
	for _, n := range planNodes(cluster, max(controlPlanes, 1), workers) {
		out = append(out, PlannedNode{Name: n.Name, Role: n.Role})
	}
	return out
}

// controlPlanes are the nodes that run etcd and the API server.
func (p *Provisioner) controlPlanes() []*Node {
	var out []*Node
	for _, n := range p.nodes {
		if n.Role == ControlPlane {
			out = append(out, n)
		}
	}
	return out
}

// bootstrapNode is the one control plane that bootstraps etcd; the others join.
func (p *Provisioner) bootstrapNode() *Node { return p.controlPlanes()[0] }
