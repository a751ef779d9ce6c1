package pivot

import (
	"bytes"
	"compress/gzip"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"regexp"

	"gopkg.in/yaml.v3"
)

// Delivered is what a server's user data would do to it, read back from the
// user data itself: which image the pivot writes and which config volume, if
// any, it leaves for Talos. The sandbox boots its emulated nodes from this,
// so they get exactly what a real server would, not what the CLI meant.
type Delivered struct {
	ImageURL     string
	InstallDisk  string // "" when the script picks one on the server
	ConfigVolume []byte // nil when the config is not delivered with the install
}

var (
	imageURLLine = regexp.MustCompile(`(?m)^IMAGE_URL="\$\{PIVOT_IMAGE_URL:-([^}"]+)\}"$`)
	diskLine     = regexp.MustCompile(`(?m)^DISK="\$\{PIVOT_DISK:-([^}"]*)\}"$`)
)

// Inspect reads user data rendered by Render.
func Inspect(userData []byte) (Delivered, error) {
	if !bytes.HasPrefix(userData, []byte("#cloud-config\n")) {
		return Delivered{}, errors.New("user data is not a #cloud-config document")
	}
	var doc cloudConfig
	if err := yaml.Unmarshal(userData, &doc); err != nil {
		return Delivered{}, fmt.Errorf("parse user data: %w", err)
	}
	var d Delivered
	for _, f := range doc.WriteFiles {
		switch f.Path {
		case ScriptPath:
			if m := imageURLLine.FindStringSubmatch(f.Content); m != nil {
				d.ImageURL = m[1]
			}
			if m := diskLine.FindStringSubmatch(f.Content); m != nil {
				d.InstallDisk = m[1]
			}
		case ConfigVolumePath:
			if f.Encoding != "gz+b64" {
				return Delivered{}, fmt.Errorf("config volume encoded as %q, want gz+b64", f.Encoding)
			}
			z, err := base64.StdEncoding.DecodeString(f.Content)
			if err != nil {
				return Delivered{}, fmt.Errorf("decode config volume: %w", err)
			}
			zr, err := gzip.NewReader(bytes.NewReader(z))
			if err != nil {
				return Delivered{}, fmt.Errorf("decode config volume: %w", err)
			}
			v, err := io.ReadAll(io.LimitReader(zr, 64<<20))
			if err != nil {
				return Delivered{}, fmt.Errorf("decode config volume: %w", err)
			}
			d.ConfigVolume = v
		}
	}
	if d.ImageURL == "" {
		return Delivered{}, errors.New("user data carries no pivot script")
	}
	return d, nil
}
