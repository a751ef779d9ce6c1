package platform_test

import (
	"context"
	"encoding/json"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"

	apiextensionsv1 "k8s.io/apiextensions-apiserver/pkg/apis/apiextensions/v1"
	utilyaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/rawkode/rawkode-cloud/internal/kube/emulator"
	"github.com/rawkode/rawkode-cloud/internal/platform"
	ciliumchart "github.com/rawkode/rawkode-cloud/third_party/cilium"
)

// docs splits a YAML stream into JSON documents.
func docs(t *testing.T, stream string) [][]byte {
	t.Helper()

	var out [][]byte

	dec := utilyaml.NewYAMLOrJSONDecoder(strings.NewReader(stream), 4096)

	for {
		var raw json.RawMessage
		if err := dec.Decode(&raw); err != nil {
			if errors.Is(err, io.EOF) {
				return out
			}

			t.Fatal(err)
		}

		if len(raw) > 0 && string(raw) != "null" {
			out = append(out, raw)
		}
	}
}

func addCRDs(t *testing.T, dec *emulator.Decoder, stream string) {
	t.Helper()

	for _, d := range docs(t, stream) {
		got, err := dec.Decode(d, emulator.FieldValidationStrict)
		if err != nil {
			t.Fatalf("CRD does not decode strictly: %v", err)
		}

		if got.GVK.Kind != "CustomResourceDefinition" {
			continue
		}

		raw, _ := json.Marshal(got.Object)

		var crd apiextensionsv1.CustomResourceDefinition
		if err := json.Unmarshal(raw, &crd); err != nil {
			t.Fatal(err)
		}

		if err := dec.AddCRD(&crd); err != nil {
			t.Fatal(err)
		}
	}
}

// Every rendered object decodes strictly into its k8s.io/api type, or, for
// custom resources, validates against the real CRD (Gateway API, Cilium) or
// the documented stand-in (Flux Operator, which is AGPL and not shipped).
func TestRenderedManifestsDecodeStrictly(t *testing.T) {
	t.Parallel()

	res, err := platform.Render(context.Background(), ciliumInput(t))
	if err != nil {
		t.Fatal(err)
	}

	dec := emulator.NewDecoder()

	ciliumCRDs, err := fs.Glob(ciliumchart.CRDs, "crds/*.yaml")
	if err != nil {
		t.Fatal(err)
	}

	for _, name := range ciliumCRDs {
		data, _ := fs.ReadFile(ciliumchart.CRDs, name)
		addCRDs(t, dec, string(data))
	}

	addCRDs(t, dec, emulator.FluxOperatorStandIn)

	for _, m := range res.Manifests {
		if m.Name == platform.ManifestGatewayAPI {
			addCRDs(t, dec, m.Contents)
		}
	}

	kinds := map[string]int{}

	for _, m := range res.Manifests {
		for i, d := range docs(t, m.Contents) {
			got, err := dec.Decode(d, emulator.FieldValidationStrict)
			if err != nil {
				t.Errorf("manifest %s, document %d: %v", m.Name, i, err)
				continue
			}

			kinds[got.GVK.Kind]++
		}
	}

	for _, k := range []string{"DaemonSet", "Deployment", "GatewayClass", "CustomResourceDefinition",
		platform.LoadBalancerIPPoolKind, platform.L2PolicyKind, platform.FluxInstanceKind, "Secret"} {
		if kinds[k] == 0 {
			t.Errorf("no %s rendered (kinds: %v)", k, kinds)
		}
	}
}

// The decoder is only worth trusting if it rejects what the API server
// would.
func TestStrictDecodingCatchesMistakes(t *testing.T) {
	t.Parallel()

	dec := emulator.NewDecoder()
	addCRDs(t, dec, emulator.FluxOperatorStandIn)

	for _, name := range []string{"crds/ciliumloadbalancerippools.yaml", "crds/ciliuml2announcementpolicies.yaml"} {
		data, err := fs.ReadFile(ciliumchart.CRDs, name)
		if err != nil {
			t.Fatal(err)
		}

		addCRDs(t, dec, string(data))
	}

	cases := map[string]string{
		"unknown field in a Deployment": `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"replica":1,"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"b"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}`,
		"wrong type":                    `{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"data":{"a":1}}`,
		"selector misses the template":  `{"apiVersion":"apps/v1","kind":"Deployment","metadata":{"name":"x"},"spec":{"selector":{"matchLabels":{"a":"b"}},"template":{"metadata":{"labels":{"a":"c"}},"spec":{"containers":[{"name":"c","image":"i"}]}}}}`,
		"unknown field in a CR":         `{"apiVersion":"cilium.io/v2","kind":"CiliumLoadBalancerIPPool","metadata":{"name":"p"},"spec":{"blocks":[{"cidr":"10.0.0.1/32"}],"bogus":true}}`,
		"CR type error":                 `{"apiVersion":"cilium.io/v2alpha1","kind":"CiliumL2AnnouncementPolicy","metadata":{"name":"p"},"spec":{"loadBalancerIPs":"yes"}}`,
		"FluxInstance without version":  `{"apiVersion":"fluxcd.controlplane.io/v1","kind":"FluxInstance","metadata":{"name":"flux","namespace":"flux-system"},"spec":{"distribution":{"registry":"ghcr.io/fluxcd"}}}`,
		"kind without a CRD":            `{"apiVersion":"gateway.networking.k8s.io/v1","kind":"Gateway","metadata":{"name":"g"},"spec":{}}`,
	}

	for name, doc := range cases {
		if _, err := dec.Decode([]byte(doc), emulator.FieldValidationStrict); err == nil {
			t.Errorf("%s: decoded without error", name)
		}
	}

	// Warn, kube-apiserver's default, drops unknown fields and says so.
	got, err := dec.Decode([]byte(`{"apiVersion":"v1","kind":"ConfigMap","metadata":{"name":"x"},"dta":{"a":"b"}}`), emulator.FieldValidationWarn)
	if err != nil {
		t.Fatal(err)
	}

	if _, ok := got.Object["dta"]; ok || len(got.Warnings) != 1 || !strings.Contains(got.Warnings[0], "dta") {
		t.Errorf("warn mode: object %v, warnings %v", got.Object, got.Warnings)
	}
}
