package kube_test

import (
	"context"
	"errors"
	"net/http/httptest"
	"net/netip"
	"strings"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/kube"
	kubeemulator "github.com/rawkode/rawkode-cloud/internal/kube/emulator"
	"github.com/rawkode/rawkode-cloud/internal/platform"
	"github.com/rawkode/rawkode-cloud/internal/wait"
)

const coreDNS = `apiVersion: apps/v1
kind: Deployment
metadata:
  name: coredns
  namespace: kube-system
spec:
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

func kubeconfig(url string) []byte {
	return []byte(`apiVersion: v1
kind: Config
clusters:
- name: c
  cluster:
    server: ` + url + `
contexts:
- name: c
  context: {cluster: c, user: u}
current-context: c
users:
- name: u
  user: {token: t}
`)
}

func startCluster(t *testing.T, faults *emulator.Faults) *kube.Client {
	t.Helper()

	srv := kubeemulator.New(kubeemulator.Options{PodStartDelay: time.Millisecond, Faults: faults})
	t.Cleanup(srv.Close)

	if err := srv.AddNode("node-1", true); err != nil {
		t.Fatal(err)
	}

	res, err := platform.Render(context.Background(), platform.Input{
		ClusterName: "demo", KubernetesVersion: "1.35.1", CNI: platform.CNICilium, ControlPlaneNodes: 1,
		LoadBalancerPool: []netip.Prefix{netip.MustParsePrefix("10.10.0.30/32")},
		Flux:             &platform.FluxInput{URL: "https://github.com/example/platform.git"},
	})
	if err != nil {
		t.Fatal(err)
	}

	manifests := []string{coreDNS, kubeemulator.FluxOperatorStandIn}
	for _, m := range res.Manifests {
		manifests = append(manifests, m.Contents)
	}

	objects, err := kubeemulator.ManifestObjects(manifests)
	if err != nil {
		t.Fatal(err)
	}

	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel)

	go func() {
		_ = kubeemulator.ApplyUntilDone(ctx, kubeemulator.InProcessConfig(srv), objects, kubeemulator.TalosBackoff.Scaled(100), nil)
	}()

	hs := httptest.NewServer(srv)
	t.Cleanup(hs.Close)

	c, err := kube.New(kubeconfig(hs.URL))
	if err != nil {
		t.Fatal(err)
	}

	return c
}

func TestWaitReady(t *testing.T) {
	t.Parallel()

	c := startCluster(t, nil)

	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()

	var reports int

	r, err := c.WaitReady(ctx, kube.Expect{Nodes: 1, CNI: platform.CNICilium, Flux: true}, wait.Options{Interval: 5 * time.Millisecond}, func(kube.Report) { reports++ })
	if err != nil {
		t.Fatalf("%v: %+v", err, r)
	}

	var names []string
	for _, i := range r {
		names = append(names, i.Name)
	}

	if got := strings.Join(names, ","); got != "node node-1,CNI (cilium),CoreDNS,FluxInstance" {
		t.Errorf("items = %s", got)
	}

	if reports < 2 {
		t.Errorf("ready at the first look (%d reports): the emulated cluster should take a while", reports)
	}
}

func TestWaitReadyReportsWhatIsMissing(t *testing.T) {
	t.Parallel()

	faults := emulator.NewFaults()
	faults.Set(kubeemulator.FaultCNI, emulator.Fault{Kind: emulator.Never})
	c := startCluster(t, faults)

	// The wait ends after its first complete report, whenever that comes
	// (a deadline would race a busy machine's first check).
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	r, err := c.WaitReady(ctx, kube.Expect{Nodes: 1, CNI: platform.CNICilium}, wait.Options{Interval: 10 * time.Millisecond}, func(kube.Report) { cancel() })
	if !errors.Is(err, context.Canceled) {
		t.Fatalf("err = %v, want the cancellation after the first report", err)
	}

	failing := r.Failing()
	if len(failing) == 0 || failing[0].Name != "node node-1" || !strings.Contains(failing[0].Detail, "cni plugin not initialized") {
		t.Errorf("failing = %+v", failing)
	}
}

func TestBadKubeconfigIsNotQuoted(t *testing.T) {
	t.Parallel()

	_, err := kube.New([]byte("token: s3cr3t"))
	if err == nil || strings.Contains(err.Error(), "s3cr3t") {
		t.Errorf("err = %v", err)
	}
}

// Nodes expected by name: the report names the one that never registered,
// and looks at nothing else when no CNI is asked for.
func TestWaitReadyNamesMissingNodes(t *testing.T) {
	t.Parallel()

	c := startCluster(t, nil)

	// The wait ends after its first complete report, whenever that comes.
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()

	r, err := c.WaitReady(ctx, kube.Expect{NodeNames: []string{"node-1", "worker-7"}}, wait.Options{Interval: 10 * time.Millisecond}, func(kube.Report) { cancel() })
	if !errors.Is(err, context.Canceled) || len(r) == 0 {
		t.Fatalf("err = %v, want the cancellation after the first report: %+v", err, r)
	}

	var names []string
	for _, i := range r {
		names = append(names, i.Name)
	}

	if got := strings.Join(names, ","); got != "node node-1,nodes registered" {
		t.Errorf("items = %s", got)
	}

	// node-1 may or may not be Ready yet (the CNI takes a while).
	if last := r[len(r)-1]; last.OK || last.Detail != "1 of 2 nodes have registered; missing worker-7" {
		t.Errorf("nodes registered = %+v", last)
	}
}
