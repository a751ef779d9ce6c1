package platform

import (
	"fmt"
	"io/fs"
	"slices"
	"strings"

	gatewayapi "github.com/rawkode/rawkode-cloud/third_party/gateway-api"
)

// GatewayAPIVersion is the Gateway API release whose CRDs are installed.
const GatewayAPIVersion = gatewayapi.Version

// GatewayAPICRDs returns the standard-channel Gateway API CRDs, unmodified,
// as one stream. Cilium's operator checks for them once, when it starts, and
// turns its Gateway API controller off when they are missing; Talos applies
// CRDs before everything else, so they exist before Cilium runs.
func GatewayAPICRDs() (string, error) {
	names, err := fs.Glob(gatewayapi.CRDs, "crds/*.yaml")
	if err != nil {
		return "", err
	}

	slices.Sort(names)

	var b strings.Builder

	for _, name := range names {
		data, err := fs.ReadFile(gatewayapi.CRDs, name)
		if err != nil {
			return "", fmt.Errorf("read Gateway API CRD %s: %w", name, err)
		}

		if b.Len() > 0 {
			b.WriteString("---\n")
		}

		b.Write(data)

		if !strings.HasSuffix(string(data), "\n") {
			b.WriteString("\n")
		}
	}

	return b.String(), nil
}
