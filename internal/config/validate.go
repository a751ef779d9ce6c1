package config

import (
	"fmt"
	"strconv"
	"strings"
	"time"
)

// Problem is one thing wrong with the configuration.
type Problem struct {
	Setting string
	Source  Source
	Origin  string
	Message string
}

func (p Problem) String() string {
	if _, known := Lookup(p.Setting); !known || strings.HasPrefix(p.Message, p.Setting+":") || p.Setting == ConfigFile && p.Source == "" {
		return p.Message
	}
	return p.Setting + ": " + p.Message
}

// Problems is every configuration problem found, reported together so the
// user fixes them in one round instead of one per run.
type Problems []Problem

func (ps Problems) Error() string {
	lines := make([]string, len(ps))
	for i, p := range ps {
		lines[i] = "  - " + p.String()
	}
	noun := "problems"
	if len(ps) == 1 {
		noun = "problem"
	}
	return fmt.Sprintf("configuration has %d %s:\n%s", len(ps), noun, strings.Join(lines, "\n"))
}

// Requirements says what one command needs.
type Requirements struct {
	// Required settings must be set.
	Required []string
	// Ignore names settings whose values are not used (the sandbox replaces
	// them): they are not checked.
	Ignore []string
	// Extra validates cross-setting rules that need other packages (e.g.
	// whether the Talos library can generate for the version); it returns
	// problems to add.
	Extra func(*Config) Problems
}

// Validate checks every value that is set, every required setting and every
// all-or-nothing group, and returns all problems at once (nil when fine).
func (c *Config) Validate(req Requirements) error {
	var probs Problems
	bad := map[string]bool{}
	for _, s := range Schema {
		if containsStr(req.Ignore, s.Name) {
			continue
		}
		v := c.Value(s.Name)
		if v.Raw == "" && v.Source == FromFlag {
			// An empty flag value is almost always an unset shell
			// variable; taking it as "unset" would hide the mistake.
			bad[s.Name] = true
			probs = append(probs, Problem{Setting: s.Name, Source: v.Source, Origin: v.Origin,
				Message: fmt.Sprintf("flag %s was given an empty value (an unset shell variable?); omit the flag to leave the setting unset", s.Flag())})
			continue
		}
		if v.Raw == "" {
			continue
		}
		if msg := checkValue(s, v.Raw); msg != "" {
			bad[s.Name] = true
			probs = append(probs, Problem{Setting: s.Name, Source: v.Source, Origin: v.Origin,
				Message: fmt.Sprintf("%s %s", describe(s, v), msg)})
		}
	}
	for _, name := range req.Required {
		s := mustLookup(name)
		if !c.IsSet(name) && !bad[name] {
			probs = append(probs, Problem{Setting: name, Source: Unset,
				Message: fmt.Sprintf("required but not set; set it with %s", s.Ways())})
		}
	}
	for _, g := range Groups {
		var set, unset []string
		for _, name := range g.Settings {
			if c.IsSet(name) {
				set = append(set, name)
			} else {
				unset = append(unset, name)
			}
		}
		if len(set) == 0 || len(unset) == 0 {
			continue
		}
		for _, name := range unset {
			if containsStr(req.Required, name) {
				continue // already reported as required
			}
			s := mustLookup(name)
			probs = append(probs, Problem{Setting: name, Source: Unset,
				Message: fmt.Sprintf("the %s settings are all or nothing: %s %s set, so this one is needed too; set it with %s",
					g.Name, strings.Join(set, ", "), isAre(len(set)), s.Ways())})
		}
	}
	if req.Extra != nil {
		// Cross-setting rules are checked in the same round, so that a
		// first run lists everything still needed; what they say about a
		// setting already reported (malformed or missing) is left out.
		for _, p := range req.Extra(c) {
			if !bad[p.Setting] && !(p.Source == Unset && containsStr(req.Required, p.Setting) && !c.IsSet(p.Setting)) {
				probs = append(probs, p)
			}
		}
	}
	if len(probs) == 0 {
		return nil
	}
	return sortedProblems(probs)
}

func isAre(n int) string {
	if n == 1 {
		return "is"
	}
	return "are"
}

func containsStr(list []string, s string) bool {
	for _, x := range list {
		if x == s {
			return true
		}
	}
	return false
}

// describe names a value and where it came from, hiding secrets.
func describe(s Setting, v Value) string {
	where := string(v.Source)
	if v.Origin != "" {
		where += " " + v.Origin
	}
	if s.Secret {
		return fmt.Sprintf("value from %s", where)
	}
	return fmt.Sprintf("value %q from %s", v.Raw, where)
}

func checkValue(s Setting, raw string) string {
	switch s.Type {
	case Bool:
		if _, err := strconv.ParseBool(raw); err != nil {
			return "must be true or false"
		}
	case Duration:
		if _, err := time.ParseDuration(raw); err != nil {
			return "must be a duration such as 90s, 10m or 1h30m"
		}
	}
	if s.Check != nil {
		if err := s.Check(raw); err != nil {
			return err.Error()
		}
		return ""
	}
	if len(s.Values) > 0 && !containsStr(s.Values, raw) {
		return "must be one of " + strings.Join(s.Values, ", ")
	}
	return ""
}

// WellFormed reports whether the named settings' values pass their own
// checks (unset counts as well formed): cross-setting rules that parse them
// only make sense then.
func (c *Config) WellFormed(names ...string) bool {
	for _, name := range names {
		s := mustLookup(name)
		if v := c.Get(name); v != "" && checkValue(s, v) != "" {
			return false
		}
	}
	return true
}

// ProblemFor builds a problem about a setting's current value, for checks
// made outside this package (e.g. by the Talos library).
func (c *Config) ProblemFor(name, msg string) Problem {
	s := mustLookup(name)
	v := c.Value(name)
	return Problem{Setting: name, Source: v.Source, Origin: v.Origin, Message: describe(s, v) + " " + msg}
}
