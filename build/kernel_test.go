package build

import (
	"context"
	"errors"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"sync"
	"testing"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/internal/testenv"
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
	if _, err := os.Stat(debianKernelTarball); err != nil {
		testenv.Missing(t, debianKernelTarball, "apt-get install -y linux-source-6.1")
	}
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
	cases := []struct {
		role  string
		frags []Fragment
		want  map[string]string
	}{
		{"director", directorFragments(t, src), map[string]string{
			"IP_VS": "m", "IP_VS_PROTO_TCP": "y", "IP_VS_PROTO_UDP": "y", "IP_VS_PROTO_SCTP": "y",
			"VIRTIO_NET": "y", "SERIAL_8250_CONSOLE": "y", "ACPI": "y", "EXT4_FS": "y", "LOCALVERSION": `"-lvs"`,
		}},
		{"realserver", []Fragment{realserver, vm}, map[string]string{
			"NET_IPIP": "m", "PROC_SYSCTL": "y", "IP_VS": "", "VIRTIO_NET": "y", "LOCALVERSION": `"-lvs"`,
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
			if tc.role == "director" {
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
	c, err := NewCache(testenv.CacheDir(t))
	if err != nil {
		t.Fatal(err)
	}
	sum, err := FileSHA256(debianKernelTarball)
	if err != nil {
		t.Fatal(err)
	}
	tarball, err := c.Import(debianKernelTarball, sum)
	if err != nil {
		t.Fatal(err)
	}
	director, _ := BuiltinFragment(FragmentDirector)
	vm, _ := BuiltinFragment(FragmentVM)
	in := KernelInputs{
		Role: "director", Version: "6.1", Tarball: tarball, TarballSHA256: sum,
		Base: "tinyconfig", Fragments: []Fragment{director, vm}, IPVSSchedulers: true,
		LocalVersion: "-lvs",
	}
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
		ipvsadmTar, err := c.Import(ipvsadmTarball, ipvsadmSHA256)
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
	c, err := NewCache(testenv.CacheDir(b))
	if err != nil {
		b.Fatal(err)
	}
	sum, err := FileSHA256(debianKernelTarball)
	if err != nil {
		b.Fatal(err)
	}
	director, _ := BuiltinFragment(FragmentDirector)
	vm, _ := BuiltinFragment(FragmentVM)
	in := KernelInputs{Role: "director", Version: "6.1", Tarball: c.BlobPath(sum), TarballSHA256: sum,
		Base: "tinyconfig", Fragments: []Fragment{director, vm}, IPVSSchedulers: true, LocalVersion: "-lvs"}
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
		_, _, _, err := b.makeEnv(t.TempDir(), KernelInputs{BuildFarm: cluster.BuildFarm{Engine: engine, Hosts: []string{"10.0.0.1"}}})
		if err == nil || !strings.Contains(err.Error(), engine+", which is not installed") {
			t.Errorf("%s missing: %v", engine, err)
		}
	}
	b := &Builder{Cache: &Cache{Dir: t.TempDir()}, NoCCache: true}
	if _, vars, _, err := b.makeEnv(t.TempDir(), KernelInputs{}); err != nil || len(vars) != 0 {
		t.Errorf("no farm, no ccache: vars %v, %v", vars, err)
	}
}
