package machineconfig

import (
	"errors"
	"fmt"
	"regexp"
	"strings"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/compatibility"
	"github.com/siderolabs/talos/pkg/machinery/config"
	"github.com/siderolabs/talos/pkg/machinery/gendata"
)

// MinimumTalosVersion is the oldest Talos this package generates for: the
// ingress firewall documents it relies on arrived in Talos 1.6.
const MinimumTalosVersion = "v1.6.0"

var talosVersionRE = regexp.MustCompile(`^v[0-9]+\.[0-9]+\.[0-9]+(-[0-9A-Za-z.]+)?$`)

// ValidateVersions reports whether configs can be generated for this pair:
// the Talos version must be a release between MinimumTalosVersion and the
// machinery library's own version, and Kubernetes must be one that Talos
// release supports.
func ValidateVersions(talos, kubernetes string) error {
	_, talosErr := parseTalosVersion(talos)

	var k8sErr error
	if kubernetes == "" {
		k8sErr = errors.New("kubernetes version is empty")
	} else if k8s, err := compatibility.ParseKubernetesVersion(strings.TrimPrefix(kubernetes, "v")); err != nil {
		k8sErr = fmt.Errorf("kubernetes version %q is not a version", kubernetes)
	} else if talosErr == nil {
		target, err := compatibility.ParseTalosVersion(&machine.VersionInfo{Tag: talos})
		if err == nil {
			k8sErr = k8s.SupportedWith(target)
		}
	}

	return errors.Join(talosErr, k8sErr)
}

// ValidateTalosVersion reports whether configs can be generated for this
// Talos release, whatever the Kubernetes version (see ValidateVersions).
func ValidateTalosVersion(talos string) error {
	_, err := parseTalosVersion(talos)
	return err
}

// parseTalosVersion turns a Talos release ("v1.12.4") into the contract the
// generator needs, rejecting versions it cannot generate for.
func parseTalosVersion(talos string) (*config.VersionContract, error) {
	if !talosVersionRE.MatchString(talos) {
		return nil, fmt.Errorf("talos version %q is not of the form vX.Y.Z", talos)
	}

	contract, err := config.ParseContractFromVersion(talos)
	if err != nil {
		return nil, fmt.Errorf("talos version %q: %w", talos, err)
	}

	minimum, _ := config.ParseContractFromVersion(MinimumTalosVersion) //nolint:errcheck // constant
	if minimum.Greater(contract) {
		return nil, fmt.Errorf("talos version %s is older than %s, the oldest this tool generates configs for", talos, MinimumTalosVersion)
	}

	current, err := config.ParseContractFromVersion(gendata.VersionTag)
	if err != nil {
		return nil, fmt.Errorf("machinery library version %q: %w", gendata.VersionTag, err)
	}

	if contract.Greater(current) {
		return nil, fmt.Errorf("talos version %s is newer than the machinery library (%s) this tool was built with", talos, gendata.VersionTag)
	}

	return contract, nil
}
