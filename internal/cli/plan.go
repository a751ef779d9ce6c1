package cli

import (
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
)

type planOptions struct {
	render  string
	sandbox bool
}

func (o *planOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.render, "render", "", "Also write the rendered artifacts to this directory (secret files 0600)")
}

func (a *app) runPlan(cmd *cobra.Command, o *planOptions) error {
	cfg, err := a.loadConfig(cmd)
	if err != nil {
		return err
	}
	if err := cfg.Validate(config.Requirements{Required: []string{config.ClusterName}}); err != nil {
		return fail.UsageError(err)
	}
	return fmt.Errorf("plan is not wired yet")
}
