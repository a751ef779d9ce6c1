package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// RegisterFlags adds one flag per setting to fs. Flags carry no defaults of
// their own: defaults live in the schema, so provenance stays exact.
func RegisterFlags(fs *pflag.FlagSet) {
	for _, s := range Schema {
		registerFlag(fs, s, s.Help)
	}
}

// Reference renders the configuration reference (Markdown) from the schema.
func Reference() string {
	var b strings.Builder
	b.WriteString("Every setting can be given as a flag, an environment variable, a key in the YAML config file, and —\n")
	b.WriteString("for those with an Infisical name — a secret in Infisical. Precedence, lowest to highest: default, config\n")
	b.WriteString("file, environment, flag; Infisical then fills only settings that are still unset.\n")
	b.WriteString("Secret settings (🔒) are never printed, logged or written to disk. \"Used by\" names the commands that\n")
	b.WriteString("offer the setting's flag (\"all\": every command that takes settings; `config show` shows every setting).\n")
	section := ""
	for _, s := range Schema {
		if s.Section != section {
			section = s.Section
			fmt.Fprintf(&b, "\n#### %s\n\n", section)
			b.WriteString("| Setting | Environment | Infisical | Default | Used by | Description |\n")
			b.WriteString("|---|---|---|---|---|---|\n")
		}
		name := "`--" + s.Name + "`"
		if s.Secret {
			name += " 🔒"
		}
		inf := "—"
		if s.Infisical != "" {
			inf = "`" + s.Infisical + "`"
		}
		def := "—"
		if s.Default != "" {
			def = "`" + s.Default + "`"
		}
		for _, topo := range sortedKeys(s.TopologyDefaults) {
			def += fmt.Sprintf(" (`%s` with topology %s)", s.TopologyDefaults[topo], topo)
		}
		help := s.Help
		if len(s.Values) > 0 && !mentionsAll(help, s.Values) {
			help += " (one of " + strings.Join(s.Values, ", ") + ")"
		}
		if s.NoFile {
			help += " (not settable in the file)"
		}
		usedBy := "all"
		if s.Commands != nil {
			usedBy = strings.Join(s.Commands, ", ")
		}
		fmt.Fprintf(&b, "| %s | `%s` | %s | %s | %s | %s |\n", name, s.Env(), inf, def, usedBy, help)
	}
	b.WriteString("\nAll-or-nothing groups: ")
	groups := make([]string, len(Groups))
	for i, g := range Groups {
		groups[i] = fmt.Sprintf("%s (%s)", g.Name, strings.Join(g.Settings, ", "))
	}
	sort.Strings(groups)
	b.WriteString(strings.Join(groups, "; ") + ".\n")
	return b.String()
}

func sortedKeys(m map[string]string) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
