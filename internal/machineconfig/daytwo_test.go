package machineconfig_test

import (
	"net/netip"
	"strings"
	"testing"

	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
)

func TestOperatorRulesRoundTrip(t *testing.T) {
	t.Parallel()

	res := result(t)

	closed, err := machineconfig.WithoutOperatorRules(res.ControlPlane)
	if err != nil {
		t.Fatal(err)
	}
	if string(closed) != string(res.Lockdown) {
		t.Fatalf("dropping the operator rules of the initial config does not give the lockdown config")
	}

	other := netip.MustParseAddr("192.0.2.44")
	opened, err := machineconfig.WithOperatorRules(res.Lockdown, other)
	if err != nil {
		t.Fatal(err)
	}
	fw, err := machineconfig.FirewallRules(opened)
	if err != nil {
		t.Fatal(err)
	}
	for _, port := range []uint16{machineconfig.TalosAPIPort, machineconfig.KubernetesAPIPort} {
		if !admits(fw, port, other) {
			t.Errorf("opened config does not admit %s to %d", other, port)
		}
		if admits(fw, port, operatorIP) || admits(fw, port, netip.MustParseAddr("192.0.2.45")) {
			t.Errorf("opened config admits more than %s/32 to %d", other, port)
		}
	}
	// Re-opening for another address replaces the rules, never adds to them.
	again, err := machineconfig.WithOperatorRules(opened, operatorIP)
	if err != nil {
		t.Fatal(err)
	}
	if n := strings.Count(string(again), "name: operator-"); n != 2 {
		t.Fatalf("re-opened config has %d operator rules, want 2", n)
	}
	fw, _ = machineconfig.FirewallRules(again)
	if admits(fw, machineconfig.TalosAPIPort, other) {
		t.Fatal("the earlier operator address is still admitted")
	}
}

func TestKubernetesVersionAndInstallImage(t *testing.T) {
	t.Parallel()

	res := result(t)

	img, err := machineconfig.InstallImage(res.ControlPlane)
	if err != nil || !strings.HasSuffix(img, ":v1.12.4") {
		t.Fatalf("InstallImage = %q, %v", img, err)
	}
	moved, err := machineconfig.WithTag(img, "v1.12.5")
	if err != nil || moved != strings.TrimSuffix(img, "v1.12.4")+"v1.12.5" {
		t.Fatalf("WithTag = %q, %v", moved, err)
	}
	if _, err := machineconfig.WithTag("ghcr.io/x/installer@sha256:abc", "v1"); err == nil {
		t.Fatal("WithTag moved a digest-pinned image")
	}

	if v := machineconfig.KubeletVersion(res.ControlPlane); v != "v1.35.0" {
		t.Fatalf("KubeletVersion = %q", v)
	}
	up, err := machineconfig.WithKubernetesVersion(res.ControlPlane, "v1.35.1")
	if err != nil {
		t.Fatal(err)
	}
	if v := machineconfig.KubeletVersion(up); v != "v1.35.1" {
		t.Fatalf("KubeletVersion after the change = %q", v)
	}
	if strings.Contains(string(up), ":v1.35.0") {
		t.Fatal("an image is still at v1.35.0")
	}
	for _, name := range []string{"kube-apiserver:v1.35.1", "kube-controller-manager:v1.35.1", "kube-scheduler:v1.35.1", "kubelet:v1.35.1"} {
		if !strings.Contains(string(up), name) {
			t.Errorf("changed config has no %s", name)
		}
	}
	// Nothing else moves: the firewall is the same.
	before, _ := machineconfig.FirewallRules(res.ControlPlane)
	after, _ := machineconfig.FirewallRules(up)
	if len(before.Rules) != len(after.Rules) {
		t.Fatal("the Kubernetes change touched the firewall")
	}
}
