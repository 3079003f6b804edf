package main

import (
	"runtime/debug"
	"strings"
)

// versionString is what `lvsforge --version` prints after "lvsforge
// version": the module version ("(devel)" when built from a checkout),
// the VCS revision and whether the tree had uncommitted changes, when the
// go command recorded them, and the Go toolchain.
func versionString(bi *debug.BuildInfo, ok bool) string {
	if !ok || bi == nil {
		return "unknown (built without module information)"
	}
	v := bi.Main.Version
	if v == "" {
		v = "(devel)"
	}
	var rev, when string
	dirty := false
	for _, s := range bi.Settings {
		switch s.Key {
		case "vcs.revision":
			rev = s.Value
		case "vcs.time":
			when = s.Value
		case "vcs.modified":
			dirty = s.Value == "true"
		}
	}
	var details []string
	if rev != "" {
		r := "revision " + rev
		if dirty {
			r += "+dirty"
		}
		if when != "" {
			r += " of " + when
		}
		details = append(details, r)
	} else {
		details = append(details, "no VCS revision recorded")
	}
	if bi.GoVersion != "" {
		details = append(details, bi.GoVersion)
	}
	return v + " (" + strings.Join(details, ", ") + ")"
}
