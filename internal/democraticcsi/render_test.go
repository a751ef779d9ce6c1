package democraticcsi_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"net/netip"
	"strings"
	"testing"
	"time"

	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/rawkode/rawkode-cloud/internal/democraticcsi"
	"github.com/rawkode/rawkode-cloud/internal/kube/emulator"
)

func TestRenderedChartDecodesStrictly(t *testing.T) {
	t.Parallel()
	kp, err := democraticcsi.GenerateKeyPair("democratic-csi@sandbox")
	if err != nil {
		t.Fatal(err)
	}
	in := democraticcsi.Input{Host: netip.MustParseAddr("10.10.0.1"), PrivateKey: kp.PrivateKey, Pool: "rpool",
		Volumes: "k8s-csi", Snapshots: "k8s-csi-snaps", IQNBase: "iqn.2003-01.org.linux-iscsi.pve-demo"}
	out, err := democraticcsi.Render(context.Background(), in, "1.35.1")
	if err != nil {
		t.Fatal(err)
	}
	dec := emulator.NewDecoder()
	yd := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(out), 4096)
	kinds := map[string]int{}
	var objs []map[string]any
	for {
		var raw json.RawMessage
		if err := yd.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				break
			}
			t.Fatal(err)
		}
		if len(raw) == 0 || string(raw) == "null" {
			continue
		}
		got, err := dec.Decode(raw, emulator.FieldValidationStrict)
		if err != nil {
			t.Errorf("document does not decode strictly: %v", err)
			continue
		}
		kinds[got.GVK.Kind]++
		var m map[string]any
		_ = json.Unmarshal(raw, &m)
		objs = append(objs, m)
	}
	for _, k := range []string{"Namespace", "CSIDriver", "StorageClass", "Secret", "Deployment", "DaemonSet"} {
		if kinds[k] == 0 {
			t.Errorf("no %s rendered (kinds %v)", k, kinds)
		}
	}
	s := out
	for _, want := range []string{
		`storageclass.kubernetes.io/is-default-class: "true"`,
		"name: zfs-iscsi",
		"provisioner: org.democratic-csi.iscsi",
		"pod-security.kubernetes.io/enforce: privileged",
		"hostPID: true",
		"ISCSIADM_HOST_STRATEGY",
		"ghcr.io/democratic-csi/democratic-csi:" + democraticcsi.DriverImageTag,
		"path: /usr/local/etc/iscsi",
	} {
		if !strings.Contains(s, want) {
			t.Errorf("rendered chart lacks %q", want)
		}
	}
	if strings.Contains(s, "democratic-csi:latest") {
		t.Error("an unpinned :latest driver image is rendered")
	}
	// The driver's config (with the private key) is a Secret, not a ConfigMap.
	found := false
	for _, o := range objs {
		if o["kind"] == "Secret" {
			if b, _ := json.Marshal(o); strings.Contains(string(b), "driver-config-file.yaml") {
				found = true
			}
		}
	}
	if !found {
		t.Error("no Secret carries driver-config-file.yaml")
	}
}

// The rendered chart is what Talos applies from the inline manifest: every
// object is accepted by the (emulated) API server in one pass, namespace
// first, and the cluster then has zfs-iscsi as its default StorageClass.
func TestRenderedChartAppliesAsTheDefaultStorageClass(t *testing.T) {
	t.Parallel()
	kp, err := democraticcsi.GenerateKeyPair("democratic-csi@sandbox")
	if err != nil {
		t.Fatal(err)
	}
	in := democraticcsi.Input{Host: netip.MustParseAddr("10.10.0.1"), PrivateKey: kp.PrivateKey, Pool: "vmdata",
		Volumes: "k8s-csi", Snapshots: "k8s-csi-snaps", IQNBase: "iqn.2003-01.org.linux-iscsi.sandbox"}
	out, err := democraticcsi.Render(context.Background(), in, "1.35.1")
	if err != nil {
		t.Fatal(err)
	}
	objects, err := emulator.ManifestObjects([]string{out})
	if err != nil {
		t.Fatal(err)
	}
	srv := emulator.New(emulator.Options{})
	t.Cleanup(srv.Close)
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if created, err := emulator.ApplyOnce(ctx, emulator.InProcessConfig(srv), objects); err != nil {
		t.Fatalf("one apply pass did not take everything (created %v): %v", created, err)
	}
	inv := srv.Inventory()
	if inv.DefaultStorageClass != democraticcsi.StorageClass {
		t.Errorf("default StorageClass %q, want %s (objects %v)", inv.DefaultStorageClass, democraticcsi.StorageClass, inv.Objects)
	}
	for _, o := range []string{"CSIDriver/" + democraticcsi.DriverName, "Namespace/" + democraticcsi.Namespace, "StorageClass/" + democraticcsi.StorageClass} {
		if !srv.Has(o) {
			t.Errorf("no %s after the apply: %v", o, inv.Objects)
		}
	}
}
