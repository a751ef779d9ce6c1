package cli

import (
	"regexp"
	"strings"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
)

// sandboxGone says what becomes of a --sandbox run's leftovers.
const sandboxGone = "Sandbox: everything listed existed only in this run's emulators, which stopped with it; nothing is left anywhere and nothing bills."

// ownCommand finds this CLI's commands in text: "rawkode-cloud destroy",
// "rawkode-cloud config show", ...
var ownCommand = regexp.MustCompile(`\brawkode-cloud ((?:config|sandbox) [a-z]+|[a-z][a-z-]*)`)

// pasteArgs are the arguments a suggested command needs to act on the same
// world as this run: --sandbox for an in-process sandbox (a fresh one, which
// finds nothing: the right outcome), the config file or the sandbox-url
// flag for a served sandbox. Empty for real runs.
func (a *app) pasteArgs(cfg *config.Config) string {
	switch {
	case a.sandbox:
		return "--sandbox"
	case a.remote != nil:
		if v := cfg.Value(config.SandboxURL); v.Source == config.FromFlag {
			return "--" + config.SandboxURL + " " + v.Raw
		}
		if v := cfg.Value(config.ConfigFile); v.Source == config.FromFlag {
			return "--" + config.ConfigFile + " " + v.Raw
		}
	}
	return ""
}

// suggest makes every rawkode-cloud command in text one that does the right
// thing when pasted: in a sandbox it carries the arguments that keep it
// there, so that a hint never points at the real cloud.
func (a *app) suggest(text string) string {
	if a.paste == "" {
		return text
	}
	var b strings.Builder
	last := 0
	for _, m := range ownCommand.FindAllStringIndex(text, -1) {
		b.WriteString(text[last:m[1]])
		last = m[1]
		if !strings.HasPrefix(text[m[1]:], " "+a.paste) {
			b.WriteString(" " + a.paste)
		}
	}
	b.WriteString(text[last:])
	return b.String()
}

// command is the removal command to show for a leftover. In a sandbox,
// another tool's command (curl to Cloudflare, tctl, infisical) would act on
// the real services with the emulators' IDs: it is replaced by what is true.
func (a *app) command(c string) string {
	switch {
	case strings.HasPrefix(c, "rawkode-cloud "):
		return a.suggest(c)
	case a.sandbox:
		return "nothing to run: it existed only in this run's emulators"
	case a.remote != nil:
		return "nothing to run outside the sandbox: it goes when 'rawkode-cloud sandbox serve' stops"
	}
	return c
}

// suggestingSink rewrites the commands events suggest, as command does.
func (a *app) suggestingSink(next pipeline.Sink) pipeline.Sink {
	return pipeline.SinkFunc(func(e pipeline.Event) {
		if !a.sandbox && a.remote == nil {
			next.Emit(e)
			return
		}
		if c, ok := e.Fields["command"].(string); ok {
			fields := make(map[string]any, len(e.Fields))
			for k, v := range e.Fields {
				fields[k] = v
			}
			fields["command"] = a.command(c)
			e.Fields = fields
		}
		e.Message = a.suggest(e.Message)
		next.Emit(e)
	})
}
