// Package build owns everything between a cluster spec's kernel section and
// the artifacts a host boots: verified downloads into a content-addressed
// cache, safe extraction of source tarballs, kernel configuration from a base
// plus role fragments, the kernel and ipvsadm builds, and the cache of their
// results keyed by every input. Patching lives in package patches.
package build
