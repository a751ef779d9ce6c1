package emulator

import "time"

// SetKubeletRunning tells the cluster that a node's kubelet stopped (the
// node went down to reboot) or runs again. Stopped, the node is NotReady
// with the node lifecycle controller's wording for a kubelet that stopped
// posting status; running again, it is Ready as soon as its pod network is
// (a node whose CNI was configured before the reboot is Ready at once).
// An unknown node is ignored: its kubelet has not registered yet.
func (s *Server) SetKubeletRunning(name string, running bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	node := s.store[nodesGR][key("", name)]
	if node == nil {
		return
	}
	s.cluster.kubeletDown[name] = !running
	if running {
		defer s.reconcileLocked() // its pods start again
		s.setNodeReadyLocked(name, s.cluster.networkReady[name])
		if s.cluster.networkReady[name] {
			s.eventLocked(EventNodeReady + name)
		}
		return
	}
	s.shutDownPodsLocked(name)
	node["status"] = map[string]any{"conditions": []any{map[string]any{
		"type": "Ready", "status": "Unknown", "reason": "NodeStatusUnknown",
		"message":            "Kubelet stopped posting node status.",
		"lastTransitionTime": s.opts.Now().UTC().Format(time.RFC3339),
	}}}
}

// nodeReadyLocked reads the node's Ready condition as it stands.
func (s *Server) nodeReadyLocked(name string) bool {
	node := s.store[nodesGR][key("", name)]
	status, _ := node["status"].(map[string]any)
	conds, _ := status["conditions"].([]any)
	for _, c := range conds {
		if m, ok := c.(map[string]any); ok && m["type"] == "Ready" {
			return m["status"] == "True"
		}
	}
	return false
}
