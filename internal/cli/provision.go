package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
)

type provisionOptions struct {
	sandbox bool
}

func (o *provisionOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().BoolVar(&o.sandbox, "sandbox", false, "Run everything against in-process emulators of every external service (no account, nothing real is touched)")
}

// provisionRequired are the settings provision cannot start without.
var provisionRequired = []string{
	config.ClusterName, config.ScalewayAccessKey, config.ScalewaySecretKey, config.ScalewayProjectID,
	config.ScalewayOfferID, config.ScalewayOSID, config.TeleportProxy,
}

func (a *app) runProvision(cmd *cobra.Command, o *provisionOptions) error {
	cfg, err := a.loadConfig(cmd)
	if err != nil {
		return err
	}
	if err := a.resolveSecrets(cmd.Context(), cfg, nil); err != nil {
		return err
	}
	if err := cfg.Validate(config.Requirements{Required: provisionRequired, Extra: provisionExtra}); err != nil {
		return fail.UsageError(err)
	}
	return fmt.Errorf("provisioning pipeline is not wired yet")
}

// provisionExtra checks rules that span settings.
func provisionExtra(cfg *config.Config) config.Problems {
	var probs config.Problems
	if !infisicalConfigured(cfg) && !cfg.IsSet(config.SecretsOut) {
		probs = append(probs, config.Problem{Setting: config.SecretsOut, Source: config.Unset,
			Message: "the cluster's talosconfig, kubeconfig and secrets bundle must be kept somewhere: configure Infisical (infisical-* settings) or name a directory with --secrets-out (files are written 0600)"})
	}
	return probs
}
