// Package cilium carries the unmodified Cilium 1.19.0 Helm chart archive and
// CRDs (Apache-2.0; see LICENSE and ORIGIN in this directory) so that the
// binary can render the real chart offline.
package cilium

import "embed"

// ChartVersion is the version of the embedded chart.
const ChartVersion = "1.19.0"

// ChartArchive is cilium-1.19.0.tgz, as helm would load it.
//
//go:embed cilium-1.19.0.tgz
var ChartArchive []byte

// CRDs holds crds/*.yaml: what the Cilium operator registers at run time.
//
//go:embed crds/*.yaml
var CRDs embed.FS
