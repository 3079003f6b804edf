package qemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsforge/lvsforge/internal/testenv"
)

func TestArgs(t *testing.T) {
	var cfg config
	for _, o := range []Option{
		WithName("linuxha1"), WithKernel("/k"), WithInitrd("/i"), WithAppend("lvs.ip=eth0,1.2.3.4/24"),
		WithNIC("/s/ha1.sock", "52:54:00:00:00:01"), WithSerialSocketPair("/s/hb-a.sock"),
		WithDisk("/d.qcow2", "qcow2"), WithSnapshotDisk("/r.img", "raw"),
	} {
		if err := o(&cfg); err != nil {
			t.Fatal(err)
		}
	}
	cfg.memoryMB, cfg.cpus = 256, 1
	vm := &VM{cfg: cfg, accel: AccelTCG, ports: map[int]int{}}
	args, err := vm.args("/s/q.qmp")
	if err != nil {
		t.Fatal(err)
	}
	got := strings.Join(args, " ")
	for _, want := range []string{
		"-accel tcg",
		"-no-reboot",
		"-append console=ttyS0 panic=-1 lvs.ip=eth0,1.2.3.4/24",
		"-netdev stream,id=net0,server=off,addr.type=unix,addr.path=/s/ha1.sock",
		"-device virtio-net-pci,netdev=net0,id=nic0,mac=52:54:00:00:00:01,romfile=",
		"-chardev socket,id=ser1,path=/s/hb-a.sock,reconnect=1 -serial chardev:ser1",
		"-drive file=/d.qcow2,format=qcow2,if=virtio,id=disk0",
		"-drive file=/r.img,format=raw,if=virtio,id=disk1,snapshot=on",
		"-qmp unix:/s/q.qmp,server=on,wait=off",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("args lack %q:\n%s", want, got)
		}
	}
	// The console must be the first serial port, before the cable.
	if strings.Index(got, "chardev:con0") > strings.Index(got, "chardev:ser1") {
		t.Errorf("console is not ttyS0:\n%s", got)
	}
}

// TestSerialLayout puts the seed's heartbeat cable on ttyS0, where its
// ha.cf says it is, and the console on ttyS1.
func TestSerialLayout(t *testing.T) {
	cases := []struct {
		opts []Option
		want string
	}{
		{[]Option{WithConsolePort(1), WithSerialSocketAt(0, "/s/hb")},
			"-chardev socket,id=ser0,path=/s/hb,reconnect=1 -serial chardev:ser0 -chardev stdio,id=con0,signal=off -serial chardev:con0 -no-reboot -kernel /k -append console=ttyS1 "},
		{[]Option{WithSerialSocketAt(2, "/s/hb")},
			"-chardev stdio,id=con0,signal=off -serial chardev:con0 -serial null -chardev socket,id=ser2,path=/s/hb,reconnect=1 -serial chardev:ser2 -no-reboot"},
		{[]Option{WithConsolePort(1), WithSerialSocket("/s/a"), WithSerialSocket("/s/b")},
			"-serial chardev:ser0 -chardev stdio,id=con0,signal=off -serial chardev:con0 -chardev socket,id=ser2,path=/s/b,reconnect=1 -serial chardev:ser2 -no-reboot"},
	}
	for i, tc := range cases {
		cfg := config{memoryMB: 256, cpus: 1}
		for _, o := range append([]Option{WithKernel("/k")}, tc.opts...) {
			if err := o(&cfg); err != nil {
				t.Fatal(err)
			}
		}
		args, err := (&VM{cfg: cfg, accel: AccelTCG}).args("/q")
		if err != nil {
			t.Fatal(err)
		}
		if got := strings.Join(args, " "); !strings.Contains(got, tc.want) {
			t.Errorf("case %d: args lack %q:\n%s", i, tc.want, got)
		}
	}
	cfg := config{}
	for _, o := range []Option{WithConsolePort(0), WithSerialSocketAt(0, "/s/hb")} {
		o(&cfg)
	}
	if _, err := cfg.serialPorts(); err == nil {
		t.Error("a cable on the console's port was accepted")
	}
	if err := WithSerialSocketAt(4, "/s")(&config{}); err == nil {
		t.Error("ttyS4 accepted")
	}
}

func TestOptionsValidate(t *testing.T) {
	for name, o := range map[string]Option{
		"bad mac":      WithNIC("/s", "not-a-mac"),
		"comma path":   WithNIC("/a,b", "52:54:00:00:00:01"),
		"tiny memory":  WithMemory(1),
		"disk format":  WithDisk("/d", "vmdk"),
		"serial comma": WithSerialSocket("/a,b"),
	} {
		if err := o(&config{}); err == nil {
			t.Errorf("%s: accepted", name)
		}
	}
}

func qemuBin(t *testing.T) string {
	t.Helper()
	return testenv.LookPath(t, "qemu-system-x86_64", "qemu-system-x86")
}

func ctxT(t *testing.T, d time.Duration) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), d)
	t.Cleanup(cancel)
	return ctx
}

// A VM with no kernel sits in the firmware, which is enough to exercise the
// process and QMP handling without a guest.
func startFirmwareVM(t *testing.T, opts ...Option) *VM {
	t.Helper()
	vm, err := Start(ctxT(t, time.Minute), append([]Option{WithQEMU(qemuBin(t)), WithAccel(AccelTCG), WithMemory(32)}, opts...)...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { vm.Close() })
	return vm
}

func TestStartFailureIsRetriedAndExplained(t *testing.T) {
	bin := qemuBin(t)
	// QEMU exits during start-up when a disk image cannot be opened.
	missing := filepath.Join(t.TempDir(), "no-such-disk.img")
	_, err := Start(ctxT(t, time.Minute), WithQEMU(bin), WithAccel(AccelTCG), WithName("ha1"), WithDisk(missing, "raw"))
	if !errors.Is(err, ErrStart) {
		t.Fatalf("got %v, want ErrStart", err)
	}
	if !strings.Contains(err.Error(), "after 3 attempts") || !strings.Contains(err.Error(), "no-such-disk.img") {
		t.Fatalf("error does not say it retried or what QEMU said: %v", err)
	}
	// A missing switch socket is not retried: QEMU would run without a cable.
	_, err = Start(ctxT(t, time.Minute), WithQEMU(bin), WithAccel(AccelTCG), WithNIC(filepath.Join(t.TempDir(), "sw.sock"), "52:54:00:00:00:01"))
	if !errors.Is(err, ErrStart) || !strings.Contains(err.Error(), "not listening") {
		t.Fatalf("got %v, want ErrStart naming the missing switch socket", err)
	}
}

func TestQMPLinkAndPowerOff(t *testing.T) {
	sockDir, err := os.MkdirTemp("", "qmp")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(sockDir) })
	// A listening socket stands in for the switch: QEMU only needs to connect.
	sw := filepath.Join(sockDir, "sw.sock")
	ln, err := netListenUnix(sw)
	if err != nil {
		t.Fatal(err)
	}
	defer ln.Close()
	vm := startFirmwareVM(t, WithName("fw"), WithNIC(sw, "52:54:00:00:00:01"))
	ctx := ctxT(t, 30*time.Second)
	if err := vm.SetLink(ctx, 0, false); err != nil {
		t.Fatal(err)
	}
	if err := vm.SetLink(ctx, 0, true); err != nil {
		t.Fatal(err)
	}
	if err := vm.SetLink(ctx, 5, false); err == nil {
		t.Error("set_link on a NIC that does not exist succeeded")
	}
	if err := vm.PowerOff(ctx); err != nil {
		t.Fatal(err)
	}
	select {
	case <-vm.Done():
	default:
		t.Fatal("PowerOff returned with QEMU still running")
	}
}

func TestTimeoutKillsVM(t *testing.T) {
	vm := startFirmwareVM(t, WithTimeout(time.Second))
	if err := vm.Wait(ctxT(t, time.Minute)); err != nil {
		t.Fatalf("a VM ended by its timeout returned %v", err)
	}
}

// TestQEMUDiesWithTheTestProcess runs a child test process that starts a VM
// and is then SIGKILLed, as by a Ctrl-C or a test timeout, with no cleanup
// running: the parent-death signal must take QEMU down with it.
func TestQEMUDiesWithTheTestProcess(t *testing.T) {
	if os.Getenv("LVSFORGE_QEMU_CHILD") == "1" {
		vm := startFirmwareVM(t)
		fmt.Printf("qemu-pid %d\n", vm.cmd.Process.Pid)
		select {} // wait to be killed
	}
	qemuBin(t)
	cmd := exec.Command(os.Args[0], "-test.run=^TestQEMUDiesWithTheTestProcess$", "-test.v")
	cmd.Env = append(os.Environ(), "LVSFORGE_QEMU_CHILD=1")
	out, err := cmd.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	defer cmd.Process.Kill()
	var pid int
	sc := bufio.NewScanner(out)
	for sc.Scan() {
		if f := strings.Fields(sc.Text()); len(f) == 2 && f[0] == "qemu-pid" {
			pid, _ = strconv.Atoi(f[1])
			break
		}
	}
	if pid == 0 {
		t.Fatal("child never reported a QEMU pid")
	}
	cmd.Process.Kill()
	cmd.Wait()
	// The kernel delivers the death signal as the child exits; give the
	// reaping a bounded moment, then check the process is gone.
	deadline := time.Now().Add(30 * time.Second)
	for {
		if err := syscall.Kill(pid, 0); errors.Is(err, syscall.ESRCH) {
			return
		}
		if st, _ := os.ReadFile(fmt.Sprintf("/proc/%d/stat", pid)); strings.Contains(string(st), ") Z ") {
			return // a zombie waiting for init to reap it is dead
		}
		if time.Now().After(deadline) {
			syscall.Kill(pid, syscall.SIGKILL)
			t.Fatalf("QEMU %d survived its test process", pid)
		}
		time.Sleep(50 * time.Millisecond)
	}
}

func netListenUnix(path string) (*net.UnixListener, error) {
	return net.ListenUnix("unix", &net.UnixAddr{Name: path, Net: "unix"})
}
