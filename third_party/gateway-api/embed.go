// Package gatewayapi carries the unmodified standard-channel CRDs of the
// Kubernetes Gateway API v1.4.0 (Apache-2.0; see LICENSE and ORIGIN in this
// directory).
package gatewayapi

import "embed"

// Version is the Gateway API bundle version of the CRDs.
const Version = "v1.4.0"

// CRDs holds crds/*.yaml.
//
//go:embed crds/*.yaml
var CRDs embed.FS
