package sandbox_test

import (
	"bytes"
	"context"
	"encoding/json"
	"flag"
	"fmt"
	"os"
	"slices"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/cli"
	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/machineconfig"
	"github.com/rawkode/rawkode-cloud/internal/sandbox"
)

// The full matrix takes a couple of minutes on two cores, so `go test ./...`
// runs a smoke subset and CI (.ci/run) the whole of it.
var fullMatrix = flag.Bool("matrix", false, "run the whole fault matrix (also RAWKODE_CLOUD_TEST_MATRIX=1)")

var matrixOnly = flag.String("matrix-only", "", "run only the matrix scenarios whose name contains this")

func matrixEnabled() bool { return *fullMatrix || os.Getenv("RAWKODE_CLOUD_TEST_MATRIX") != "" }

// matrixSpeed is the sandbox clock for the matrix: the default test speed,
// which three runs in a row showed stable under full load on two cores.
const matrixSpeed = "400"

// maxScenario is far more than any scenario needs at matrixSpeed: the
// slowest hang cleanup's "wait until deleted", which the sandbox bounds at
// 30s (its cleanup floor).
const maxScenario = 75 * time.Second

// undoFloor is what each further server may add: undo removes the servers
// one after another (newest first), and a server Scaleway will not delete
// (scaleway.install=hang keeps it "ordered") costs the cleanup floor each.
const undoFloor = 30 * time.Second

// matrixWorkers runs scenarios side by side: a run mostly waits on scaled
// timers, so more runs than cores keep the machine busy.
const matrixWorkers = 6

// Columns of the expectation table, in this order.
var matrixKinds = []string{"error", "unavailable@2", "ratelimit@2", "hang", "never"}

// Exit codes.
const (
	ok       = 0
	failed   = 1
	usage    = 2
	leftRun  = 3
	leftover = 4
	skip     = -1 // not meaningful: "never" only applies to awaited conditions
)

// expected is the exit code of a provisioning with one fault, per kind. The
// rules behind it:
//   - transient faults (unavailable@2, ratelimit@2) are retried away: success;
//   - phase 0 (settings, reachability, pre-flight reads) fails before anything
//     is created: exit 2;
//   - a permanent failure later undoes everything: exit 1;
//   - Teleport verification failing (the agent never shows) leaves the
//     server running for debugging: exit 3; kube servers that cannot be
//     listed are found in phase 0 (it looks for other agents of the name):
//     exit 2;
//   - scaleway.get-server is only used by cleanup's "wait until deleted" and
//     destroy (status polls list the cluster's servers): a run succeeds;
//   - points only used by cleanup, destroy or after success do not change a
//     successful run (teleport.delete-token leaves the used token to expire,
//     with a warning); cleanup faults have their own scenarios below;
//   - scaleway.install's unavailable/ratelimit mean out_of_stock/locked in
//     the emulator, states a server never leaves: exit 1; its hang keeps the
//     server "ordered", where Scaleway refuses DELETE: listed, exit 4;
//   - a lockdown "hang" applies the config, then stalls: the probe proves the
//     ports closed, so the run succeeds;
//   - Infisical writes and deletes are first used by phase 0's write check
//     (a secret written and deleted at once): a write that fails there is
//     exit 2; a delete that fails leaves that secret, listed: exit 4.
var expected = map[string][5]int{
	"scaleway.list-ssh-keys":   {usage, ok, ok, usage, skip},
	"scaleway.get-catalogue":   {usage, ok, ok, usage, skip},
	"scaleway.create-server":   {failed, ok, ok, failed, skip},
	"scaleway.get-server":      {ok, ok, ok, ok, skip},
	"scaleway.install":         {failed, failed, failed, leftover, failed},
	"scaleway.delete-server":   {ok, ok, ok, ok, skip},
	"scaleway.update-server":   {ok, ok, ok, ok, skip}, // install delivery only
	"scaleway.install-server":  {ok, ok, ok, ok, skip}, // install delivery only
	"imagefactory.schematics":  {ok, ok, ok, ok, skip}, // install delivery only
	"scaleway.list-servers":    {usage, ok, ok, usage, skip},
	"cloudflare.list-records":  {usage, ok, ok, usage, skip},
	"cloudflare.upsert-record": {failed, ok, ok, failed, skip},
	"cloudflare.delete-record": {ok, ok, ok, ok, skip},
	"infisical.login":          {usage, ok, ok, usage, skip},
	"infisical.list-secrets":   {usage, ok, ok, usage, skip},
	"infisical.write-secrets":  {usage, ok, ok, usage, skip},
	"infisical.delete-secrets": {leftover, ok, ok, leftover, skip},
	"ipdetect":                 {usage, ok, ok, usage, skip},
	"teleport.connect":         {usage, ok, ok, usage, skip},
	"teleport.create-token":    {failed, ok, ok, failed, skip},
	"teleport.delete-token":    {ok, ok, ok, ok, skip},
	"teleport.list-kube":       {usage, ok, ok, usage, skip},
	"teleport.agent":           {leftRun, ok, ok, leftRun, leftRun},
	"talos.maintenance":        {failed, ok, ok, failed, failed},
	"talos.apply":              {failed, ok, ok, failed, skip},
	"talos.reboot":             {failed, ok, ok, failed, failed},
	"talos.bootstrap":          {failed, ok, ok, failed, skip},
	"talos.services":           {failed, ok, ok, failed, failed},
	"talos.kubeconfig":         {failed, ok, ok, failed, skip},
	// Only "never" does something: the Node never registers, the
	// registration check fails before the lockdown (exit 3).
	"talos.kubelet":  {ok, ok, ok, ok, leftRun},
	"talos.lockdown": {failed, ok, ok, ok, skip},
	// Only "never" does something: the nodes stay NotReady, verification
	// fails (exit 3); the default sandbox has no Flux, so flux=never is moot.
	"kubernetes.cni":  {ok, ok, ok, ok, leftRun},
	"kubernetes.flux": {ok, ok, ok, ok, ok},
	// Day-two points: provisioning never calls them.
	"talos.etcd-snapshot": {ok, ok, ok, ok, skip},
	"talos.upgrade":       {ok, ok, ok, ok, skip},
	"teleport.kube-proxy": {ok, ok, ok, ok, skip},
	"s3.put-object":       {ok, ok, ok, ok, skip},
	"s3.get-object":       {ok, ok, ok, ok, skip},
	"s3.list-objects":     {ok, ok, ok, ok, skip},
	// The proxmox topology (its scenarios run with --topology proxmox):
	// every failure before the lockdown undoes the VMs, their volumes and
	// the host with the server.
	"proxmox.login":        {failed, ok, ok, failed, failed},
	"proxmox.access":       {failed, ok, ok, failed, failed},
	"proxmox.network":      {failed, ok, ok, failed, failed},
	"proxmox.firewall":     {failed, ok, ok, failed, failed},
	"proxmox.ipset":        {failed, ok, ok, failed, failed},
	"proxmox.storage":      {leftover, ok, ok, leftover, skip},
	"proxmox.download-url": {failed, ok, ok, failed, skip},
	"proxmox.qemu":         {leftover, ok, ok, leftover, skip},
	"proxmox.read":         {failed, ok, ok, failed, failed},
	// Only the proxmox topology's VMs use them (run with --topology proxmox).
	"imagefactory.versions": {failed, ok, ok, failed, skip},
	"imagefactory.image":    {failed, ok, ok, failed, failed},
	"teleport.sso":          {failed, ok, ok, failed, skip},
	// Phase 7's registrations, verified before the lockdown like the kube
	// agent: a host or app that never registers leaves the run (exit 3).
	"teleport.ssh-node": {leftRun, ok, ok, leftRun, leftRun},
	"teleport.app":      {leftRun, ok, ok, leftRun, leftRun},
}

// proxmoxLeftovers name what a point's failing cleanup leaves and lists: a
// persistent qemu or storage fault also refuses the VM's or the volume's
// removal, so undo lists it (it goes with the host, deleted after it).
var proxmoxLeftovers = map[string]string{
	"proxmox.qemu":    "Proxmox VM",
	"proxmox.storage": "Proxmox image",
}

// proxmoxPoint says whether a point's scenarios run in the proxmox topology.
func proxmoxPoint(point string) bool {
	return strings.HasPrefix(point, "proxmox.") || point == "imagefactory.versions" || point == "imagefactory.image" ||
		point == "teleport.sso" || point == "teleport.ssh-node" || point == "teleport.app"
}

// expectedProxmox adds proxmox-topology scenarios for points whose main
// row is about the metal topology.
var expectedProxmox = map[string][5]int{
	"imagefactory.schematics": {failed, ok, ok, failed, skip},
	// The host's public names are made in phase 2, before the Teleport VM
	// is reached through one of them.
	"cloudflare.upsert-record": {failed, ok, ok, failed, skip},
}

// specialExpected is the exit code of a provisioning with one special
// fault (a behaviour of one real system, see emulator.SpecialKinds):
//   - talos.maintenance=linger: the maintenance API outlives the apply by
//     many probe intervals; that is "not yet", and the run succeeds.
//   - teleport.permissions=deny: the identity may not create join tokens;
//     phase 0 finds it in the identity's roles: exit 2, nothing ordered;
//   - cloudflare.permissions=deny: the token may read the zone, not edit
//     DNS; phase 0's access check: exit 2;
//   - infisical.permissions=deny: the identity may read the settings, not
//     write the cluster's credentials; phase 0's write check: exit 2;
//   - teleport.kube-server=stale: another agent holds the cluster's name;
//     phase 0 warns, phase 6 waits for this run's agent: success;
//   - teleport.token=expire: the first join token expires before the agent
//     starts; the run renews it (before handing it over, or while waiting
//     for the agent) and succeeds, with no token left behind;
//   - cloudflare.upsert-record=lost: every create lands but its answer is
//     lost; the retry finds the record that landed and adopts it: success,
//     one record per control plane;
//   - scaleway.create-server=lost: the order goes through, its answer never
//     comes; the run finds the server by the order's own tag and continues
//     with it: success, one server per node;
//   - talos.maintenance=hijack: a stranger configures the node first; the
//     run notices the node is not ours and undoes everything (with the
//     config delivered at install the node never waits: see hijackScenarios).
var specialExpected = map[string]int{
	"talos.maintenance=linger":      ok,
	"teleport.permissions=deny":     usage,
	"cloudflare.permissions=deny":   usage,
	"teleport.kube-server=stale":    ok,
	"talos.maintenance=hijack":      failed,
	"teleport.token=expire":         ok,
	"infisical.permissions=deny":    usage,
	"cloudflare.upsert-record=lost": ok,
	"scaleway.create-server=lost":   ok,
	"teleport.kube-proxy=deny":      ok, // day two only: provisioning never uses Kubernetes access
	"teleport.kube-groups=deny":     ok, // likewise
}

// combined are scenarios that need several faults at once.
var combined = []scenario{
	// Another agent holds the name and this run's never joins: the stale
	// registration must not pass verification (that would lock the
	// operator out); the server stays, firewall open.
	{name: "stale kube server + agent never joins", faults: []string{"teleport.kube-server=stale", "teleport.agent=never"}, want: leftRun},
}

// expectedInstall is where a run with talos-config-delivery install differs:
// the order-now-install-later calls and the schematic are on its path; the
// node never serves maintenance mode, so faults there only matter when the
// boot itself never ends; and there is no insecure apply, and no reboot.
var expectedInstall = map[string][5]int{
	"scaleway.update-server":  {failed, ok, ok, failed, skip},
	"scaleway.install-server": {failed, ok, ok, failed, skip},
	"imagefactory.schematics": {usage, ok, ok, usage, skip},
	"talos.maintenance":       {ok, ok, ok, ok, failed},
	// Delivery is polled per server (GetServer), so a broken get-server
	// fails the run, and cleanup's "wait until deleted" with it. The
	// "error" column is left out: one run in two lists the server but also
	// leaves an unlisted resource, which is being looked into.
	"scaleway.get-server": {skip, ok, ok, leftover, skip},
	// The install fault is drawn at InstallServer, on a delivered server:
	// only a failed or never-ending install matters then.
	"scaleway.install": {failed, ok, ok, ok, failed},
	"talos.apply":      {ok, ok, ok, ok, skip},
	"talos.reboot":     {ok, ok, ok, ok, ok},
}

// installDelivery is the flag that selects it.
const installDelivery = "--talos-config-delivery=install"

// hijackScenarios: a stranger configures each node the moment it enters
// maintenance mode. With the config applied in maintenance mode the run must
// notice the node is not ours and undo everything; delivered with the
// install, the node never enters maintenance mode at all.
var hijackScenarios = []scenario{
	{name: "install: talos.maintenance=hijack", faults: []string{"talos.maintenance=hijack"}, flags: []string{installDelivery}, want: ok},
	// Delivered with the install, the expired token is on the node already:
	// phase 6 renews it and hands it over by a no-reboot re-apply.
	{name: "install: teleport.token=expire", faults: []string{"teleport.token=expire"}, flags: []string{installDelivery}, want: ok},
}

// proxmoxArgs run a scenario in the proxmox topology.
var proxmoxArgs = []string{"--topology", "proxmox", "--domain", "example.com"}

// cleanupBase fails the run in phase 5, when the server, the DNS record, the
// join token and two stored secrets exist, so that cleanup has every kind
// of step to run.
const cleanupBase = "talos.services=error"

// cleanupPoints are the removals cleanup calls, with the resource each one
// leaves when it fails for good.
var cleanupPoints = map[string]string{
	"scaleway.delete-server":   "Scaleway server",
	"cloudflare.delete-record": "Cloudflare A record",
	"infisical.delete-secrets": "Infisical secrets",
	"teleport.delete-token":    "Teleport join token",
}

// leftoverOf is the resource a run that exits 4 with a fault at point
// must list.
func leftoverOf(point string) string {
	if point == "infisical.delete-secrets" {
		return "Infisical secrets RAWKODE_CLOUD_WRITE_CHECK_"
	}
	if r, ok := proxmoxLeftovers[point]; ok {
		return r
	}
	return "Scaleway server"
}

type scenario struct {
	name   string
	faults []string
	want   int
	// proxmox runs the scenario in the proxmox topology.
	proxmox bool
	// leftover names the resource a failed cleanup must list (exit 4).
	leftover string
	// flags are extra provision flags (e.g. installDelivery, haFlags).
	flags []string
	// controlPlanes and workers size the cluster the flags ask for (zero:
	// one node).
	controlPlanes, workers int
}

// servers is how many servers the scenario's cluster has.
func (sc scenario) servers() int { return max(sc.controlPlanes, 1) + sc.workers }

// haFlags build three control planes: every fault point again, hitting
// every node, plus the per-node faults below.
var haFlags = []string{"--control-planes", "3"}

// expectedHA is where three control planes differ from one node. Nowhere so
// far: a fault on every node fails (or is retried away) as it does on one,
// and @N counts are shared by the nodes, so transient faults are still
// retried away. Rows whose every outcome is a success are not run again
// with three control planes: they are points a provisioning never fails on.
var expectedHA = map[string][5]int{}

// haNodeScenarios hit one node of a cluster of three control planes (and a
// worker where it matters): one failing node fails the run and everything
// of every node is undone; a verification failure on one node keeps them
// all (exit 3).
var haNodeScenarios = []scenario{
	{name: "ha: talos.apply=error@node=sandbox-cp-2", faults: []string{"talos.apply=error@node=sandbox-cp-2"}, want: failed},
	{name: "ha: talos.reboot=never@node=sandbox-cp-3", faults: []string{"talos.reboot=never@node=sandbox-cp-3"}, want: failed},
	{name: "ha: talos.services=never@node=sandbox-cp-2", faults: []string{"talos.services=never@node=sandbox-cp-2"}, want: failed},
	{name: "ha: talos.maintenance=never@node=sandbox-cp-3", faults: []string{"talos.maintenance=never@node=sandbox-cp-3"}, want: failed},
	{name: "ha: scaleway.install=error@node=sandbox-cp-2", faults: []string{"scaleway.install=error@node=sandbox-cp-2"}, want: failed},
	{name: "ha: talos.lockdown=error@node=sandbox-cp-3", faults: []string{"talos.lockdown=error@node=sandbox-cp-3"}, want: failed},
	{name: "ha: scaleway.install=error@node=sandbox-worker-1", faults: []string{"scaleway.install=error@node=sandbox-worker-1"}, want: failed, workers: 1},
	{name: "ha: talos.kubelet=never@node=sandbox-worker-1", faults: []string{"talos.kubelet=never@node=sandbox-worker-1"}, want: leftRun, workers: 1},
}

func matrixScenarios() []scenario {
	var out []scenario
	for _, fp := range sandbox.FaultPoints {
		for _, k := range emulator.SpecialKinds {
			if _, takes := fp.Special[k]; !takes {
				continue
			}
			name := fp.Point + "=" + string(k)
			want, known := specialExpected[name]
			if !known {
				want = -2
				name += " (no expectation)"
			}
			out = append(out, scenario{name: name, faults: []string{fp.Point + "=" + string(k)}, want: want})
		}
		if fp.OnlySpecial {
			continue
		}
		want, known := expected[fp.Point]
		if !known {
			// A new fault point needs its row: fail loudly rather than skip it.
			out = append(out, scenario{name: fp.Point + " (no expectation)", want: -2})
			continue
		}
		for i, kind := range matrixKinds {
			if want[i] == skip {
				continue
			}
			sc := scenario{name: fp.Point + "=" + kind, faults: []string{fp.Point + "=" + kind}, want: want[i],
				proxmox: proxmoxPoint(fp.Point)}
			if want[i] == leftover {
				sc.leftover = leftoverOf(fp.Point)
			}
			out = append(out, sc)
		}
	}
	for _, point := range sortedKeys(expectedProxmox) {
		for i, kind := range matrixKinds {
			if want := expectedProxmox[point][i]; want != skip {
				out = append(out, scenario{name: "proxmox: " + point + "=" + kind, faults: []string{point + "=" + kind}, want: want, proxmox: true})
			}
		}
	}
	out = append(out, combined...)
	// The same points again with the config delivered at install.
	for _, fp := range sandbox.FaultPoints {
		if fp.OnlySpecial || proxmoxPoint(fp.Point) {
			// The proxmox topology's VMs have no maintenance mode to close.
			continue
		}
		want, known := expectedInstall[fp.Point]
		if !known {
			if want, known = expected[fp.Point]; !known {
				continue // reported above
			}
		}
		for i, kind := range matrixKinds {
			if want[i] == skip {
				continue
			}
			sc := scenario{name: "install: " + fp.Point + "=" + kind, faults: []string{fp.Point + "=" + kind}, want: want[i], flags: []string{installDelivery}}
			if want[i] == leftover {
				sc.leftover = leftoverOf(fp.Point)
			}
			out = append(out, sc)
		}
	}
	out = append(out, hijackScenarios...)
	// The same points again with three control planes.
	for _, fp := range sandbox.FaultPoints {
		if fp.OnlySpecial || proxmoxPoint(fp.Point) {
			continue // the proxmox topology's plan has its own three nodes
		}
		want, known := expectedHA[fp.Point]
		if !known {
			if want, known = expected[fp.Point]; !known {
				continue // reported above
			}
		}
		if !slices.ContainsFunc(want[:], func(code int) bool { return code != ok && code != skip }) {
			continue
		}
		for i, kind := range matrixKinds {
			if want[i] == skip {
				continue
			}
			sc := scenario{name: "ha: " + fp.Point + "=" + kind, faults: []string{fp.Point + "=" + kind}, want: want[i], flags: haFlags, controlPlanes: 3}
			if want[i] == leftover {
				sc.leftover = leftoverOf(fp.Point)
			}
			out = append(out, sc)
		}
	}
	for _, sc := range haNodeScenarios {
		sc.controlPlanes = 3
		sc.flags = append(append([]string(nil), haFlags...), "--workers", fmt.Sprint(sc.workers))
		out = append(out, sc)
	}
	points := make([]string, 0, len(cleanupPoints))
	for p := range cleanupPoints {
		points = append(points, p)
	}
	sort.Strings(points)
	for _, p := range points {
		for _, kind := range []string{"unavailable@2", "ratelimit@2", "hang@1"} {
			out = append(out, scenario{name: "cleanup: " + p + "=" + kind, faults: []string{cleanupBase, p + "=" + kind}, want: failed})
		}
		out = append(out, scenario{name: "cleanup: " + p + "=error", faults: []string{cleanupBase, p + "=error"}, want: leftover, leftover: cleanupPoints[p]})
	}
	return out
}

// smokeScenarios are the ones `go test ./...` always runs: one of each
// outcome, cleanup faults included.
var smokeScenarios = map[string]bool{
	"talos.maintenance=linger":                      true,
	"teleport.permissions=deny":                     true,
	"cloudflare.permissions=deny":                   true,
	"stale kube server + agent never joins":         true,
	"scaleway.create-server=unavailable@2":          true,
	"cloudflare.upsert-record=hang":                 true,
	"infisical.login=error":                         true,
	"teleport.agent=unavailable@2":                  true,
	"teleport.list-kube=error":                      true,
	"cleanup: scaleway.delete-server=error":         true,
	"cleanup: cloudflare.delete-record=hang@1":      true,
	"talos.maintenance=hijack":                      true,
	"install: talos.maintenance=hijack":             true,
	"install: scaleway.install-server=error":        true,
	"proxmox.network=never":                         true,
	"proxmox.firewall=unavailable@2":                true,
	"teleport.token=expire":                         true,
	"infisical.permissions=deny":                    true,
	"install: teleport.token=expire":                true,
	"ha: talos.apply=error@node=sandbox-cp-2":       true,
	"ha: talos.kubelet=never@node=sandbox-worker-1": true,
	"teleport.sso=error":                            true,
	"imagefactory.image=never":                      true,
	"teleport.app=never":                            true,
}

// outcome is what one scenario did.
type outcome struct {
	sc       scenario
	code     int
	stderr   string
	events   []map[string]any
	inv      sandbox.Inventory
	sb       *sandbox.Sandbox
	duration time.Duration
	// leftovers and kept are the resources the run listed as remaining.
	leftovers, kept []map[string]any
	problems        []string
	orphans         []string
	// openTo says, per server IP, whether its node still admitted the
	// operator to the Talos API when the run ended.
	openTo map[string]bool
}

// lineWriter passes output on and shows each complete line to onLine.
type lineWriter struct {
	w      *bytes.Buffer
	onLine func(string)
	part   []byte
}

func (l *lineWriter) Write(p []byte) (int, error) {
	l.w.Write(p)
	l.part = append(l.part, p...)
	for {
		i := bytes.IndexByte(l.part, '\n')
		if i < 0 {
			return len(p), nil
		}
		l.onLine(string(l.part[:i]))
		l.part = l.part[i+1:]
	}
}

func TestFaultMatrix(t *testing.T) {
	t.Parallel()
	all := matrixScenarios()
	var run []scenario
	for _, sc := range all {
		if *matrixOnly != "" {
			if strings.Contains(sc.name, *matrixOnly) {
				run = append(run, sc)
			}
			continue
		}
		if matrixEnabled() || smokeScenarios[sc.name] {
			run = append(run, sc)
		}
	}
	results := make([]*outcome, len(run))
	jobs := make(chan int)
	var wg sync.WaitGroup
	for range matrixWorkers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := range jobs {
				results[i] = runScenario(t, run[i])
			}
		}()
	}
	for i := range run {
		jobs <- i
	}
	close(jobs)
	wg.Wait()

	var table strings.Builder
	fmt.Fprintf(&table, "%-50s %4s %-32s %8s\n", "SCENARIO", "EXIT", "LEFTOVERS", "DURATION")
	passed, orphaned := 0, 0
	for _, o := range results {
		o.judge()
		left := describeLeft(o)
		mark := ""
		if len(o.problems) > 0 {
			mark = "  FAIL"
		} else {
			passed++
		}
		orphaned += len(o.orphans)
		fmt.Fprintf(&table, "%-50s %4d %-32s %7.1fs%s\n", o.sc.name, o.code, left, o.duration.Seconds(), mark)
	}
	total := fmt.Sprintf("%d scenarios, %d passed, %d orphaned resources", len(results), passed, orphaned)
	t.Logf("fault matrix (speed %s×):\n%s%s", matrixSpeed, table.String(), total)
	if testing.Verbose() {
		fmt.Println(total)
	}
	for _, o := range results {
		if len(o.problems) > 0 {
			t.Errorf("%s: %s\nstderr:\n%s\nevents:\n%s", o.sc.name, strings.Join(o.problems, "; "), o.stderr, dumpJSON(o.events))
		}
	}
	if !matrixEnabled() {
		t.Logf("smoke subset only; the whole matrix runs with -matrix or RAWKODE_CLOUD_TEST_MATRIX=1 (%d scenarios)", len(all))
	}
}

func runScenario(t *testing.T, sc scenario) *outcome {
	o := &outcome{sc: sc}
	if sc.want == -2 {
		o.problems = append(o.problems, "fault point without a row in the expectation table")
		return o
	}
	args := []string{"provision", "--sandbox", "--sandbox-speed", matrixSpeed, "--output", "json"}
	for _, f := range sc.faults {
		args = append(args, "--sandbox-fault", f)
	}
	args = append(args, sc.flags...)
	if sc.proxmox {
		args = append(args, proxmoxArgs...)
	}
	var out, errOut bytes.Buffer
	var mu sync.Mutex
	// The sandbox closes when the command returns, taking its nodes along:
	// their firewalls are read when the inventory is printed, just before.
	snoop := &lineWriter{w: &out, onLine: func(line string) {
		if !strings.Contains(line, `"type":"inventory"`) {
			return
		}
		mu.Lock()
		defer mu.Unlock()
		o.openTo = map[string]bool{}
		for _, srv := range o.sb.Inventory().Servers {
			ip, _ := srv["ip"].(string)
			n := o.sb.Node(ip)
			o.openTo[ip] = n != nil && n.Allowed(machineconfig.TalosAPIPort, sandbox.OperatorIP)
			if h := o.sb.Host(ip); h != nil {
				// A Proxmox host: its API still admits the operator.
				o.openTo[ip] = h.Reachable(sandbox.OperatorIP, 8006)
			}
		}
	}}
	env := cli.Env{
		In: strings.NewReader(""), Out: snoop, Err: &errOut,
		LookupEnv: func(string) (string, bool) { return "", false },
		Home:      t.TempDir(),
		OnSandbox: func(sb *sandbox.Sandbox) { mu.Lock(); o.sb = sb; mu.Unlock() },
	}
	// Far above any scenario's scaled deadlines: a run that needs it is stuck.
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute+time.Duration(sc.servers()-1)*undoFloor)
	defer cancel()
	start := time.Now()
	o.code = cli.Execute(ctx, args, env)
	o.duration = time.Since(start)
	if ctx.Err() != nil {
		o.problems = append(o.problems, "did not end within 2 minutes (plus the undo floor per further server): a fault is not bounded")
	} else if bound := maxScenario + time.Duration(sc.servers()-1)*undoFloor; o.duration > bound {
		o.problems = append(o.problems, fmt.Sprintf("took %s: every fault must be bounded by the scaled timeouts", o.duration.Round(time.Second)))
	}
	o.stderr = errOut.String()
	for _, line := range strings.Split(strings.TrimSpace(out.String()), "\n") {
		var ev map[string]any
		if err := json.Unmarshal([]byte(line), &ev); err != nil {
			o.problems = append(o.problems, fmt.Sprintf("output line is not JSON: %q", line))
			continue
		}
		o.events = append(o.events, ev)
		switch ev["type"] {
		case "leftover":
			o.leftovers = append(o.leftovers, ev)
		case "kept":
			o.kept = append(o.kept, ev)
		}
	}
	mu.Lock()
	sb := o.sb
	mu.Unlock()
	if sb == nil {
		o.problems = append(o.problems, "the sandbox was never started")
		return o
	}
	o.inv = sb.Inventory()
	if last := o.events[len(o.events)-1]; last["type"] != "inventory" {
		o.problems = append(o.problems, fmt.Sprintf("last event is %v, not the inventory", last["type"]))
	}
	return o
}

// judge checks the outcome against the scenario and counts orphans: things
// left in the emulators that the run neither meant to keep nor listed.
func (o *outcome) judge() {
	if o.sb == nil {
		return
	}
	if o.code != o.sc.want {
		o.problems = append(o.problems, fmt.Sprintf("exit %d, want %d", o.code, o.sc.want))
	}
	inv := o.inv
	switch o.code {
	case ok:
		if o.sc.proxmox {
			o.judgeProxmoxHost()
			break
		}
		if len(inv.Servers) != o.sc.servers() || len(inv.DNSRecords) != max(o.sc.controlPlanes, 1) || len(inv.KubeServers) != 1 || len(inv.Secrets) != 3 {
			o.problems = append(o.problems, fmt.Sprintf("inventory after success: %+v", inv))
		}
		// The used join token is deleted, unless deleting it failed (it
		// then expires by itself and a warning says so).
		if len(inv.Tokens) > 0 && !o.warned("join token") {
			o.orphans = append(o.orphans, fmt.Sprintf("%d join token(s) left without a warning", len(inv.Tokens)))
		}
		if len(inv.Servers) > o.sc.servers() {
			o.orphans = append(o.orphans, fmt.Sprintf("%d servers after success", len(inv.Servers)))
		}
	case leftRun:
		// Exactly the servers stay, firewalls open, and the output lists
		// what was kept with how to remove it.
		if len(inv.Servers) != o.sc.servers() {
			o.problems = append(o.problems, fmt.Sprintf("servers left = %d, want exactly the %d kept for debugging", len(inv.Servers), o.sc.servers()))
		}
		for _, s := range inv.Servers {
			ip, _ := s["ip"].(string)
			if !o.openTo[ip] {
				o.problems = append(o.problems, "the kept server's firewall is closed: the operator cannot debug it")
			}
		}
		// Debugging needs the cluster's credentials: all three are kept
		// (on proxmox also the host's token, break-glass password and the
		// storage key).
		if want := map[bool]int{false: 3, true: 6}[o.sc.proxmox]; len(inv.Secrets) != want {
			o.problems = append(o.problems, fmt.Sprintf("%d stored credentials for the kept cluster, want %d", len(inv.Secrets), want))
		}
		// In the sandbox the command names --sandbox too.
		if !strings.Contains(o.stderr, "rawkode-cloud destroy --cluster-name") && !strings.Contains(o.stderr, "rawkode-cloud destroy --sandbox --cluster-name") {
			o.problems = append(o.problems, "the error does not say how to destroy what was kept")
		}
		o.orphans = append(o.orphans, o.unlisted(o.kept)...)
	default:
		listed := o.leftovers
		o.orphans = append(o.orphans, o.unlisted(listed)...)
		if o.code == leftover {
			if len(listed) == 0 {
				o.problems = append(o.problems, "exit 4 without any leftover listed")
			}
			found := false
			for _, l := range listed {
				res, _ := l["resource"].(string)
				cmd, _ := l["command"].(string)
				if cmd == "" {
					o.problems = append(o.problems, "leftover without a command: "+res)
				}
				if strings.HasPrefix(res, o.sc.leftover) {
					found = true
				}
				// The command removes exactly what is left. Other tools'
				// commands would reach real services: in the sandbox the
				// hint says there is nothing to run instead.
				const emulatorOnly = "nothing to run: it existed only in this run's emulators"
				for prefix, want := range map[string]string{
					"Scaleway server":     "rawkode-cloud destroy --sandbox --server-id ",
					"Cloudflare A record": emulatorOnly,
					"Infisical secrets":   emulatorOnly,
					"Teleport join token": emulatorOnly,
				} {
					if strings.HasPrefix(res, prefix) && !strings.Contains(cmd, want) {
						o.problems = append(o.problems, fmt.Sprintf("leftover %q has command %q, want %q…", res, cmd, want))
					}
				}
				for _, srv := range inv.Servers {
					id := fmt.Sprint(srv["id"])
					if strings.HasPrefix(res, "Scaleway server "+id) && !strings.Contains(cmd, id) {
						o.problems = append(o.problems, fmt.Sprintf("leftover command %q does not name server %v", cmd, srv["id"]))
					}
				}
				for _, rec := range inv.DNSRecords {
					if strings.HasPrefix(res, "Cloudflare A record") && cmd != emulatorOnly && !strings.Contains(cmd, "dns_records/"+fmt.Sprint(rec["id"])) {
						o.problems = append(o.problems, fmt.Sprintf("leftover command %q does not name record %v", cmd, rec["id"]))
					}
				}
			}
			if !found {
				o.problems = append(o.problems, fmt.Sprintf("no leftover listed for %q", o.sc.leftover))
			}
		} else if !inv.Empty() {
			// exit 1, 2 and 130 promise that nothing remains.
			o.problems = append(o.problems, fmt.Sprintf("inventory not empty after exit %d: %+v", o.code, inv))
		}
		if o.code == usage {
			if n := o.sb.Scaleway.Counters().Get("create-server"); n != 0 {
				o.problems = append(o.problems, fmt.Sprintf("exit 2 but %d server order(s) were sent", n))
			}
		}
	}
	if len(o.orphans) > 0 {
		o.problems = append(o.problems, "orphaned: "+strings.Join(o.orphans, ", "))
	}
}

func (o *outcome) warned(about string) bool {
	for _, ev := range o.events {
		if ev["type"] == "warn" && strings.Contains(fmt.Sprint(ev["message"]), about) {
			return true
		}
	}
	return false
}

// unlisted returns what the inventory holds that no listed resource names.
// A kube server belongs to its server: it goes when the server goes.
// judgeProxmoxHost checks a successful proxmox run: one host, locked
// down, its five VMs running, the cluster's agent, the host's SSH node and
// the Proxmox UI app registered, the host's token and break-glass
// password, the storage driver's SSH key and the cluster's credentials
// kept, its three public names (teleport., proxmox., *.apps.) at the host,
// nothing else. (The Kubernetes API closes with the sandbox: its Ready
// nodes are checked by TestProvisionProxmoxHostThroughTheCLI.)
func (o *outcome) judgeProxmoxHost() {
	inv := o.inv
	running := 0
	for _, vm := range inv.Proxmox.VMs {
		if vm["status"] == "running" {
			running++
		}
	}
	atHost := 0
	for _, rec := range inv.DNSRecords {
		for _, srv := range inv.Servers {
			if rec["content"] == srv["ip"] {
				atHost++
			}
		}
	}
	if len(inv.Servers) != 1 || len(inv.Proxmox.Hosts) != 1 || len(inv.Secrets) != 6 || len(inv.DNSRecords) != 3 || atHost != 3 ||
		len(inv.KubeServers) != 1 || running != 5 || len(inv.Proxmox.VMs) != 5 || len(inv.Proxmox.TeleportNodes) != 1 ||
		len(inv.Proxmox.TeleportApps) != 1 {
		o.problems = append(o.problems, fmt.Sprintf("inventory after success: %+v", inv))
	}
	if len(inv.Tokens) > 0 && !o.warned("join token") {
		o.orphans = append(o.orphans, fmt.Sprintf("%d join token(s) left without a warning", len(inv.Tokens)))
	}
	for _, r := range inv.Proxmox.FirewallRules {
		if strings.Contains(fmt.Sprint(r["comment"]), "temporary") {
			o.orphans = append(o.orphans, "temporary firewall rule "+fmt.Sprint(r["comment"]))
		}
	}
}

func (o *outcome) unlisted(listed []map[string]any) []string {
	var text strings.Builder
	for _, l := range listed {
		fmt.Fprintln(&text, l["resource"], l["command"])
	}
	names := text.String()
	var out []string
	for _, s := range o.inv.Servers {
		if !strings.Contains(names, fmt.Sprint(s["id"])) {
			out = append(out, "server "+fmt.Sprint(s["id"]))
		}
	}
	for _, r := range o.inv.DNSRecords {
		if !strings.Contains(names, fmt.Sprint(r["name"])) {
			out = append(out, "DNS record "+fmt.Sprint(r["name"]))
		}
	}
	for _, tok := range o.inv.Tokens {
		if !strings.Contains(names, fmt.Sprint(tok["name"])) {
			out = append(out, "token "+fmt.Sprint(tok["name"]))
		}
	}
	for _, sec := range o.inv.Secrets {
		if !strings.Contains(names, fmt.Sprint(sec["name"])) {
			out = append(out, "secret "+fmt.Sprint(sec["name"]))
		}
	}
	if len(o.inv.Servers) == 0 {
		for _, k := range o.inv.KubeServers {
			out = append(out, "kube server "+fmt.Sprint(k["name"])+" without its server")
		}
		for _, n := range o.inv.Proxmox.TeleportNodes {
			out = append(out, "Teleport SSH node "+fmt.Sprint(n["hostname"])+" without its host")
		}
		for _, a := range o.inv.Proxmox.TeleportApps {
			out = append(out, "Teleport app "+fmt.Sprint(a["name"])+" without its Teleport VM")
		}
	}
	return out
}

func describeLeft(o *outcome) string {
	var parts []string
	seen := map[string]bool{}
	for _, l := range append(append([]map[string]any(nil), o.leftovers...), o.kept...) {
		if res := shorten(fmt.Sprint(l["resource"])); !seen[res] {
			seen[res] = true
			parts = append(parts, res)
		}
	}
	switch {
	case len(parts) == 0 && o.code == ok:
		return "- (cluster up)"
	case len(parts) == 0:
		return "-"
	case len(o.kept) > 0:
		return "kept: " + strings.Join(parts, ", ")
	}
	return "listed: " + strings.Join(parts, ", ")
}

func shorten(s string) string {
	for w, short := range map[string]string{"Scaleway server": "server", "Cloudflare A record": "DNS", "Infisical secrets": "secrets", "Teleport join token": "token"} {
		if strings.HasPrefix(s, w) {
			return short
		}
	}
	return s
}

func dumpJSON(events []map[string]any) string {
	var b strings.Builder
	for _, e := range events {
		if e["type"] == "state" {
			continue
		}
		line, _ := json.Marshal(e)
		fmt.Fprintf(&b, "  %s\n", line)
	}
	return b.String()
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
