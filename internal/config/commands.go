package config

import (
	"fmt"
	"sort"
	"strings"

	"github.com/spf13/pflag"
)

// Commands that settings name in Setting.Commands.
const (
	CmdProvision  = "provision"
	CmdPlan       = "plan"
	CmdDestroy    = "destroy"
	CmdConfigShow = "config show"
	CmdPlatform   = "platform"
	CmdEtcd       = "etcd"
	CmdRebuild    = "rebuild"
	CmdAccess     = "access"
	CmdUpgrade    = "upgrade"
)

var (
	// forProvision: what only building a cluster needs (plan shows it;
	// rebuild builds one again).
	forProvision = []string{CmdProvision, CmdPlan, CmdRebuild}
	// forServers: waits for servers, which destroy has too.
	forServers = []string{CmdProvision, CmdPlan, CmdDestroy, CmdRebuild}
	// forBuild: what the cluster and its platform are built from.
	forBuild = []string{CmdProvision, CmdPlan, CmdPlatform}
	// forDomain: destroy too, which removes the DNS records made under it.
	forDomain = []string{CmdProvision, CmdPlan, CmdPlatform, CmdDestroy}
	// forUpgrade: how long to wait for a node's services (upgrade waits
	// for them after each node).
	forUpgrade = []string{CmdProvision, CmdPlan, CmdRebuild, CmdUpgrade}
	// forBackups: where etcd snapshots go.
	forBackups = []string{CmdEtcd, CmdRebuild}
)

// UsedBy reports whether command (its path below the root, such as
// "config show") uses s.
func (s Setting) UsedBy(command string) bool {
	if s.Commands == nil || command == CmdConfigShow {
		return true
	}
	for _, c := range s.Commands {
		if command == c || strings.HasPrefix(command, c+" ") {
			return true
		}
	}
	return false
}

// HelpFor is the flag help of s for command.
func (s Setting) HelpFor(command string) string {
	if h, ok := s.CommandHelp[command]; ok {
		return h
	}
	return s.Help
}

// ForCommand lists the settings command uses, in schema order.
func ForCommand(command string) []Setting {
	var out []Setting
	for _, s := range Schema {
		if s.UsedBy(command) {
			out = append(out, s)
		}
	}
	return out
}

// RegisterFlagsFor adds the flags of the settings command uses to fs.
func RegisterFlagsFor(fs *pflag.FlagSet, command string) {
	for _, s := range ForCommand(command) {
		registerFlag(fs, s, s.HelpFor(command))
	}
}

func registerFlag(fs *pflag.FlagSet, s Setting, help string) {
	if len(s.Values) > 0 && !mentionsAll(help, s.Values) {
		help += " (one of " + strings.Join(s.Values, ", ") + ")"
	}
	if s.Default != "" && s.Type != Bool {
		def := s.Default
		for _, topo := range sortedKeys(s.TopologyDefaults) {
			def += fmt.Sprintf("; %s with topology %s", s.TopologyDefaults[topo], topo)
		}
		help += fmt.Sprintf(" (default %s)", def)
	}
	help += fmt.Sprintf(" [env %s]", s.Env())
	switch s.Type {
	case Bool:
		fs.Bool(s.Name, false, help)
	default:
		fs.String(s.Name, "", help)
	}
}

func mentionsAll(help string, values []string) bool {
	words := map[string]bool{}
	for _, w := range strings.FieldsFunc(help, func(r rune) bool { return r == ' ' || r == ',' || r == '(' || r == ')' || r == ':' }) {
		words[w] = true
	}
	for _, v := range values {
		if !words[v] {
			return false
		}
	}
	return true
}

// CompletionValues are the values shell completion offers for s: its fixed
// set, true/false for a bool, nothing otherwise.
func (s Setting) CompletionValues() []string {
	if s.Type == Bool {
		return []string{"true", "false"}
	}
	return s.Values
}

// Suggest returns the candidate nearest to word, or "" when none is near
// enough to be what was meant.
func Suggest(word string, candidates []string) string {
	best, bestD := "", 1<<30
	for _, c := range candidates {
		if d := levenshtein(strings.ToLower(word), strings.ToLower(c)); d < bestD {
			best, bestD = c, d
		}
	}
	if best != "" && bestD <= max(2, len(word)/3) {
		return best
	}
	return ""
}

// testEnvPrefix starts the switches of the test suite, which share the
// prefix but are no settings.
const testEnvPrefix = EnvPrefix + "TEST_"

// UnknownEnv returns one warning per RAWKODE_CLOUD_* variable in environ
// (KEY=VALUE entries) that is not a setting: it would otherwise be ignored
// without a word, and a typo such as RAWKODE_CLOUD_CLUSTERNAME looks set.
func UnknownEnv(environ []string) []string {
	known := map[string]bool{}
	var names []string
	for _, s := range Schema {
		known[s.Env()] = true
		names = append(names, s.Env())
	}
	var out []string
	for _, kv := range environ {
		k, _, _ := strings.Cut(kv, "=")
		if !strings.HasPrefix(k, EnvPrefix) || known[k] || strings.HasPrefix(k, testEnvPrefix) {
			continue
		}
		msg := fmt.Sprintf("environment variable %s is not a rawkode-cloud setting and is ignored", k)
		if sug := suggestEnv(k, names); sug != "" {
			msg += fmt.Sprintf(" (did you mean %s?)", sug)
		}
		out = append(out, msg)
	}
	sort.Strings(out)
	return out
}

// suggestEnv compares names without the underscores, where typos in
// variable names mostly are (CLUSTERNAME for CLUSTER_NAME).
func suggestEnv(k string, names []string) string {
	squash := func(s string) string { return strings.ReplaceAll(strings.TrimPrefix(s, EnvPrefix), "_", "") }
	byKey := map[string]string{}
	var keys []string
	for _, n := range names {
		byKey[squash(n)] = n
		keys = append(keys, squash(n))
	}
	if best := Suggest(squash(k), keys); best != "" {
		return byKey[best]
	}
	return ""
}
