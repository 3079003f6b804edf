package vmtests

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/vmtests/initramfs"
	"github.com/lvsforge/lvsforge/vmtests/qemu"
	"github.com/lvsforge/lvsforge/vmtests/serialcable"
	"github.com/lvsforge/lvsforge/vmtests/vlan"
)

// Prereqs are the host files the low-level VM tests need.
type Prereqs struct {
	QEMU    string
	Kernel  string
	Busybox string
}

// FindPrereqs checks the host tools and builds (or takes from the cache)
// the example's director kernel, skipping the test (failing it in CI) for
// whatever is missing.
func FindPrereqs(t testing.TB) Prereqs {
	t.Helper()
	vmPrereqs(t)
	art := testArtifacts(t)
	return Prereqs{QEMU: "qemu-system-x86_64", Kernel: art.Kernels["director"].BzImage, Busybox: busyboxPath}
}

// A Lab is one low-level test's LAN (a vlan.Switch with a pcap), its busybox
// VMs (qemu.VM, one switch port each, consoles logged, booting lvsforge's
// own director kernel) and its output directory, all torn down by
// t.Cleanup, also on failure. The scenarios use Cluster instead.
// Lab is one test's cluster LAN and its VMs.
type Lab struct {
	T      testing.TB
	Pre    Prereqs
	Switch *vlan.Switch
	// Dir holds the sockets; short, because unix socket paths are.
	Dir string
	// Out holds the console logs and lan.pcap.
	Out string

	vms []*qemu.VM
}

// NewLab creates the switch and output directory of a test. Everything is
// removed or killed by t.Cleanup; consoles and pcap stay in $LVSFORGE_VMTEST_OUT
// when it is set.
func NewLab(t testing.TB) *Lab {
	t.Helper()
	l := &Lab{T: t, Pre: FindPrereqs(t)}
	dir, err := os.MkdirTemp("", "lvslab")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	l.Dir = dir
	if base := os.Getenv(outEnv); base != "" {
		l.Out = filepath.Join(base, strings.NewReplacer("/", "_", " ", "_").Replace(t.Name()))
		if err := os.MkdirAll(l.Out, 0o755); err != nil {
			t.Fatal(err)
		}
	} else {
		l.Out = t.TempDir()
	}
	sw, err := vlan.New(dir, vlan.WithPcap(filepath.Join(l.Out, "lan.pcap")))
	if err != nil {
		t.Fatal(err)
	}
	l.Switch = sw
	// Registered before any VM's cleanup, so it runs after them: cleanups
	// run last-in first-out and the switch must outlive its VMs.
	t.Cleanup(func() {
		if t.Failed() {
			l.dumpFrames()
		}
		if err := sw.Close(); err != nil {
			t.Errorf("close switch: %v", err)
		}
	})
	return l
}

func (l *Lab) dumpFrames() {
	fs := l.Switch.Frames()
	if len(fs) > 60 {
		fs = fs[len(fs)-60:]
	}
	var b strings.Builder
	for _, f := range fs {
		b.WriteString("\t" + f.String() + "\n")
	}
	l.T.Logf("last frames on the switch (pcap: %s):\n%s", filepath.Join(l.Out, "lan.pcap"), b.String())
}

// BusyboxInitrd builds the busybox guest initramfs; lvsforge's kernels
// have every driver it needs built in.
func (l *Lab) BusyboxInitrd() string {
	l.T.Helper()
	path, err := clientInitrd(testCacheDir(l.T))
	if err != nil {
		l.T.Fatal(err)
	}
	return path
}

// Port adds a switch port for a host and returns its socket.
func (l *Lab) Port(name string) string {
	l.T.Helper()
	sock, err := l.Switch.AddPort(name)
	if err != nil {
		l.T.Fatal(err)
	}
	return sock
}

// Cable creates a null-modem cable between two VMs, closed at cleanup.
func (l *Lab) Cable(name string) *serialcable.Cable {
	l.T.Helper()
	c, err := serialcable.New(l.Dir, name)
	if err != nil {
		l.T.Fatal(err)
	}
	l.T.Cleanup(func() { c.Close() })
	return c
}

// Start boots a VM named name with its console logged to Out/name.console
// and a 256 MiB, 1-CPU default. Networking is the caller's: typically
// qemu.WithNIC(l.Port(name), mac). The VM is killed at cleanup; if the test
// failed by then, its last console lines are logged.
func (l *Lab) Start(ctx context.Context, name string, opts ...qemu.Option) *qemu.VM {
	l.T.Helper()
	all := append([]qemu.Option{
		qemu.WithName(name),
		qemu.WithQEMU(l.Pre.QEMU),
		qemu.WithKernel(l.Pre.Kernel),
		qemu.WithConsoleLog(filepath.Join(l.Out, name+".console")),
		qemu.WithDir(l.Dir),
	}, opts...)
	vm, err := qemu.Start(ctx, all...)
	if err != nil {
		l.T.Fatal(err)
	}
	l.vms = append(l.vms, vm)
	l.T.Cleanup(func() {
		if l.T.Failed() {
			l.T.Logf("%s console (full log %s):\n\t%s", name, filepath.Join(l.Out, name+".console"),
				strings.Join(vm.ConsoleTail(25), "\n\t"))
		}
		vm.Close()
	})
	return vm
}

// StartBusybox boots a busybox guest with one NIC on the switch, eth0 at
// cidr (e.g. "192.168.7.9/24"), and waits for its init to be ready.
func (l *Lab) StartBusybox(ctx context.Context, name, mac, cidr string, opts ...qemu.Option) *qemu.VM {
	l.T.Helper()
	all := append([]qemu.Option{
		qemu.WithInitrd(l.BusyboxInitrd()),
		qemu.WithNIC(l.Port(name), mac),
		qemu.WithAppend("lvs.hostname="+name, "lvs.ip=eth0,"+cidr),
	}, opts...)
	vm := l.Start(ctx, name, all...)
	if err := l.Switch.WaitConnected(ctx, name); err != nil {
		l.T.Fatal(err)
	}
	return vm
}

// WaitReady waits for the busybox guest's init, failing the test with the
// console tail if the guest panics, exits or the context ends first.
func WaitReady(ctx context.Context, t testing.TB, vm *qemu.VM) {
	t.Helper()
	if err := vm.ExpectString(ctx, initramfs.ReadyMarker); err != nil {
		t.Fatal(err)
	}
}

// MustRun runs cmd on vm and returns its output, failing the test unless it
// exits with wantStatus (use -1 for "any non-zero").
func MustRun(ctx context.Context, t testing.TB, vm *qemu.VM, cmd string, wantStatus int) string {
	t.Helper()
	out, st, err := vm.Run(ctx, cmd)
	if err != nil {
		t.Fatal(err)
	}
	if wantStatus == -1 && st == 0 || wantStatus >= 0 && st != wantStatus {
		want := fmt.Sprint(wantStatus)
		if wantStatus == -1 {
			want = "non-zero"
		}
		t.Fatalf("%s: %q exited %d, want %s; output:\n%s", vm.Name(), cmd, st, want, out)
	}
	return out
}
