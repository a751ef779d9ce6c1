package emulator

import (
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"sync"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/util/httpstream"
	"k8s.io/apimachinery/pkg/util/httpstream/spdy"
)

// The pods/portforward subresource, over SPDY as kube-apiserver and the
// kubelet speak it (client-go tools/portforward is the client): the
// request is upgraded to SPDY/3.1 with the portforward.k8s.io protocol;
// for each forwarded connection the client opens an error stream and a
// data stream carrying the same requestID and port headers, and the
// kubelet connects the data stream to the port inside the pod's network
// namespace. Failures to connect are written to the error stream, in the
// kubelet's wording.
//
// The emulated pods run no processes, so only a hostNetwork pod's ports
// lead anywhere: they are its node's own (Options.DialNode), loopback
// included.

// portForwardProtocol is the one subprotocol version served (v1; the
// kubelet also serves only this one over SPDY).
const portForwardProtocol = "portforward.k8s.io"

// portForwardPath matches /api/v1/namespaces/NS/pods/NAME/portforward.
func portForwardPath(parts []string) (namespace, name string, ok bool) {
	if len(parts) == 7 && parts[0] == "api" && parts[1] == "v1" && parts[2] == "namespaces" && parts[4] == "pods" && parts[6] == "portforward" {
		return parts[3], parts[5], true
	}
	return "", "", false
}

func (s *Server) portForward(w http.ResponseWriter, r *http.Request, namespace, name string) {
	s.counters.Inc("create pods/portforward")
	if r.Method != http.MethodPost && r.Method != http.MethodGet {
		writeStatus(w, apierrors.NewMethodNotSupported(podsGR, r.Method))
		return
	}
	s.mu.Lock()
	obj := s.store[podsGR][key(namespace, name)]
	var pod *corev1.Pod
	if obj != nil {
		pod, _ = fromMap[corev1.Pod](obj)
	}
	s.mu.Unlock()
	switch {
	case pod == nil:
		writeStatus(w, apierrors.NewNotFound(podsGR, name))
		return
	case pod.Spec.NodeName == "":
		// kube-apiserver's answer for a pod not bound to a node.
		writeStatus(w, apierrors.NewBadRequest(fmt.Sprintf("pod %s does not have a host assigned", name)))
		return
	case pod.Status.Phase != corev1.PodRunning:
		// What a client sees when the kubelet no longer runs the pod.
		writeStatus(w, apierrors.NewBadRequest("unable to upgrade connection: pod does not exist"))
		return
	}
	if _, err := httpstream.Handshake(r, w, []string{portForwardProtocol}); err != nil {
		return // Handshake answered already
	}
	streams := make(chan httpstream.Stream)
	gone := make(chan struct{})
	conn := spdy.NewResponseUpgrader().UpgradeResponse(w, r, func(st httpstream.Stream, _ <-chan struct{}) error {
		select {
		case streams <- st:
			return nil
		case <-gone:
			return fmt.Errorf("port forward is over")
		}
	})
	if conn == nil {
		return // UpgradeResponse answered already
	}
	defer conn.Close()
	defer close(gone)
	ctx, cancel := context.WithCancel(r.Context())
	defer cancel()
	type pair struct{ data, errs httpstream.Stream }
	pairs := map[string]*pair{}
	var wg sync.WaitGroup
	defer wg.Wait()
	for {
		select {
		case <-conn.CloseChan():
			return
		case <-ctx.Done():
			return
		case st := <-streams:
			h := st.Headers()
			id := h.Get(corev1.PortForwardRequestIDHeader)
			p := pairs[id]
			if p == nil {
				p = &pair{}
				pairs[id] = p
			}
			switch h.Get(corev1.StreamType) {
			case corev1.StreamTypeData:
				p.data = st
			case corev1.StreamTypeError:
				p.errs = st
			default:
				st.Reset()
				continue
			}
			if p.data == nil || p.errs == nil {
				continue
			}
			delete(pairs, id)
			port, err := strconv.Atoi(h.Get(corev1.PortHeader))
			wg.Add(1)
			go func() {
				defer wg.Done()
				if err != nil || port <= 0 || port > 65535 {
					fmt.Fprintf(p.errs, "invalid port %q", h.Get(corev1.PortHeader))
					p.errs.Close()
					p.data.Reset()
					return
				}
				s.forwardStream(ctx, pod, port, p.data, p.errs)
			}()
		}
	}
}

// forwardStream connects one data stream to port in pod's network
// namespace and copies both ways until either side ends.
func (s *Server) forwardStream(ctx context.Context, pod *corev1.Pod, port int, data, errs httpstream.Stream) {
	defer data.Close()
	var target net.Conn
	var err error
	switch {
	case !pod.Spec.HostNetwork:
		err = fmt.Errorf("dial tcp4 127.0.0.1:%d: connect: connection refused", port)
	case s.opts.DialNode == nil:
		err = fmt.Errorf("node %s is not reachable from this emulator", pod.Spec.NodeName)
	default:
		target, err = s.opts.DialNode(ctx, pod.Spec.NodeName, port)
	}
	if err != nil {
		// The kubelet's message (pkg/kubelet/cri/streaming/portforward).
		fmt.Fprintf(errs, "error forwarding port %d to pod %s, uid %v: %v", port, pod.Name, pod.UID, err)
		errs.Close()
		return
	}
	errs.Close()
	defer target.Close()
	done := make(chan struct{}, 2)
	go func() { _, _ = io.Copy(target, data); done <- struct{}{} }()
	go func() { _, _ = io.Copy(data, target); done <- struct{}{} }()
	select {
	case <-done:
	case <-ctx.Done():
	}
}
