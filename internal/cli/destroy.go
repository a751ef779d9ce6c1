package cli

import (
	"errors"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
)

type destroyOptions struct {
	serverID      string
	yes           bool
	deleteSecrets bool
	sandbox       bool
}

func (o *destroyOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.serverID, "server-id", "", "Scaleway server ID to destroy")
	cmd.Flags().BoolVar(&o.yes, "yes", false, "Do not ask for confirmation")
	cmd.Flags().BoolVar(&o.deleteSecrets, "delete-secrets", false, "Also delete the cluster's secrets stored in Infisical")
	cmd.Flags().BoolVar(&o.sandbox, "sandbox", false, "Destroy inside a fresh sandbox (for rehearsal)")
}

func (a *app) runDestroy(cmd *cobra.Command, o *destroyOptions) error {
	cfg, err := a.loadConfig(cmd)
	if err != nil {
		return err
	}
	if o.serverID == "" && !cfg.IsSet(config.ClusterName) {
		return fail.UsageError(errors.New("name what to destroy: --server-id ID or --cluster-name NAME"))
	}
	if err := a.resolveSecrets(cmd.Context(), cfg, nil); err != nil {
		return err
	}
	if err := cfg.Validate(config.Requirements{Required: []string{config.ScalewayAccessKey, config.ScalewaySecretKey, config.ScalewayProjectID}}); err != nil {
		return fail.UsageError(err)
	}
	return fmt.Errorf("destroy is not wired yet")
}
