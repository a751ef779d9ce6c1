package gitops

// Release is one pinned component of the platform.
type Release struct {
	Chart      string // Helm chart, also the HelmRepository and HelmRelease name
	Release    string // Helm release name
	Namespace  string
	Repository string // Helm repository (or Git repository) URL
	Version    string // chart version (or Git tag)
	AppVersion string // the component's own version, as the design document pins it
}

// Versions is the one place the platform's component versions live; the
// design document's component table pins the application versions.
var Versions = struct {
	ExternalSecrets, OnePasswordConnect, CertManager, ExternalDNS, CloudNativePG, SpiceDBOperator Release
}{
	ExternalSecrets: Release{Chart: "external-secrets", Release: "external-secrets", Namespace: "external-secrets",
		Repository: "https://charts.external-secrets.io", Version: "2.0.0", AppVersion: "2.0.0"},
	OnePasswordConnect: Release{Chart: "connect", Release: "onepassword-connect", Namespace: "1password",
		Repository: "https://1password.github.io/connect-helm-charts", Version: "2.3.0", AppVersion: "2.3.0 (chart; Connect 1.8.1)"},
	CertManager: Release{Chart: "cert-manager", Release: "cert-manager", Namespace: "cert-manager",
		Repository: "https://charts.jetstack.io", Version: "v1.19.3", AppVersion: "1.19.3"},
	ExternalDNS: Release{Chart: "external-dns", Release: "external-dns", Namespace: "external-dns",
		Repository: "https://kubernetes-sigs.github.io/external-dns/", Version: "1.20.0", AppVersion: "1.20.0 (chart)"},
	// Chart 0.27.1 is the release of the cloudnative-pg chart whose
	// appVersion is 1.28.1 (cloudnative-pg/charts, tag cloudnative-pg-v0.27.1).
	CloudNativePG: Release{Chart: "cloudnative-pg", Release: "cloudnative-pg", Namespace: "cnpg-system",
		Repository: "https://cloudnative-pg.github.io/charts", Version: "0.27.1", AppVersion: "1.28.1"},
	// No Helm chart: the operator's own kustomization at the release tag.
	SpiceDBOperator: Release{Chart: "spicedb-operator", Release: "spicedb-operator", Namespace: "spicedb-operator",
		Repository: "https://github.com/authzed/spicedb-operator", Version: "v1.22.0", AppVersion: "1.22.0"},
}

// CloudflareIPs are the address ranges Cloudflare publishes for its proxy,
// kept as dated data: the policies admitting only Cloudflare are generated
// from it, and a change upstream means a new release here.
var CloudflareIPs = struct {
	AsOf, Source string
	CIDRs        []string
}{
	AsOf:   "2025-06",
	Source: "https://www.cloudflare.com/ips-v4 and https://www.cloudflare.com/ips-v6",
	CIDRs: []string{
		"173.245.48.0/20", "103.21.244.0/22", "103.22.200.0/22", "103.31.4.0/22", "141.101.64.0/18",
		"108.162.192.0/18", "190.93.240.0/20", "188.114.96.0/20", "197.234.240.0/22", "198.41.128.0/17",
		"162.158.0.0/15", "104.16.0.0/13", "104.24.0.0/14", "172.64.0.0/13", "131.0.72.0/22",
		"2400:cb00::/32", "2606:4700::/32", "2803:f800::/32", "2405:b500::/32", "2405:8100::/32",
		"2a06:98c0::/29", "2c0f:f248::/32",
	},
}
