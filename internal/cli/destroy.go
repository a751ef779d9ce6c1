package cli

import (
	"bufio"
	"errors"
	"fmt"
	"regexp"
	"strings"
	"time"

	"github.com/spf13/cobra"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	"github.com/rawkode/rawkode-cloud/internal/sandbox"
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

// destroyExitCodes are destroy's own: it creates nothing, so provision's
// codes would describe the wrong things.
var destroyExitCodes = []struct {
	Code int
	Text string
}{
	{fail.OK, "everything named is gone: removed now, or already gone (the output says which)"},
	{fail.Failed, "nothing was removed: a look-up failed, or the server is in another zone (the error names it and the command that destroys it)"},
	{fail.Usage, "usage or configuration error, or not confirmed; nothing was touched"},
	{fail.Incomplete, "some removals failed; what remains is listed with the command that removes it"},
	{fail.Interrupted, "interrupted; what remains is listed"},
}

func destroyExitCodeHelp() string {
	var b strings.Builder
	b.WriteString("Exit codes:\n")
	for _, c := range destroyExitCodes {
		fmt.Fprintf(&b, "  %3d  %s\n", c.Code, c.Text)
	}
	return b.String()
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
	if o.serverID != "" && !isServerID(o.serverID) {
		return fail.UsageError(fmt.Errorf("--server-id %q is not a Scaleway server ID: it is a UUID such as 11111111-2222-3333-4444-555555555555 (the server list in the console, or 'rawkode-cloud list', shows them)", o.serverID))
	}
	if !cfg.IsSet(config.SandboxURL) {
		req := config.Requirements{}
		if o.sandbox.enabled {
			req.Ignore = sandbox.Replaces()
		}
		if err := cfg.Validate(req); err != nil {
			return fail.UsageError(err)
		}
	}
	if !o.yes && !a.env.Terminal {
		return fail.UsageError(errors.New("destroy deletes servers: confirm with --yes when not on a terminal"))
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
	rend := a.renderer(cfg)
	defer rend.Close()
	a.sandboxBanner(rend, sb)
	d := provision.NewDestroyer(provision.DestroyOptions{Config: cfg, Factory: factory, ServerID: o.serverID,
		DeleteSecrets: o.deleteSecrets, AddSecret: a.redactor.Add})
	defer d.Close()

	// Settings are checked and everything is found before anyone is asked:
	// a confirmation followed by "three credentials are missing" wastes it.
	if _, err := (&pipeline.Runner{Phases: d.FindPhases(), Sink: rend}).Execute(ctx); err != nil {
		a.emitInventory(ctx, rend, sb)
		return err
	}
	found := d.Found()
	if len(found) == 0 {
		msg := "nothing to destroy: everything was already gone"
		if z := d.Searched(); len(z) > 1 {
			msg += " (searched the Elastic Metal zones " + strings.Join(z, ", ") + ")"
		}
		rend.Emit(pipeline.Event{Type: pipeline.EventSummary, Time: time.Now(), Message: msg, Fields: map[string]any{"removed": []string{}}})
		a.emitInventory(ctx, rend, sb)
		return nil
	}
	if !o.yes {
		rend.Close() // the prompt must not share the line with a live display
		fmt.Fprintf(a.env.Out, "This removes (cluster %s):\n", d.Cluster())
		for _, f := range found {
			fmt.Fprintf(a.env.Out, "  - %s\n", a.redactor.String(f))
		}
		fmt.Fprint(a.env.Out, "Type 'yes' to destroy them: ")
		answer, _ := bufio.NewReader(a.env.In).ReadString('\n')
		if strings.TrimSpace(answer) != "yes" {
			return fail.UsageError(errors.New("destroy cancelled: nothing was touched"))
		}
		rend = a.renderer(cfg)
		defer rend.Close()
	}
	_, err = (&pipeline.Runner{Phases: d.Phases(), Sink: rend}).Execute(ctx)
	if err == nil {
		rend.Emit(pipeline.Event{Type: pipeline.EventSummary, Time: time.Now(), Message: "destroyed", Fields: map[string]any{"removed": d.Removed()}})
	}
	a.emitInventory(ctx, rend, sb)
	if err != nil {
		// What could not be removed ends the output, with its command.
		var f *pipeline.Failure
		if errors.As(err, &f) && len(f.Leftovers) == 0 {
			f.Leftovers = d.Remaining()
		}
	}
	return err
}

var serverID = regexp.MustCompile(`^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$`)

// isServerID reports whether id has the form of a Scaleway server ID.
func isServerID(id string) bool { return serverID.MatchString(strings.ToLower(id)) }
