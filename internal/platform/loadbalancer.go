package platform

import (
	"fmt"
	"net/netip"
	"strings"

	"sigs.k8s.io/yaml"
)

// Kinds Cilium's operator registers at run time (not in the chart), and the
// API versions the manifests use (the storage versions of the 1.19 CRDs).
const (
	LoadBalancerIPPoolKind       = "CiliumLoadBalancerIPPool"
	LoadBalancerIPPoolAPIVersion = "cilium.io/v2"
	L2PolicyKind                 = "CiliumL2AnnouncementPolicy"
	L2PolicyAPIVersion           = "cilium.io/v2alpha1"
)

type objectMeta struct {
	Name      string            `json:"name"`
	Namespace string            `json:"namespace,omitempty"`
	Labels    map[string]string `json:"labels,omitempty"`
}

type ipPool struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		Blocks []ipBlock `json:"blocks"`
	} `json:"spec"`
}

type ipBlock struct {
	CIDR string `json:"cidr"`
}

type l2Policy struct {
	APIVersion string     `json:"apiVersion"`
	Kind       string     `json:"kind"`
	Metadata   objectMeta `json:"metadata"`
	Spec       struct {
		LoadBalancerIPs bool `json:"loadBalancerIPs"`
		ExternalIPs     bool `json:"externalIPs"`
	} `json:"spec"`
}

// LoadBalancerNames are the names of the pool and the L2 policy of a cluster.
func LoadBalancerNames(cluster string) (pool, policy string) {
	return cluster + "-pool", cluster + "-l2"
}

// loadBalancerManifest is the pool LB IPAM takes service addresses from and
// the policy that answers ARP for them (and for external IPs) from the node
// that holds the service's lease. Without an interface or node selector,
// every node may announce on every interface: on one L2 segment, which is
// what the pool addresses must be on anyway.
func loadBalancerManifest(cluster string, pool []netip.Prefix) (string, error) {
	poolName, policyName := LoadBalancerNames(cluster)
	labels := map[string]string{"app.kubernetes.io/part-of": "rawkode-cloud"}

	p := ipPool{APIVersion: LoadBalancerIPPoolAPIVersion, Kind: LoadBalancerIPPoolKind,
		Metadata: objectMeta{Name: poolName, Labels: labels}}
	for _, prefix := range pool {
		p.Spec.Blocks = append(p.Spec.Blocks, ipBlock{CIDR: prefix.String()})
	}

	l2 := l2Policy{APIVersion: L2PolicyAPIVersion, Kind: L2PolicyKind,
		Metadata: objectMeta{Name: policyName, Labels: labels}}
	l2.Spec.LoadBalancerIPs = true
	l2.Spec.ExternalIPs = true

	return yamlDocs(p, l2)
}

// yamlDocs renders objects as one multi-document YAML stream.
func yamlDocs(objects ...any) (string, error) {
	docs := make([]string, 0, len(objects))

	for _, o := range objects {
		b, err := yaml.Marshal(o)
		if err != nil {
			return "", fmt.Errorf("render %T: %w", o, err)
		}

		docs = append(docs, string(b))
	}

	return strings.Join(docs, "---\n"), nil
}
