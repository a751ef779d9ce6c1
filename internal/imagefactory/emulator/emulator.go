// Package emulator is an in-process Talos Image Factory for the sandbox and
// the tests. It answers the routes the CLI uses with the factory's own shapes
// (internal/frontend/http in siderolabs/image-factory): `POST /schematics`
// takes YAML (or JSON), refuses unknown fields and answers 201 with
// {"id","schematic"}; errors are plain text with the factory's status codes;
// schematics are content-addressed, so creating one twice is the same ID.
// Like the real factory it accepts any extension name at creation and only
// refuses to build an image whose extension does not exist for the requested
// Talos version (400), and it builds an asset on its first request (slow) and
// serves it from cache afterwards (fast).
package emulator

import (
	"encoding/json"
	"fmt"
	"io"
	"mime"
	"net/http"
	"path"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/rawkode/rawkode-cloud/internal/emulator"
	"github.com/rawkode/rawkode-cloud/internal/imagefactory"
)

// Fault points, consulted on every matching request.
const (
	PointSchematics = "imagefactory.schematics"
	PointVersions   = "imagefactory.versions"
	PointImage      = "imagefactory.image"
)

// FaultPoints describes every fault point, for --sandbox-fault list.
var FaultPoints = []struct{ Point, What string }{
	{PointSchematics, "creating or reading an Image Factory schematic"},
	{PointVersions, "listing Talos versions and official extensions"},
	{PointImage, "building or downloading a Talos image (never: the build never finishes)"},
}

// DefaultVersions are the Talos versions the emulated factory builds.
var DefaultVersions = []string{"v1.11.6", "v1.12.0", "v1.12.3", "v1.12.4"}

// DefaultExtensions are the official extensions offered for every version
// (a subset of the real list, shaped like it).
var DefaultExtensions = []imagefactory.ExtensionInfo{
	{Name: "siderolabs/iscsi-tools", Ref: "ghcr.io/siderolabs/iscsi-tools:v0.2.0", Digest: "sha256:3ec2a1d9b2e4d4c0c1e0f1b5a9e5f2d8c7b6a5f4e3d2c1b0a9f8e7d6c5b4a392", Author: "Sidero Labs", Description: "This system extension provides iscsi-tools."},
	{Name: "siderolabs/qemu-guest-agent", Ref: "ghcr.io/siderolabs/qemu-guest-agent:10.1.2", Digest: "sha256:8d0b7c5a4e3f2a1b0c9d8e7f6a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a71", Author: "Markus Reiter", Description: "This system extension provides the QEMU Guest Agent service."},
	{Name: "siderolabs/util-linux-tools", Ref: "ghcr.io/siderolabs/util-linux-tools:2.41.2", Digest: "sha256:1f2e3d4c5b6a79880796a5b4c3d2e1f0a9b8c7d6e5f4a3b2c1d0e9f8a7b6c5d4", Author: "Sidero Labs", Description: "This system extension provides util-linux tools."},
	{Name: "siderolabs/zfs", Ref: "ghcr.io/siderolabs/zfs:2.3.4-v1.12.4", Digest: "sha256:0a1b2c3d4e5f60718293a4b5c6d7e8f90a1b2c3d4e5f60718293a4b5c6d7e8f9", Author: "Sidero Labs", Description: "This system extension provides the ZFS kernel module and userspace tools."},
}

// Options configure an Emulator.
type Options struct {
	Faults     *emulator.Faults // shared with the sandbox; nil makes a new set
	Versions   []string         // DefaultVersions when nil
	Extensions []imagefactory.ExtensionInfo
	// Build is how long an asset takes on its first request, GET or HEAD
	// (the factory builds it then); later requests are served from cache
	// at once.
	Build time.Duration
}

// Emulator is a running emulated factory.
type Emulator struct {
	srv      *emulator.HTTPServer
	faults   *emulator.Faults
	counters *emulator.Counters
	versions []string
	exts     []imagefactory.ExtensionInfo
	build    time.Duration

	mu         sync.Mutex
	schematics map[string]imagefactory.Schematic
	built      map[string]bool // schematic/version/asset
}

// New starts an emulator on 127.0.0.1 with a kernel-chosen port.
func New(opts Options) *Emulator {
	e := &Emulator{faults: opts.Faults, counters: emulator.NewCounters(), versions: opts.Versions, exts: opts.Extensions,
		build: opts.Build, schematics: map[string]imagefactory.Schematic{}, built: map[string]bool{}}
	if e.faults == nil {
		e.faults = emulator.NewFaults()
	}
	if e.versions == nil {
		e.versions = DefaultVersions
	}
	if e.exts == nil {
		e.exts = DefaultExtensions
	}
	mux := http.NewServeMux()
	mux.HandleFunc("POST /schematics", e.createSchematic)
	mux.HandleFunc("GET /schematics/{id}", e.getSchematic)
	mux.HandleFunc("GET /versions", e.listVersions)
	mux.HandleFunc("GET /version/{version}/extensions/official", e.listExtensions)
	mux.HandleFunc("GET /image/{id}/{version}/{asset}", e.image)
	mux.HandleFunc("HEAD /image/{id}/{version}/{asset}", e.image)
	e.srv = emulator.StartHTTP(mux)
	return e
}

// URL is the factory's base URL.
func (e *Emulator) URL() string { return e.srv.URL() }

// Close stops the server and releases hanging requests.
func (e *Emulator) Close() { e.srv.Close() }

// Faults is the fault set consulted at every fault point.
func (e *Emulator) Faults() *emulator.Faults { return e.faults }

// Counters counts requests by operation.
func (e *Emulator) Counters() *emulator.Counters { return e.counters }

// Schematics returns the IDs of the schematics created so far, sorted.
func (e *Emulator) Schematics() []string {
	e.mu.Lock()
	defer e.mu.Unlock()
	ids := make([]string, 0, len(e.schematics))
	for id := range e.schematics {
		ids = append(ids, id)
	}
	slices.Sort(ids)
	return ids
}

// fault answers with the configured fault, if any, and reports whether it did.
// The factory answers what it refuses with 400 and plain text; overload shows
// as 503 from the proxy in front of it.
func (e *Emulator) fault(w http.ResponseWriter, r *http.Request, point string) bool {
	kind, ok := e.faults.Check(point)
	if !ok {
		return false
	}
	switch kind {
	case emulator.Error:
		http.Error(w, "injected fault "+point+": refused", http.StatusBadRequest)
	case emulator.Unavailable:
		http.Error(w, "upstream connect error or disconnect/reset before headers (injected fault "+point+")", http.StatusServiceUnavailable)
	case emulator.RateLimit:
		w.Header().Set("Retry-After", "1")
		http.Error(w, "rate limit exceeded", http.StatusTooManyRequests)
	case emulator.Hang, emulator.Never:
		e.srv.Hang(r)
	default:
		return false
	}
	return true
}

func (e *Emulator) createSchematic(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("create-schematic")
	if e.fault(w, r, PointSchematics) {
		return
	}
	data, err := io.ReadAll(http.MaxBytesReader(w, r.Body, 1<<20))
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	s, err := imagefactory.ParseSchematic(data)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	if s.Owner != "" {
		http.Error(w, "owner field is only supported in Enterprise edition", http.StatusBadRequest)
		return
	}
	id, err := s.ID()
	if err != nil {
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	normalized, _ := s.Marshal()
	e.mu.Lock()
	e.schematics[id] = s
	e.mu.Unlock()
	emulator.WriteJSON(w, http.StatusCreated, map[string]string{"id": id, "schematic": string(normalized)})
}

func (e *Emulator) getSchematic(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("get-schematic")
	if e.fault(w, r, PointSchematics) {
		return
	}
	s, ok := e.lookup(r.PathValue("id"))
	if !ok {
		http.Error(w, "schematic not found", http.StatusNotFound)
		return
	}
	data, _ := s.Marshal()
	w.Header().Set("Content-Type", "application/yaml")
	_, _ = w.Write(data)
}

func (e *Emulator) listVersions(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("versions")
	if e.fault(w, r, PointVersions) {
		return
	}
	// The factory writes these with json.Encoder and no Content-Type.
	_ = json.NewEncoder(w).Encode(e.versions)
}

func (e *Emulator) listExtensions(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("extensions")
	if e.fault(w, r, PointVersions) {
		return
	}
	if _, ok := e.version(r.PathValue("version")); !ok {
		// Upstream fails to look up the version's extension image and
		// reports it as an internal error.
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	_ = json.NewEncoder(w).Encode(e.exts)
}

func (e *Emulator) image(w http.ResponseWriter, r *http.Request) {
	e.counters.Inc("image")
	if e.fault(w, r, PointImage) {
		return
	}
	id, asset := r.PathValue("id"), r.PathValue("asset")
	s, ok := e.lookup(id)
	if !ok {
		http.Error(w, "schematic ID "+strconv.Quote(id)+" not found", http.StatusNotFound)
		return
	}
	version, ok := e.version(r.PathValue("version"))
	if !ok {
		http.Error(w, "internal server error", http.StatusInternalServerError)
		return
	}
	info, err := parseAsset(asset)
	if err != nil {
		http.Error(w, err.Error(), http.StatusBadRequest)
		return
	}
	for _, name := range s.Customization.SystemExtensions.OfficialExtensions {
		if !e.hasExtension(name) {
			http.Error(w, fmt.Sprintf("error enhancing profile from schematic: official extension %q is not available for Talos version %s", name, version), http.StatusBadRequest)
			return
		}
	}
	// The factory builds the asset before it answers either method: its
	// handler (image-factory internal/frontend/http/image.go, handleImage)
	// calls the asset builder first and only then returns early for HEAD,
	// which needs the built asset's size for Content-Length.
	if !e.cached(id, version, asset) {
		if !e.waitBuild(r) {
			return
		}
	}
	info.Schematic, info.Version = id, version
	info.Extensions = s.Customization.SystemExtensions.OfficialExtensions
	info.KernelArgs = s.Customization.ExtraKernelArgs
	body := EncodeImage(info)
	w.Header().Set("Content-Length", strconv.Itoa(len(body)))
	if ext := path.Ext(asset); ext != "" {
		w.Header().Set("Content-Type", mime.TypeByExtension(ext))
	}
	w.Header().Set("Content-Disposition", fmt.Sprintf(`attachment; filename="%s"`, asset))
	w.WriteHeader(http.StatusOK)
	if r.Method == http.MethodHead {
		return
	}
	_, _ = w.Write(body)
}

// waitBuild waits out the first build of an asset; false when the client
// gave up or the server closed first.
func (e *Emulator) waitBuild(r *http.Request) bool {
	if e.faults.Peek(PointImage, emulator.Never) {
		e.srv.Hang(r)
		return false
	}
	if e.build <= 0 {
		return true
	}
	t := time.NewTimer(e.build)
	defer t.Stop()
	select {
	case <-t.C:
		return true
	case <-r.Context().Done():
		return false
	case <-e.srv.Done():
		return false
	}
}

func (e *Emulator) cached(id, version, asset string) bool {
	e.mu.Lock()
	defer e.mu.Unlock()
	key := id + "/" + version + "/" + asset
	if e.built[key] {
		return true
	}
	e.built[key] = true
	return false
}

func (e *Emulator) lookup(id string) (imagefactory.Schematic, bool) {
	e.mu.Lock()
	defer e.mu.Unlock()
	s, ok := e.schematics[id]
	return s, ok
}

// version normalises "1.12.4" to "v1.12.4" as the factory does and reports
// whether it is offered.
func (e *Emulator) version(v string) (string, bool) {
	if !strings.HasPrefix(v, "v") {
		v = "v" + v
	}
	return v, slices.Contains(e.versions, v)
}

func (e *Emulator) hasExtension(name string) bool {
	for _, x := range e.exts {
		if x.Name == name {
			return true
		}
	}
	return false
}

// Seed adds schematics that exist before anyone asks, as the public factory
// has always known the vanilla one (config.DefaultSchematicID).
func (e *Emulator) Seed(schematics ...imagefactory.Schematic) error {
	e.mu.Lock()
	defer e.mu.Unlock()
	for _, s := range schematics {
		id, err := s.ID()
		if err != nil {
			return err
		}
		e.schematics[id] = s
	}
	return nil
}

// Lookup returns a schematic the factory knows.
func (e *Emulator) Lookup(id string) (imagefactory.Schematic, bool) { return e.lookup(id) }
