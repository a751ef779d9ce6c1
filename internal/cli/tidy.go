package cli

import (
	"regexp"
	"strings"
)

// explained are upstream messages that say what went wrong inside a
// library rather than what the user can do, with the sentence to say instead.
var explained = []struct {
	match *regexp.Regexp
	say   string
}{
	{regexp.MustCompile(`profile could not be decoded: current-profile is not set|current-profile is not set|profile not found|no such file or directory: [^:]*\.tsh`),
		"no Teleport credentials: log in with 'tsh login --proxy <teleport-proxy>', or set teleport-identity-file (from 'tctl auth sign') or teleport-identity"},
}

var parenthetical = regexp.MustCompile(` \(([^()]+)\)`)

// tidy makes an error chain read as one sentence per problem: known
// library messages become what to do, a hint repeated by several layers
// appears once (at its last place), and a layer that says what the next
// one says again is dropped.
func tidy(msg string) string {
	for _, e := range explained {
		msg = e.match.ReplaceAllString(msg, e.say)
	}
	// A hint given twice ("(set operator-ip to skip detection)") stays at
	// its last place, next to the innermost cause.
	seen := map[string]int{}
	for _, m := range parenthetical.FindAllStringSubmatch(msg, -1) {
		seen[m[1]]++
	}
	for hint, n := range seen {
		for ; n > 1; n-- {
			msg = strings.Replace(msg, " ("+hint+")", "", 1)
		}
	}
	lines := strings.Split(msg, "\n")
	for i, l := range lines {
		lines[i] = dropEchoes(l)
	}
	return strings.Join(lines, "\n")
}

// dropEchoes removes a segment of "a: b: c" when the next one restates it
// ("log in to Infisical: log in to Infisical at URL as client X"), keeping
// the more specific (longer) of the two.
func dropEchoes(line string) string {
	segs := strings.Split(line, ": ")
	out := make([]string, 0, len(segs))
	for i := 0; i < len(segs); i++ {
		if i+1 < len(segs) && echoes(segs[i], segs[i+1]) {
			if len(segs[i]) > len(segs[i+1]) {
				segs[i+1] = segs[i]
			}
			continue
		}
		out = append(out, segs[i])
	}
	return strings.Join(out, ": ")
}

var stopWords = map[string]bool{"the": true, "a": true, "an": true, "this": true, "to": true, "of": true, "in": true,
	"at": true, "as": true, "on": true, "for": true, "machine's": true, "operator": true, "with": true}

// echoes reports whether b says what a says: the same leading verb and a
// shared object word, both short phrases.
func echoes(a, b string) bool {
	wa, wb := strings.Fields(strings.ToLower(a)), strings.Fields(strings.ToLower(b))
	if len(wa) < 2 || len(wb) < 2 || len(wa) > 8 || len(wb) > 12 || wa[0] != wb[0] {
		return false
	}
	objects := map[string]bool{}
	for _, w := range wa[1:] {
		if !stopWords[w] {
			objects[w] = true
		}
	}
	for _, w := range wb[1:] {
		if objects[w] {
			return true
		}
	}
	return false
}
