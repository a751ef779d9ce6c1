package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
)

func (a *app) configCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "config",
		Short: "Inspect the resolved configuration",
		Args:  cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			return fail.UsageError(errors.New("config needs a subcommand: rawkode-cloud config show"))
		},
	}
	sbOpts := &sandboxOptions{}
	show := &cobra.Command{
		Use:   "show",
		Short: "Print every setting with its value and where it came from",
		Long: `Print every setting with its value and its source (default, file, env, flag, infisical, sandbox).
Secret values are never printed: only whether they are set and where from.
With --infisical-* settings present, Infisical is asked for the settings still unset.`,
		Example: `  rawkode-cloud config show
  rawkode-cloud config show --sandbox
  RAWKODE_CLOUD_CLUSTER_NAME=demo rawkode-cloud config show --output json
  rawkode-cloud config show --config ./staging.yaml`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			cfg, err := a.loadConfig(cmd)
			if err != nil {
				return err
			}
			sb, factory, err := a.startSandbox(cmd.Context(), cfg, sbOpts)
			if err != nil {
				return err
			}
			if sb != nil {
				defer sb.Close()
			}
			if err := cfg.Validate(config.Requirements{}); err != nil {
				// Show what was resolved, then what is wrong with it; Infisical
				// is not asked while its own settings may be malformed.
				if perr := a.printConfig(cfg); perr != nil {
					return perr
				}
				return fail.UsageError(err)
			}
			if err := a.resolveSecrets(cmd.Context(), factory, cfg); err != nil {
				return err
			}
			if err := a.printConfig(cfg); err != nil {
				return err
			}
			// Show first, then report bad values, so the user sees both.
			if err := cfg.Validate(config.Requirements{}); err != nil {
				return fail.UsageError(err)
			}
			return nil
		},
	}
	settingsFlags(show)
	sbOpts.addFlags(show, false)
	cmd.AddCommand(show)
	return cmd
}

type shownValue struct {
	Value  any    `json:"value"`
	Source string `json:"source"`
	Origin string `json:"origin,omitempty"`
	Secret bool   `json:"secret,omitempty"`
}

// showValue renders one setting for display: secrets become "(set)".
func showValue(s config.Setting, v config.Value) shownValue {
	out := shownValue{Source: string(v.Source), Origin: v.Origin, Secret: s.Secret}
	switch {
	case v.Raw == "":
		out.Value = nil
	case s.Secret:
		out.Value = "(set)"
	default:
		out.Value = v.Raw
	}
	return out
}

func (a *app) printConfig(cfg *config.Config) error {
	if cfg.Get(config.Output) == "json" {
		obj := map[string]shownValue{}
		for _, s := range config.Schema {
			obj[s.Name] = showValue(s, cfg.Value(s.Name))
		}
		enc := json.NewEncoder(a.redactor.Writer(a.env.Out))
		enc.SetIndent("", "  ")
		return enc.Encode(obj)
	}
	tw := tabwriter.NewWriter(a.redactor.Writer(a.env.Out), 0, 4, 2, ' ', 0)
	fmt.Fprintln(tw, "SETTING\tVALUE\tSOURCE")
	for _, s := range config.Schema {
		sv := showValue(s, cfg.Value(s.Name))
		val := "-"
		if sv.Value != nil {
			val = fmt.Sprint(sv.Value)
		}
		src := sv.Source
		if sv.Origin != "" && sv.Source != string(config.FromFlag) {
			src += " (" + sv.Origin + ")"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, val, src)
	}
	return tw.Flush()
}
