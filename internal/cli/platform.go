package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"strings"

	"github.com/spf13/cobra"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/gitops"
)

// defaultInfisicalHost is Infisical Cloud, used for the platform's secret
// store when infisical-url is not set.
const defaultInfisicalHost = "https://app.infisical.com"

func (a *app) platformCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "platform",
		Short: "Generate and check the cluster's GitOps repository (Flux)",
		Long: `The platform is what Flux installs on the cluster from a Git repository: the External Secrets
Operator, a secret store (1Password Connect or Infisical), cert-manager with a DNS-01 wildcard
certificate, external-dns, CloudNativePG, the SpiceDB operator, a Cilium Gateway and a SpiceDB backed by a
two-instance PostgreSQL with backups to object storage, in a strict dependency order.`,
		Args: cobra.NoArgs,
	}
	cmd.AddCommand(a.platformScaffoldCmd(), a.platformCheckCmd())
	return cmd
}

type scaffoldOptions struct {
	force, dryRun, restore bool
}

func (a *app) platformScaffoldCmd() *cobra.Command {
	o := &scaffoldOptions{}
	cmd := &cobra.Command{
		Use:   "scaffold DIR",
		Short: "Write the platform's Flux repository into DIR",
		Long: `Write the platform's Flux repository into DIR (created when missing): clusters/<cluster-name> for
Flux to sync, infrastructure/* and apps/spicedb. Versions are pinned; secrets are only referenced,
never written. Re-running is safe: identical files are left alone, and if any file differs from what
would be written (you changed it, or the settings changed) nothing is written unless --force.

Needs cluster-name, domain, acme-email and backup-bucket (and infisical-project-slug with
platform-secret-store infisical). Check the result with 'rawkode-cloud platform check DIR'.`,
		Example: `  rawkode-cloud platform scaffold ./platform --cluster-name demo --domain example.com \
    --acme-email ops@example.com --backup-bucket demo-pg-backups
  rawkode-cloud platform scaffold ./platform --dry-run
  rawkode-cloud platform scaffold ./platform --restore-from-backup --force`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runScaffold(cmd, o, args[0]) },
	}
	settingsFlags(cmd)
	cmd.Flags().BoolVar(&o.force, "force", false, "Overwrite files that differ from what the scaffold writes")
	cmd.Flags().BoolVar(&o.dryRun, "dry-run", false, "List what would be written, and write nothing")
	cmd.Flags().BoolVar(&o.restore, "restore-from-backup", false, "Bootstrap PostgreSQL by recovery from the object-storage backup (disaster recovery) instead of an empty database")
	return cmd
}

func (a *app) runScaffold(cmd *cobra.Command, o *scaffoldOptions, dir string) error {
	cfg, err := a.loadConfig(cmd)
	if err != nil {
		return err
	}
	req := config.Requirements{
		Required: []string{config.ClusterName, config.Domain, config.ACMEEmail, config.BackupBucket},
		Extra: func(c *config.Config) config.Problems {
			if c.Get(config.PlatformSecretStore) == config.SecretStoreInfisical && !c.IsSet(config.InfisicalProjectSlug) {
				s, _ := config.Lookup(config.InfisicalProjectSlug)
				return config.Problems{{Setting: config.InfisicalProjectSlug, Source: config.Unset,
					Message: "required with platform-secret-store infisical; set it with " + s.Ways()}}
			}
			return nil
		},
	}
	if err := cfg.Validate(req); err != nil {
		return fail.UsageError(err)
	}
	host := cfg.Get(config.InfisicalURL)
	if host == "" {
		host = defaultInfisicalHost
	}
	files, err := gitops.Render(gitops.Params{
		Cluster: cfg.Get(config.ClusterName), Domain: strings.TrimSuffix(cfg.Get(config.Domain), "."),
		ACMEEmail: cfg.Get(config.ACMEEmail), BackupBucket: cfg.Get(config.BackupBucket),
		BackupEndpoint: cfg.Get(config.BackupEndpoint), SecretStore: cfg.Get(config.PlatformSecretStore),
		Restore: o.restore,
		Infisical: gitops.InfisicalScope{Host: strings.TrimSuffix(host, "/"), ProjectSlug: cfg.Get(config.InfisicalProjectSlug),
			Environment: cfg.Get(config.InfisicalEnvironment), Path: cfg.Get(config.InfisicalSecretPath)},
	})
	if err != nil {
		return err
	}
	actions, werr := gitops.Write(dir, files, gitops.WriteOptions{Force: o.force, DryRun: o.dryRun})
	if werr != nil && !errors.Is(werr, gitops.ErrConflicts) {
		return fmt.Errorf("write %s: %w", dir, werr)
	}
	out := a.redactor.Writer(a.env.Out)
	if cfg.Get(config.Output) == "json" {
		if err := json.NewEncoder(out).Encode(map[string]any{"dir": dir, "dry_run": o.dryRun, "files": actions}); err != nil {
			return err
		}
	} else {
		printActions(out, dir, actions, o.dryRun)
	}
	if werr != nil {
		var changed []string
		for _, a := range actions {
			if a.Action == gitops.Conflict {
				changed = append(changed, a.Path)
			}
		}
		return fmt.Errorf("nothing written: %d file(s) in %s differ from what the scaffold writes (changed by you, or written for other settings): %s; re-run with --force to overwrite them",
			len(changed), dir, strings.Join(changed, ", "))
	}
	return nil
}

func printActions(w interface{ Write([]byte) (int, error) }, dir string, actions []gitops.FileAction, dryRun bool) {
	counts := map[gitops.Action]int{}
	for _, a := range actions {
		counts[a.Action]++
		verb := string(a.Action)
		if dryRun && (a.Action == gitops.Create || a.Action == gitops.Overwrite) {
			verb = "would " + verb
		}
		if a.Action == gitops.Conflict {
			verb = "changed (kept)"
		}
		fmt.Fprintf(w, "%-16s %s\n", verb, a.Path)
	}
	prefix := ""
	if dryRun {
		prefix = "dry run, nothing written: "
	}
	fmt.Fprintf(w, "%s%s: %d created, %d overwritten, %d unchanged, %d changed by you\n", prefix, dir,
		counts[gitops.Create], counts[gitops.Overwrite], counts[gitops.Unchanged], counts[gitops.Conflict])
}

type checkOptions struct {
	sourceName string
	output     string
}

func (a *app) platformCheckCmd() *cobra.Command {
	o := &checkOptions{}
	cmd := &cobra.Command{
		Use:   "check DIR",
		Short: "Check a Flux repository offline: builds, schemas, dependencies, no secrets",
		Long: `Check a Flux repository offline, the scaffold's or your own, as its last step before a push (or in CI):

  - every path builds with kustomize (its Go API, as Flux's kustomize-controller builds): each directory
    with a kustomization file and each Flux Kustomization's spec.path in this repository;
  - every object decodes strictly against its real schema: the Kubernetes API types, and the CRDs of
    Flux, cert-manager, External Secrets, CloudNativePG, the SpiceDB operator, Gateway API and Cilium
    (built in) or any CRD the repository holds — unknown fields, wrong types, failed validation rules;
  - Flux dependsOn (Kustomizations, HelmReleases) names existing objects and has no cycle, and
    sources (GitRepository, HelmRepository, ...) referenced by name exist;
  - no Secret carries data.

Each problem is one line "file: object: what is wrong"; exit 1 when there is any, 0 when clean.
Objects without a known schema and paths in other repositories are listed as not checked.`,
		Example: `  rawkode-cloud platform check ./platform
  rawkode-cloud platform check . --output json`,
		Args: cobra.ExactArgs(1),
		RunE: func(cmd *cobra.Command, args []string) error { return a.runCheck(cmd, o, args[0]) },
	}
	cmd.Flags().StringVar(&o.sourceName, "source-name", gitops.DefaultSourceName, "Name of the Flux source that syncs this repository (Kustomizations referring to it are built from here)")
	cmd.Flags().StringVar(&o.output, "output", "plain", "plain or json")
	return cmd
}

func (a *app) runCheck(cmd *cobra.Command, o *checkOptions, dir string) error {
	if o.output != "plain" && o.output != "json" {
		return fail.UsageError(fmt.Errorf("--output must be plain or json, not %q", o.output))
	}
	schemas, err := gitops.NewSchemas()
	if err != nil {
		return err
	}
	res, err := gitops.Check(cmd.Context(), dir, schemas, gitops.CheckOptions{SourceName: o.sourceName})
	if err != nil {
		return fail.UsageError(fmt.Errorf("check %s: %w", dir, err))
	}
	out := a.env.Out
	if o.output == "json" {
		if err := json.NewEncoder(out).Encode(res); err != nil {
			return err
		}
	} else {
		for _, p := range res.Problems {
			fmt.Fprintln(out, p)
		}
		for _, u := range res.Unchecked {
			fmt.Fprintf(out, "not checked: %s\n", u)
		}
		fmt.Fprintf(out, "%d paths built, %d objects checked, %d problems, %d not checked\n",
			len(res.Built), res.Objects, len(res.Problems), len(res.Unchecked))
	}
	if n := len(res.Problems); n > 0 {
		return fail.WithCode(fmt.Errorf("%s has %d problem(s)", dir, n), fail.Failed)
	}
	return nil
}
