package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"text/tabwriter"
	"time"

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
			// config show is what one runs when something is wrong: a
			// dead or silent Infisical costs seconds, not the minutes a
			// provision may spend on it, and the local layers are shown
			// whatever it answered.
			if factory.CallBudget <= 0 {
				factory.CallBudget = showBudget
			}
			if factory.AttemptTimeout <= 0 {
				factory.AttemptTimeout = showAttempt
			}
			if err := a.resolveSecrets(cmd.Context(), factory, cfg); err != nil {
				a.infisicalDown = a.redactor.Error(err)
				if perr := a.printConfig(cfg); perr != nil {
					return perr
				}
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

// How long config show gives Infisical: per request, and in all.
const (
	showAttempt = 5 * time.Second
	showBudget  = 15 * time.Second
)

type shownValue struct {
	Value  any    `json:"value"`
	Source string `json:"source"`
	Origin string `json:"origin,omitempty"`
	Secret bool   `json:"secret,omitempty"`
	// Infisical says why Infisical could not fill this setting, when it
	// was asked and did not answer.
	Infisical string `json:"infisical,omitempty"`
}

// infisicalMissed reports whether Infisical, had it answered, could have
// set s (it fills only what is unset or at its default).
func infisicalMissed(s config.Setting, v config.Value) bool {
	return s.Infisical != "" && (v.Source == config.Unset || v.Source == config.FromDefault)
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
			sv := showValue(s, cfg.Value(s.Name))
			if a.infisicalDown != "" && infisicalMissed(s, cfg.Value(s.Name)) {
				sv.Infisical = "unreachable: " + a.infisicalDown
			}
			obj[s.Name] = sv
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
		if a.infisicalDown != "" && infisicalMissed(s, cfg.Value(s.Name)) {
			src += "; Infisical unreachable"
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\n", s.Name, val, src)
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	if a.infisicalDown != "" {
		_, err := fmt.Fprintf(a.redactor.Writer(a.env.Out), "\nInfisical unreachable, so the settings it could fill are shown without it: %s\n", a.infisicalDown)
		return err
	}
	return nil
}
