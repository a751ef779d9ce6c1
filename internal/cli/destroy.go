package cli

import (
	"bufio"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/provision"
)

type destroyOptions struct {
	serverID      string
	yes           bool
	deleteSecrets bool
	sandbox       sandboxOptions
}

func (o *destroyOptions) addFlags(cmd *cobra.Command) {
	cmd.Flags().StringVar(&o.serverID, "server-id", "", "Scaleway server ID to destroy")
	cmd.Flags().BoolVar(&o.yes, "yes", false, "Do not ask for confirmation")
	cmd.Flags().BoolVar(&o.deleteSecrets, "delete-secrets", false, "Also delete the cluster's credentials stored in Infisical")
	o.sandbox.addFlags(cmd, false)
}

func (a *app) runDestroy(cmd *cobra.Command, o *destroyOptions) error {
	ctx := cmd.Context()
	cfg, err := a.loadConfig(cmd)
	if err != nil {
		return err
	}
	if o.serverID == "" && !cfg.IsSet(config.ClusterName) {
		return fail.UsageError(errors.New("name what to destroy: --server-id ID or --cluster-name NAME"))
	}
	if !cfg.IsSet(config.SandboxURL) {
		if err := cfg.Validate(config.Requirements{}); err != nil {
			return fail.UsageError(err)
		}
	}
	sb, factory, err := a.startSandbox(ctx, cfg, &o.sandbox)
	if err != nil {
		return err
	}
	if sb != nil {
		defer sb.Close()
	}
	if a.remote != nil {
		// A served sandbox derives some settings (the DNS name): check
		// them once they are there.
		if err := cfg.Validate(config.Requirements{}); err != nil {
			return fail.UsageError(err)
		}
	}
	if !o.yes {
		if !a.env.Terminal {
			return fail.UsageError(errors.New("destroy deletes servers: confirm with --yes when not on a terminal"))
		}
		what := "cluster " + cfg.Get(config.ClusterName)
		if o.serverID != "" {
			what = "server " + o.serverID
		}
		fmt.Fprintf(a.env.Out, "Destroy %s and everything rawkode-cloud created for it? Type 'yes' to continue: ", what)
		answer, _ := bufio.NewReader(a.env.In).ReadString('\n')
		if strings.TrimSpace(answer) != "yes" {
			return fail.UsageError(errors.New("destroy cancelled: nothing was touched"))
		}
	}
	rend := a.renderer(cfg)
	defer rend.Close()
	a.sandboxBanner(rend, sb)
	d := provision.NewDestroyer(provision.DestroyOptions{Config: cfg, Factory: factory, ServerID: o.serverID,
		DeleteSecrets: o.deleteSecrets, AddSecret: a.redactor.Add})
	defer d.Close()
	runner := pipeline.Runner{Phases: d.Phases(), Sink: rend}
	_, err = runner.Execute(ctx)
	if err == nil {
		msg := "destroyed"
		if len(d.Removed()) == 0 {
			msg = "nothing to destroy: everything was already gone"
		}
		rend.Emit(pipeline.Event{Type: pipeline.EventSummary, Time: time.Now(), Message: msg, Fields: map[string]any{"removed": d.Removed()}})
	}
	a.emitInventory(ctx, rend, sb)
	return err
}
