package cli

import (
	"encoding/json"
	"fmt"

	"github.com/spf13/cobra"

	"github.com/rawkode/rawkode-cloud/internal/version"
)

func (a *app) versionCmd() *cobra.Command {
	var asJSON bool
	cmd := &cobra.Command{
		Use:   "version",
		Short: "Print the version, commit and Go version",
		Example: `  rawkode-cloud version
  rawkode-cloud version --json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			info := version.Get()
			if asJSON {
				return json.NewEncoder(a.env.Out).Encode(info)
			}
			_, err := fmt.Fprintln(a.env.Out, info.String())
			return err
		},
	}
	cmd.Flags().BoolVar(&asJSON, "json", false, "Print as JSON")
	return cmd
}

func (a *app) completionCmd() *cobra.Command {
	return &cobra.Command{
		Use:   "completion bash|zsh|fish",
		Short: "Print a shell completion script",
		Long: `Print a shell completion script.

  bash:  source <(rawkode-cloud completion bash)
  zsh:   rawkode-cloud completion zsh > "${fpath[1]}/_rawkode-cloud"
  fish:  rawkode-cloud completion fish > ~/.config/fish/completions/rawkode-cloud.fish`,
		Example:   `  rawkode-cloud completion bash > /etc/bash_completion.d/rawkode-cloud`,
		ValidArgs: []string{"bash", "zsh", "fish"},
		Args:      cobra.MatchAll(cobra.ExactArgs(1), cobra.OnlyValidArgs),
		RunE: func(cmd *cobra.Command, args []string) error {
			root := cmd.Root()
			switch args[0] {
			case "bash":
				return root.GenBashCompletionV2(a.env.Out, true)
			case "zsh":
				return root.GenZshCompletion(a.env.Out)
			default:
				return root.GenFishCompletion(a.env.Out, true)
			}
		},
	}
}
