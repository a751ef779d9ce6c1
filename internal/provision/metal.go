package provision

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/config"
	"github.com/rawkode/rawkode-cloud/internal/pipeline"
	"github.com/rawkode/rawkode-cloud/internal/pivot"
	"github.com/rawkode/rawkode-cloud/internal/retry"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
)

// metal is the Elastic Metal topology: each node is a server ordered with an
// OS install whose cloud-init user data pivots it to Talos, reached on its
// public IPv4.
type metal struct {
	cfg     *config.Config
	scw     Servers
	talos   Talos
	cluster string
	// sequential waits for the install before probing Talos at all (the
	// seed design's order), for comparisons.
	sequential bool

	sshKeys []string // listed in Check, before any money is spent

	// Config delivered with the install (delivery.go); nodeConfig waits
	// for the node's rendered config and the cluster's talosconfig.
	install          bool
	factory          ImageFactory
	installSchematic string
	nodeConfig       func(ctx context.Context, r *pipeline.Run, n *Node) (cfg, talosconfig []byte, err error)
}

// checkInstallDisk refuses an install disk the offer does not have: the
// pivot would find no such device and the server, billed by then, would
// never become a node. The offer lists its disks (type and size); Linux
// names NVMe disks nvme0n1, nvme1n1, … and SATA/SAS ones sda, sdb, …
func (m *metal) checkInstallDisk(ctx context.Context, offer string) error {
	disk := m.cfg.Get(config.TalosInstallDisk)
	name, disks, err := m.scw.OfferDisks(ctx, offer)
	if err != nil {
		return fmt.Errorf("read the disks of offer %s: %w", offer, err)
	}
	if ok, known := scaleway.DiskOnOffer(disks, disk); ok || !known {
		return nil
	}
	s, _ := config.Lookup(config.TalosInstallDisk)
	return retry.Permanent(fmt.Errorf("talos-install-disk %s (%s) is not a disk of offer %s (%s), which has %s; set talos-install-disk to one of them (%s)",
		disk, m.cfg.Value(config.TalosInstallDisk).Source, offer, name, scaleway.DescribeDisks(disks), s.Ways()))
}

// offer is the Elastic Metal offer node n is ordered with.
func (m *metal) offer(n *Node) string {
	if n.Role == Worker && m.cfg.IsSet(config.ScalewayWorkerOfferID) {
		return m.cfg.Get(config.ScalewayWorkerOfferID)
	}
	return m.cfg.Get(config.ScalewayOfferID)
}

// Check verifies every offer the nodes use (in stock, cloud-init) and the
// OS, that no server of the cluster exists yet, and lists the SSH keys the
// OS install requires. Scaleway reports stock as empty, low or available,
// not as a count: an offer out of stock fails here, a low one may still
// run out during the order (then phase 1 undoes what it ordered).
func (m *metal) Check(ctx context.Context, r *pipeline.Run, nodes []*Node) error {
	osID := m.cfg.Get(config.ScalewayOSID)
	perOffer := map[string]int{}
	for _, n := range nodes {
		perOffer[m.offer(n)]++
	}
	offers := make([]string, 0, len(perOffer))
	for o := range perOffer {
		offers = append(offers, o)
	}
	sort.Strings(offers)
	for _, offer := range offers {
		if err := m.scw.CheckCompatibility(ctx, offer, osID); err != nil {
			return fmt.Errorf("check offer and OS before ordering %d server(s): %w", perOffer[offer], err)
		}
		if err := m.checkInstallDisk(ctx, offer); err != nil {
			return err
		}
	}
	offer := strings.Join(offers, ",")
	// One cluster, one set of servers: a second order under the same name
	// would bill twice and fight over the DNS record and the Teleport name.
	name := m.cluster
	existing, err := m.scw.FindServers(ctx, scaleway.ClusterTags(name)...)
	if err != nil {
		return fmt.Errorf("look for servers of cluster %s: %w", name, err)
	}
	var ids []string
	for _, srv := range existing {
		if srv.Status != "deleting" { // on its way out: no conflict
			ids = append(ids, srv.ID+" ("+srv.Status+")")
		}
	}
	if len(ids) > 0 {
		return fmt.Errorf("cluster %s already has server(s) %s: remove them first with `rawkode-cloud destroy --cluster-name %s`, or choose another cluster-name",
			name, strings.Join(ids, ", "), name)
	}
	keys, err := m.scw.ListSSHKeyIDs(ctx)
	if err != nil {
		return fmt.Errorf("list SSH keys (the OS install requires one): %w", err)
	}
	m.sshKeys = keys
	r.Info("offer and OS support cloud-init", map[string]any{"offer": offer, "os": osID, "ssh_keys": len(keys)})
	if m.install {
		return m.checkInstallDelivery(ctx, r)
	}
	return nil
}

// Create orders every node's server, each with one CreateServer call
// carrying the OS install and the cloud-init pivot; a server's undo is
// pushed the moment the API says it exists.
func (m *metal) Create(ctx context.Context, r *pipeline.Run, nodes []*Node) error {
	if m.install {
		// Without an OS: it is installed in phase 2, with the config.
		return eachNode(nodes, func(n *Node) error { return m.order(ctx, r, n, nil) })
	}
	userData, err := pivot.Render(m.pivotOptions())
	if err != nil {
		return fmt.Errorf("render cloud-init user data: %w", err)
	}
	return eachNode(nodes, func(n *Node) error { return m.order(ctx, r, n, userData) })
}

func (m *metal) order(ctx context.Context, r *pipeline.Run, n *Node, userData []byte) error {
	name := m.cluster
	spec := scaleway.ServerSpec{
		Name:        n.Name,
		Description: "Talos node of cluster " + name + ", managed by rawkode-cloud",
		OfferID:     m.offer(n),
		OSID:        m.cfg.Get(config.ScalewayOSID),
		Hostname:    n.Name,
		SSHKeyIDs:   m.sshKeys,
		UserData:    userData,
		Tags:        append(scaleway.ClusterTags(name), "role="+string(n.Role), "node="+n.Name),
	}
	if m.install {
		spec.OSID = "" // ordered now, installed once the config is known
	}
	srv, err := m.orderServer(ctx, r, spec)
	if err != nil {
		return err
	}
	n.Machine = Machine{ID: srv.ID, Zone: srv.Zone}
	return nil
}

// orderServer orders one server and pushes its undo the moment it exists.
// A tag only this order carries is added: if the API's answer is lost, the
// server found by it is certainly ours, never an earlier cluster's of the
// same name (which undo would otherwise delete).
func (m *metal) orderServer(ctx context.Context, r *pipeline.Run, spec scaleway.ServerSpec) (*scaleway.Server, error) {
	orderTag := "order=" + randomHex(6)
	spec.Tags = append(append([]string(nil), spec.Tags...), orderTag)
	var srv *scaleway.Server
	var err error
	adopted := false
	for attempt := 1; ; attempt++ {
		srv, err = m.scw.CreateServer(ctx, spec)
		if err == nil || !errors.Is(err, scaleway.ErrMaybeCreated) {
			break
		}
		// The order may have gone through even though the answer was lost
		// (a 5xx, a timeout): look for it before deciding anything.
		found, ok := m.adoptOrphans(ctx, r, orderTag)
		if len(found) == 1 {
			srv, err, adopted = &found[0], nil, true
			r.Info("the order's answer was lost, but the server exists: continuing with it", map[string]any{"server_id": srv.ID})
			break
		}
		// Nothing was ordered (or, against all odds, more than one server
		// carries our tag: all are on the undo stack). Ordering again is
		// safe only when the look-up proved there is none.
		if !ok || len(found) > 1 || attempt >= maxOrderAttempts || ctx.Err() != nil {
			break
		}
		r.Warn("the order failed without a server being created; ordering again", map[string]any{"attempt": attempt, "error": err.Error()})
	}
	if err != nil {
		if errors.Is(err, scaleway.ErrMaybeCreated) {
			// Nobody knows whether the order went through (the answer
			// was lost, or Ctrl-C came while the API was taking it): the
			// undo looks for it again by its tag when it runs.
			m.undoOrder(r, spec.Name, orderTag)
		}
		return nil, fmt.Errorf("order server: %w", err)
	}
	if !adopted { // an adopted server's undo is already pushed
		m.undoServer(r, *srv)
	}
	r.Info("server ordered", map[string]any{"server_id": srv.ID, "node": spec.Name, "offer": spec.OfferID, "ssh_keys": len(m.sshKeys)})
	return srv, nil
}

// undoServer registers the deletion of a server right after it exists.
func (m *metal) undoServer(r *pipeline.Run, srv scaleway.Server) {
	id := srv.ID
	r.Undo(pipeline.UndoStep{
		Resource: fmt.Sprintf("Scaleway server %s (%s)", id, srv.Zone),
		Command:  fmt.Sprintf("rawkode-cloud destroy --server-id %s --scaleway-zone %s", id, srv.Zone),
		Do:       func(ctx context.Context) error { return m.deleteServer(ctx, r, id) },
	})
}

func (m *metal) deleteServer(ctx context.Context, r *pipeline.Run, id string) error {
	w := r.Wait("server "+id+" to be deleted", 0, m.cfg.Duration(config.ServerPollInterval))
	return m.scw.DeleteServer(ctx, id, w.Options())
}

// undoOrder registers the deletion of whatever an order whose outcome is
// unknown bought, found by the tag only that order carries. The API may
// record an order it received a moment after its client stopped waiting,
// so finding nothing is trusted only on a second look one poll interval
// later.
func (m *metal) undoOrder(r *pipeline.Run, node, orderTag string) {
	r.Undo(pipeline.UndoStep{
		Resource: fmt.Sprintf("Scaleway server of node %s, if its interrupted order went through (tag %s)", node, orderTag),
		Command:  "rawkode-cloud destroy --cluster-name " + m.cluster,
		Undone:   fmt.Sprintf("removed any Scaleway server tagged %s", orderTag),
		Do: func(ctx context.Context) error {
			for look := 1; ; look++ {
				found, err := m.scw.FindServers(ctx, scaleway.ToolTag, orderTag)
				if err != nil {
					return err
				}
				for _, srv := range found {
					if err := m.deleteServer(ctx, r, srv.ID); err != nil {
						return err
					}
				}
				if len(found) > 0 || look == 2 {
					return nil
				}
				t := time.NewTimer(m.cfg.Duration(config.ServerPollInterval))
				select {
				case <-ctx.Done():
					t.Stop()
					return ctx.Err()
				case <-t.C:
				}
			}
		},
	})
}

// maxOrderAttempts bounds re-ordering after answers that proved nothing
// was created.
const maxOrderAttempts = 3

// adoptOrphans pushes undo steps for the servers carrying this order's tag,
// which a failed CreateServer may have created after all. ok is false when
// they could not be listed: then nobody knows, and ordering again could
// buy a second server.
func (m *metal) adoptOrphans(ctx context.Context, r *pipeline.Run, orderTag string) (found []scaleway.Server, ok bool) {
	found, err := m.scw.FindServers(context.WithoutCancel(ctx), scaleway.ToolTag, orderTag)
	if err != nil {
		r.Warn("the order's answer was lost and the servers of this cluster could not be listed; check the Scaleway console", map[string]any{"error": err.Error(), "tag": orderTag})
		return nil, false
	}
	for _, srv := range found {
		m.undoServer(r, srv)
	}
	return found, true
}

func randomHex(n int) string {
	b := make([]byte, n)
	_, _ = rand.Read(b) // crypto/rand.Read never fails
	return hex.EncodeToString(b)
}

func (m *metal) pivotOptions() pivot.Options {
	return pivotOptions(m.cfg)
}

func pivotOptions(cfg *config.Config) pivot.Options {
	return pivot.Options{
		SchematicID:     cfg.Get(config.TalosSchematicID),
		TalosVersion:    cfg.Get(config.TalosVersion),
		ImageFactoryURL: cfg.Get(config.ImageFactoryURL),
		InstallDisk:     cfg.Get(config.TalosInstallDisk),
	}
}

// Reach waits, for every node at once, until its server is delivered AND
// its OS install completed (Scaleway says "ready" long before the install
// even starts), and the pivot has brought Talos up in maintenance mode.
//
// One list call per poll, filtered by the cluster's tag, watches every
// server (watch); each node is probed for maintenance mode on its own
// (reach), since that is a TLS dial to the node that costs the API nothing.
func (m *metal) Reach(ctx context.Context, r *pipeline.Run, nodes []*Node) error {
	if m.install {
		return eachNode(nodes, func(n *Node) error { return m.reachInstalled(ctx, r, n) })
	}
	sctx, cancel := context.WithTimeout(ctx, m.cfg.Duration(config.ServerTimeout))
	defer cancel()
	watches := make(map[string]*serverWatch, len(nodes))
	for _, n := range nodes {
		watches[n.Machine.ID] = m.newWatch(r, n)
	}
	watched := make(chan struct{})
	go func() {
		defer close(watched)
		m.watch(sctx, r, watches)
	}()
	err := eachNode(nodes, func(n *Node) error { return m.reach(ctx, r, n, watches[n.Machine.ID]) })
	// Talos answering proves the installs are over: the poll is not needed
	// any more, and must not outlive the phase.
	cancel()
	<-watched
	return err
}

// serverWatch is what the status poll learns about one node's server.
type serverWatch struct {
	n         *Node
	ipWait    *pipeline.Waiter
	readyWait *pipeline.Waiter
	state     string
	ipKept    bool
	// ready is kept when the install completed, broken when the server
	// failed, vanished, or could not be watched.
	ready *pipeline.Promise[struct{}]
}

func (m *metal) newWatch(r *pipeline.Run, n *Node) *serverWatch {
	id := n.Machine.ID
	timeout, every := m.cfg.Duration(config.ServerTimeout), m.cfg.Duration(config.ServerPollInterval)
	return &serverWatch{n: n,
		ipWait:    r.Wait("public IPv4 of server "+id, timeout, every),
		readyWait: r.Wait("server "+id+" delivery and OS install", timeout, every),
		ready:     pipeline.NewPromise[struct{}](),
	}
}

// watch polls the cluster's servers until every one is installed or failed.
// Its end (install completed) is when the join token can be minted with its
// TTL still covering the pivot, the reboot and the agent's start.
func (m *metal) watch(ctx context.Context, r *pipeline.Run, watches map[string]*serverWatch) {
	all := r.Wait(fmt.Sprintf("servers of cluster %s (%d)", m.cluster, len(watches)), m.cfg.Duration(config.ServerTimeout), m.cfg.Duration(config.ServerPollInterval))
	opts := all.Options()
	opts.OnState = nil // each server's state is reported on its own wait
	err := m.scw.WatchServers(ctx, scaleway.ClusterTags(m.cluster), opts, func(list []scaleway.Server) (bool, error) {
		seen := map[string]bool{}
		for _, srv := range list {
			if w := watches[srv.ID]; w != nil {
				seen[srv.ID] = true
				w.see(r, srv)
			}
		}
		pending := 0
		for id, w := range watches {
			if !seen[id] {
				w.ready.Break(retry.Permanent(fmt.Errorf("server %s: no longer listed by Scaleway (deleted outside this run?): %w", id, scaleway.ErrServerFailed)))
			}
			select {
			case <-w.ready.Done():
			default:
				pending++
			}
		}
		return pending == 0, nil
	})
	if err == nil {
		all.Done()
	}
	for id, w := range watches {
		if err != nil {
			w.ready.Break(fmt.Errorf("wait for server %s: %w", id, err))
		}
	}
}

// see takes one observation of the node's server.
func (w *serverWatch) see(r *pipeline.Run, srv scaleway.Server) {
	if st := srv.State(); st != w.state {
		w.state = st
		w.readyWait.State(st)
		if !w.ipKept {
			w.ipWait.State(st)
		}
	}
	if srv.IPv4 != "" && !w.ipKept {
		w.ipKept = true
		w.ipWait.Done()
		r.Info("public IPv4 assigned", map[string]any{"server_id": srv.ID, "ip": srv.IPv4, "node": w.n.Name})
		w.n.Address.Keep(srv.IPv4)
	}
	if err := srv.Failed(); err != nil {
		w.ready.Break(err)
		return
	}
	if srv.Installed() {
		select {
		case <-w.ready.Done():
		default:
			w.readyWait.Done()
			w.ready.Keep(struct{}{})
			w.n.Installed.Keep(struct{}{})
		}
	}
}

// reach is one node's part of phase 2: once the node has an address it is
// probed slowly while the install runs (Ubuntu does not serve :50000), and
// quickly once the install completed and the pivot can finish any moment.
func (m *metal) reach(ctx context.Context, r *pipeline.Run, n *Node, w *serverWatch) error {
	id := n.Machine.ID
	serverTimeout := m.cfg.Duration(config.ServerTimeout)
	pollEvery := m.cfg.Duration(config.ServerPollInterval)
	sctx, cancel := context.WithTimeout(ctx, serverTimeout)
	defer cancel()

	var ip string
	select {
	case <-n.Address.Done():
		ip, _ = n.Address.Get(ctx)
	case <-w.ready.Done():
		if _, err := w.ready.Get(ctx); err != nil {
			return fmt.Errorf("wait for server %s: %w", id, err)
		}
		ip, _ = n.Address.Get(ctx) // an installed server has its address
	case <-ctx.Done():
		return ctx.Err()
	}
	if m.sequential { // the seed design's order: install first, then Talos
		if _, err := w.ready.Get(ctx); err != nil {
			return fmt.Errorf("wait for server %s: %w", id, err)
		}
	}

	mw := r.Wait("Talos maintenance mode on "+ip, serverTimeout+m.cfg.Duration(config.TalosMaintenanceTimeout), m.cfg.Duration(config.TalosMaintenanceInterval))
	probe := func(ctx context.Context, every time.Duration) error {
		opts := mw.Options()
		opts.Interval = every
		return m.talos.WaitMaintenance(ctx, ip, opts)
	}
	slow, stopSlow := context.WithCancel(sctx)
	defer stopSlow()
	maint := make(chan error, 1)
	go func() { maint <- probe(slow, pollEvery) }()

	select {
	case err := <-maint:
		if err == nil {
			mw.Done()
			// Talos is up, so the install is over whatever the API says yet.
			n.Installed.Keep(struct{}{})
			return nil
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		// The probe failed for good (or the server timeout passed): prefer
		// the status poll's error, which names an install failure.
		select {
		case <-w.ready.Done():
			if _, werr := w.ready.Get(ctx); werr != nil {
				return fmt.Errorf("wait for server %s: %w", id, werr)
			}
		default:
		}
		return err
	case <-w.ready.Done():
		stopSlow()
		<-maint
		if _, err := w.ready.Get(ctx); err != nil {
			return fmt.Errorf("wait for server %s: %w", id, err)
		}
	}

	// Installed: now the pivot runs, bounded by the maintenance timeout.
	mctx, mcancel := context.WithTimeout(ctx, m.cfg.Duration(config.TalosMaintenanceTimeout))
	defer mcancel()
	if err := probe(mctx, m.cfg.Duration(config.TalosMaintenanceInterval)); err != nil {
		return err
	}
	mw.Done()
	return nil
}
