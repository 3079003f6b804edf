// Package clustertest holds the spec fixtures that the tests of several
// packages share.
package clustertest

import (
	"path/filepath"
	"testing"

	"github.com/lvsforge/lvsforge/cluster"
)

// Example is the built-in example (the seed's cluster) with the kernel.org
// source and a fresh authkey in a directory of the test's own.
func Example(t testing.TB) *cluster.Spec {
	t.Helper()
	dir := t.TempDir()
	if err := cluster.EnsureAuthkey(filepath.Join(dir, "authkey")); err != nil {
		t.Fatal(err)
	}
	s, err := cluster.Example(cluster.KernelOrgSource(), dir)
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// Valid fails the test unless s, a fixture the test has edited, is still a
// valid spec, and returns it.
func Valid(t testing.TB, s *cluster.Spec) *cluster.Spec {
	t.Helper()
	if err := cluster.Validate(s); err != nil {
		t.Fatal(err)
	}
	return s
}
