package vmtests

import (
	"bufio"
	"context"
	"errors"
	"net"
	"net/netip"
	"os"
	"os/signal"
	"path/filepath"
	"regexp"
	"strconv"
	"syscall"
	"testing"
	"time"

	"github.com/lvsforge/lvsforge/vmtests/qemu"
	"github.com/lvsforge/lvsforge/vmtests/vlan"
)

func TestMain(m *testing.M) {
	// QEMU dies with the test binary through its parent-death signal; this
	// handler additionally lets Ctrl-C reap the VMs before exiting, so no
	// half-written console log or socket directory is left behind.
	sig := make(chan os.Signal, 1)
	signal.Notify(sig, os.Interrupt, syscall.SIGTERM)
	go func() {
		s := <-sig
		qemu.KillAll()
		signal.Stop(sig)
		p, _ := os.FindProcess(os.Getpid())
		p.Signal(s)
	}()
	code := m.Run()
	closeSharedSuite()
	os.Exit(code)
}

var (
	ip1  = netip.MustParseAddr("192.168.7.9")
	ip2  = netip.MustParseAddr("192.168.7.10")
	mac1 = "52:54:00:07:00:09"
	mac2 = "52:54:00:07:00:0a"
)

// TestTwoVMsOnTheSwitch boots two busybox guests on the Go switch, checks on
// the switch that their ARP exchange and pings crossed it, cuts one VM's
// link and restores it, and passes a line over the null-modem cable joining
// their second serial ports.
func TestTwoVMsOnTheSwitch(t *testing.T) {
	t.Parallel()
	lab := NewLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), 2*bootTimeout)
	defer cancel()

	cable := lab.Cable("hb")
	t0 := time.Now()
	// ha1 also gets the management NIC (eth1, QEMU user networking with
	// its fixed guest address) that push will use to reach sshd.
	ha1 := lab.StartBusybox(ctx, "ha1", mac1, ip1.String()+"/24", qemu.WithSerialSocketPair(cable.EndA()), qemu.WithTimeout(10*time.Minute),
		qemu.WithHostForward(0, 22), qemu.WithAppend("lvs.ip=eth1,10.0.2.15/24"))
	ha2 := lab.StartBusybox(ctx, "ha2", mac2, ip2.String()+"/24", qemu.WithSerialSocketPair(cable.EndB()), qemu.WithTimeout(10*time.Minute))
	accel, why := ha1.Accel()
	t.Logf("accelerator %s: %s", accel, why)
	bootCtx, bootCancel := context.WithTimeout(ctx, bootTimeout)
	defer bootCancel()
	WaitReady(bootCtx, t, ha1)
	t.Logf("ha1 ready %.1fs after start", time.Since(ha1.StartedAt()).Seconds())
	WaitReady(bootCtx, t, ha2)
	t.Logf("ha2 ready %.1fs after start; both ready %.1fs after the first start (a KVM probe, if this test ran it, included)",
		time.Since(ha2.StartedAt()).Seconds(), time.Since(t0).Seconds())

	runCtx, runCancel := context.WithTimeout(ctx, 2*time.Minute)
	defer runCancel()
	sw := lab.Switch

	t.Run("arp and ping cross the switch", func(t *testing.T) {
		mark := sw.Mark()
		MustRun(runCtx, t, ha1, "ping -c 3 -W 10 "+ip2.String(), 0)
		var asked bool
		for _, f := range sw.FramesSince(mark) {
			if a, ok := f.ARP(); ok && a.Op == vlan.ARPRequest && a.SenderIP == ip1 && a.TargetIP == ip2 && f.Port == "ha1" {
				asked = true
			}
		}
		if !asked {
			t.Errorf("no ARP request from ha1 for %s crossed the switch", ip2)
		}
		if got := sw.Repliers(mark, ip2); len(got) != 1 || got[0].String() != mac2 {
			t.Errorf("ARP replies for %s came from %v, want only %s", ip2, got, mac2)
		}
		reqs, reps := sw.ICMPEchoes(mark, ip1, ip2)
		if len(reqs) < 3 || len(reps) < 3 {
			t.Errorf("switch saw %d echo requests and %d replies between %s and %s, want at least 3 of each", len(reqs), len(reps), ip1, ip2)
		}
		for _, f := range reqs {
			if f.Port != "ha1" {
				t.Errorf("echo request entered on port %s, want ha1: %v", f.Port, f)
			}
		}
		for _, f := range reps {
			if f.Port != "ha2" {
				t.Errorf("echo reply entered on port %s, want ha2: %v", f.Port, f)
			}
		}
	})

	t.Run("link down stops pings, link up restores them", func(t *testing.T) {
		if err := sw.LinkDown("ha2"); err != nil {
			t.Fatal(err)
		}
		mark := sw.Mark()
		MustRun(runCtx, t, ha1, "ping -c 2 -W 2 "+ip2.String(), -1)
		if _, reps := sw.ICMPEchoes(mark, ip1, ip2); len(reps) != 0 {
			t.Errorf("%d echo replies crossed while ha2's link was down", len(reps))
		}
		if err := sw.LinkUp("ha2"); err != nil {
			t.Fatal(err)
		}
		mark = sw.Mark()
		MustRun(runCtx, t, ha1, "ping -c 2 -W 10 "+ip2.String(), 0)
		if _, reps := sw.ICMPEchoes(mark, ip1, ip2); len(reps) < 2 {
			t.Errorf("%d echo replies crossed after the link came back, want at least 2", len(reps))
		}
	})

	t.Run("null-modem cable carries a line", func(t *testing.T) {
		// ha2 opens its end and says so before ha1 writes: a serial port
		// drops what arrives while nobody holds it open.
		MustRun(runCtx, t, ha2, `(exec 3<>/dev/ttyS1; stty raw -echo <&3; echo serial-open; read -r l <&3; echo "serial-got: $l") &`, 0)
		if err := ha2.ExpectString(runCtx, "serial-open"); err != nil {
			t.Fatal(err)
		}
		MustRun(runCtx, t, ha1, `exec 3<>/dev/ttyS1; stty raw -echo <&3; echo hb-from-ha1 >&3`, 0)
		if _, err := ha2.Expect(runCtx, regexp.MustCompile(`^serial-got: hb-from-ha1$`)); err != nil {
			t.Fatal(err)
		}
		if fromA, _ := cable.Bytes(); fromA == 0 {
			t.Error("the cable counted no bytes from ha1")
		}
	})

	t.Run("management port forward reaches the guest", func(t *testing.T) {
		// The guest waits until its listener is bound, so the host's
		// connection cannot race it.
		MustRun(runCtx, t, ha1, `(nc -ll -p 22 -e echo mgmt-ok-ha1 &); while ! netstat -ltn | grep -q ':22 '; do usleep 20000; done`, 0)
		port, ok := ha1.HostPort(22)
		if !ok {
			t.Fatal("no host port forwarded to guest port 22")
		}
		d := net.Dialer{}
		conn, err := d.DialContext(runCtx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(port)))
		if err != nil {
			t.Fatal(err)
		}
		defer conn.Close()
		if dl, ok := runCtx.Deadline(); ok {
			conn.SetDeadline(dl)
		}
		line, err := bufio.NewReader(conn).ReadString('\n')
		if err != nil || line != "mgmt-ok-ha1\n" {
			t.Fatalf("read %q, %v from the forwarded port; want mgmt-ok-ha1", line, err)
		}
	})

	t.Run("hard power-off", func(t *testing.T) {
		offCtx, offCancel := context.WithTimeout(ctx, 30*time.Second)
		defer offCancel()
		if err := ha2.PowerOff(offCtx); err != nil {
			t.Fatal(err)
		}
		if err := ha2.Wait(offCtx); err != nil {
			t.Errorf("qemu after quit: %v", err)
		}
		mark := sw.Mark()
		MustRun(runCtx, t, ha1, "ping -c 1 -W 2 "+ip2.String(), -1)
		if _, reps := sw.ICMPEchoes(mark, ip1, ip2); len(reps) != 0 {
			t.Errorf("%d echo replies from a powered-off VM", len(reps))
		}
	})

	if err := sw.Close(); err != nil {
		t.Fatal(err)
	}
	f, err := os.Open(filepath.Join(lab.Out, "lan.pcap"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	pkts, err := vlan.ReadPcap(f)
	if err != nil {
		t.Fatal(err)
	}
	var crossed int
	for _, fr := range sw.Frames() {
		if !fr.Dropped {
			crossed++
		}
	}
	if len(pkts) != crossed {
		t.Errorf("pcap holds %d packets, switch forwarded %d frames", len(pkts), crossed)
	}
}

// TestKernelPanicIsReported boots the kernel with no initramfs: it cannot
// mount a root filesystem and panics, and Expect must say so instead of
// waiting for its pattern until the timeout.
func TestKernelPanicIsReported(t *testing.T) {
	t.Parallel()
	lab := NewLab(t)
	ctx, cancel := context.WithTimeout(context.Background(), bootTimeout)
	defer cancel()
	vm := lab.Start(ctx, "panicker", qemu.WithTimeout(5*time.Minute))
	_, err := vm.Expect(ctx, regexp.MustCompile("this line never appears"))
	var ce *qemu.ConsoleError
	if !errors.As(err, &ce) || !errors.Is(err, qemu.ErrKernelPanic) {
		t.Fatalf("Expect = %v, want a ConsoleError wrapping ErrKernelPanic", err)
	}
	if len(ce.Tail) == 0 {
		t.Error("the panic error carries no console lines")
	}
	// With panic=-1 and -no-reboot, QEMU ends on its own after the panic.
	if err := vm.Wait(ctx); err != nil {
		t.Errorf("qemu after the panic: %v", err)
	}
}
