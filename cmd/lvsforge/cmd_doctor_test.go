package main

import (
	"slices"
	"strings"
	"testing"
)

// TestDoctorForUse: --for checks only what that use needs; a tool some use
// can do without (rpmbuild: build --package rpm) is listed as optional and
// never fails the check or gets installed; the test suite's tools are what
// doctor --install (scripts/test) installs.
func TestDoctorForUse(t *testing.T) {
	// Every tool missing: what each use reports.
	var none []toolCheck
	for _, c := range checkTools(hostTools) {
		c.Present = false
		none = append(none, c)
	}
	for _, tc := range []struct {
		use                         string
		required, optional, without []string
	}{
		{useRender, nil, nil, []string{"make", "rpmbuild", "qemu-system-x86_64", "shellcheck"}},
		{usePush, nil, nil, []string{"make", "sshd", "qemu-system-x86_64"}},
		{useBuild, []string{"make", "gcc", "libelf", "popt"}, []string{"rpmbuild", "dpkg-buildpackage", "ccache", "linux-source-6.1"}, []string{"qemu-system-x86_64", "shellcheck", "sshd"}},
		{useVMTest, []string{"make", "qemu-system-x86_64", "debootstrap", "busybox"}, []string{"ssh", "ccache"}, []string{"rpmbuild", "shellcheck", "sshd"}},
		{useTest, []string{"shellcheck", "sshd", "qemu-system-x86_64", "dpkg-buildpackage", "linux-source-6.1", "fish", "zsh", "ndisc6", "tcpdump"}, nil, []string{"rpmbuild"}},
		{"", []string{"make", "shellcheck", "qemu-system-x86_64"}, []string{"rpmbuild"}, nil},
		// BIRD's checker and daemon, for the bgp backend's tests.
		{useTest, []string{"bird"}, nil, nil},
		// distcc for a spec's build farm; distccd for the farm test's hosts.
		{useBuild, nil, []string{"distcc"}, []string{"distccd"}},
		{useTest, []string{"distcc", "distccd"}, nil, nil},
	} {
		r := forUse(none, tc.use)
		listed := map[string]toolCheck{}
		for _, c := range r.Tools {
			listed[c.Name] = c
		}
		for _, n := range tc.required {
			if c, ok := listed[n]; !ok || !c.Required || !slices.Contains(r.Missing, c.Package) {
				t.Errorf("--for %q: %s not required and missing: %+v", tc.use, n, c)
			}
		}
		for _, n := range tc.optional {
			if c, ok := listed[n]; !ok || c.Required || slices.Contains(r.Missing, c.Package) {
				t.Errorf("--for %q: %s not listed as optional: %+v", tc.use, n, c)
			}
		}
		for _, n := range tc.without {
			if _, ok := listed[n]; ok {
				t.Errorf("--for %q lists %s", tc.use, n)
			}
		}
	}

	// With --for render nothing can be missing, whatever this machine has.
	code, out, errOut := run(t, "doctor", "--for", "render")
	if code != 0 || out != "render needs no host tools\n" {
		t.Errorf("doctor --for render: exit %d %q %s", code, out, errOut)
	}
	if code, _, errOut := run(t, "doctor", "--for", "rpm"); code != ExitUsage || !strings.Contains(errOut, `--for "rpm": want one of render, push, build, vmtest, test`) {
		t.Errorf("doctor --for rpm: exit %d %s", code, errOut)
	}
}
