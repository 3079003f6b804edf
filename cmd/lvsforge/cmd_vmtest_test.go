package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/build"
	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/vmtests"
)

// The VM commands themselves run in vmtests' scenarios (the same code);
// here, what they say when called wrongly or with nothing running.
func TestVMCommandErrors(t *testing.T) {
	code, _, errOut := run(t, "vmtest", "--scenario", "seed-dr,nosuch")
	if code != ExitUsage || !strings.Contains(errOut, `no scenario "nosuch"`) {
		t.Errorf("unknown scenario: exit %d, %q", code, errOut)
	}
	for _, sc := range vmtests.Scenarios {
		if !strings.Contains(errOut, sc.Name) {
			t.Errorf("the error does not list scenario %s: %q", sc.Name, errOut)
		}
	}
	state := t.TempDir()
	for _, args := range [][]string{{"vm", "ssh", "--state", state, "rs1"}, {"vm", "down", "--state", state}} {
		code, _, errOut := run(t, args...)
		if code != ExitFailure || !strings.Contains(errOut, "is `lvsforge vm up` running?") {
			t.Errorf("%v with nothing running: exit %d, %q", args, code, errOut)
		}
	}
	if code, _, errOut := run(t, "vm", "ssh", "--state", state); code != ExitUsage || !strings.Contains(errOut, "which host?") {
		t.Errorf("vm ssh without a host: exit %d, %q", code, errOut)
	}
}

// TestVMCommandsShowBuildProgress: vmtest and vm up hand the kernel builds'
// steps and progress to the renderer `lvsforge build` uses, line for line
// (they used to keep compilation in build.log: half an hour of silence on
// a first run), and the downloads to the fetcher's.
func TestVMCommandsShowBuildProgress(t *testing.T) {
	steps := [][2]string{
		{"extract", "extracting linux 6.1 source"},
		{"extract", "extracting linux 6.1 source: 10.0/130.5 MiB (7%)"},
		{"extracted", "extracted linux 6.1 source: 130.5 MiB in 8.1s"},
		{"compile", "director: make -j2 bzImage modules"},
		{"compile", "director: 50 objects compiled"},
	}
	var vmOut, buildOut, fetchOut bytes.Buffer
	cache, err := build.NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	f := &build.Fetcher{Cache: cache, Progress: newFetchProgress(&fetchOut).download}
	opts := NewApp(nil, nil, &vmOut).vmOptions(f, build.FetchOptions{}, t.TempDir())
	buildStatus := NewApp(nil, nil, &buildOut).buildProgress().step
	for _, s := range steps {
		opts.BuildStatus(s[0], s[1])
		buildStatus(s[0], s[1])
	}
	want := "extracting linux 6.1 source\nextracted linux 6.1 source: 130.5 MiB in 8.1s\ndirector: make -j2 bzImage modules\n"
	if vmOut.String() != want || buildOut.String() != want {
		t.Errorf("vmtest shows:\n%s\nbuild shows:\n%s\nwant:\n%s", vmOut.String(), buildOut.String(), want)
	}
	opts.FetchProgress(build.Progress{Name: "linux-6.1.192.tar.xz", Bytes: 3 << 20, Done: true})
	if got := fetchOut.String(); got != "fetch linux-6.1.192.tar.xz: 3.0 MiB downloaded\n" {
		t.Errorf("vmtest's downloads: %q", got)
	}
}

// TestVMStateBootDisks: the --vm commands of a `vm up --boot-disks` see the
// spec as that cluster boots it (GRUB entries on the VMs' disk and serial
// console, no serial heartbeat cable), so that an upgrade --vm renders the
// entries the VMs boot; without --boot-disks the spec is the user's.
func TestVMStateBootDisks(t *testing.T) {
	s, err := NewApp(nil, nil, nil).exampleSpec()
	if err != nil {
		t.Fatal(err)
	}
	if got, err := (&vmState{}).vmSpec(s); err != nil || got != s {
		t.Errorf("without boot disks: %v, the same spec: %v", err, got == s)
	}
	got, err := (&vmState{BootDisks: true}).vmSpec(s)
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range got.Hosts {
		if h.Boot.Root != "/dev/vda1" {
			t.Errorf("%s boots root %q, want the VM disk's /dev/vda1", h.Name, h.Boot.Root)
		}
	}
	if !strings.Contains(got.Kernel.Cmdline, "console=ttyS0") {
		t.Errorf("GRUB entries' command line %q has no serial console", got.Kernel.Cmdline)
	}
	for _, m := range got.HA.Media {
		if m.Type == cluster.MediumSerial {
			t.Errorf("a serial heartbeat medium on the console's port: %+v", m)
		}
	}
	if len(got.HA.Media) == len(s.HA.Media) || s.Hosts[0].Boot.Root == "/dev/vda1" {
		t.Errorf("the user's spec was changed, or the serial medium kept: media %v, root %q", s.HA.Media, s.Hosts[0].Boot.Root)
	}
}
