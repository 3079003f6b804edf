package guestimage

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"encoding/binary"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/internal/testenv"
)

// modulesTarball writes a tar.gz holding the given files (name -> content).
func modulesTarball(t *testing.T, files map[string]string) string {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	tw := tar.NewWriter(zw)
	for _, d := range []string{"lib/", "lib/modules/", "lib/modules/6.1.192-lvs/"} {
		tw.WriteHeader(&tar.Header{Name: d, Typeflag: tar.TypeDir, Mode: 0o755})
	}
	tw.WriteHeader(&tar.Header{Name: "lib/modules/6.1.192-lvs/build", Typeflag: tar.TypeSymlink, Linkname: "/usr/src/linux"})
	for name, data := range files {
		tw.WriteHeader(&tar.Header{Name: name, Typeflag: tar.TypeReg, Mode: 0o644, Size: int64(len(data))})
		tw.Write([]byte(data))
	}
	tw.Close()
	zw.Close()
	p := filepath.Join(t.TempDir(), "modules.tar.gz")
	if err := os.WriteFile(p, buf.Bytes(), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func TestKeysFollowInputs(t *testing.T) {
	base := DefaultSpec()
	k1 := base.Key()
	reordered := base
	reordered.Packages = nil
	for i := len(base.Packages) - 1; i >= 0; i-- {
		reordered.Packages = append(reordered.Packages, base.Packages[i])
	}
	if reordered.Key() != k1 {
		t.Error("the key depends on the order of the packages")
	}
	more := base
	more.Packages = append(append([]string(nil), base.Packages...), "tcpdump")
	if more.Key() == k1 {
		t.Error("adding a package did not change the key")
	}

	mods := modulesTarball(t, map[string]string{"lib/modules/6.1.192-lvs/modules.dep": "a.ko:\n"})
	e := Extra{Modules: []string{mods}, Files: []File{{Path: "/usr/local/bin/x", Data: []byte("x"), Mode: 0o755}}}
	e1, err := e.key(k1)
	if err != nil {
		t.Fatal(err)
	}
	rebuilt := Extra{Modules: []string{modulesTarball(t, map[string]string{"lib/modules/6.1.192-lvs/modules.dep": "b.ko:\n"})}, Files: e.Files}
	if k, _ := rebuilt.key(k1); k == e1 {
		t.Error("a rebuilt kernel's modules did not change the image key")
	}
	if k, _ := e.key(more.Key()); k == e1 {
		t.Error("another base did not change the image key")
	}
	mode := Extra{Modules: e.Modules, Files: []File{{Path: "/usr/local/bin/x", Data: []byte("x"), Mode: 0o644}}}
	if k, _ := mode.key(k1); k == e1 {
		t.Error("a file mode did not change the image key")
	}
	if _, err := (Extra{Modules: []string{filepath.Join(t.TempDir(), "missing")}}).key(k1); err == nil {
		t.Error("a missing modules tarball was accepted")
	}
}

// TestImageLayerLeavesBaseAlone unpacks modules and adds files into a tree
// of hard links to a "base", as Image does, and checks the base is untouched.
func TestImageLayerLeavesBaseAlone(t *testing.T) {
	base := filepath.Join(t.TempDir(), "base")
	os.MkdirAll(filepath.Join(base, "etc"), 0o755)
	os.WriteFile(filepath.Join(base, "etc/motd"), []byte("base\n"), 0o644)
	root := filepath.Join(t.TempDir(), "root")
	os.MkdirAll(filepath.Join(root, "etc"), 0o755)
	if err := os.Link(filepath.Join(base, "etc/motd"), filepath.Join(root, "etc/motd")); err != nil {
		t.Fatal(err)
	}
	if err := addFile(root, File{Path: "/etc/motd", Data: []byte("image\n"), Mode: 0o600}); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(filepath.Join(base, "etc/motd")); string(b) != "base\n" {
		t.Errorf("the base's file became %q", b)
	}
	st, err := os.Stat(filepath.Join(root, "etc/motd"))
	if err != nil || st.Mode().Perm() != 0o600 {
		t.Errorf("added file: %v, %v", st, err)
	}
	mods := modulesTarball(t, map[string]string{
		"lib/modules/6.1.192-lvs/modules.dep":                        "kernel/net/netfilter/ipvs/ip_vs.ko:\n",
		"lib/modules/6.1.192-lvs/kernel/net/netfilter/ipvs/ip_vs.ko": "ELF",
	})
	if err := unpackModules(mods, root); err != nil {
		t.Fatal(err)
	}
	if b, err := os.ReadFile(filepath.Join(root, "lib/modules/6.1.192-lvs/kernel/net/netfilter/ipvs/ip_vs.ko")); err != nil || string(b) != "ELF" {
		t.Errorf("module: %q, %v", b, err)
	}
	if _, err := os.Lstat(filepath.Join(root, "lib/modules/6.1.192-lvs/build")); err == nil {
		t.Error("the build symlink was unpacked")
	}
	if err := addFile(root, File{Path: "relative/x"}); err == nil {
		t.Error("a relative path was accepted")
	}
	evil := modulesTarball(t, map[string]string{"etc/passwd": "root::0:0::/:/bin/sh\n"})
	if err := unpackModules(evil, root); err == nil || !strings.Contains(err.Error(), "outside lib/modules") {
		t.Errorf("a file outside lib/modules: %v", err)
	}
}

func TestCustomize(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "var/cache/apt/archives"), 0o755); err != nil {
		t.Fatal(err)
	}
	deb := filepath.Join(root, "var/cache/apt/archives/x.deb")
	if err := os.WriteFile(deb, nil, 0o644); err != nil {
		t.Fatal(err)
	}
	if err := customize(root); err != nil {
		t.Fatal(err)
	}
	st, err := os.Stat(filepath.Join(root, "usr/local/sbin/lvsforge-console"))
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("console script: %v, %v", st, err)
	}
	unit, err := os.ReadFile(filepath.Join(root, "etc/systemd/system/lvsforge-console.service"))
	if err != nil || !strings.Contains(string(unit), "TTYPath=/dev/console") {
		t.Fatalf("console unit: %q, %v", unit, err)
	}
	if _, err := os.Stat(deb); !os.IsNotExist(err) {
		t.Error("the apt archive cache was not emptied")
	}
	if conf, err := os.ReadFile(filepath.Join(root, "etc/systemd/system.conf.d/lvsforge-tcg.conf")); err != nil || !strings.Contains(string(conf), "DefaultTimeoutStartSec=5min") {
		t.Errorf("units keep systemd's 90 s to start: %q, %v", conf, err)
	}
}

func TestUnmountUnderWithoutMounts(t *testing.T) {
	if err := unmountUnder(t.TempDir()); err != nil {
		t.Fatal(err)
	}
}

// TestInstallGRUB lays a boot track out as grub-bios-setup would and reads
// it back: the partition table, boot.img pointing at sector 1, and core.img
// whose blocklist covers its remaining sectors.
func TestInstallGRUB(t *testing.T) {
	dir := t.TempDir()
	boot := make([]byte, 512)
	for i := range boot {
		boot[i] = 0xcc
	}
	core := make([]byte, 3*512+100) // four sectors once padded
	for i := range core {
		core[i] = 0xdd
	}
	disk := filepath.Join(dir, "disk.raw")
	fsSize := int64(8 << 20)
	os.WriteFile(filepath.Join(dir, "boot.img"), boot, 0o644)
	os.WriteFile(filepath.Join(dir, "core.img"), core, 0o644)
	if err := os.WriteFile(disk, make([]byte, partStart+fsSize), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := installGRUB(disk, filepath.Join(dir, "boot.img"), filepath.Join(dir, "core.img"), fsSize); err != nil {
		t.Fatal(err)
	}
	d, _ := os.ReadFile(disk)
	u64 := func(b []byte) uint64 { return binary.LittleEndian.Uint64(b) }
	u32 := func(b []byte) uint32 { return binary.LittleEndian.Uint32(b) }
	u16 := func(b []byte) uint16 { return binary.LittleEndian.Uint16(b) }
	if d[0] != 0xcc || d[bootNTMagic-1] != 0xcc {
		t.Error("boot.img's code is not in the MBR")
	}
	if u64(d[bootKernelSector:]) != 1 || d[bootDrive] != 0xff || d[bootDriveCheck] != 0x90 || d[bootDriveCheck+1] != 0x90 {
		t.Errorf("boot.img not pointed at core.img: sector %d drive %#x check % x", u64(d[bootKernelSector:]), d[bootDrive], d[bootDriveCheck:bootDriveCheck+2])
	}
	p := d[0x1be:]
	if p[0] != 0x80 || p[4] != 0x83 || u32(p[8:]) != partStart/512 || int64(u32(p[12:])) != fsSize/512 || d[510] != 0x55 || d[511] != 0xaa {
		t.Errorf("partition entry % x", p[:16])
	}
	bl := d[2*512-blocklistSize : 2*512]
	if u64(bl) != 2 || u16(bl[8:]) != 3 || u16(bl[10:]) != 0x820 {
		t.Errorf("core.img blocklist start %d len %d segment %#x, want 2 3 0x820", u64(bl), u16(bl[8:]), u16(bl[10:]))
	}
	if d[2*512] != 0xdd || d[4*512+99] != 0xdd || d[4*512+100] != 0 {
		t.Error("core.img is not in sectors 1-4")
	}
	big := make([]byte, partStart)
	os.WriteFile(filepath.Join(dir, "core.img"), big, 0o644)
	if err := installGRUB(disk, filepath.Join(dir, "boot.img"), filepath.Join(dir, "core.img"), fsSize); err == nil {
		t.Error("a core.img that overlaps the partition was accepted")
	}
}

// TestSysVKey: the sysvinit base is cached apart from the systemd one, whose
// key does not change with the name of its init system.
func TestSysVKey(t *testing.T) {
	systemd := DefaultSpec()
	named := systemd
	named.Init = InitSystemd
	sysv := systemd
	sysv.Init = InitSysV
	if named.Key() != systemd.Key() {
		t.Error("init: systemd changed the default base's key")
	}
	if sysv.Key() == systemd.Key() {
		t.Error("the sysvinit base has the systemd base's key")
	}
}

// TestSysVInittab: Debian's inittab without its gettys, with the test
// console started after rc 2.
func TestSysVInittab(t *testing.T) {
	debian := `# The default runlevel.
id:2:initdefault:
si::sysinit:/etc/init.d/rcS
~~:S:wait:/sbin/sulogin --force
l2:2:wait:/etc/init.d/rc 2
z6:6:respawn:/sbin/sulogin --force
1:2345:respawn:/sbin/getty --noclear 38400 tty1
6:23:respawn:/sbin/getty 38400 tty6
#T0:23:respawn:/sbin/getty -L ttyS0 9600 vt100`
	got := sysvInittab(debian)
	for _, want := range []string{"id:2:initdefault:\n", "si::sysinit:/etc/init.d/rcS\n", "l2:2:wait:/etc/init.d/rc 2\n", "z6:6:respawn:", "#T0:23:"} {
		if !strings.Contains(got, want) {
			t.Errorf("%q was lost:\n%s", want, got)
		}
	}
	if strings.Contains(got, "getty --noclear") || strings.Contains(got, "tty6") {
		t.Errorf("a getty is left:\n%s", got)
	}
	if !strings.HasSuffix(got, "\n"+sysvConsoleEntry+"\n") || strings.Index(got, sysvConsoleEntry) < strings.Index(got, "l2:2:wait") {
		t.Errorf("the console entry is not last, after rc 2:\n%s", got)
	}
}

// TestCustomizeSysV writes the sysvinit base's files into a tree as the
// package left it, and checks the rcS script with sh -n and shellcheck.
func TestCustomizeSysV(t *testing.T) {
	root := t.TempDir()
	if err := os.MkdirAll(filepath.Join(root, "etc"), 0o755); err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(root, "etc/inittab"), []byte("id:2:initdefault:\n1:2345:respawn:/sbin/getty 38400 tty1\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := customizeSysV(root); err != nil {
		t.Fatal(err)
	}
	script := filepath.Join(root, "etc/init.d/lvsforge-cmdline")
	st, err := os.Stat(script)
	if err != nil || st.Mode().Perm() != 0o755 {
		t.Fatalf("rcS script: %v, %v", st, err)
	}
	data, _ := os.ReadFile(script)
	for _, want := range []string{"# Default-Start:     S\n", "Required-Start:    mountkernfs $local_fs\n", "exec /usr/local/sbin/lvsforge-cmdline"} {
		if !strings.Contains(string(data), want) {
			t.Errorf("rcS script lacks %q", want)
		}
	}
	if tab, _ := os.ReadFile(filepath.Join(root, "etc/inittab")); string(tab) != "id:2:initdefault:\n# lvsforge: the test console, once rc 2 (sshd) is done.\n"+sysvConsoleEntry+"\n" {
		t.Errorf("inittab:\n%s", tab)
	}
	if fstab, _ := os.ReadFile(filepath.Join(root, "etc/fstab")); !strings.HasSuffix(string(fstab), " 0 0\n") {
		t.Errorf("fstab asks for a root fsck: %q", fstab)
	}
	if out, err := exec.Command("sh", "-n", script).CombinedOutput(); err != nil {
		t.Errorf("sh -n: %v: %s", err, out)
	}
	sc := testenv.LookPath(t, "shellcheck", "shellcheck")
	if out, err := exec.Command(sc, "--severity=style", script).CombinedOutput(); err != nil {
		t.Errorf("shellcheck: %v: %s", err, out)
	}
}
