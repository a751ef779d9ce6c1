package cli

import (
	"fmt"
	"regexp"
	"strings"

	"github.com/spf13/cobra"
	"github.com/spf13/pflag"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/sandbox"
)

// completeSetting offers a setting's values to shell completion: its fixed
// set, true/false, directories for a directory, files for a file.
func completeSetting(cmd *cobra.Command, s config.Setting) {
	values := s.CompletionValues()
	var fn cobra.CompletionFunc
	switch {
	case len(values) > 0:
		fn = cobra.FixedCompletions(values, cobra.ShellCompDirectiveNoFileComp)
	case s.Name == config.SecretsOut:
		fn = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveFilterDirs
		}
	case s.Name == config.ConfigFile || s.Name == config.TeleportIdentityFile:
		fn = func(*cobra.Command, []string, string) ([]string, cobra.ShellCompDirective) {
			return nil, cobra.ShellCompDirectiveDefault
		}
	default:
		fn = cobra.NoFileCompletions
	}
	_ = cmd.RegisterFlagCompletionFunc(s.Name, fn)
}

// completeFaults completes --sandbox-fault: first the points (and list),
// then POINT=KIND for the point typed so far.
func completeFaults(_ *cobra.Command, _ []string, toComplete string) ([]string, cobra.ShellCompDirective) {
	if point, _, ok := strings.Cut(toComplete, "="); ok {
		out := make([]string, 0, len(emulator.Kinds))
		for _, k := range emulator.Kinds {
			out = append(out, point+"="+string(k))
		}
		return out, cobra.ShellCompDirectiveNoFileComp
	}
	out := []string{"list\tshow every point and kind"}
	for _, p := range sandbox.FaultPoints {
		out = append(out, p.Point+"=\t"+p.What)
	}
	return out, cobra.ShellCompDirectiveNoFileComp | cobra.ShellCompDirectiveNoSpace
}

var unknownFlag = regexp.MustCompile(`^unknown (?:shorthand )?flag: '?-{1,2}([^' ]+)'?`)

// flagError adds to cobra's "unknown flag" what was probably meant: a flag
// of this command, or a setting that only other commands use.
func flagError(cmd *cobra.Command, err error) error {
	m := unknownFlag.FindStringSubmatch(err.Error())
	if m == nil {
		return err
	}
	typed, _, _ := strings.Cut(m[1], "=")
	var names []string
	cmd.Flags().VisitAll(func(f *pflag.Flag) {
		if !f.Hidden {
			names = append(names, f.Name)
		}
	})
	cmd.InheritedFlags().VisitAll(func(f *pflag.Flag) { names = append(names, f.Name) })
	if s, ok := config.Lookup(typed); ok && cmd.Flags().Lookup(typed) == nil {
		return fmt.Errorf("%w: %s has no such option; the setting %s is used by %s", err, commandName(cmd), s.Name, strings.Join(s.Commands, ", "))
	}
	if sug := config.Suggest(typed, names); sug != "" {
		return fmt.Errorf("%w (did you mean --%s?)", err, sug)
	}
	return err
}
