package emulator

import (
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/runtime/schema"
)

// Pods a client creates itself. The simulation runs workloads' pods
// without storing them (cluster.go); a Pod object created through the API
// is one a client wants to use — like `kubectl debug node/…`, a pod bound
// to its node by spec.nodeName, which skips the scheduler. Such a pod is
// Pending until its node's kubelet starts it (after PodStartDelay, once
// the node's kubelet runs and, unless the pod uses the host's network, the
// node's pod network is ready), then Running. A pod without spec.nodeName
// stays Pending: the emulator has no scheduler for bare pods.
//
// When a node shuts down (SetKubeletRunning false), the kubelet's graceful
// node shutdown terminates its pods: phase Failed with the kubelet's
// reason and message (pkg/kubelet/nodeshutdown: "Terminated", "Pod was
// terminated in response to imminent node shutdown."). A pod whose
// restartPolicy restarts it goes back to Pending and starts again once the
// kubelet is back; one with restartPolicy Never stays Failed.

var podsGR = schema.GroupResource{Resource: "pods"}

const (
	nodeShutdownReason  = "Terminated"
	nodeShutdownMessage = "Pod was terminated in response to imminent node shutdown."
)

func (s *Server) reconcilePodLocked(k string) {
	obj := s.store[podsGR][k]
	pod, err := fromMap[corev1.Pod](obj)
	if err != nil || (pod.Status.Phase != "" && pod.Status.Phase != corev1.PodPending) {
		return
	}
	if pod.Status.Phase == "" {
		st := map[string]any{"phase": string(corev1.PodPending)}
		if pod.Spec.NodeName != "" {
			st["conditions"] = []any{map[string]any{"type": "PodScheduled", "status": "True",
				"lastTransitionTime": s.opts.Now().UTC().Format(time.RFC3339)}}
		}
		obj["status"] = st
	}
	node := pod.Spec.NodeName
	if node == "" || s.podStartBlockedLocked(pod) != "" {
		return
	}
	startKey := "pod:" + string(pod.UID)
	s.afterLocked(startKey, s.opts.PodStartDelay, func() {
		cur := s.store[podsGR][k]
		if cur == nil || stringOf(nested(cur, "metadata", "uid")) != string(pod.UID) || stringOf(nested(cur, "status", "phase")) != string(corev1.PodPending) {
			return
		}
		if s.podStartBlockedLocked(pod) != "" {
			delete(s.cluster.pending, startKey) // tried again on the next reconcile
			return
		}
		now := s.opts.Now().UTC().Format(time.RFC3339)
		conds := []any{}
		for _, t := range []string{"PodScheduled", "Initialized", "ContainersReady", "Ready"} {
			conds = append(conds, map[string]any{"type": t, "status": "True", "lastTransitionTime": now})
		}
		cur["status"] = map[string]any{"phase": string(corev1.PodRunning), "conditions": conds, "startTime": now}
	})
}

// podStartBlockedLocked says why a bound pod cannot start on its node now.
func (s *Server) podStartBlockedLocked(pod *corev1.Pod) string {
	node := pod.Spec.NodeName
	switch {
	case s.store[nodesGR][key("", node)] == nil:
		return "node " + node + " not found"
	case s.cluster.kubeletDown[node]:
		return "kubelet of " + node + " not running"
	}
	return s.podBlockedLocked(pod.Namespace, pod.Spec, node)
}

// shutDownPodsLocked is the graceful node shutdown of node's pods.
func (s *Server) shutDownPodsLocked(node string) {
	for _, k := range s.sortedKeysLocked(podsGR) {
		obj := s.store[podsGR][k]
		if stringOf(nested(obj, "spec", "nodeName")) != node {
			continue
		}
		phase := stringOf(nested(obj, "status", "phase"))
		if phase != string(corev1.PodRunning) && phase != string(corev1.PodPending) {
			continue
		}
		if stringOf(nested(obj, "spec", "restartPolicy")) == string(corev1.RestartPolicyNever) {
			obj["status"] = map[string]any{"phase": string(corev1.PodFailed), "reason": nodeShutdownReason, "message": nodeShutdownMessage}
			continue
		}
		obj["status"] = map[string]any{"phase": string(corev1.PodPending)}
		// A new start, under a new key: the kubelet starts it again.
		delete(s.cluster.pending, "pod:"+stringOf(nested(obj, "metadata", "uid")))
	}
}

// PodPhase is a pod's phase ("" when there is no such pod), for tests.
func (s *Server) PodPhase(namespace, name string) string {
	s.mu.Lock()
	defer s.mu.Unlock()
	return stringOf(nested(s.store[podsGR][key(namespace, name)], "status", "phase"))
}
