// Package buildinfo reports the version the binary was built as. The
// variables are set by the release build (goreleaser.yaml) through -ldflags;
// a plain `go build` falls back to what the Go toolchain recorded.
package buildinfo

import (
	"runtime"
	"runtime/debug"
)

var (
	version = "" // -X .../pkg/buildinfo.version=1.2.3
	commit  = ""
	date    = ""
)

// Info describes this build.
type Info struct {
	Version   string `json:"version"`
	Commit    string `json:"commit"`
	Date      string `json:"date"`
	GoVersion string `json:"goVersion"`
	Platform  string `json:"platform"`
}

// Get returns the build's description, never empty fields.
func Get() Info {
	info := Info{Version: version, Commit: commit, Date: date,
		GoVersion: runtime.Version(), Platform: runtime.GOOS + "/" + runtime.GOARCH}
	if bi, ok := debug.ReadBuildInfo(); ok {
		if info.Version == "" && bi.Main.Version != "" && bi.Main.Version != "(devel)" {
			info.Version = bi.Main.Version
		}
		for _, s := range bi.Settings {
			switch {
			case s.Key == "vcs.revision" && info.Commit == "":
				info.Commit = s.Value
			case s.Key == "vcs.time" && info.Date == "":
				info.Date = s.Value
			}
		}
	}
	if info.Version == "" {
		info.Version = "dev"
	}
	if info.Commit == "" {
		info.Commit = "unknown"
	}
	if info.Date == "" {
		info.Date = "unknown"
	}
	return info
}

// Version is the short version string, e.g. "1.2.3" or "dev".
func Version() string { return Get().Version }
