package build

import (
	"archive/tar"
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"slices"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/internal/testenv"
	"github.com/lvsforge/lvsforge/patches"
)

var (
	treeOnce sync.Once
	treeDir  string
	treeErr  error
	treeTmp  string
)

func TestMain(m *testing.M) {
	code := m.Run()
	if treeTmp != "" {
		os.RemoveAll(treeTmp)
	}
	os.Exit(code)
}

// kernelTree extracts Debian's kernel tarball once per test binary and
// returns the source directory; tests must not modify it.
func kernelTree(t *testing.T) string {
	t.Helper()
	if testing.Short() {
		t.Skip("short: needs the kernel tarball")
	}
	needKernelTarball(t)
	for _, tool := range []string{"make", "gcc", "flex", "bison"} {
		testenv.LookPath(t, tool, "build-essential flex bison")
	}
	treeOnce.Do(func() {
		treeTmp, treeErr = os.MkdirTemp("", "lvsforge-kernel-tree-")
		if treeErr != nil {
			return
		}
		dest := filepath.Join(treeTmp, "src")
		if treeErr = Extract(context.Background(), debianKernelTarball, dest, ExtractOptions{SystemXZ: true}); treeErr == nil {
			treeDir = SingleTopDir(dest)
		}
	})
	if treeErr != nil {
		t.Fatal(treeErr)
	}
	return treeDir
}

func testCommand(t *testing.T, src string) command {
	return command{dir: src, env: append(os.Environ(), "LC_ALL=C"), log: &testLog{t: t}}
}

// testLog keeps make's output out of the test log unless it fails.
type testLog struct {
	t   *testing.T
	buf strings.Builder
}

func (l *testLog) Write(p []byte) (int, error) { return l.buf.Write(p) }

func directorFragments(t *testing.T, src string) []Fragment {
	var out []Fragment
	for _, n := range []string{FragmentDirector, FragmentVM} {
		f, err := BuiltinFragment(n)
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, f)
	}
	sf, err := SchedulerFragment(src)
	if err != nil {
		t.Fatal(err)
	}
	return append(out, sf)
}

func TestSchedulersOf61(t *testing.T) {
	src := kernelTree(t)
	got, err := SchedulersIn(src)
	if err != nil {
		t.Fatal(err)
	}
	if want := "rr wrr lc wlc lblc lblcr dh sh sed nq fo ovf mh twos"; strings.Join(got, " ") != want {
		t.Errorf("schedulers = %v, want %s", got, want)
	}
}

func TestConfigureRoles(t *testing.T) {
	src := kernelTree(t)
	realserver, _ := BuiltinFragment(FragmentRealServer)
	vm, _ := BuiltinFragment(FragmentVM)
	fwmark, _ := BuiltinFragment(FragmentFWMark)
	bgp, _ := BuiltinFragment(FragmentBGP)
	cases := []struct {
		role  string
		frags []Fragment
		want  map[string]string
	}{
		{"director", directorFragments(t, src), map[string]string{
			"IP_VS": "m", "IP_VS_PROTO_TCP": "y", "IP_VS_PROTO_UDP": "y", "IP_VS_PROTO_SCTP": "y", "IP_MULTICAST": "y",
			"VIRTIO_NET": "y", "SERIAL_8250_CONSOLE": "y", "ACPI": "y", "EXT4_FS": "y", "LOCALVERSION": `"-lvs"`, "IPV6": "y",
		}},
		{"director with firewall marks", append(directorFragments(t, src), fwmark), map[string]string{
			"IP_VS": "m", "NETFILTER_XT_MARK": "m", "NETFILTER_XT_MATCH_MULTIPORT": "m", "NFT_COMPAT": "m",
			"NF_TABLES_IPV4": "y", "IP_NF_MANGLE": "m", "NF_TABLES_IPV6": "y", "IP6_NF_MANGLE": "m",
		}},
		{"director of the bgp backend", append(directorFragments(t, src), bgp), map[string]string{
			"IP_VS": "m", "IP_ADVANCED_ROUTER": "y", "IP_MULTIPLE_TABLES": "y", "FIB_RULES": "y",
		}},
		{"realserver", []Fragment{realserver, vm}, map[string]string{
			"NET_IPIP": "m", "NET_FOU": "m", "NET_IPGRE_DEMUX": "m", "NET_IPGRE": "m", "IP_SCTP": "m", "PROC_SYSCTL": "y", "IP_VS": "", "VIRTIO_NET": "y", "LOCALVERSION": `"-lvs"`,
			"IPV6": "y", "IPV6_TUNNEL": "m",
		}},
	}
	for _, tc := range cases {
		t.Run(tc.role, func(t *testing.T) {
			out := t.TempDir()
			err := Configure(context.Background(), testCommand(t, src), "", ConfigRequest{
				SrcDir: src, OutDir: out, Base: "tinyconfig", Fragments: tc.frags,
				Options: []string{"CONFIG_IP_VS_IPV6=n"}, LocalVersion: "-lvs",
			})
			if err != nil {
				t.Fatal(err)
			}
			cfg, err := ReadConfig(filepath.Join(out, ".config"))
			if err != nil {
				t.Fatal(err)
			}
			if strings.HasPrefix(tc.role, "director") {
				for _, s := range Schedulers {
					if cfg[s.Option] != "m" {
						t.Errorf("CONFIG_%s = %q, want m", s.Option, cfg[s.Option])
					}
				}
			}
			for o, want := range tc.want {
				if cfg[o] != want {
					t.Errorf("CONFIG_%s = %q, want %q", o, cfg[o], want)
				}
			}
		})
	}
}

func TestConfigureReportsDroppedOptions(t *testing.T) {
	src := kernelTree(t)
	out := t.TempDir()
	director, _ := BuiltinFragment(FragmentDirector)
	err := Configure(context.Background(), testCommand(t, src), "", ConfigRequest{
		SrcDir: src, OutDir: out, Base: "tinyconfig", Fragments: []Fragment{director},
		// Without netfilter IPVS cannot be enabled, and the option below does not exist.
		Options: []string{"# CONFIG_NETFILTER is not set", "CONFIG_LVSFORGE_NO_SUCH_OPTION=y"},
	})
	var de *DroppedError
	if !errors.As(err, &de) || !errors.Is(err, ErrOptionsDropped) {
		t.Fatalf("err = %v, want *DroppedError", err)
	}
	byName := map[string]DroppedOption{}
	for _, o := range de.Options {
		byName[o.Option] = o
	}
	ipvs, ok := byName["IP_VS"]
	if !ok {
		t.Fatalf("IP_VS not reported: %v", err)
	}
	if !strings.Contains(strings.Join(ipvs.Unmet, " "), "CONFIG_NETFILTER") {
		t.Errorf("IP_VS unmet = %v, want CONFIG_NETFILTER", ipvs.Unmet)
	}
	if _, ok := byName["LVSFORGE_NO_SUCH_OPTION"]; !ok {
		t.Errorf("nonexistent option not reported: %v", err)
	}
	for _, want := range []string{"CONFIG_IP_VS: requested m, got unset", "CONFIG_NETFILTER", "CONFIG_LVSFORGE_NO_SUCH_OPTION"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message lacks %q: %v", want, err)
		}
	}
}

// TestBuildDirectorKernel builds a real director kernel from Debian's 6.1
// tarball (about 4 minutes with -j2), then builds again and expects the
// cache to answer without make, then boots it under QEMU and loads every
// scheduler with the static ipvsadm. It uses the lvsforge cache the VM tests
// and the CLI share (testenv.CacheDir): the kernel it builds is the one they
// boot, so a test run compiles it once.
func TestBuildDirectorKernel(t *testing.T) {
	kernelTree(t) // prerequisites only: the build extracts its own tree
	for _, tool := range []string{"bc", "depmod"} {
		testenv.LookPath(t, tool, "bc kmod")
	}
	if _, err := os.Stat("/usr/include/libelf.h"); err != nil {
		testenv.Missing(t, "libelf headers", "apt-get install -y libelf-dev")
	}
	c, in := directorInputs(t)
	var steps []string
	b := &Builder{Cache: c, SystemXZ: true, Status: func(step, msg string) {
		steps = append(steps, step)
		t.Logf("%s: %s", step, msg)
	}}
	art, err := b.Kernel(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("first build: cached=%v (the cache is shared with the VM tests)", art.Cached)
	cfg, err := ReadConfig(art.Config)
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range Schedulers {
		if cfg[s.Option] != "m" {
			t.Errorf("CONFIG_%s = %q, want m", s.Option, cfg[s.Option])
		}
	}
	if cfg["IP_VS"] != "m" || cfg["IP_VS_PROTO_TCP"] != "y" || cfg["IP_VS_PROTO_SCTP"] != "y" {
		t.Errorf("IP_VS=%s PROTO_TCP=%s PROTO_SCTP=%s", cfg["IP_VS"], cfg["IP_VS_PROTO_TCP"], cfg["IP_VS_PROTO_SCTP"])
	}
	if !strings.HasSuffix(art.Release, "-lvs") {
		t.Errorf("release %q lacks the local version", art.Release)
	}
	for _, p := range []string{art.BzImage, art.SystemMap, art.Modules, filepath.Join(art.Dir, "manifest.json"), art.Log} {
		if st, err := os.Stat(p); err != nil || st.Size() == 0 {
			t.Errorf("artifact %s missing or empty (%v)", p, err)
		}
	}
	if got, _ := FileSHA256(art.BzImage); got != art.Manifest.Files["bzImage"] {
		t.Error("manifest hash of bzImage differs from the file")
	}
	mods := listTarGz(t, art.Modules)
	for _, s := range Schedulers {
		name := "ip_vs_" + s.Name + ".ko"
		if !strings.Contains(mods, name) {
			t.Errorf("modules tarball lacks %s", name)
		}
	}

	steps = nil
	again, err := b.Kernel(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	if !again.Cached || again.Dir != art.Dir {
		t.Errorf("second build: cached=%v dir=%s, want the cached %s", again.Cached, again.Dir, art.Dir)
	}
	if strings.Join(steps, ",") != "cached" {
		t.Errorf("second build ran steps %v, want only the cache lookup", steps)
	}

	t.Run("boot", func(t *testing.T) {
		ipvsadmTar, err := c.Import(ipvsadmTarball, ipvsadmSHA256, KindIpvsadm)
		if err != nil {
			t.Fatal(err)
		}
		ip, err := b.Ipvsadm(context.Background(), IpvsadmInputs{Tarball: ipvsadmTar, TarballSHA256: ipvsadmSHA256, Static: true})
		if err != nil {
			t.Fatal(err)
		}
		var scheds []string
		for _, s := range Schedulers {
			if cfg[s.Option] == "m" || cfg[s.Option] == "y" {
				scheds = append(scheds, s.Name)
			}
		}
		bootDirector(t, art, ip.Binary, scheds)
	})
}

func listTarGz(t *testing.T, path string) string {
	t.Helper()
	out, err := exec.Command("tar", "-tzf", path).Output()
	if err != nil {
		t.Fatal(err)
	}
	return string(out)
}

// BenchmarkNoopKernelBuild measures a build whose inputs are unchanged (the
// cache answers). Run TestBuildDirectorKernel first, on the same cache.
func BenchmarkNoopKernelBuild(b *testing.B) {
	c, in := directorInputs(b)
	bl := &Builder{Cache: c}
	for b.Loop() {
		art, err := bl.Kernel(context.Background(), in)
		if err != nil || !art.Cached {
			b.Fatalf("not a cached build: %v", err)
		}
	}
}

// TestBuildFarmMustExist: a spec that asks for distcc or icecc gets them or
// an error, never a quiet single-machine build.
func TestBuildFarmMustExist(t *testing.T) {
	for _, engine := range []string{"distcc", "icecc"} {
		if _, err := exec.LookPath(engine); err == nil {
			continue
		}
		b := &Builder{Cache: &Cache{Dir: t.TempDir()}, NoCCache: true}
		_, _, _, err := b.makeEnv(t.TempDir(), time.Unix(0, 0), KernelInputs{BuildFarm: cluster.BuildFarm{Engine: engine, Hosts: []string{"10.0.0.1"}}})
		if err == nil || !strings.Contains(err.Error(), engine+", which is not installed") {
			t.Errorf("%s missing: %v", engine, err)
		}
	}
	b := &Builder{Cache: &Cache{Dir: t.TempDir()}, NoCCache: true}
	if _, vars, _, err := b.makeEnv(t.TempDir(), time.Unix(0, 0), KernelInputs{}); err != nil || len(vars) != 0 {
		t.Errorf("no farm, no ccache: vars %v, %v", vars, err)
	}
}

// TestBuildFarmJobsAndEnv: with a build farm, make's -j is the local CPUs
// plus every host's /jobs (4 for a host without), and each engine gets the
// hosts the way it reads them: distcc the entries as written, icecc the
// scheduler's bare host name.
func TestBuildFarmJobsAndEnv(t *testing.T) {
	cases := []struct {
		farm cluster.BuildFarm
		jobs int
		env  []string
	}{
		{cluster.BuildFarm{Engine: "distcc", Hosts: []string{"builder1:3632/8", "builder2/6", "builder3"}}, 2 + 8 + 6 + 4,
			[]string{"DISTCC_HOSTS=builder1:3632/8 builder2/6 builder3", "DISTCC_NO_REWRITE_CROSS=1"}},
		// ,lzo is distcc's: after the jobs, not part of them.
		{cluster.BuildFarm{Engine: "distcc", Hosts: []string{"builder1:3632/8,lzo", "builder2,lzo"}}, 2 + 8 + 4,
			[]string{"DISTCC_HOSTS=builder1:3632/8,lzo builder2,lzo", "DISTCC_NO_REWRITE_CROSS=1"}},
		{cluster.BuildFarm{Engine: "icecc", Hosts: []string{"sched.example.org:8765/16", "10.0.0.2/4"}}, 2 + 16 + 4,
			[]string{"ICECC_SCHEDULER_HOST=sched.example.org"}},
		{cluster.BuildFarm{Engine: "icecc", Hosts: []string{"sched"}}, 2 + 4, []string{"ICECC_SCHEDULER_HOST=sched"}},
		{cluster.BuildFarm{Engine: "icecc", Hosts: []string{"sched/8,lzo"}}, 2 + 8, []string{"ICECC_SCHEDULER_HOST=sched"}},
		// localhost is this machine, already counted.
		{cluster.BuildFarm{Engine: "distcc", Hosts: []string{"localhost/2", "b:3632"}}, 2 + 4, []string{"DISTCC_HOSTS=localhost/2 b:3632", "DISTCC_NO_REWRITE_CROSS=1"}},
	}
	for _, tc := range cases {
		if got := FarmJobs(tc.farm, 2); got != tc.jobs {
			t.Errorf("%v: FarmJobs = %d, want %d", tc.farm, got, tc.jobs)
		}
		if got := FarmEnv(tc.farm); fmt.Sprint(got) != fmt.Sprint(tc.env) {
			t.Errorf("%v: FarmEnv = %q, want %q", tc.farm, got, tc.env)
		}
	}
	farm := KernelInputs{BuildFarm: cases[0].farm}
	if got, want := (&Builder{}).jobs(farm), FarmJobs(cases[0].farm, runtime.NumCPU()); got != want {
		t.Errorf("default -j with a farm = %d, want %d", got, want)
	}
	if got := (&Builder{Jobs: 3}).jobs(farm); got != 3 {
		t.Errorf("-j given = %d, want 3", got)
	}
	if got := (&Builder{}).jobs(KernelInputs{}); got != runtime.NumCPU() {
		t.Errorf("default -j without a farm = %d, want %d", got, runtime.NumCPU())
	}
}

// TestSourceDateIgnoresPatchedMakefile: the kernel's timestamp comes from
// the tarball's Makefile header, not from the extracted tree, where GNU
// patch has just given a patched Makefile the current time. A tree
// extracted before the date was recorded gets it from the tarball.
func TestSourceDateIgnoresPatchedMakefile(t *testing.T) {
	testenv.LookPath(t, "patch", "patch")
	makefileTime, newest := time.Unix(1600000000, 0), time.Unix(1700000000, 0)
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range []struct {
		name, body string
		mtime      time.Time
	}{
		{"linux-1.0/README", "readme\n", newest},
		{"linux-1.0/Makefile", "VERSION = 1\nall:\n", makefileTime},
		{"linux-1.0/arch/Makefile", "sub:\n", newest},
	} {
		tw.WriteHeader(&tar.Header{Name: e.name, Mode: 0o644, Size: int64(len(e.body)), ModTime: e.mtime, Typeflag: tar.TypeReg})
		tw.Write([]byte(e.body))
	}
	tw.Close()
	dir := t.TempDir()
	tarball := filepath.Join(dir, "linux.tar.gz")
	os.WriteFile(tarball, compress(t, FormatGzip, buf.Bytes()), 0o644)
	diff := "--- a/Makefile\n+++ b/Makefile\n@@ -1,2 +1,2 @@\n-VERSION = 1\n+VERSION = 2\n all:\n"
	patch := filepath.Join(dir, "version.patch")
	os.WriteFile(patch, []byte(diff), 0o644)

	c := emptyCache(t)
	b := &Builder{Cache: c, NoCCache: true}
	in := KernelInputs{Version: "1.0", Tarball: tarball, Patches: []PatchInput{{Patch: patches.Patch{Name: "v/version.patch", Path: patch, Strip: 1}, SHA256: sha([]byte(diff))}}}
	srcRoot := filepath.Join(c.Dir, "work", "src-test")
	if err := b.prepareSource(context.Background(), in, srcRoot); err != nil {
		t.Fatal(err)
	}
	src := SingleTopDir(srcRoot)
	st, err := os.Stat(filepath.Join(src, "Makefile"))
	if err != nil || !st.ModTime().After(newest) {
		t.Fatalf("the patched Makefile's mtime is %v (%v): the patch did not touch it", st.ModTime(), err)
	}
	want := "KBUILD_BUILD_TIMESTAMP=Sun Sep 13 12:26:40 UTC 2020"
	for _, how := range []string{"recorded at extraction", "read from the tarball"} {
		date, err := b.sourceDate(context.Background(), in, srcRoot)
		if err != nil {
			t.Fatal(err)
		}
		env, _, _, err := b.makeEnv(src, date, in)
		if err != nil {
			t.Fatal(err)
		}
		if !slices.Contains(env, want) {
			t.Errorf("%s: environment lacks %q (date %v)", how, want, date)
		}
		os.Remove(sourceDatePath(srcRoot))
	}
}

// TestKCFLAGSKept: the user's KCFLAGS reach the compiler beside lvsforge's
// own, and are part of the cache key; without them (and without a package)
// the key is computed from the same fields as before they existed.
func TestKCFLAGSKept(t *testing.T) {
	b := &Builder{Cache: &Cache{Dir: t.TempDir()}, NoCCache: true}
	in := KernelInputs{Role: "director", TarballSHA256: sha([]byte("t")), Base: "tinyconfig"}
	t.Setenv("KCFLAGS", "")
	plain, err := in.key()
	if err != nil {
		t.Fatal(err)
	}
	if data, _ := json.Marshal(plain); bytes.Contains(data, []byte("KCFLAGS")) || bytes.Contains(data, []byte("Package")) {
		t.Errorf("key without KCFLAGS or package mentions them: %s", data)
	}
	t.Setenv("KCFLAGS", "-fno-omit-frame-pointer")
	env, _, _, err := b.makeEnv("/src/linux", time.Unix(0, 0), in)
	if err != nil {
		t.Fatal(err)
	}
	// exec uses the last of duplicate variables.
	last := ""
	for _, e := range env {
		if strings.HasPrefix(e, "KCFLAGS=") {
			last = e
		}
	}
	if want := "KCFLAGS=-fno-omit-frame-pointer -ffile-prefix-map=/src/linux/="; last != want {
		t.Errorf("make sees %q, want %q", last, want)
	}
	withFlags, _ := in.CacheKey()
	if withFlags == hashJSON(plain) {
		t.Error("the cache key ignores the user's KCFLAGS")
	}
	in.Package = PackageDeb
	if k, _ := in.CacheKey(); k == withFlags {
		t.Error("the cache key ignores the package format")
	}
	in.Package = "tgz"
	if _, err := in.CacheKey(); err == nil {
		t.Error("unknown package format accepted")
	}
}

// TestDistroKeysFragment: certificate paths of a distro config that are not
// in the tree are blanked (the trusted and revocation keys) or reset to
// the key kbuild generates (the module signing key); paths in the tree stay.
func TestDistroKeysFragment(t *testing.T) {
	src := t.TempDir()
	os.MkdirAll(filepath.Join(src, "certs"), 0o755)
	os.WriteFile(filepath.Join(src, "certs", "mine.pem"), []byte("pem"), 0o644)
	base := map[string]string{
		"SYSTEM_TRUSTED_KEYS":    `"debian/certs/debian-uefi-certs.pem"`,
		"SYSTEM_REVOCATION_KEYS": `"certs/mine.pem"`,
		"MODULE_SIG_KEY":         `"/var/lib/shim-signed/mok/MOK.priv"`,
	}
	got, _, err := parseConfig(DistroKeysFragment(base, src).Data)
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{"SYSTEM_TRUSTED_KEYS": `""`, "MODULE_SIG_KEY": `"certs/signing_key.pem"`}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("fragment sets %v, want %v", got, want)
	}
	clean := map[string]string{"SYSTEM_TRUSTED_KEYS": `""`, "MODULE_SIG_KEY": `"certs/signing_key.pem"`, "SYSTEM_REVOCATION_KEYS": `"../outside.pem"`}
	if got := DistroKeysFragment(clean, src).Data; !bytes.Contains(got, []byte(`CONFIG_SYSTEM_REVOCATION_KEYS=""`)) || bytes.Contains(got, []byte("MODULE_SIG_KEY")) {
		t.Errorf("fragment for a path leaving the tree:\n%s", got)
	}
	if got := DistroKeysFragment(map[string]string{"MODULE_SIG_KEY": `"certs/signing_key.pem"`}, src).Data; len(got) != 0 {
		t.Errorf("a config that needs nothing got:\n%s", got)
	}
}

// TestConfigureDistroBase configures the 6.1 tree from a Debian-like config
// file whose certificates live in debian/certs (not in a vanilla tree):
// the final .config has them blanked, so the build will not stop on them.
func TestConfigureDistroBase(t *testing.T) {
	src := kernelTree(t)
	base := filepath.Join(t.TempDir(), "config-6.1.0-distro")
	os.WriteFile(base, []byte(`CONFIG_MODULES=y
CONFIG_MODULE_SIG=y
CONFIG_MODULE_SIG_KEY="/var/lib/shim-signed/mok/MOK.priv"
CONFIG_SYSTEM_TRUSTED_KEYRING=y
CONFIG_SYSTEM_TRUSTED_KEYS="debian/certs/debian-uefi-certs.pem"
CONFIG_SYSTEM_BLACKLIST_KEYRING=y
CONFIG_SYSTEM_REVOCATION_LIST=y
CONFIG_SYSTEM_REVOCATION_KEYS="debian/certs/debian-uefi-certs.pem"
`), 0o644)
	out := t.TempDir()
	err := Configure(context.Background(), testCommand(t, src), "", ConfigRequest{
		SrcDir: src, OutDir: out, Base: base, LocalVersion: "-lvs",
	})
	if err != nil {
		t.Fatal(err)
	}
	cfg, err := ReadConfig(filepath.Join(out, ".config"))
	if err != nil {
		t.Fatal(err)
	}
	for o, want := range map[string]string{
		"SYSTEM_TRUSTED_KEYRING": "y", "SYSTEM_REVOCATION_LIST": "y", // the options exist: the blanking is real
		"SYSTEM_TRUSTED_KEYS": `""`, "SYSTEM_REVOCATION_KEYS": `""`, "MODULE_SIG_KEY": `"certs/signing_key.pem"`,
		"LOCALVERSION": `"-lvs"`,
	} {
		if cfg[o] != want {
			t.Errorf("CONFIG_%s = %q, want %q", o, cfg[o], want)
		}
	}
}

// directorInputs are the test cache and the inputs of the director kernel
// the build tests build (and the no-op benchmark finds cached): Debian's
// 6.1 tarball (imported into the cache by its sha256), tinyconfig, the
// director and vm fragments, every scheduler.
func directorInputs(t testing.TB) (*Cache, KernelInputs) {
	t.Helper()
	c, err := NewCache(testenv.CacheDir(t))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := FileSHA256(debianKernelTarball)
	if err != nil {
		t.Fatal(err)
	}
	tarball, err := c.Import(debianKernelTarball, sum, KindKernel)
	if err != nil {
		t.Fatal(err)
	}
	director, _ := BuiltinFragment(FragmentDirector)
	vm, _ := BuiltinFragment(FragmentVM)
	return c, KernelInputs{
		Role: "director", Version: "6.1", Tarball: tarball, TarballSHA256: sum,
		Base: "tinyconfig", Fragments: []Fragment{director, vm}, IPVSSchedulers: true,
		LocalVersion: "-lvs",
	}
}

// kernelBuildPrereqs skips (or fails in CI) a test that builds a kernel
// when the tarball or a tool is missing, without extracting anything.
func kernelBuildPrereqs(t *testing.T) {
	t.Helper()
	if testing.Short() {
		t.Skip("short: builds a kernel")
	}
	needKernelTarball(t)
	for _, tool := range []string{"make", "gcc", "flex", "bison", "bc", "depmod"} {
		testenv.LookPath(t, tool, "build-essential flex bison bc kmod")
	}
	if _, err := os.Stat("/usr/include/libelf.h"); err != nil {
		testenv.Missing(t, "libelf headers", "apt-get install -y libelf-dev")
	}
}

// TestBuildDirectorKernelDeb builds the director kernel of
// TestBuildDirectorKernel with --package deb. It shares that build's O=
// directory (the cache keeps one per source tree and role), so after it the
// compile is incremental and the time goes into bindeb-pkg itself. The
// packaged image must be the artifact's bzImage byte for byte: packaging
// must not relink the kernel.
func TestBuildDirectorKernelDeb(t *testing.T) {
	kernelBuildPrereqs(t)
	testenv.LookPath(t, "dpkg-buildpackage", "dpkg-dev")
	testenv.LookPath(t, "fakeroot", "fakeroot")
	testenv.LookPath(t, "rsync", "rsync")
	c, in := directorInputs(t)
	in.Package = PackageDeb
	b := &Builder{Cache: c, SystemXZ: true, Status: func(step, msg string) { t.Logf("%s: %s", step, msg) }}
	start := time.Now()
	art, err := b.Kernel(context.Background(), in)
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("build with bindeb-pkg: %.0fs (cached=%v, timings %v)", time.Since(start).Seconds(), art.Cached, art.Manifest.Timings)
	var image string
	for _, p := range art.Packages {
		name := filepath.Base(p)
		if got, _ := FileSHA256(p); got != art.Manifest.Files["packages/"+name] {
			t.Errorf("%s: manifest hash %s, file %s", name, art.Manifest.Files["packages/"+name], got)
		}
		if strings.HasPrefix(name, "linux-image-"+art.Release+"_") {
			image = p
		}
	}
	if image == "" {
		t.Fatalf("no linux-image-%s package among %v", art.Release, art.Packages)
	}
	root := t.TempDir()
	if out, err := exec.Command("dpkg-deb", "-x", image, root).CombinedOutput(); err != nil {
		t.Fatalf("dpkg-deb -x: %v: %s", err, out)
	}
	packaged, err := FileSHA256(filepath.Join(root, "boot", "vmlinuz-"+art.Release))
	if err != nil {
		t.Fatal(err)
	}
	if packaged != art.Manifest.Files["bzImage"] {
		t.Errorf("the package's vmlinuz (%s) is not the artifact's bzImage (%s)", packaged, art.Manifest.Files["bzImage"])
	}
	if _, err := os.Stat(filepath.Join(root, "lib", "modules", art.Release, "kernel", "net", "netfilter", "ipvs", "ip_vs_rr.ko")); err != nil {
		t.Errorf("the package lacks the IPVS modules: %v", err)
	}
	again, err := b.Kernel(context.Background(), in)
	if err != nil || !again.Cached || fmt.Sprint(again.Packages) != fmt.Sprint(art.Packages) {
		t.Errorf("second build: cached=%v packages %v (%v), want the cached %v", again.Cached, again.Packages, err, art.Packages)
	}
}
