// Package testenv decides what a test does when a prerequisite (a host tool,
// root, a kernel tarball) is missing: skip on a developer's machine, fail in
// CI (CI=true), so that a green CI run never hides a missing install step.
// It also runs the helper processes a test needs for as long as it lasts.
package testenv

import (
	"bufio"
	"os"
	"os/exec"
	"path/filepath"
	"testing"
)

// InCI reports whether the tests run under CI (CI=true).
func InCI() bool { return os.Getenv("CI") == "true" }

// Missing skips the test, or fails it in CI, naming what is missing and how to get it.
func Missing(t testing.TB, what, install string) {
	t.Helper()
	if InCI() {
		t.Fatalf("prerequisite missing in CI: %s (install: %s)", what, install)
	}
	t.Skipf("prerequisite missing: %s (install: %s)", what, install)
}

// LookPath returns the path of tool, searching PATH and then the sbin
// directories (ldirectord, ipvsadm and sshd live there and root's PATH is not
// always a login PATH). A missing tool skips the test, or fails it in CI.
func LookPath(t testing.TB, tool, debianPackage string) string {
	t.Helper()
	if p, err := exec.LookPath(tool); err == nil {
		return p
	}
	for _, dir := range []string{"/usr/sbin", "/sbin", "/usr/local/sbin", "/usr/libexec/heartbeat"} {
		p := dir + "/" + tool
		if st, err := os.Stat(p); err == nil && st.Mode()&0o111 != 0 {
			return p
		}
	}
	Missing(t, tool, "apt-get install -y "+debianPackage)
	return ""
}

// IpvsadmBuild skips the test, or fails it in CI, unless ipvsadm can be
// built here: a C compiler, pkg-config, and the libnl-genl-3 and popt
// development files it links with.
func IpvsadmBuild(t testing.TB) {
	t.Helper()
	LookPath(t, "gcc", "build-essential")
	LookPath(t, "pkg-config", "pkg-config")
	for _, pc := range []string{"libnl-genl-3.0", "popt"} {
		if exec.Command("pkg-config", "--exists", pc).Run() != nil {
			Missing(t, pc, "apt-get install -y libnl-3-dev libnl-genl-3-dev libpopt-dev")
		}
	}
}

// Root skips the test, or fails it in CI, unless it runs as root.
func Root(t testing.TB) {
	t.Helper()
	if os.Geteuid() != 0 {
		Missing(t, "root privileges", "run the tests as root (sudo)")
	}
}

// CacheDir is the lvsforge cache the tests that build kernels and guest
// images share with each other and with lvsforge itself (build's
// DefaultCacheDir), or LVSFORGE_TEST_CACHE: a kernel is then compiled once
// per machine, not once per test or per run.
func CacheDir(t testing.TB) string {
	if d := os.Getenv("LVSFORGE_TEST_CACHE"); d != "" {
		return d
	}
	d, err := os.UserCacheDir()
	if err != nil {
		t.Fatalf("find the cache directory: %v", err)
	}
	return filepath.Join(d, "lvsforge")
}

// Start starts cmd, a process the test needs running (an agent, a server),
// kills it when the test ends, and returns its standard output, from which
// the test reads the line the process prints once it is ready. Whatever
// else the caller wants of cmd (its stdin) it sets up before.
func Start(t testing.TB, cmd *exec.Cmd) *bufio.Reader {
	t.Helper()
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { cmd.Process.Kill(); cmd.Wait() })
	return bufio.NewReader(out)
}
