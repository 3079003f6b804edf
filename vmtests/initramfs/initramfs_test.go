package initramfs

import (
	"bytes"
	"encoding/binary"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"reflect"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/internal/testenv"
)

func sample(t *testing.T) *Archive {
	t.Helper()
	a := NewArchive()
	must(t, a.File("/etc/hostname", []byte("linuxha1\n"), 0o644))
	must(t, a.File("init", []byte("#!/bin/sh\n"), 0o755))
	must(t, a.Symlink("/sbin/ip", "/bin/busybox"))
	must(t, a.CharDev("/dev/console", 0o600, 5, 1))
	must(t, a.File("/odd/len", []byte("abcde"), 0o600))
	return a
}

func must(t *testing.T, err error) {
	t.Helper()
	if err != nil {
		t.Fatal(err)
	}
}

// TestArchiveExtractsWithCpio lets the real cpio(1) judge the format.
func TestArchiveExtractsWithCpio(t *testing.T) {
	cpio := testenv.LookPath(t, "cpio", "cpio")
	dir := t.TempDir()
	cmd := exec.Command(cpio, "-i", "-d", "--no-absolute-filenames", "--quiet", "--nonmatching", "dev/console")
	cmd.Dir = dir
	cmd.Stdin = bytes.NewReader(sample(t).Bytes())
	if out, err := cmd.CombinedOutput(); err != nil {
		t.Fatalf("cpio -i: %v\n%s", err, out)
	}
	for p, want := range map[string]string{"etc/hostname": "linuxha1\n", "init": "#!/bin/sh\n", "odd/len": "abcde"} {
		got, err := os.ReadFile(filepath.Join(dir, p))
		if err != nil || string(got) != want {
			t.Errorf("%s = %q, %v; want %q", p, got, err, want)
		}
	}
	if st, err := os.Stat(filepath.Join(dir, "init")); err != nil || st.Mode().Perm() != 0o755 {
		t.Errorf("init mode = %v, %v; want 0755", st.Mode(), err)
	}
	if target, err := os.Readlink(filepath.Join(dir, "sbin/ip")); err != nil || target != "/bin/busybox" {
		t.Errorf("sbin/ip -> %q, %v", target, err)
	}
}

func TestArchiveIsReproducible(t *testing.T) {
	a, b := sample(t), sample(t)
	if !bytes.Equal(a.Bytes(), b.Bytes()) || a.Hash() != b.Hash() {
		t.Fatal("two equal archives differ")
	}
	must(t, b.File("/etc/hostname", []byte("linuxha2\n"), 0o644))
	if a.Hash() == b.Hash() {
		t.Fatal("changing a file did not change the hash")
	}
	if got := a.Bytes(); len(got)%4 != 0 || !bytes.HasSuffix(bytes.TrimRight(got, "\x00"), []byte("TRAILER!!!")) {
		t.Fatal("archive is not padded or lacks the trailer")
	}
}

func TestArchiveRejectsFileAsParent(t *testing.T) {
	a := NewArchive()
	must(t, a.File("/etc", nil, 0o644))
	if err := a.File("/etc/passwd", nil, 0o644); err == nil {
		t.Fatal("a file under a regular file was accepted")
	}
	if err := a.File("/", nil, 0o644); err == nil {
		t.Fatal("the root was accepted as a file")
	}
}

func writeModules(t *testing.T, dep, builtin string) string {
	t.Helper()
	dir := t.TempDir()
	must(t, os.WriteFile(filepath.Join(dir, "modules.dep"), []byte(dep), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "modules.builtin"), []byte(builtin), 0o644))
	return dir
}

func TestResolveModulesOrdersDependenciesFirst(t *testing.T) {
	dir := writeModules(t, `kernel/drivers/net/virtio_net.ko: kernel/drivers/net/net_failover.ko kernel/net/core/failover.ko kernel/drivers/virtio/virtio.ko kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/net/net_failover.ko: kernel/net/core/failover.ko
kernel/net/core/failover.ko:
kernel/drivers/virtio/virtio.ko: kernel/drivers/virtio/virtio_ring.ko
kernel/drivers/virtio/virtio_ring.ko:
kernel/net/netfilter/ipvs/ip_vs-rr.ko:
`, "kernel/net/packet/af_packet.ko\n")
	got, err := ResolveModules(dir, "virtio-net", "af_packet", "ip_vs_rr")
	if err != nil {
		t.Fatal(err)
	}
	pos := map[string]int{}
	for i, p := range got {
		pos[filepath.Base(p)] = i
	}
	if len(got) != 6 {
		t.Fatalf("got %v, want 6 modules (af_packet is built in)", got)
	}
	for _, before := range [][2]string{
		{"failover.ko", "net_failover.ko"}, {"net_failover.ko", "virtio_net.ko"},
		{"virtio_ring.ko", "virtio.ko"}, {"virtio.ko", "virtio_net.ko"},
	} {
		if pos[before[0]] > pos[before[1]] {
			t.Errorf("%s loads after %s: %v", before[0], before[1], got)
		}
	}
	if _, err := ResolveModules(dir, "e1000"); !errors.Is(err, ErrNoModule) {
		t.Errorf("unknown module: got %v, want ErrNoModule", err)
	}
}

func TestResolveModulesRejectsCompressed(t *testing.T) {
	dir := writeModules(t, "kernel/a.ko.xz:\n", "")
	if _, err := ResolveModules(dir, "a"); err == nil {
		t.Fatal("a compressed module was accepted for busybox insmod")
	}
}

func TestKernelRelease(t *testing.T) {
	img := make([]byte, 0x400)
	copy(img[0x202:], "HdrS")
	binary.LittleEndian.PutUint16(img[0x20e:], 0x100) // string at 0x300
	copy(img[0x300:], "6.1.0-lvsforge (builder@host) #1 SMP\x00")
	path := filepath.Join(t.TempDir(), "bzImage")
	must(t, os.WriteFile(path, img, 0o644))
	if rel, err := KernelRelease(path); err != nil || rel != "6.1.0-lvsforge" {
		t.Fatalf("KernelRelease = %q, %v", rel, err)
	}
	must(t, os.WriteFile(path, make([]byte, 0x400), 0o644))
	if _, err := KernelRelease(path); err == nil {
		t.Fatal("a file without a setup header was accepted")
	}
}

// TestBusyboxGuest builds the guest from the host's busybox-static and
// checks what init relies on: applets, modules in order, /dev/console.
func TestBusyboxGuest(t *testing.T) {
	bb := "/bin/busybox"
	if _, err := os.Stat(bb); err != nil {
		testenv.Missing(t, "busybox-static", "apt-get install -y busybox-static")
	}
	dir := writeModules(t, "kernel/b.ko: kernel/a.ko\nkernel/a.ko:\n", "")
	must(t, os.MkdirAll(filepath.Join(dir, "kernel"), 0o755))
	must(t, os.WriteFile(filepath.Join(dir, "kernel/a.ko"), []byte("A"), 0o644))
	must(t, os.WriteFile(filepath.Join(dir, "kernel/b.ko"), []byte("B"), 0o644))
	a, err := Busybox(BusyboxOptions{Busybox: bb, ModulesDir: dir, Modules: []string{"b"}})
	if err != nil {
		t.Fatal(err)
	}
	for _, p := range []string{"bin/sh", "sbin/ip", "bin/ping", "sbin/insmod", "init", "dev/console"} {
		if _, ok := a.entries[p]; !ok {
			t.Errorf("guest lacks /%s", p)
		}
	}
	order := string(a.entries["etc/modules.order"].data)
	if want := "/lib/modules/kernel/a.ko\n/lib/modules/kernel/b.ko\n"; order != want {
		t.Errorf("modules.order = %q, want %q", order, want)
	}
	if !strings.Contains(string(a.entries["init"].data), "echo \""+ReadyMarker+"\"") {
		t.Error("init does not print ReadyMarker")
	}
	if c := a.entries["dev/console"]; !reflect.DeepEqual([2]uint32{c.major, c.minor}, [2]uint32{5, 1}) {
		t.Errorf("/dev/console is %d:%d, want 5:1", c.major, c.minor)
	}
}
