// Package crds embeds third-party CustomResourceDefinitions, copied unmodified
// from their projects (each folder has the project's LICENSE and an ORIGIN
// note with the version and a checksum per file), so that `rawkode-cloud
// platform check` can validate custom resources offline, in users' CI.
// Cilium's and the Gateway API's CRDs are in third_party/cilium and
// third_party/gateway-api, the ones the platform layer installs.
package crds

import "embed"

// FS holds <project>/<crd>.yaml for every project.
//
//go:embed */*.yaml
var FS embed.FS
