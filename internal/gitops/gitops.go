// Package gitops generates the platform's Flux repository (Scaffold) and
// checks any such repository offline (Check): kustomize builds, strict
// decoding against the real schemas (k8s.io/api and the embedded CRDs of
// the components it deploys), Flux dependsOn and source references, and no
// secret values in Git.
package gitops
