// Package democraticcsi carries the unmodified democratic-csi 0.15.1 Helm
// chart archive (MIT; see LICENSE and ORIGIN in this directory) so that the
// binary can render the real chart offline.
package democraticcsi

import _ "embed"

// ChartVersion is the version of the embedded chart.
const ChartVersion = "0.15.1"

// ChartArchive is democratic-csi-0.15.1.tgz, as helm would load it.
//
//go:embed democratic-csi-0.15.1.tgz
var ChartArchive []byte
