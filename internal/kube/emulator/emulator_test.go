package emulator_test

import (
	"context"
	"net/http/httptest"
	"net/netip"
	"os"
	"strings"
	"sync"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	kubeemulator "github.com/rawkode/rawkode-cloud/internal/kube/emulator"
	"github.com/rawkode/rawkode-cloud/internal/platform"
	"github.com/rawkode/rawkode-cloud/internal/testwait"
)

// settle bounds a wait for the emulator's controllers: generous, as CI
// machines may be loaded.
const settle = 90 * time.Second

type warnings struct {
	mu   sync.Mutex
	list []string
}

func (w *warnings) HandleWarningHeader(_ int, _ string, text string) {
	w.mu.Lock()
	defer w.mu.Unlock()
	w.list = append(w.list, text)
}

func clientFor(t *testing.T, srv *kubeemulator.Server, w rest.WarningHandler) *kubernetes.Clientset {
	t.Helper()

	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)

	cs, err := kubernetes.NewForConfig(&rest.Config{Host: hs.URL, WarningHandler: w})
	if err != nil {
		t.Fatal(err)
	}

	return cs
}

func TestClientGoSpeaksToIt(t *testing.T) {
	t.Parallel()

	srv := kubeemulator.New(kubeemulator.Options{})
	t.Cleanup(srv.Close)

	w := &warnings{}
	cs := clientFor(t, srv, w)
	ctx := context.Background()

	v, err := cs.Discovery().ServerVersion()
	if err != nil || v.GitVersion != "v1.35.1" {
		t.Fatalf("version = %v, %v", v, err)
	}

	if _, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "demo"}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: "c", Namespace: "demo"}, Data: map[string]string{"a": "b"}}
	if _, err := cs.CoreV1().ConfigMaps("demo").Create(ctx, cm, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}

	if _, err := cs.CoreV1().ConfigMaps("demo").Create(ctx, cm, metav1.CreateOptions{}); !apierrors.IsAlreadyExists(err) {
		t.Errorf("second create: %v, want AlreadyExists", err)
	}

	elsewhere := cm.DeepCopy()
	elsewhere.Namespace = "nowhere"

	if _, err := cs.CoreV1().ConfigMaps("nowhere").Create(ctx, elsewhere, metav1.CreateOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("create in a missing namespace: %v, want NotFound", err)
	}

	got, err := cs.CoreV1().ConfigMaps("demo").Get(ctx, "c", metav1.GetOptions{})
	if err != nil || got.Data["a"] != "b" || got.UID == "" || got.ResourceVersion == "" {
		t.Fatalf("get = %+v, %v", got, err)
	}

	list, err := cs.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
	if err != nil || len(list.Items) != 1 {
		t.Fatalf("list = %v, %v", list, err)
	}

	got.Data["a"] = "c"
	if _, err := cs.CoreV1().ConfigMaps("demo").Update(ctx, got, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	if _, err := cs.CoreV1().ConfigMaps("demo").Update(ctx, got, metav1.UpdateOptions{}); !apierrors.IsConflict(err) {
		t.Errorf("stale update: %v, want Conflict", err)
	}

	if err := cs.CoreV1().ConfigMaps("demo").Delete(ctx, "c", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	if _, err := cs.CoreV1().ConfigMaps("demo").Get(ctx, "c", metav1.GetOptions{}); !apierrors.IsNotFound(err) {
		t.Errorf("get after delete: %v", err)
	}

	// Unknown fields: an error when the client asks for strictness, a
	// warning by default — as kube-apiserver does.
	raw := []byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"u"},"dta":{"a":"b"}}`)
	err = cs.CoreV1().RESTClient().Post().Namespace("demo").Resource("configmaps").Param("fieldValidation", "Strict").
		Body(raw).SetHeader("Content-Type", "application/json").Do(ctx).Error()
	if !apierrors.IsBadRequest(err) || !strings.Contains(err.Error(), `unknown field "dta"`) {
		t.Errorf("strict create: %v", err)
	}

	err = cs.CoreV1().RESTClient().Post().Namespace("demo").Resource("configmaps").
		Body(raw).SetHeader("Content-Type", "application/json").Do(ctx).Error()
	if err != nil {
		t.Fatal(err)
	}

	w.mu.Lock()
	defer w.mu.Unlock()

	if len(w.list) != 1 || !strings.Contains(w.list[0], "dta") {
		t.Errorf("warnings = %v", w.list)
	}

	// A kind whose CRD does not exist is not served.
	err = cs.CoreV1().RESTClient().Get().AbsPath("/apis/cilium.io/v2/ciliumloadbalancerippools").Do(ctx).Error()
	if !apierrors.IsNotFound(err) {
		t.Errorf("custom resource without CRD: %v", err)
	}
}

// coreDNS stands for Talos's own bootstrap manifests: a workload that needs
// the pod network.
const coreDNS = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
spec:
  replicas: 1
  selector:
    matchLabels: {k8s-app: kube-dns}
  template:
    metadata:
      labels: {k8s-app: kube-dns}
    spec:
      containers:
      - name: coredns
        image: registry.k8s.io/coredns/coredns:v1.12.4
`

func renderPlatform(t *testing.T) []string {
	t.Helper()

	raw, err := os.ReadFile("../../platform/testdata/deploy-key")
	if err != nil {
		t.Fatal(err)
	}

	key, err := platform.ParseDeployKey(raw)
	if err != nil {
		t.Fatal(err)
	}

	res, err := platform.Render(context.Background(), platform.Input{
		ClusterName: "demo", KubernetesVersion: "1.35.1", CNI: platform.CNICilium, ControlPlaneNodes: 1,
		LoadBalancerPool: []netip.Prefix{netip.MustParsePrefix("10.10.0.30/32")},
		Flux:             &platform.FluxInput{URL: "ssh://git@github.com/example/platform.git", DeployKey: key},
	})
	if err != nil {
		t.Fatal(err)
	}

	manifests := []string{coreDNS}
	for _, m := range res.Manifests {
		manifests = append(manifests, m.Contents)
	}

	// What Talos downloads from the extra manifest URL.
	return append(manifests, kubeemulator.FluxOperatorStandIn)
}

func newCluster(t *testing.T, faults *emulator.Faults, events chan<- string) *kubeemulator.Server {
	t.Helper()

	srv := kubeemulator.New(kubeemulator.Options{
		PodStartDelay: time.Millisecond, CNIReadyDelay: time.Millisecond, OperatorDelay: 20 * time.Millisecond,
		Faults: faults,
		OnEvent: func(name string, _ time.Time) {
			if events != nil {
				select {
				case events <- name:
				default:
				}
			}
		},
	})
	t.Cleanup(srv.Close)

	if err := srv.AddNode("node-1", true); err != nil {
		t.Fatal(err)
	}

	return srv
}

// The whole first boot, as Talos applies it: the pool, the L2 policy and the
// FluxInstance cannot be created on the first run (their CRDs do not exist
// yet), the node is NotReady until Cilium runs, and everything lands on
// later runs of the apply.
func TestFirstBootWithCiliumAndFlux(t *testing.T) {
	t.Parallel()

	srv := newCluster(t, nil, nil)
	cfg := kubeemulator.InProcessConfig(srv)

	if inv := srv.Inventory(); len(inv.Nodes) != 1 || inv.Nodes[0].Ready {
		t.Fatalf("a new node must be NotReady until a CNI runs: %+v", inv.Nodes)
	}

	objects, err := kubeemulator.ManifestObjects(renderPlatform(t))
	if err != nil {
		t.Fatal(err)
	}

	_, err = kubeemulator.ApplyOnce(context.Background(), cfg, objects)
	if err == nil {
		t.Fatal("the first apply succeeded, but the Cilium and Flux kinds cannot exist yet")
	}

	for _, kind := range []string{platform.LoadBalancerIPPoolKind, platform.L2PolicyKind, platform.FluxInstanceKind, "GatewayClass"} {
		if !strings.Contains(err.Error(), "/"+kind+"/") {
			t.Errorf("first apply error does not name %s: %v", kind, err)
		}
	}

	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()

	start := time.Now()
	runs := 0

	if err := kubeemulator.ApplyUntilDone(ctx, cfg, objects, kubeemulator.TalosBackoff.Scaled(100), func([]string, error) { runs++ }); err != nil {
		t.Fatal(err)
	}

	t.Logf("applied after %d more runs in %s", runs, time.Since(start))

	poolName, policyName := platform.LoadBalancerNames("demo")
	for _, want := range []string{
		"DaemonSet/kube-system/cilium", platform.LoadBalancerIPPoolKind + "/" + poolName, platform.L2PolicyKind + "/" + policyName,
		"CustomResourceDefinition/gateways.gateway.networking.k8s.io", "GatewayClass/cilium",
		"FluxInstance/flux-system/flux", "Secret/flux-system/flux-system",
	} {
		if !srv.Has(want) {
			t.Errorf("inventory lacks %s", want)
		}
	}

	testwait.For(t, settle, "the node to be Ready", func() bool { return srv.Inventory().Nodes[0].Ready })
	testwait.For(t, settle, "CoreDNS to run", func() bool { return srv.WorkloadReady("Deployment", "kube-system", "coredns") })
	testwait.For(t, settle, "the FluxInstance to be Ready", func() bool { return srv.FluxInstanceReady("flux-system", "flux") })
}

// kubernetes.cni=never: Cilium's pods run, the node never gets a pod
// network, so CoreDNS never starts.
func TestCNINever(t *testing.T) {
	t.Parallel()

	faults := emulator.NewFaults()
	faults.Set(kubeemulator.FaultCNI, emulator.Fault{Kind: emulator.Never})

	events := make(chan string, 256)
	srv := newCluster(t, faults, events)

	objects, err := kubeemulator.ManifestObjects(renderPlatform(t))
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()

	go func() {
		_ = kubeemulator.ApplyUntilDone(ctx, kubeemulator.InProcessConfig(srv), objects, kubeemulator.TalosBackoff.Scaled(100), nil)
	}()

	// The operator (host network) registers its CRDs well after a working
	// CNI would have made the node Ready.
	testwait.For(t, settle, "Cilium's CRDs", func() bool { return srv.Has("CustomResourceDefinition/ciliumnodes.cilium.io") })

	if !srv.WorkloadReady("DaemonSet", "kube-system", "cilium") {
		t.Error("the Cilium agent should run (host network) even with the fault")
	}

	if srv.Inventory().Nodes[0].Ready || srv.WorkloadReady("Deployment", "kube-system", "coredns") {
		t.Error("node Ready or CoreDNS running although the CNI never works")
	}
}

// A node whose kubelet stops (a reboot) is NotReady with the lifecycle
// controller's wording, and Ready again once the kubelet runs: its pod
// network was configured before.
func TestKubeletStopsAndStarts(t *testing.T) {
	t.Parallel()

	srv := newCluster(t, nil, nil)
	cfg := kubeemulator.InProcessConfig(srv)
	objects, err := kubeemulator.ManifestObjects(renderPlatform(t))
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 20*time.Second)
	defer cancel()
	if err := kubeemulator.ApplyUntilDone(ctx, cfg, objects, kubeemulator.TalosBackoff.Scaled(100), nil); err != nil {
		t.Fatal(err)
	}
	ready := func() bool {
		inv := srv.Inventory()
		return len(inv.Nodes) == 1 && inv.Nodes[0].Ready
	}
	testwait.For(t, 10*time.Second, "the node to become Ready", ready)
	srv.SetKubeletRunning("node-1", false)
	if ready() {
		t.Fatal("a node whose kubelet stopped is still Ready")
	}
	srv.SetKubeletRunning("node-1", true)
	if !ready() {
		t.Fatal("the node is not Ready again once its kubelet runs")
	}
	srv.SetKubeletRunning("unknown", false) // not registered: ignored
}
