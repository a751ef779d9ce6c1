// Package version reports what binary this is. Release builds stamp it:
//
//	go build -ldflags "-X github.com/rawkode/rawkode-cloud/internal/version.Version=v1.0.0 \
//	  -X github.com/rawkode/rawkode-cloud/internal/version.Commit=$(git rev-parse HEAD)" ./cmd/rawkode-cloud
package version

import (
	"fmt"
	"runtime"
	"runtime/debug"
)

// Set with -ldflags -X at release time.
var (
	Version = "dev"
	Commit  = ""
)

// Info is the version report.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	GoVersion string `json:"go_version"`
	Platform  string `json:"platform"`
}

// Get returns the version report; an unstamped build says "dev" and uses the
// VCS revision Go recorded, if any.
func Get() Info {
	commit := Commit
	if commit == "" {
		commit = "unknown"
		if bi, ok := debug.ReadBuildInfo(); ok {
			for _, s := range bi.Settings {
				if s.Key == "vcs.revision" && s.Value != "" {
					commit = s.Value
				}
			}
		}
	}
	return Info{Version: Version, Commit: commit, GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
}

func (i Info) String() string {
	return fmt.Sprintf("rawkode-cloud %s (commit %s, %s, %s)", i.Version, i.Commit, i.GoVersion, i.Platform)
}
