package cli

import (
	"encoding/json"
	"errors"
	"fmt"
	"net"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"
	"gopkg.in/yaml.v3"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/fail"
	"github.com/rawkode/rawkode-cloud/internal/sandbox"
	"github.com/rawkode/rawkode-cloud/internal/secretfile"
)

func (a *app) sandboxCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "sandbox",
		Short: "Run the emulators as a local cloud that outlives one command",
		Args:  cobra.NoArgs,
		RunE: func(*cobra.Command, []string) error {
			return fail.UsageError(errors.New("sandbox needs a subcommand: serve, inventory or fault"))
		},
	}
	cmd.AddCommand(a.sandboxServeCmd(), a.sandboxInventoryCmd(), a.sandboxFaultCmd())
	return cmd
}

type serveOptions struct {
	sandbox     sandboxOptions
	writeConfig string
	listen      string
}

func (a *app) sandboxServeCmd() *cobra.Command {
	o := &serveOptions{}
	cmd := &cobra.Command{
		Use:   "serve",
		Short: "Start every emulator in the foreground and write a config file pointing at them",
		Long: `Start an emulator of every external service, as --sandbox does, but keep them running until Ctrl-C,
so that ordinary commands in other shells work on one world that persists between them:
provision, destroy, ... with --config FILE and without --sandbox. The config file (mode 0600)
holds the sandbox's endpoints and fake credentials and the sandbox-url setting; the commands
scale their waits by the sandbox's speed. Faults given here apply from the start; 'sandbox fault'
changes them while it runs.`,
		Example: `  rawkode-cloud sandbox serve --write-config sandbox.yaml
  rawkode-cloud provision --config sandbox.yaml --cluster-name demo
  rawkode-cloud sandbox inventory --config sandbox.yaml
  rawkode-cloud destroy --config sandbox.yaml --cluster-name demo --yes`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error { return a.runServe(cmd, o) },
	}
	cmd.Flags().StringVar(&o.writeConfig, "write-config", "", "Write a config file (mode 0600) that points rawkode-cloud at this sandbox")
	cmd.Flags().StringVar(&o.listen, "listen", "127.0.0.1:0", "Loopback address the sandbox's own endpoint listens on")
	cmd.Flags().Float64Var(&o.sandbox.speed, "sandbox-speed", sandbox.DefaultSpeed, "How many times faster than real time the sandbox runs (the commands' waits are scaled to match)")
	cmd.Flags().StringArrayVar(&o.sandbox.faults, "sandbox-fault", nil, "Inject a fault from the start: POINT=KIND or POINT=KIND@N; repeatable; 'list' shows points and kinds")
	_ = cmd.RegisterFlagCompletionFunc("sandbox-fault", completeFaults)
	cmd.Flags().String(config.Output, "auto", "Output: plain, or json (one event per line)")
	return cmd
}

func (a *app) runServe(cmd *cobra.Command, o *serveOptions) error {
	ctx := cmd.Context()
	if done, err := o.sandbox.listFaults(a.env.Out); done {
		return err
	}
	if o.sandbox.speed <= 0 || o.sandbox.speed > 100000 {
		return fail.UsageError(fmt.Errorf("--sandbox-speed must be greater than 0 and at most 100000 (1 is real time, the default %d), got %g", sandbox.DefaultSpeed, o.sandbox.speed))
	}
	faults, err := sandbox.ParseFaults(o.sandbox.faults)
	if err != nil {
		return fail.UsageError(err)
	}
	host, _, err := net.SplitHostPort(o.listen)
	if ip := net.ParseIP(host); err != nil || ip == nil || !ip.IsLoopback() {
		return fail.UsageError(fmt.Errorf("--listen %q: must be a loopback host:port such as 127.0.0.1:0", o.listen))
	}
	ln, err := net.Listen("tcp", o.listen)
	if err != nil {
		return fail.UsageError(fmt.Errorf("--listen %s: %w", o.listen, err))
	}
	sb, err := sandbox.Start(sandbox.Options{Speed: o.sandbox.speed, Faults: faults})
	if err != nil {
		ln.Close()
		return err
	}
	defer sb.Close()
	srv := sb.Serve(ln)
	defer srv.Close()
	values := sb.ConfigValues(srv.URL())
	for name, v := range values {
		if s, ok := config.Lookup(name); ok && s.Secret {
			a.redactor.Add(v)
		}
	}
	if o.writeConfig != "" {
		b, err := yaml.Marshal(values)
		if err != nil {
			return err
		}
		head := "# Written by 'rawkode-cloud sandbox serve': endpoints and fake credentials of a local sandbox.\n" +
			"# Valid only while that process runs. Use with --config.\n"
		if err := secretfile.Write(o.writeConfig, append([]byte(head), b...), 0o600); err != nil {
			return fmt.Errorf("--write-config: %w", err)
		}
	}
	asJSON := cmd.Flags().Lookup(config.Output).Value.String() == "json"
	if asJSON {
		a.printJSON(map[string]any{"type": "serving", "url": srv.URL(), "config": o.writeConfig, "speed": sb.Speed()})
	} else {
		fmt.Fprintf(a.env.Out, "%s\nserving at %s", sb.Describe(), srv.URL())
		if o.writeConfig != "" {
			fmt.Fprintf(a.env.Out, "; config written to %s (use it with --config)", o.writeConfig)
		}
		fmt.Fprintln(a.env.Out, "\nCtrl-C stops the sandbox and everything in it.")
	}
	<-ctx.Done()
	inv := sb.Inventory()
	if asJSON {
		a.printJSON(map[string]any{"type": "stopped", "servers": len(inv.Servers), "dns_records": len(inv.DNSRecords)})
	} else {
		fmt.Fprintf(a.env.Out, "sandbox stopped; it held %d server(s) and %d DNS record(s), now gone with it\n", len(inv.Servers), len(inv.DNSRecords))
	}
	return nil
}

func (a *app) printJSON(v any) {
	b, _ := json.Marshal(v)
	fmt.Fprintln(a.env.Out, a.redactor.String(string(b)))
}

// served connects to the sandbox the settings point at.
func (a *app) served(cmd *cobra.Command) (*sandbox.Remote, *config.Config, error) {
	cfg, err := a.loadConfig(cmd)
	if err != nil {
		return nil, nil, err
	}
	if !cfg.IsSet(config.SandboxURL) {
		return nil, nil, fail.UsageError(fmt.Errorf("no served sandbox: give --config with the file 'sandbox serve --write-config' wrote (or set %s)", config.SandboxURL))
	}
	if _, err := a.connectServed(cmd.Context(), cfg); err != nil {
		return nil, nil, err
	}
	return a.remote, cfg, nil
}

func (a *app) sandboxInventoryCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "inventory",
		Short: "List what a served sandbox holds: servers, DNS records, tokens, kube servers, secrets",
		Example: `  rawkode-cloud sandbox inventory --config sandbox.yaml
  rawkode-cloud sandbox inventory --config sandbox.yaml --output json`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			r, cfg, err := a.served(cmd)
			if err != nil {
				return err
			}
			inv, err := r.Inventory(cmd.Context())
			if err != nil {
				return err
			}
			if cfg.Get(config.Output) == "json" {
				a.printJSON(inv)
				return nil
			}
			a.printInventory(inv)
			return nil
		},
	}
	settingsFlags(cmd)
	return cmd
}

func (a *app) printInventory(inv sandbox.Inventory) {
	tw := tabwriter.NewWriter(a.env.Out, 0, 4, 2, ' ', 0)
	section := func(title string, rows []map[string]any, keys ...string) {
		fmt.Fprintf(tw, "%s (%d)\n", title, len(rows))
		for _, r := range rows {
			cells := make([]string, len(keys))
			for i, k := range keys {
				cells[i] = fmt.Sprint(r[k])
			}
			fmt.Fprintf(tw, "  %s\n", strings.Join(cells, "\t"))
		}
	}
	section("servers", inv.Servers, "id", "name", "status", "ip", "tags")
	section("dns records", inv.DNSRecords, "name", "type", "content")
	section("teleport tokens", inv.Tokens, "name", "roles", "expires")
	section("kube servers", inv.KubeServers, "name")
	section("secrets", inv.Secrets, "path", "name")
	section("backups", inv.Backups, "bucket", "key", "size")
	section("proxmox hosts", inv.Proxmox.Hosts, "node", "version", "ip", "firewall", "policy_in")
	section("proxmox bridges", inv.Proxmox.Bridges, "node", "iface", "cidr")
	section("proxmox firewall rules", inv.Proxmox.FirewallRules, "scope", "action", "source", "dport", "comment")
	section("proxmox API tokens", inv.Proxmox.APITokens, "id")
	section("proxmox VMs", inv.Proxmox.VMs, "vmid", "name", "tags", "running")
	tw.Flush()
}

func (a *app) sandboxFaultCmd() *cobra.Command {
	cmd := &cobra.Command{
		Use:   "fault [POINT=KIND[@N]]...",
		Short: "Replace the faults injected into a served sandbox (none: clear them)",
		Example: `  rawkode-cloud sandbox fault --config sandbox.yaml teleport.agent=never
  rawkode-cloud sandbox fault --config sandbox.yaml     # clear every fault`,
		RunE: func(cmd *cobra.Command, args []string) error {
			r, _, err := a.served(cmd)
			if err != nil {
				return err
			}
			now, err := r.SetFaults(cmd.Context(), args)
			if err != nil {
				return fail.UsageError(err)
			}
			if len(now) == 0 {
				fmt.Fprintln(a.env.Out, "no faults injected")
				return nil
			}
			fmt.Fprintln(a.env.Out, "faults injected: "+strings.Join(now, ", "))
			return nil
		},
	}
	settingsFlags(cmd)
	return cmd
}
