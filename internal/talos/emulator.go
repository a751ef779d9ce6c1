package talos

import (
	"context"
	"crypto"
	"crypto/tls"
	"crypto/x509"
	"fmt"
	"io"
	"net"
	"net/netip"
	"strconv"
	"sync"
	"syscall"
	"time"

	"github.com/siderolabs/talos/pkg/machinery/api/machine"
	"github.com/siderolabs/talos/pkg/machinery/api/storage"
	"github.com/siderolabs/talos/pkg/machinery/config"
	machinetype "github.com/siderolabs/talos/pkg/machinery/config/machine"
	"google.golang.org/grpc"
	"google.golang.org/grpc/credentials"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	kubeemulator "github.com/rawkode/rawkode-cloud/internal/kube/emulator"
)

// Ports the emulated node serves, as on a real control-plane node.
const (
	ApidPort    = 50000
	KubeAPIPort = 6443
)

// Fault points of the emulated node. Every point also honours
// Faults.SetLatency (the RPC or transition takes at least that long).
//
//	talos.maintenance  Version while in maintenance mode.
//	                   error: codes.Internal; unavailable: codes.Unavailable;
//	                   ratelimit: codes.ResourceExhausted; hang: no answer until
//	                   the caller gives up; never: the node never leaves
//	                   "booting" (every connection refused); linger: after an
//	                   apply, the maintenance API stays up LingerFactor times
//	                   longer than MaintenanceLinger.
//	talos.apply        ApplyConfiguration in maintenance mode (insecure).
//	                   error/unavailable/ratelimit: the matching code, config not
//	                   taken; hang: no answer, config not taken; never: the reply
//	                   says applied but the node never reboots into it (it stays
//	                   in maintenance mode without a config).
//	talos.reboot       The reboot after a config was applied.
//	                   never or hang: the node never comes back (refused forever);
//	                   error: it comes back in maintenance mode, config lost;
//	                   unavailable/ratelimit: the reboot takes twice as long.
//	talos.bootstrap    Bootstrap. error/unavailable/ratelimit: the matching code,
//	                   etcd not bootstrapped; hang: no answer; never: etcd is
//	                   never ready, every call answers FailedPrecondition.
//	talos.services     Service health. never: etcd stays Running but unhealthy;
//	                   error: etcd goes Failed once bootstrapped;
//	                   unavailable/ratelimit/hang: ServiceList and the Events
//	                   stream fail with that code (or hang).
//	talos.lockdown     ApplyConfiguration in configured mode (the secure re-apply).
//	                   error/ratelimit: the matching code, nothing applied;
//	                   unavailable: applied (firewall closes at once) but the
//	                   connection is cut before the reply; hang: applied, the
//	                   reply never comes; never: the reply says applied but
//	                   nothing changes.
//	talos.kubelet      The kubelet registering its Node with the API server.
//	                   never: the kubelet runs and Talos calls it healthy, but
//	                   its Node never appears in Kubernetes (as with a kubelet
//	                   whose bootstrap credentials the API server refuses);
//	                   other kinds do nothing.
//	talos.kubeconfig   Kubeconfig (admin kubeconfig download).
//	                   error: codes.Internal; unavailable: codes.Unavailable;
//	                   ratelimit: codes.ResourceExhausted; hang: no answer
//	                   until the caller gives up. Nothing is issued.
const (
	FaultMaintenance = "talos.maintenance"
	FaultApply       = "talos.apply"
	FaultReboot      = "talos.reboot"
	FaultBootstrap   = "talos.bootstrap"
	FaultServices    = "talos.services"
	FaultLockdown    = "talos.lockdown"
	FaultKubeconfig  = "talos.kubeconfig"
	FaultKubelet     = "talos.kubelet"
)

// FaultPoints lists every fault point of the emulated node, for help texts.
func FaultPoints() []string {
	return []string{FaultMaintenance, FaultApply, FaultReboot, FaultBootstrap, FaultServices, FaultKubelet, FaultLockdown, FaultKubeconfig, FaultEtcdSnapshot, FaultUpgrade}
}

// Mode is the lifecycle stage of an emulated node.
type Mode string

// Node modes, in the order a fresh node goes through them.
const (
	ModeBooting     Mode = "booting"     // Talos is still being written/booted: nothing listens
	ModeMaintenance Mode = "maintenance" // insecure TLS API waiting for a config
	ModeRebooting   Mode = "rebooting"   // config taken, machine restarting: nothing listens
	ModeConfigured  Mode = "configured"  // mTLS API, services starting
)

// Service names the emulated node runs.
const (
	ServiceAPID    = "apid"
	ServiceEtcd    = "etcd"
	ServiceKubelet = "kubelet"
	ServiceTrustd  = "trustd"
)

// NodeOptions configure an emulated node. Zero values give a node that
// boots at once and starts every service without delay.
type NodeOptions struct {
	// PublicIP is the node's own address: cert SANs and what Dialer maps.
	// Default 203.0.113.10.
	PublicIP netip.Addr
	// OperatorIP is the source the node attributes every connection to, i.e.
	// "the operator on the public internet". Default 198.51.100.7.
	OperatorIP netip.Addr
	// BootDelay is the time from NewNode until maintenance mode.
	BootDelay time.Duration
	// RebootDelay is how long the node is down after a config is applied.
	RebootDelay time.Duration
	// MaintenanceLinger is how long the maintenance API keeps answering
	// after an apply before the node goes down to reboot. Real Talos answers
	// the apply first and tears maintenance mode down later, through the
	// config acquire controller (machined's maintenance/server.go hands the
	// config over and returns; acquire.go stops the service afterwards), so
	// a probe right after the apply still meets the maintenance certificate.
	MaintenanceLinger time.Duration
	// EtcdReadyDelay is the time after the reboot before Bootstrap is accepted
	// (until then it answers FailedPrecondition).
	EtcdReadyDelay time.Duration
	// ServiceDelays is, per service, the time from its start until it is
	// Running and healthy; etcd counts from the bootstrap.
	ServiceDelays map[string]time.Duration
	// Faults injects misbehaviour; see the Fault* points. Optional.
	Faults *emulator.Faults
	// Now stamps events; default time.Now.
	Now func() time.Time
	// OnEvent, when set, is told each lifecycle event (the Event* names)
	// the moment it happens, so that a sandbox can say when an awaited
	// condition really became true. It runs with the node's lock held: it
	// must return quickly and must not call the Node.
	OnEvent func(name string, at time.Time)
	// NoEvents makes the Events stream answer Unimplemented, like an apid
	// without it, so clients must poll ServiceList (the seed design did).
	NoEvents bool
	// Peers, when set, returns every node of the emulated network: control
	// planes join the etcd of a bootstrapped one and workers register with
	// one, each only if the firewalls on both ends let the traffic through.
	Peers func() []*Node
	// RewriteConfig, when set, replaces every config the node is sent
	// (tests: a config broken on purpose).
	RewriteConfig func([]byte) []byte
	// InstallConfig is the machine config the install left on a metal-iso
	// volume (talos.config=metal-iso): the node boots straight into it and
	// never serves maintenance mode. Nil: maintenance mode, as before.
	InstallConfig []byte
	// ConfigPartition names that volume's device (e.g. "nvme0n1p9"), which
	// BlockDeviceWipe can remove once the node has stored its config.
	ConfigPartition string
	// Kube, when set, is the Kubernetes API of the cluster a config makes
	// the node part of (by cluster name): served on 6443 once configured,
	// the kubelet registers there and Talos applies the manifests there.
	// Without it 6443 is a bare TLS listener.
	Kube func(cluster string) *kubeemulator.Server
	// FetchManifest downloads an extra manifest URL (cluster.extraManifests)
	// as the node would; without it the node has no network to fetch with.
	FetchManifest func(ctx context.Context, url string) (string, error)
	// ApplyBackoff paces Talos's manifest apply retries (default: Talos's).
	ApplyBackoff kubeemulator.Backoff
}

// LingerFactor is how much longer the maintenance API lingers after an
// apply under the talos.maintenance=linger fault.
const LingerFactor = 15

// Lifecycle events reported through NodeOptions.OnEvent.
const (
	EventMaintenance  = "maintenance"  // the maintenance API answers
	EventTaken        = "config-taken" // the maintenance API took a config (it answers, then lingers)
	EventApplied      = "applied"      // the node goes down to reboot into the config it took
	EventConfigured   = "configured"   // back up with its config: mTLS API, services starting
	EventEtcdReady    = "etcd-ready"   // etcd waits for the bootstrap (Bootstrap is accepted)
	EventBootstrapped = "bootstrapped" // Bootstrap succeeded
	// EventHealthyPrefix + a service name: that service is Running and healthy.
	EventHealthyPrefix = "healthy:"
)

// Node is an emulated Talos control-plane node speaking the real gRPC
// Machine API over real TLS/mTLS, with a stand-in kube-apiserver listener and
// an enforced ingress firewall.
type Node struct {
	opts     NodeOptions
	faults   *emulator.Faults
	counters *emulator.Counters
	now      func() time.Time

	apiLn  net.Listener
	kubeLn net.Listener

	maintCert tls.Certificate

	done      chan struct{}
	closeOnce sync.Once
	wg        sync.WaitGroup

	mu           sync.Mutex
	mode         Mode
	gen          int     // bumped on every boot stage; stale timers check it
	api          *apiGen // serving generation; nil while down
	cfgBytes     []byte
	fw           Firewall
	applied      [][]byte
	bootstrapped bool
	bootstraps   int
	worker       bool         // the applied config is a worker's
	hostname     string       // from the applied config
	etcd         *etcdCluster // the membership this control plane is part of
	caCert       *x509.Certificate
	caKey        crypto.Signer // a control plane's OS CA key: what its trustd signs with
	// etcdData stands for etcd's keyspace: a fresh cluster's identity
	// after a plain bootstrap, or the snapshot a recovery restored.
	etcdData []byte
	// recoverSnapshot is what EtcdRecover uploaded, for the next Bootstrap.
	recoverSnapshot []byte
	etcdReady       bool
	services        map[string]*serviceState
	events          []*machine.Event
	eventSeq        int
	subs            map[int]chan *machine.Event
	subSeq          int
	kubeConns       map[net.Conn]struct{}
	hooks           []func(cfg []byte)
	// taken is set while an applied config waits for maintenance mode to
	// be torn down (see MaintenanceLinger).
	taken bool
	// kubeCert is what the kube-apiserver stand-in serves: self-signed until
	// a config brings the cluster CA, then issued by it.
	kubeCert tls.Certificate
	// See emulator_delivery.go.
	hijacked     bool
	configVolume string
	wiped        []string
	// kube is the cluster's API (NodeOptions.Kube); kubeCAs verifies its
	// clients; kubeStarted: the kubelet registered and the apply started.
	kube        *kubeemulator.Server
	kubeCAs     *x509.CertPool
	kubeStarted bool
	// See emulator_upgrade.go.
	version   string // the Talos version Version reports
	upgrading bool   // an upgrade was acknowledged and has not rebooted yet
}

// NewNode starts an emulated node on 127.0.0.1. It is "booting" until
// BootDelay has passed, then waits in maintenance mode for a config.
func NewNode(opts NodeOptions) (*Node, error) {
	if !opts.PublicIP.IsValid() {
		opts.PublicIP = netip.MustParseAddr("203.0.113.10")
	}
	if !opts.OperatorIP.IsValid() {
		opts.OperatorIP = netip.MustParseAddr("198.51.100.7")
	}
	if opts.Now == nil {
		opts.Now = time.Now
	}
	// Timers read the delays concurrently: keep our own copy.
	delays := make(map[string]time.Duration, len(opts.ServiceDelays))
	for k, v := range opts.ServiceDelays {
		delays[k] = v
	}
	opts.ServiceDelays = delays
	n := &Node{
		opts:      opts,
		faults:    opts.Faults,
		counters:  emulator.NewCounters(),
		now:       opts.Now,
		done:      make(chan struct{}),
		mode:      ModeBooting,
		subs:      map[int]chan *machine.Event{},
		kubeConns: map[net.Conn]struct{}{},
		services:  map[string]*serviceState{},
		version:   EmulatedTalosVersion,
	}
	loopback := netip.MustParseAddr("127.0.0.1")
	var err error
	if n.maintCert, err = leafCert(n.now(), "talos-maintenance", []netip.Addr{opts.PublicIP, loopback}, nil, nil, nil); err != nil {
		return nil, fmt.Errorf("maintenance certificate: %w", err)
	}
	if n.kubeCert, err = leafCert(n.now(), "kube-apiserver", []netip.Addr{opts.PublicIP, loopback}, []string{"kubernetes"}, nil, nil); err != nil {
		return nil, fmt.Errorf("kube-apiserver certificate: %w", err)
	}
	if n.apiLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		return nil, fmt.Errorf("listen for the Talos API: %w", err)
	}
	if n.kubeLn, err = net.Listen("tcp", "127.0.0.1:0"); err != nil {
		n.apiLn.Close()
		return nil, fmt.Errorf("listen for the kube-apiserver stand-in: %w", err)
	}
	n.wg.Add(2)
	go n.acceptAPI()
	go n.acceptKube()

	if n.faults.Peek(FaultMaintenance, Hijack) {
		PrepareHijacker()
	}
	n.mu.Lock()
	n.scheduleLocked(opts.BootDelay, FaultMaintenance, func() func() {
		if n.faults.Peek(FaultMaintenance, emulator.Never) {
			return nil // stays "booting": the pivot to Talos never finished
		}
		return n.bootLocked()
	})
	n.mu.Unlock()
	return n, nil
}

// Addr is the loopback address of the Talos API listener.
func (n *Node) Addr() string { return n.apiLn.Addr().String() }

// KubeAddr is the loopback address of the kube-apiserver stand-in.
func (n *Node) KubeAddr() string { return n.kubeLn.Addr().String() }

// PublicIP is the address the node pretends to have.
func (n *Node) PublicIP() netip.Addr { return n.opts.PublicIP }

// Counters counts the RPCs the node served, by method name.
func (n *Node) Counters() *emulator.Counters { return n.counters }

// Mode reports the node's lifecycle stage.
func (n *Node) Mode() Mode {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.mode
}

// Worker reports whether the node runs a worker's config (false before it
// has one): it then runs kubelet and apid, no etcd and no trustd.
func (n *Node) Worker() bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.worker
}

// AppliedConfigs returns every config the node accepted, in order.
func (n *Node) AppliedConfigs() [][]byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	out := make([][]byte, len(n.applied))
	for i, b := range n.applied {
		out[i] = append([]byte(nil), b...)
	}
	return out
}

// BootstrapCount is how many Bootstrap calls succeeded (should be one).
func (n *Node) BootstrapCount() int {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.bootstraps
}

// CurrentConfig returns the config in effect (nil before the first reboot
// into one), e.g. for the sandbox to read inline manifests.
func (n *Node) CurrentConfig() []byte {
	n.mu.Lock()
	defer n.mu.Unlock()
	return append([]byte(nil), n.cfgBytes...)
}

// Firewall returns the ingress firewall currently enforced.
func (n *Node) Firewall() Firewall {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.fw
}

// Allowed reports whether a new connection from src to port would pass the
// current firewall.
func (n *Node) Allowed(port int, src netip.Addr) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.fw.Allowed(port, src)
}

// OnConfigured registers fn to be called with the config bytes every time a
// config takes effect (after the reboot, and on each no-reboot re-apply).
func (n *Node) OnConfigured(fn func(cfg []byte)) {
	n.mu.Lock()
	defer n.mu.Unlock()
	n.hooks = append(n.hooks, fn)
}

// Dialer maps <PublicIP>:50000 and <PublicIP>:6443 to the node's listeners,
// as the network would. A port that is down or closed by the firewall for
// OperatorIP is refused (ECONNREFUSED); other addresses are unreachable.
func (n *Node) Dialer() func(ctx context.Context, addr string) (net.Conn, error) {
	return func(ctx context.Context, addr string) (net.Conn, error) {
		host, portStr, err := net.SplitHostPort(addr)
		if err != nil {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: err}
		}
		ip, err := netip.ParseAddr(host)
		if err != nil || ip.Unmap() != n.opts.PublicIP.Unmap() {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.EHOSTUNREACH}
		}
		port, _ := strconv.Atoi(portStr)
		var target string
		switch port {
		case ApidPort:
			target = n.Addr()
		case KubeAPIPort:
			target = n.KubeAddr()
		default:
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
		}
		if !n.admits(port) {
			return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
		}
		var d net.Dialer
		return d.DialContext(ctx, "tcp", target)
	}
}

// admits says whether a new connection from the operator to port gets in now.
func (n *Node) admits(port int) bool {
	n.mu.Lock()
	defer n.mu.Unlock()
	switch port {
	case ApidPort:
		if n.mode != ModeMaintenance && n.mode != ModeConfigured {
			return false
		}
	case KubeAPIPort:
		if n.mode != ModeConfigured {
			return false
		}
	default:
		return false
	}
	return n.fw.Allowed(port, n.opts.OperatorIP)
}

// Close stops the node, releasing hanging calls and open streams.
func (n *Node) Close() {
	n.closeOnce.Do(func() {
		close(n.done)
		n.apiLn.Close()
		n.kubeLn.Close()
		n.mu.Lock()
		g := n.api
		n.api = nil
		n.gen++
		kube := n.takeKubeConnsLocked()
		n.mu.Unlock()
		if g != nil {
			g.stop(false)
		}
		closeAll(kube)
		n.wg.Wait()
	})
}

// scheduleLocked runs fn after d, then the latency configured for point,
// unless the node moved on to another boot stage (or closed) first. fn runs
// with n.mu held and may return a function to run once the lock is released.
func (n *Node) scheduleLocked(d time.Duration, point string, fn func() func()) {
	gen := n.gen
	go func() {
		t := time.NewTimer(d)
		defer t.Stop()
		select {
		case <-t.C:
		case <-n.done:
			return
		}
		ctx, cancel := untilClosed(n.done)
		defer cancel()
		if n.faults.Delay(ctx, point) != nil {
			return
		}
		n.mu.Lock()
		if n.gen != gen || isClosed(n.done) {
			n.mu.Unlock()
			return
		}
		after := fn()
		n.mu.Unlock()
		if after != nil {
			after()
		}
	}()
}

// untilClosed is a context that ends when done closes (or cancel is called).
func untilClosed(done <-chan struct{}) (context.Context, context.CancelFunc) {
	ctx, cancel := context.WithCancel(context.Background())
	go func() {
		select {
		case <-done:
			cancel()
		case <-ctx.Done():
		}
	}()
	return ctx, cancel
}

func isClosed(ch <-chan struct{}) bool {
	select {
	case <-ch:
		return true
	default:
		return false
	}
}

// enterMaintenanceLocked starts serving the insecure maintenance API.
func (n *Node) enterMaintenanceLocked() {
	n.gen++
	n.mode = ModeMaintenance
	n.taken = false
	n.cfgBytes, n.fw = nil, Firewall{}
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{n.maintCert},
		MinVersion:   tls.VersionTLS12,
	})
	n.api = n.startGen(creds)
	n.eventLocked(EventMaintenance)
}

// eventLocked reports a lifecycle event to OnEvent; n.mu is held.
func (n *Node) eventLocked(name string) {
	if n.opts.OnEvent != nil {
		n.opts.OnEvent(name, n.now())
	}
}

// enterConfiguredLocked starts serving mTLS with a certificate from the
// config's OS CA and starts the services. A worker's config carries the CA
// certificate without its key: like Talos, it gets its apid certificate from
// trustd on a control plane, which its firewall must let it reach.
func (n *Node) enterConfiguredLocked(cfg config.Provider, raw []byte) func() {
	caCert, caKey, pool, err := osCA(cfg)
	if err != nil && cfg.Machine() != nil && cfg.Machine().Type() == machinetype.TypeWorker && n.opts.Peers != nil {
		ca, cerr := cfg.Machine().Security().IssuingCA().GetCert()
		if cerr != nil {
			n.mode = ModeRebooting
			return nil
		}
		pool := x509.NewCertPool()
		pool.AddCert(ca)
		var signer crypto.Signer
		every := max(n.opts.RebootDelay/10, time.Millisecond)
		n.keepTryingLocked(every, "", func() bool {
			signer = n.fromTrustd(ca)
			return signer != nil
		}, func() {
			if after := n.serveConfiguredLocked(cfg, raw, ca, signer, pool); after != nil {
				go after()
			}
		})
		return nil
	}
	if err != nil {
		// A real node without a usable CA would never bring apid up.
		n.mode = ModeRebooting
		return nil
	}
	return n.serveConfiguredLocked(cfg, raw, caCert, caKey, pool)
}

// serveConfiguredLocked brings apid up over mTLS with a certificate issued
// by the OS CA, and starts the services.
func (n *Node) serveConfiguredLocked(cfg config.Provider, raw []byte, caCert *x509.Certificate, caKey crypto.Signer, pool *x509.CertPool) func() {
	ips := []netip.Addr{n.opts.PublicIP, netip.MustParseAddr("127.0.0.1")}
	var names []string
	for _, san := range cfg.Machine().Security().CertSANs() {
		if ip, perr := netip.ParseAddr(san); perr == nil {
			ips = append(ips, ip)
		} else {
			names = append(names, san)
		}
	}
	cert, err := leafCert(n.now(), "apid", ips, names, caCert, caKey)
	if err != nil {
		n.mode = ModeRebooting
		return nil
	}
	n.caCert, n.caKey = caCert, caKey
	n.gen++
	n.mode = ModeConfigured
	n.cfgBytes, n.fw = append([]byte(nil), raw...), FirewallFromConfig(cfg)
	n.worker = cfg.Machine().Type() == machinetype.TypeWorker
	n.hostname = configHostname(cfg)
	creds := credentials.NewTLS(&tls.Config{
		Certificates: []tls.Certificate{cert},
		ClientAuth:   tls.RequireAndVerifyClientCert,
		ClientCAs:    pool,
		MinVersion:   tls.VersionTLS12,
	})
	n.api = n.startGen(creds)
	if kc, kerr := n.kubeServingCert(cfg); kerr == nil {
		n.kubeCert = kc
	}
	n.kubeServingLocked(cfg)
	n.eventLocked(EventConfigured)
	n.startServicesLocked()
	return n.hooksCall(raw)
}

func (n *Node) hooksCall(raw []byte) func() {
	hooks := append([]func([]byte){}, n.hooks...)
	cp := append([]byte(nil), raw...)
	return func() {
		for _, h := range hooks {
			h(cp)
		}
	}
}

// takeConfigLocked is what maintenance mode does with an applied config:
// answer at once, go down to reboot into it only after the linger.
func (n *Node) takeConfigLocked(cfg config.Provider, raw []byte) func() {
	n.applied = append(n.applied, append([]byte(nil), raw...))
	n.eventLocked(EventTaken)
	linger := n.opts.MaintenanceLinger
	if n.faults.Peek(FaultMaintenance, emulator.Linger) {
		n.faults.Check(FaultMaintenance)
		linger = max(linger, time.Millisecond) * LingerFactor
	}
	if linger <= 0 {
		return n.beginRebootLocked(cfg, raw)
	}
	n.taken = true
	n.scheduleLocked(linger, "", func() func() { return n.beginRebootLocked(cfg, raw) })
	return nil
}

// beginRebootLocked takes the node down and brings it back after RebootDelay
// with cfg, as a real node does after an apply in REBOOT mode. It returns
// what to do once the lock is released.
func (n *Node) beginRebootLocked(cfg config.Provider, raw []byte) func() {
	old := n.api
	n.api = nil
	n.gen++
	n.mode = ModeRebooting
	n.etcdReady = false
	n.services = map[string]*serviceState{}
	n.kubeletLocked(false)
	n.eventLocked(EventApplied)
	kube := n.takeKubeConnsLocked()
	delay := n.opts.RebootDelay
	if n.faults.Peek(FaultReboot, emulator.Unavailable) || n.faults.Peek(FaultReboot, emulator.RateLimit) {
		delay *= 2
	}
	n.scheduleLocked(delay, FaultReboot, func() func() {
		if kind, ok := n.faults.Check(FaultReboot); ok {
			switch kind {
			case emulator.Never, emulator.Hang:
				return nil // the machine never comes back
			case emulator.Error:
				n.enterMaintenanceLocked() // the install failed: back to square one
				return nil
			}
		}
		return n.enterConfiguredLocked(cfg, raw)
	})
	return func() {
		if old != nil {
			// Graceful: replies already queued (the apply's) reach the client
			// before the connections go away with the old OS.
			go old.stop(true)
		}
		closeAll(kube)
	}
}

func (n *Node) takeKubeConnsLocked() []net.Conn {
	out := make([]net.Conn, 0, len(n.kubeConns))
	for c := range n.kubeConns {
		out = append(out, c)
	}
	n.kubeConns = map[net.Conn]struct{}{}
	return out
}

func closeAll(conns []net.Conn) {
	for _, c := range conns {
		c.Close()
	}
}

// acceptAPI admits connections to the Talos API port and hands them to the
// serving generation; refused ones are closed at once.
func (n *Node) acceptAPI() {
	defer n.wg.Done()
	for {
		c, err := n.apiLn.Accept()
		if err != nil {
			return
		}
		n.mu.Lock()
		g := n.api
		ok := g != nil && n.fw.Allowed(ApidPort, n.opts.OperatorIP)
		if ok {
			g.conns[c] = struct{}{}
		}
		n.mu.Unlock()
		if !ok {
			c.Close()
			continue
		}
		g.ln.push(&trackedConn{Conn: c, forget: func() {
			n.mu.Lock()
			delete(g.conns, c)
			n.mu.Unlock()
		}})
	}
}

// acceptKube stands in for kube-apiserver: a TLS endpoint that is up once the
// node is configured and obeys the firewall.
func (n *Node) acceptKube() {
	defer n.wg.Done()
	for {
		c, err := n.kubeLn.Accept()
		if err != nil {
			return
		}
		n.mu.Lock()
		ok := !isClosed(n.done) && n.mode == ModeConfigured && n.fw.Allowed(KubeAPIPort, n.opts.OperatorIP)
		cert, kube, cas := n.kubeCert, n.kube, n.kubeCAs
		if ok {
			n.kubeConns[c] = struct{}{}
		}
		n.mu.Unlock()
		if !ok {
			c.Close()
			continue
		}
		n.wg.Add(1)
		go func() {
			defer n.wg.Done()
			defer func() {
				n.mu.Lock()
				delete(n.kubeConns, c)
				n.mu.Unlock()
				c.Close()
			}()
			if kube != nil {
				n.serveKube(c, cert, cas, kube)
				return
			}
			tc := tls.Server(c, &tls.Config{Certificates: []tls.Certificate{cert}, NextProtos: []string{"h2", "http/1.1"}})
			if tc.Handshake() != nil {
				return
			}
			_, _ = io.Copy(io.Discard, tc)
		}()
	}
}

// apiGen is one boot stage's gRPC server: a fresh server per stage means a
// reboot really drops every connection and stream of the previous OS.
type apiGen struct {
	srv   *grpc.Server
	ln    *chanListener
	done  chan struct{} // closed when the stage ends; releases hangs and streams
	conns map[net.Conn]struct{}
	once  sync.Once
}

func (n *Node) startGen(creds credentials.TransportCredentials) *apiGen {
	g := &apiGen{
		srv:   grpc.NewServer(grpc.Creds(creds)),
		ln:    newChanListener(n.apiLn.Addr()),
		done:  make(chan struct{}),
		conns: map[net.Conn]struct{}{},
	}
	machine.RegisterMachineServiceServer(g.srv, &machineServer{n: n, g: g})
	storage.RegisterStorageServiceServer(g.srv, &storageServer{n: n, g: g})
	go func() { _ = g.srv.Serve(g.ln) }()
	return g
}

func (g *apiGen) stop(graceful bool) {
	g.once.Do(func() {
		close(g.done)
		if graceful {
			g.srv.GracefulStop()
		} else {
			g.srv.Stop()
		}
	})
}

// cutLocked closes every connection of the stage without a goodbye, as a
// firewall dropping established flows would.
func (g *apiGen) cutLocked() []net.Conn {
	out := make([]net.Conn, 0, len(g.conns))
	for c := range g.conns {
		out = append(out, c)
	}
	return out
}

type trackedConn struct {
	net.Conn
	once   sync.Once
	forget func()
}

func (c *trackedConn) Close() error {
	c.once.Do(c.forget)
	return c.Conn.Close()
}

// chanListener feeds admitted connections to a gRPC server.
type chanListener struct {
	addr   net.Addr
	ch     chan net.Conn
	closed chan struct{}
	once   sync.Once
}

func newChanListener(addr net.Addr) *chanListener {
	return &chanListener{addr: addr, ch: make(chan net.Conn), closed: make(chan struct{})}
}

func (l *chanListener) push(c net.Conn) {
	select {
	case l.ch <- c:
	case <-l.closed:
		c.Close()
	}
}

func (l *chanListener) Accept() (net.Conn, error) {
	select {
	case c := <-l.ch:
		return c, nil
	case <-l.closed:
		return nil, net.ErrClosed
	}
}

func (l *chanListener) Close() error {
	l.once.Do(func() { close(l.closed) })
	return nil
}

func (l *chanListener) Addr() net.Addr { return l.addr }

// DialLoopback is a connection from the node itself to its own Talos API
// (127.0.0.1:50000 in the node's network namespace), as a hostNetwork pod
// on the node opens it: Talos's ingress firewall always admits loopback
// (its default rules accept the "lo" interface before any rule of the
// config, see the NetworkRuleConfig docs), so the operator rules and the
// lockdown do not apply. Only the Talos API port is served on loopback
// here; the node must be up (maintenance or configured).
func (n *Node) DialLoopback(ctx context.Context, port int) (net.Conn, error) {
	if err := ctx.Err(); err != nil {
		return nil, err
	}
	if port != ApidPort {
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	n.mu.Lock()
	g := n.api
	up := !isClosed(n.done) && g != nil && (n.mode == ModeMaintenance || n.mode == ModeConfigured)
	client, server := net.Pipe()
	if up {
		g.conns[server] = struct{}{}
	}
	n.mu.Unlock()
	if !up {
		client.Close()
		server.Close()
		return nil, &net.OpError{Op: "dial", Net: "tcp", Err: syscall.ECONNREFUSED}
	}
	g.ln.push(&trackedConn{Conn: server, forget: func() {
		n.mu.Lock()
		delete(g.conns, server)
		n.mu.Unlock()
	}})
	return client, nil
}

// KubeNodeName is the name this node's kubelet registers its Node under.
func (n *Node) KubeNodeName() string {
	n.mu.Lock()
	defer n.mu.Unlock()
	return n.kubeNodeName()
}
