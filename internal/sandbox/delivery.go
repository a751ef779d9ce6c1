package sandbox

import (
	"net/url"
	"slices"
	"strings"

	"github.com/rawkode/rawkode-cloud/internal/cidata"
	"github.com/rawkode/rawkode-cloud/internal/imagefactory"
	ifemu "github.com/rawkode/rawkode-cloud/internal/imagefactory/emulator"
	"github.com/rawkode/rawkode-cloud/internal/pivot"
	"github.com/rawkode/rawkode-cloud/internal/provision"
	"github.com/rawkode/rawkode-cloud/internal/scaleway"
	"github.com/rawkode/rawkode-cloud/internal/talos"
)

// startImageFactory brings up the emulated Image Factory, which knows the
// vanilla schematic as the public one does.
func (s *Sandbox) startImageFactory() error {
	if s.faults.Peek("talos.maintenance", talos.Hijack) {
		talos.PrepareHijacker() // while phases 0 to 2 run
	}
	s.ImageFactory = ifemu.New(ifemu.Options{Faults: s.faults, Build: s.Scaled(s.profile.ImageBuild)})
	return s.ImageFactory.Seed(imagefactory.Schematic{})
}

// installConfig is what a server's node finds at first boot, read from the
// user data the server really carries, as Talos would: a config.yaml on a
// metal-iso volume, honoured only when the image the pivot wrote was built
// with talos.config=metal-iso. Anything else boots into maintenance mode.
func (s *Sandbox) installConfig(srv scaleway.Server) (cfg []byte, partition string) {
	d, err := pivot.Inspect(srv.UserData)
	if err != nil || d.ConfigVolume == nil {
		return nil, ""
	}
	if !s.imageReadsMetalISO(d.ImageURL) {
		return nil, ""
	}
	label, files, err := cidata.Read(d.ConfigVolume)
	if err != nil || label != cidata.LabelMetalISO {
		return nil, ""
	}
	cfg, ok := cidata.Lookup(files, "config.yaml")
	if !ok {
		return nil, ""
	}
	return cfg, pivot.ConfigPartition(d.InstallDisk)
}

// imageReadsMetalISO looks up the schematic of a factory image URL
// (…/image/<schematic>/<version>/<asset>).
func (s *Sandbox) imageReadsMetalISO(imageURL string) bool {
	u, err := url.Parse(imageURL)
	if err != nil {
		return false
	}
	parts := strings.Split(strings.Trim(u.Path, "/"), "/")
	if len(parts) < 4 || parts[len(parts)-4] != "image" {
		return false
	}
	sch, ok := s.ImageFactory.Lookup(parts[len(parts)-3])
	return ok && slices.Contains(sch.Customization.ExtraKernelArgs, provision.KernelArgMetalISO)
}
