package sandbox

import (
	"context"
	"fmt"
	"net"
	"net/http"
	"slices"
	"strings"
	"syscall"
	"time"

	kubeemulator "github.com/rawkode/rawkode-cloud/internal/kube/emulator"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/platform"
	"github.com/rawkode/rawkode-cloud/internal/talos"
)

// Realistic durations of the emulated cluster (before the speed applies).
const (
	podStart      = 20 * time.Second // image pull, start, readiness
	cniReady      = 5 * time.Second  // CNI pod running → node network ready
	operatorFirst = 10 * time.Second // an operator's first reconcile
)

// kubeFor is the Kubernetes API of a cluster, created when its first node
// comes up configured. Called by a node with its own lock held.
func (s *Sandbox) kubeFor(cluster, nodeIP string) *kubeemulator.Server {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return nil
	}
	s.nodeCluster[nodeIP] = cluster
	if k, ok := s.kubes[cluster]; ok {
		return k
	}
	k := kubeemulator.New(kubeemulator.Options{
		PodStartDelay: s.Scaled(podStart), CNIReadyDelay: s.Scaled(cniReady), OperatorDelay: s.Scaled(operatorFirst),
		Faults:  s.faults,
		OnEvent: func(name string, at time.Time) { s.tl.add("kubernetes: "+name, cluster, at) },
		DialNode: func(ctx context.Context, node string, port int) (net.Conn, error) {
			return s.dialFromNode(ctx, cluster, node, port)
		},
	})
	s.kubes[cluster] = k
	return k
}

func (s *Sandbox) nodeClusterOf(n *talos.Node) string {
	if n == nil {
		return ""
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.nodeCluster[n.PublicIP().String()]
}

// dropKube takes a cluster's API away with its last node.
func (s *Sandbox) dropKube(n *talos.Node, cluster string) {
	if n == nil || cluster == "" {
		return
	}
	s.mu.Lock()
	delete(s.nodeCluster, n.PublicIP().String())
	last := !slices.Contains(mapValues(s.nodeCluster), cluster)
	k := s.kubes[cluster]
	if last {
		delete(s.kubes, cluster)
	}
	s.mu.Unlock()
	if last && k != nil {
		k.Close()
	}
}

func mapValues(m map[string]string) []string {
	out := make([]string, 0, len(m))
	for _, v := range m {
		out = append(out, v)
	}
	return out
}

// agentPodRuns says whether the Teleport kube agent's pod would run: it
// needs the API server and the pod network, so it waits for its
// StatefulSet to be ready in the cluster's API.
func (s *Sandbox) agentPodRuns(cluster string) bool {
	s.mu.Lock()
	k := s.kubes[cluster]
	s.mu.Unlock()
	return k != nil && k.WorkloadReady("StatefulSet", machineconfig.TeleportNamespace, machineconfig.TeleportAgentName)
}

// kubeInventory merges what every cluster's API holds.
func (s *Sandbox) kubeInventory() kubeemulator.Inventory {
	s.mu.Lock()
	kubes := make([]*kubeemulator.Server, 0, len(s.kubes))
	for _, k := range s.kubes {
		kubes = append(kubes, k)
	}
	s.mu.Unlock()
	inv := kubeemulator.Inventory{Nodes: []kubeemulator.NodeInventory{}, Objects: []string{}}
	var defaults []string
	for _, k := range kubes {
		i := k.Inventory()
		inv.Nodes = append(inv.Nodes, i.Nodes...)
		inv.Objects = append(inv.Objects, i.Objects...)
		if i.DefaultStorageClass != "" {
			defaults = append(defaults, i.DefaultStorageClass)
		}
	}
	slices.Sort(inv.Objects)
	slices.Sort(defaults)
	inv.DefaultStorageClass = strings.Join(defaults, ",")
	return inv
}

// fetchManifest is the nodes' download of extra manifests: nothing leaves
// the machine, so only the Flux Operator's release manifest is known, and
// answered with the documented stand-in (its upstream is AGPL, see
// kube/emulator.FluxOperatorStandIn).
func fetchManifest(_ context.Context, url string) (string, error) {
	if url == platform.FluxOperatorInstallURL {
		return kubeemulator.FluxOperatorStandIn, nil
	}
	return "", fmt.Errorf("GET %s: the sandbox has no internet", url)
}

// kubeBackend is a cluster's API as its Teleport kube agent reaches it
// from inside the cluster: only while the agent's pod runs there, and as
// the agent's service account, whose ClusterRole (in the agent's inline
// manifest) lets it impersonate the Teleport user's Kubernetes groups.
func (s *Sandbox) kubeBackend(cluster string) http.Handler {
	s.mu.Lock()
	k := s.kubes[cluster]
	s.mu.Unlock()
	if k == nil || !s.agentPodRuns(cluster) {
		return nil
	}
	return k.As(kubeemulator.ServiceAccount(machineconfig.TeleportNamespace, machineconfig.TeleportAgentName))
}

// dialFromNode is a connection from inside the named Kubernetes node of
// cluster (a hostNetwork pod's network namespace) to port on loopback.
func (s *Sandbox) dialFromNode(ctx context.Context, cluster, node string, port int) (net.Conn, error) {
	// Nodes take their own lock before the sandbox's: ask them outside it.
	s.mu.Lock()
	var members []*talos.Node
	for ip, c := range s.nodeCluster {
		if n := s.nodes[ip]; c == cluster && n != nil {
			members = append(members, n)
		}
	}
	s.mu.Unlock()
	for _, n := range members {
		if n.KubeNodeName() == node {
			return n.DialLoopback(ctx, port)
		}
	}
	return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.EHOSTUNREACH}
}
