package emulator_test

import (
	"bufio"
	"context"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/tools/portforward"
	"k8s.io/client-go/transport/spdy"

	kubeemulator "github.com/rawkode/rawkode-cloud/internal/kube/emulator"
	"github.com/rawkode/rawkode-cloud/internal/testwait"
)

// echoNode is a node whose port 50000 echoes lines with a prefix.
func echoNode(t *testing.T) func(ctx context.Context, node string, port int) (net.Conn, error) {
	t.Helper()
	return func(ctx context.Context, node string, port int) (net.Conn, error) {
		if node != "cp-1" || port != 50000 {
			return nil, fmt.Errorf("dial tcp 127.0.0.1:%d: connect: connection refused", port)
		}
		a, b := net.Pipe()
		go func() {
			defer b.Close()
			sc := bufio.NewScanner(b)
			for sc.Scan() {
				fmt.Fprintf(b, "%s says %s\n", node, sc.Text())
			}
		}()
		return a, nil
	}
}

func hostPod(name, node string) *corev1.Pod {
	return &corev1.Pod{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: "kube-system"},
		Spec: corev1.PodSpec{NodeName: node, HostNetwork: true, RestartPolicy: corev1.RestartPolicyNever,
			Containers: []corev1.Container{{Name: "pause", Image: "registry.k8s.io/pause:3.10"}}},
	}
}

// forward opens a port-forward to pod's port 50000 with client-go, the way
// kubectl port-forward does, and returns the local address.
func forward(t *testing.T, cfg *rest.Config, pod string) (string, chan struct{}, <-chan error) {
	t.Helper()
	rt, upgrader, err := spdy.RoundTripperFor(cfg)
	if err != nil {
		t.Fatal(err)
	}
	cs := kubernetes.NewForConfigOrDie(cfg)
	u := cs.CoreV1().RESTClient().Post().Resource("pods").Namespace("kube-system").Name(pod).SubResource("portforward").URL()
	dialer := spdy.NewDialer(upgrader, &http.Client{Transport: rt}, http.MethodPost, u)
	stop, ready := make(chan struct{}), make(chan struct{})
	fw, err := portforward.NewOnAddresses(dialer, []string{"127.0.0.1"}, []string{"0:50000"}, stop, ready, io.Discard, io.Discard)
	if err != nil {
		t.Fatal(err)
	}
	done := make(chan error, 1)
	go func() { done <- fw.ForwardPorts() }()
	select {
	case <-ready:
	case err := <-done:
		close(stop)
		return "", nil, oneErr(err)
	case <-time.After(30 * time.Second):
		t.Fatal("port-forward not ready")
	}
	ports, err := fw.GetPorts()
	if err != nil {
		t.Fatal(err)
	}
	return fmt.Sprintf("127.0.0.1:%d", ports[0].Local), stop, done
}

func oneErr(err error) <-chan error {
	c := make(chan error, 1)
	c <- err
	return c
}

func TestPortForwardReachesAHostNetworkPodsNode(t *testing.T) {
	t.Parallel()
	srv := kubeemulator.New(kubeemulator.Options{DialNode: echoNode(t)})
	t.Cleanup(srv.Close)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	cfg := &rest.Config{Host: hs.URL}
	cs := kubernetes.NewForConfigOrDie(cfg)
	ctx := context.Background()

	if err := srv.AddNode("cp-1", true); err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Pods("kube-system").Create(ctx, hostPod("apid", "cp-1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	testwait.For(t, settle, "the pod to run", func() bool { return srv.PodPhase("kube-system", "apid") == "Running" })

	addr, stop, _ := forward(t, cfg, "apid")
	defer close(stop)
	for i := range 2 { // two connections through one forward
		c, err := net.Dial("tcp", addr)
		if err != nil {
			t.Fatal(err)
		}
		fmt.Fprintf(c, "hello %d\n", i)
		line, err := bufio.NewReader(c).ReadString('\n')
		c.Close()
		if err != nil || line != fmt.Sprintf("cp-1 says hello %d\n", i) {
			t.Fatalf("through the forward: %q, %v", line, err)
		}
	}

	// The node shuts down: the pod (restartPolicy Never) is terminated and
	// a new port-forward is refused, as the kubelet no longer runs it.
	srv.SetKubeletRunning("cp-1", false)
	if got := srv.PodPhase("kube-system", "apid"); got != "Failed" {
		t.Fatalf("pod after node shutdown: %s, want Failed", got)
	}
	if _, _, done := forward(t, cfg, "apid"); done == nil {
		t.Fatal("a port-forward to a terminated pod was accepted")
	} else if err := <-done; err == nil || !strings.Contains(err.Error(), "pod does not exist") {
		t.Fatalf("port-forward to a terminated pod: %v", err)
	}

	// A new pod on the node starts only once its kubelet is back.
	if _, err := cs.CoreV1().Pods("kube-system").Create(ctx, hostPod("apid-2", "cp-1"), metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	if got := srv.PodPhase("kube-system", "apid-2"); got != "Pending" {
		t.Fatalf("pod on a node whose kubelet is down: %s, want Pending", got)
	}
	srv.SetKubeletRunning("cp-1", true)
	testwait.For(t, settle, "the new pod to run", func() bool { return srv.PodPhase("kube-system", "apid-2") == "Running" })
}

func TestAPodNetworkPodWaitsForTheNodesNetwork(t *testing.T) {
	t.Parallel()
	srv := kubeemulator.New(kubeemulator.Options{DialNode: echoNode(t)})
	t.Cleanup(srv.Close)
	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)
	cfg := &rest.Config{Host: hs.URL}
	cs := kubernetes.NewForConfigOrDie(cfg)
	if err := srv.AddNode("cp-1", true); err != nil {
		t.Fatal(err)
	}
	p := hostPod("nohost", "cp-1")
	p.Spec.HostNetwork = false
	if _, err := cs.CoreV1().Pods("kube-system").Create(context.Background(), p, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	// Its node's pod network never became ready (no CNI): it stays Pending.
	if got := srv.PodPhase("kube-system", "nohost"); got != "Pending" {
		t.Fatalf("pod without pod network: %s, want Pending", got)
	}
}
