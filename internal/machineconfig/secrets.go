package machineconfig

import (
	"errors"
	"fmt"

	"github.com/siderolabs/talos/pkg/machinery/config/generate/secrets"
	"go.yaml.in/yaml/v4"
)

// NewSecrets generates the cluster PKI and tokens for a Talos version. It
// costs about two seconds of CPU and needs nothing from the server, so
// callers can start it while the hardware is being delivered.
func NewSecrets(talosVersion string) (*secrets.Bundle, error) {
	contract, err := parseTalosVersion(talosVersion)
	if err != nil {
		return nil, fmt.Errorf("generate secrets bundle: %w", err)
	}

	bundle, err := secrets.NewBundle(secrets.NewClock(), contract)
	if err != nil {
		return nil, fmt.Errorf("generate secrets bundle for Talos %s: %w", talosVersion, err)
	}

	return bundle, nil
}

// MarshalSecrets encodes a bundle in the YAML format of `talosctl gen
// secrets`, so a stored bundle also works with talosctl when debugging.
func MarshalSecrets(bundle *secrets.Bundle) ([]byte, error) {
	if bundle == nil {
		return nil, errors.New("marshal secrets bundle: bundle is nil")
	}

	data, err := yaml.Marshal(bundle)
	if err != nil {
		// The yaml error never quotes values of a well-typed bundle.
		return nil, fmt.Errorf("marshal secrets bundle: %w", err)
	}

	return data, nil
}

// UnmarshalSecrets decodes and validates a bundle written by MarshalSecrets
// (or `talosctl gen secrets`). The bundle gets the system clock.
func UnmarshalSecrets(data []byte) (*secrets.Bundle, error) {
	bundle := &secrets.Bundle{Clock: secrets.NewClock()}

	// The decoder's message may quote the offending input, which would be
	// key material, so it is dropped.
	if err := yaml.Unmarshal(data, bundle); err != nil {
		return nil, errors.New("unmarshal secrets bundle: not a valid secrets YAML document")
	}

	if err := bundle.Validate(); err != nil {
		return nil, fmt.Errorf("unmarshal secrets bundle: %w", err)
	}

	return bundle, nil
}
