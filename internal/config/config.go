package config

import (
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/spf13/pflag"
	"gopkg.in/yaml.v3"
)

// Source says where a value came from, lowest precedence first.
type Source string

const (
	FromDefault   Source = "default"
	FromFile      Source = "file"
	FromEnv       Source = "env"
	FromFlag      Source = "flag"
	FromInfisical Source = "infisical"
	FromSandbox   Source = "sandbox"
	Unset         Source = "unset"
)

// Value is one resolved setting.
type Value struct {
	Raw    string
	Source Source
	// Origin is the precise place: the file path, variable or flag name.
	Origin string
}

// Config is the resolved set of settings with their provenance.
type Config struct {
	values map[string]Value
}

// New returns a config holding only defaults.
func New() *Config {
	c := &Config{values: map[string]Value{}}
	for _, s := range Schema {
		if s.Default != "" {
			c.values[s.Name] = Value{Raw: s.Default, Source: FromDefault}
		}
	}
	return c
}

// Get returns the raw value ("" when unset).
func (c *Config) Get(name string) string { return c.Value(name).Raw }

// Value returns the value with its provenance. A setting that only has its
// default takes the chosen topology's default when the schema gives one
// (TopologyDefaults), so a later --topology changes it and a value from any
// other source always wins.
func (c *Config) Value(name string) Value {
	s := mustLookup(name)
	v, ok := c.values[name]
	if (!ok || v.Source == FromDefault) && s.TopologyDefaults != nil {
		topo := c.values[Topology].Raw
		if d, has := s.TopologyDefaults[topo]; has {
			return Value{Raw: d, Source: FromDefault, Origin: "topology " + topo}
		}
	}
	if !ok {
		return Value{Source: Unset}
	}
	return v
}

// IsSet reports whether name has a non-empty value from any source.
func (c *Config) IsSet(name string) bool { return c.Get(name) != "" }

// Bool returns a validated boolean setting.
func (c *Config) Bool(name string) bool {
	b, _ := strconv.ParseBool(c.Get(name))
	return b
}

// Int reads a whole-number setting (0 when unset or malformed: validation
// reports those).
func (c *Config) Int(name string) int {
	n, _ := strconv.Atoi(c.Get(name))
	return n
}

// Duration returns a validated duration setting.
func (c *Config) Duration(name string) time.Duration {
	d, _ := time.ParseDuration(c.Get(name))
	return d
}

// Set overrides a value from source; used for flags, Infisical and the sandbox.
func (c *Config) Set(name, raw string, source Source, origin string) {
	mustLookup(name)
	c.values[name] = Value{Raw: raw, Source: source, Origin: origin}
}

// Clone returns an independent copy, for looking at a variant of the
// settings (the same credentials in another zone) without changing these.
func (c *Config) Clone() *Config {
	out := &Config{values: make(map[string]Value, len(c.values))}
	for k, v := range c.values {
		out.values[k] = v
	}
	return out
}

// Secrets returns every secret value currently set, for the redactor.
func (c *Config) Secrets() []string {
	var out []string
	for _, s := range Schema {
		if s.Secret && c.IsSet(s.Name) {
			out = append(out, c.Get(s.Name))
		}
	}
	return out
}

// FillFromInfisical sets every setting that is still unset (or only has its
// default) from the matching Infisical secret, and returns the names filled.
// It never overrides the file, the environment or a flag: the seed's
// precedence makes Infisical a backfill, not an override.
func (c *Config) FillFromInfisical(secrets map[string]string) []string {
	var filled []string
	for _, s := range Schema {
		if s.Infisical == "" {
			continue
		}
		v, ok := secrets[s.Infisical]
		if !ok || v == "" {
			continue
		}
		if cur := c.Value(s.Name); cur.Raw != "" && cur.Source != FromDefault {
			continue
		}
		c.values[s.Name] = Value{Raw: v, Source: FromInfisical, Origin: s.Infisical}
		filled = append(filled, s.Name)
	}
	return filled
}

// Sources describes where Load reads from.
type Sources struct {
	// File is the config file path; empty means the default
	// (~/.rawkode-cloud.yaml) if it exists.
	File string
	// Home is used for the default file; empty means os.UserHomeDir.
	Home string
	// LookupEnv reads the environment; nil means os.LookupEnv.
	LookupEnv func(string) (string, bool)
	// Flags, when non-nil, holds parsed flags registered by RegisterFlags.
	Flags *pflag.FlagSet
}

// DefaultFileName is looked up in the home directory.
const DefaultFileName = ".rawkode-cloud.yaml"

// Load resolves every setting from defaults < file < env < flags. Problems
// with the sources themselves (unreadable file, malformed YAML, unknown keys,
// wrong types) are returned together as Problems.
func Load(src Sources) (*Config, error) {
	c := New()
	var probs Problems
	lookup := src.LookupEnv
	if lookup == nil {
		lookup = os.LookupEnv
	}

	// The file's own path can only come from env or flag.
	path, explicit, from := "", false, ""
	if v, ok := lookup(mustLookup(ConfigFile).Env()); ok && v != "" {
		path, explicit, from = v, true, "env "+mustLookup(ConfigFile).Env()
		c.Set(ConfigFile, v, FromEnv, mustLookup(ConfigFile).Env())
	}
	if src.Flags != nil && src.Flags.Changed(ConfigFile) {
		v, _ := src.Flags.GetString(ConfigFile)
		path, explicit, from = v, true, "flag --"+ConfigFile
		c.Set(ConfigFile, v, FromFlag, "--"+ConfigFile)
	}
	if src.File != "" && !explicit {
		path, explicit = src.File, true
	}
	if !explicit {
		home := src.Home
		if home == "" {
			home, _ = os.UserHomeDir()
		}
		if home != "" {
			if p := filepath.Join(home, DefaultFileName); fileExists(p) {
				path = p
			}
		}
	}
	if path != "" {
		probs = append(probs, c.loadFile(path, explicit, from)...)
	}

	for _, s := range Schema {
		if s.Name == ConfigFile {
			continue
		}
		if v, ok := lookup(s.Env()); ok && v != "" {
			c.values[s.Name] = Value{Raw: v, Source: FromEnv, Origin: s.Env()}
		}
	}

	if src.Flags != nil {
		for _, s := range Schema {
			if s.Name == ConfigFile || !src.Flags.Changed(s.Name) {
				continue
			}
			f := src.Flags.Lookup(s.Name)
			c.values[s.Name] = Value{Raw: f.Value.String(), Source: FromFlag, Origin: s.Flag()}
		}
	}
	if len(probs) > 0 {
		return c, withValueProblems(c, probs)
	}
	return c, nil
}

// withValueProblems adds what is wrong with the values that did load, so a
// broken file does not hide a bad environment variable until the next run.
// Settings that already have a problem are not reported twice.
func withValueProblems(c *Config, probs Problems) Problems {
	reported := map[string]bool{}
	for _, p := range probs {
		reported[p.Setting] = true
	}
	var more Problems
	if errors.As(c.Validate(Requirements{}), &more) {
		for _, p := range more {
			if !reported[p.Setting] {
				probs = append(probs, p)
			}
		}
	}
	return probs
}

func fileExists(p string) bool {
	st, err := os.Stat(p)
	return err == nil && !st.IsDir()
}

// loadFile reads the config file; from names where its path came from
// (empty for the default file).
func (c *Config) loadFile(path string, explicit bool, from string) Problems {
	data, err := os.ReadFile(path)
	if err != nil {
		if errors.Is(err, os.ErrNotExist) && !explicit {
			return nil
		}
		if from != "" {
			from = " (named by " + from + ")"
		}
		return Problems{{Setting: ConfigFile, Message: fmt.Sprintf("config file %s%s cannot be read: %v", path, from, errors.Unwrap(err))}}
	}
	var doc yaml.Node
	if err := yaml.Unmarshal(data, &doc); err != nil {
		return Problems{{Setting: ConfigFile, Message: fmt.Sprintf("config file %s is not valid YAML: %s", path, strings.TrimPrefix(err.Error(), "yaml: "))}}
	}
	if len(doc.Content) == 0 {
		return nil // an empty file sets nothing
	}
	root := doc.Content[0]
	if root.Kind != yaml.MappingNode {
		return Problems{{Setting: ConfigFile, Message: fmt.Sprintf("config file %s must be a mapping of setting names to values (line %d)", path, root.Line)}}
	}
	var probs Problems
	for i := 0; i+1 < len(root.Content); i += 2 {
		k, v := root.Content[i], root.Content[i+1]
		origin := fmt.Sprintf("%s:%d", path, k.Line)
		s, ok := Lookup(k.Value)
		if !ok || s.NoFile {
			msg := fmt.Sprintf("unknown key %q in config file %s", k.Value, origin)
			if !ok {
				if sug := closest(k.Value); sug != "" {
					msg += fmt.Sprintf(" (did you mean %q?)", sug)
				}
			} else {
				msg = fmt.Sprintf("key %q cannot be set in the config file (%s); use %s or %s", k.Value, origin, s.Flag(), s.Env())
			}
			probs = append(probs, Problem{Setting: k.Value, Source: FromFile, Origin: origin, Message: msg})
			continue
		}
		if v.Kind == yaml.ScalarNode && (v.Tag == "!!null" || v.Value == "") {
			// An empty key (a template's placeholder) sets nothing, as an empty
			// environment variable does: it must not blank out the default.
			continue
		}
		raw, err := scalar(s, v)
		if err != nil {
			probs = append(probs, Problem{Setting: s.Name, Source: FromFile, Origin: origin,
				Message: fmt.Sprintf("value from file %s: %s", origin, err)})
			continue
		}
		c.values[s.Name] = Value{Raw: raw, Source: FromFile, Origin: origin}
	}
	return probs
}

// scalar turns a YAML value into the raw string, checking its YAML type.
func scalar(s Setting, v *yaml.Node) (string, error) {
	if v.Kind != yaml.ScalarNode {
		return "", fmt.Errorf("expected a single %s value, found a %s", s.Type, nodeKind(v))
	}
	switch s.Type {
	case Bool:
		if v.Tag != "!!bool" {
			return "", fmt.Errorf("expected true or false, found %q", shown(s, v.Value))
		}
	case String, Duration:
		if v.Tag == "!!null" {
			return "", nil
		}
		if v.Tag == "!!int" && s.Type == Duration {
			return "", fmt.Errorf("expected a duration with a unit such as 90s or 10m, found the number %s", v.Value)
		}
	}
	return v.Value, nil
}

func nodeKind(v *yaml.Node) string {
	switch v.Kind {
	case yaml.MappingNode:
		return "mapping"
	case yaml.SequenceNode:
		return "list"
	case yaml.AliasNode:
		return "alias"
	}
	return "value"
}

func shown(s Setting, v string) string {
	if s.Secret {
		return "[REDACTED]"
	}
	return v
}

// closest suggests the setting name nearest to an unknown key.
func closest(key string) string {
	best, bestD := "", 1<<30
	for _, s := range Schema {
		if s.NoFile {
			continue
		}
		if d := levenshtein(strings.ToLower(key), s.Name); d < bestD {
			best, bestD = s.Name, d
		}
	}
	if bestD <= max(3, len(key)/3) {
		return best
	}
	return ""
}

func levenshtein(a, b string) int {
	prev := make([]int, len(b)+1)
	cur := make([]int, len(b)+1)
	for j := range prev {
		prev[j] = j
	}
	for i := 1; i <= len(a); i++ {
		cur[0] = i
		for j := 1; j <= len(b); j++ {
			cost := 1
			if a[i-1] == b[j-1] {
				cost = 0
			}
			cur[j] = min(prev[j]+1, cur[j-1]+1, prev[j-1]+cost)
		}
		prev, cur = cur, prev
	}
	return prev[len(b)]
}

// Names returns every setting name, sorted as in the schema.
func Names() []string {
	out := make([]string, len(Schema))
	for i, s := range Schema {
		out[i] = s.Name
	}
	return out
}

// sortedProblems orders problems by schema position, for stable output.
func sortedProblems(p Problems) Problems {
	pos := map[string]int{}
	for i, s := range Schema {
		pos[s.Name] = i
	}
	sort.SliceStable(p, func(i, j int) bool {
		pi, oki := pos[p[i].Setting]
		pj, okj := pos[p[j].Setting]
		if !oki {
			pi = -1
		}
		if !okj {
			pj = -1
		}
		return pi < pj
	})
	return p
}
