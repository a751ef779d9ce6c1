// Package cli holds the cobra commands. Each command has a small options
// struct and a run function; IO and the environment are injected so every
// command can be tested in-process.
package cli

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"strings"

	"github.com/spf13/cobra"
	"golang.org/x/term"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/progress"
	"github.com/rawkode/rawkode-cloud/internal/redact"
	"github.com/rawkode/rawkode-cloud/internal/sandbox"
)

// Env is everything a command reads from or writes to the outside.
type Env struct {
	In        io.Reader
	Out, Err  io.Writer
	LookupEnv func(string) (string, bool)
	// Environ lists the environment as KEY=VALUE (to warn about unknown
	// RAWKODE_CLOUD_* variables); nil skips the check.
	Environ func() []string
	// Home replaces the user's home directory (for the default config file).
	Home string
	// Terminal reports whether Out is an interactive terminal.
	Terminal bool
	// Width is the terminal's width in columns (0: unknown).
	Width int
	// Interrupts, when set, delivers signals that arrive after the context
	// was cancelled (a second Ctrl-C during cleanup).
	Interrupts <-chan os.Signal
	// Secrets replaces the Infisical lookup (tests); nil means the real one.
	Secrets SecretLister
	// OnSandbox, when set, is called with the sandbox as soon as --sandbox
	// started it, before anything runs against it: tests read its request
	// counters and inventory, or seed its emulated Infisical.
	OnSandbox func(*sandbox.Sandbox)
}

// OSEnv is the real process environment.
func OSEnv() Env {
	return Env{
		In: os.Stdin, Out: os.Stdout, Err: os.Stderr, LookupEnv: os.LookupEnv, Environ: os.Environ,
		Terminal: term.IsTerminal(int(os.Stdout.Fd())),
		Width:    terminalWidth(),
	}
}

func terminalWidth() int {
	w, _, err := term.GetSize(int(os.Stdout.Fd()))
	if err != nil {
		return 0
	}
	return w
}

// app is the state shared by one invocation's commands.
type app struct {
	env      Env
	redactor *redact.Redactor
	debug    bool
	started  bool // a command's RunE began: errors after this are not usage errors
	// remote is the served sandbox the settings point at, if any.
	remote  *sandbox.Remote
	sandbox bool // --sandbox is running: suggested commands must say so
	// paste is what a suggested rawkode-cloud command needs to act on the
	// same world as this run (see pasteArgs).
	paste string
	// usage is the command whose flags were wrong, for the --help hint.
	usage string
	// infisicalDown says why Infisical did not answer config show.
	infisicalDown string
}

// Execute runs the CLI and returns the process exit code. Errors are printed
// once, redacted, without stack traces.
func Execute(ctx context.Context, args []string, env Env) int {
	if env.LookupEnv == nil {
		env.LookupEnv = func(string) (string, bool) { return "", false }
	}
	a := &app{env: env, redactor: redact.New()}
	root := a.root()
	root.SetArgs(args)
	root.SetIn(env.In)
	root.SetOut(env.Out)
	root.SetErr(env.Err)
	err := root.ExecuteContext(ctx)
	if err == nil {
		return fail.OK
	}
	if !a.started {
		// Cobra failed before any command ran: bad flag, unknown command, bad arguments.
		err = fail.UsageError(err)
	}
	a.printError(err)
	return fail.ExitCode(err)
}

func (a *app) printError(err error) {
	msg := a.redactor.Error(err)
	var f *pipeline.Failure
	isFailure := errors.As(err, &f)
	if isFailure && f.Hint != "" {
		msg += "\n\n" + a.redactor.String(f.Hint)
	}
	msg = a.suggest(tidy(msg))
	fmt.Fprintf(a.env.Err, "Error: %s\n", msg)
	switch {
	case fail.IsUnavailable(err):
		fmt.Fprintln(a.env.Err, "Nothing was created: try again once the service answers.")
	case fail.IsUsage(err) && !a.started && !strings.Contains(msg, "--help"):
		usage := a.usage
		if usage == "" {
			usage = "rawkode-cloud"
		}
		fmt.Fprintf(a.env.Err, "Run '%s --help' for usage.\n", usage)
	}
	if a.debug {
		fmt.Fprintf(a.env.Err, "debug: exit code %d; error chain:\n", fail.ExitCode(err))
		for e := err; e != nil; e = errors.Unwrap(e) {
			fmt.Fprintf(a.env.Err, "  %T: %s\n", e, a.redactor.Error(e))
		}
	}
	if isFailure && len(f.Leftovers) > 0 {
		// Last, whatever the output mode: the progress stream may have gone
		// to a file or /dev/null, and what still exists costs money.
		a.printLeftovers(f)
	}
}

// printLeftovers lists everything a failed run leaves, each with the
// command that removes it.
func (a *app) printLeftovers(f *pipeline.Failure) {
	heading := "Left behind: cleanup could not remove"
	switch {
	case f.LeftRunning:
		heading = "Left in place for debugging"
	case f.Kept:
		heading = "Kept because of --keep-on-failure"
	}
	w := a.env.Err
	fmt.Fprintf(w, "\n%s (%d), each with the command that removes it:\n", heading, len(f.Leftovers))
	for _, st := range f.Leftovers {
		fmt.Fprintf(w, "  - %s\n      remove with: %s\n", a.redactor.String(st.Resource), a.redactor.String(a.command(st.Command)))
	}
	if a.sandbox {
		fmt.Fprintln(w, sandboxGone)
	}
}

func exitCodeHelp() string {
	var b strings.Builder
	b.WriteString("Exit codes:\n")
	for _, c := range fail.Codes {
		fmt.Fprintf(&b, "  %3d  %s\n", c.Code, c.Text)
	}
	return b.String()
}

func (a *app) root() *cobra.Command {
	root := &cobra.Command{
		Use:   "rawkode-cloud",
		Short: "Bare metal to locked-down Kubernetes in one command",
		Long: `rawkode-cloud orders a Scaleway Elastic Metal server, turns its Ubuntu into Talos Linux through
cloud-init, bootstraps Kubernetes, points a Cloudflare DNS record at it, registers it with Teleport and
only then closes the Talos and Kubernetes API ports to the internet. No SSH, no local state; anything
created before a failure is removed again, newest first.

Settings come from (lowest to highest) defaults, the config file (~/.rawkode-cloud.yaml or --config),
RAWKODE_CLOUD_* environment variables and flags; Infisical then fills what is still unset.
See 'rawkode-cloud config show' and the README's configuration reference.

` + exitCodeHelp(),
		SilenceUsage:  true,
		SilenceErrors: true,
		PersistentPreRun: func(cmd *cobra.Command, _ []string) {
			a.started = true
		},
	}
	root.PersistentFlags().BoolVar(&a.debug, "debug", false, "On failure, also print the exit code and the whole error chain (each wrapped error and its type); secrets stay redacted")
	root.SetFlagErrorFunc(func(cmd *cobra.Command, err error) error {
		a.usage = cmd.CommandPath()
		return fail.UsageError(flagError(cmd, err))
	})
	root.CompletionOptions.DisableDefaultCmd = true
	root.AddCommand(a.provisionCmd(), a.destroyCmd(), a.planCmd(), a.listCmd(), a.statusCmd(), a.upgradeCmd(), a.accessCmd(), a.etcdCmd(), a.rebuildCmd(), a.platformCmd(), a.configCmd(), a.sandboxCmd(), a.versionCmd(), a.completionCmd())
	addSettingsFlags(root)
	return root
}

// loadConfig resolves the settings from file, env and flags and registers
// every secret with the redactor before anything can print it.
func (a *app) loadConfig(cmd *cobra.Command) (*config.Config, error) {
	if a.env.Environ != nil {
		for _, w := range config.UnknownEnv(a.env.Environ()) {
			fmt.Fprintf(a.env.Err, "Warning: %s\n", w)
		}
	}
	cfg, err := config.Load(config.Sources{LookupEnv: a.env.LookupEnv, Home: a.env.Home, Flags: cmd.Flags()})
	if cfg != nil {
		a.redactor.Add(cfg.Secrets()...)
	}
	if err != nil {
		return cfg, fail.UsageError(err)
	}
	return cfg, nil
}

// renderer builds the progress renderer the output setting asks for.
func (a *app) renderer(cfg *config.Config) progress.Renderer {
	r := progress.New(progress.Mode(cfg.Get(config.Output)), a.env.Out, a.redactor, a.liveTerminal())
	if sw, ok := r.(interface{ SetWidth(int) }); ok && a.env.Width > 0 {
		sw.SetWidth(a.env.Width)
	}
	return suggesting{Sink: a.suggestingSink(r), r: r}
}

// liveTerminal reports whether the live display may be used: a terminal
// that understands cursor control. TERM=dumb (Emacs shells, some CI
// consoles) shows escape codes as garbage, so it gets plain lines.
func (a *app) liveTerminal() bool {
	if !a.env.Terminal {
		return false
	}
	term, _ := a.env.LookupEnv("TERM")
	return term != "dumb"
}

// suggesting is a renderer whose events' suggested commands fit the run.
type suggesting struct {
	pipeline.Sink
	r progress.Renderer
}

func (s suggesting) Close() { s.r.Close() }

// takesSettings marks a command whose flags include settings.
const takesSettings = "rawkode-cloud/settings"

// settingsFlags marks cmd as taking settings. Their flags are added once the
// command tree is built (addSettingsFlags), when the command's full path is
// known: each command offers only the settings it uses (Setting.Commands).
func settingsFlags(cmd *cobra.Command) {
	if cmd.Annotations == nil {
		cmd.Annotations = map[string]string{}
	}
	cmd.Annotations[takesSettings] = "true"
	cmd.Flags().SortFlags = false
}

// commandName is cmd's path below the root ("config show").
func commandName(cmd *cobra.Command) string {
	return strings.TrimPrefix(strings.TrimPrefix(cmd.CommandPath(), cmd.Root().Name()), " ")
}

// addSettingsFlags gives every command marked by settingsFlags the flags of
// the settings it uses, with completion of their values.
func addSettingsFlags(c *cobra.Command) {
	for _, sub := range c.Commands() {
		addSettingsFlags(sub)
	}
	if c.Annotations[takesSettings] == "" {
		return
	}
	name := commandName(c)
	config.RegisterFlagsFor(c.Flags(), name)
	for _, s := range config.ForCommand(name) {
		completeSetting(c, s)
	}
}
