package caddymodule

import (
	"runtime/debug"

	"github.com/caddyserver/caddy/v2"

	"github.com/caddy-stepup/caddy-stepup/stepup/store"
)

// zeroPseudoVersion is the placeholder version a local build is required
// with (./xcaddy.sh uses it).
const zeroPseudoVersion = "v0.0.0-00010101000000-000000000000"

// modulePath is this plugin's Go module.
const modulePath = "github.com/caddy-stepup/caddy-stepup"

// VersionInfo is what `caddy stepup version` and GET /stepup/status say
// about the running build.
type VersionInfo struct {
	// Stepup is the plugin module's version as built in ("v0.1.0", a
	// pseudo-version, or "(devel)" for a build from a checkout), with
	// " => <path>" when the build replaced the module by a local copy.
	Stepup string `json:"stepup"`
	// Revision is the VCS revision of a build from a checkout, if known
	// ("+dirty" when it had uncommitted changes).
	Revision string `json:"revision,omitempty"`
	// Caddy is Caddy's version.
	Caddy string `json:"caddy"`
	// StoreFormat is the version of the store's key layout
	// (store.FormatVersion); instances sharing a Redis must agree on it.
	StoreFormat int `json:"store_format"`
	// Go is the Go version the binary was built with.
	Go string `json:"go,omitempty"`
}

// buildVersion reads the versions from the binary's build information.
func buildVersion() VersionInfo {
	simple, _ := caddy.Version()
	v := VersionInfo{Stepup: "unknown", Caddy: simple, StoreFormat: store.FormatVersion}
	bi, ok := debug.ReadBuildInfo()
	if !ok {
		return v
	}
	v.Go = bi.GoVersion
	if bi.Main.Path == modulePath {
		// Built from this module itself (go build ./internal/caddybin).
		v.Stepup = bi.Main.Version
		var rev, dirty string
		for _, s := range bi.Settings {
			switch s.Key {
			case "vcs.revision":
				rev = s.Value
			case "vcs.modified":
				if s.Value == "true" {
					dirty = "+dirty"
				}
			}
		}
		if rev != "" {
			v.Revision = rev + dirty
		}
		return v
	}
	for _, d := range bi.Deps {
		if d.Path != modulePath {
			continue
		}
		v.Stepup = d.Version
		if d.Replace != nil {
			if d.Version == zeroPseudoVersion {
				// xcaddy --with MODULE@v0.0.0-... --replace MODULE=DIR:
				// a build from a local copy, whose version says nothing.
				v.Stepup = "(devel)"
			}
			v.Stepup += " => " + d.Replace.Path
			if d.Replace.Version != "" && d.Replace.Version != "(devel)" {
				v.Stepup += " " + d.Replace.Version
			}
		}
		break
	}
	return v
}
