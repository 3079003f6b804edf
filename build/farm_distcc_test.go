package build

import (
	"context"
	"fmt"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/internal/testenv"
)

// distccd is a real distccd a test started, its log (level info) in a file
// of the test.
type distccd struct {
	// Entry is the DISTCC_HOSTS entry that reaches it.
	Entry string
	log   string
}

// remoteCompileRe is the summary distccd 3.4 logs for each job that
// compiled, ending in the compiler and the source file: "(dcc_job_summary)
// client: 10.231.0.1:45244 COMPILE_OK exit:0 sig:0 core:0 ret:0 time:52ms
// x86_64-linux-gnu-gcc /src/linux/kernel/bounds.c".
var remoteCompileRe = regexp.MustCompile(`(?m)\(dcc_job_summary\) client: \S+ COMPILE_OK .* (\S+)$`)

// compiled is how many files the daemon has compiled so far: the farm
// check's probes and the rest.
func (d *distccd) compiled(t *testing.T) (probes, files int) {
	t.Helper()
	for _, m := range remoteCompileRe.FindAllStringSubmatch(readFile(t, d.log), -1) {
		if filepath.Base(m[1]) == farmProbe {
			probes++
		} else {
			files++
		}
	}
	return probes, files
}

// kernelCCs are the objects of make's "CC" lines that the kernel's
// compiler (distcc, with a farm) built. tools/ prints "CC" too, with an
// absolute path, for objtool, a host program its own make builds with the
// host's compiler (HOSTCC): 21 files on x86_64, none on i386.
func kernelCCs(buildLog string) []string {
	var out []string
	for _, l := range strings.Split(buildLog, "\n") {
		f := strings.Fields(l)
		if len(f) < 2 || f[0] != "CC" || !strings.HasPrefix(l, "  CC ") {
			continue
		}
		if obj := f[len(f)-1]; !strings.Contains(obj, "/tools/") {
			out = append(out, obj)
		}
	}
	return out
}

// notRemote lists (up to 40 of) the kernel's objects (kernelCCs) that no
// distccd's log names: what a mismatch in the counts is made of.
func notRemote(t *testing.T, buildLog string, daemons []*distccd) []string {
	t.Helper()
	remote := map[string]bool{}
	for _, d := range daemons {
		for _, m := range remoteCompileRe.FindAllStringSubmatch(readFile(t, d.log), -1) {
			remote[strings.TrimSuffix(m[1], filepath.Ext(m[1]))] = true
		}
	}
	var missing []string
	for _, obj := range kernelCCs(buildLog) {
		stem := strings.TrimSuffix(obj, filepath.Ext(obj))
		found := false
		for r := range remote {
			if r == stem || strings.HasSuffix(r, "/"+stem) {
				found = true
				break
			}
		}
		if !found && len(missing) < 40 {
			missing = append(missing, obj)
		}
	}
	return missing
}

// startDistccd runs distccd on addr:port, in network namespace ns ("" for
// this machine's), accepting clients from allow, with jobs slots; it is
// stopped by t.Cleanup. Run as root, distccd becomes user distccd before
// it opens a --log-file, so its log goes to stderr, which the test opens.
func startDistccd(t *testing.T, ns, addr string, port, jobs int, allow string) *distccd {
	t.Helper()
	bin := testenv.LookPath(t, "distccd", "distcc")
	args := []string{"--daemon", "--no-detach", "--log-stderr", "--log-level", "info",
		"--allow", allow, "--listen", addr, "--port", strconv.Itoa(port), "--jobs", strconv.Itoa(jobs)}
	cmd := exec.Command(bin, args...)
	if ns != "" {
		cmd = exec.Command("ip", append([]string{"netns", "exec", ns, bin}, args...)...)
	}
	d := &distccd{Entry: fmt.Sprintf("%s:%d/%d", addr, port, jobs), log: filepath.Join(t.TempDir(), "distccd.log")}
	f, err := os.Create(d.log)
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	cmd.Stdout, cmd.Stderr = f, f
	// Its preforked children share its process group, which the cleanup
	// stops as a whole.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true}
	if err := cmd.Start(); err != nil {
		t.Fatalf("start distccd: %v", err)
	}
	exited := make(chan struct{})
	go func() { cmd.Wait(); close(exited) }()
	t.Cleanup(func() {
		syscall.Kill(-cmd.Process.Pid, syscall.SIGTERM)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
			syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
			<-exited
		}
	})
	// Ready once it has bound and forked its workers.
	for deadline := time.Now().Add(15 * time.Second); ; time.Sleep(50 * time.Millisecond) {
		data, _ := os.ReadFile(d.log)
		if strings.Contains(string(data), "daemon started") {
			return d
		}
		select {
		case <-exited:
			t.Fatalf("distccd %s exited: %s", d.Entry, data)
		default:
		}
		if time.Now().After(deadline) {
			t.Fatalf("distccd %s did not start in 15s: %s", d.Entry, data)
		}
	}
}

// freePort is a loopback TCP port nothing listens on.
func freePort(t *testing.T) int {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port
}

// TestCheckDistccHosts: the check before a farm build compiles on each
// host through real distccd daemons on loopback. A farm whose hosts
// compile passes, and the probe ran there; a host that refuses this
// machine (not in its --allow) and a host where nothing listens each fail
// the check, by name, while the good host is not blamed.
func TestCheckDistccHosts(t *testing.T) {
	testenv.LookPath(t, "gcc", "gcc")
	distcc := testenv.LookPath(t, "distcc", "distcc")
	good := startDistccd(t, "", "127.0.0.1", freePort(t), 2, "127.0.0.1/32")
	refusing := startDistccd(t, "", "127.0.0.1", freePort(t), 2, "10.231.0.99/32")
	closed := fmt.Sprintf("127.0.0.1:%d/2", freePort(t))
	ctx := context.Background()

	// distcc runs localhost jobs itself: there is nothing to check.
	if err := CheckDistccHosts(ctx, distcc, cluster.BuildFarm{Engine: "distcc", Hosts: []string{"localhost/2", good.Entry}}); err != nil {
		t.Fatalf("a working farm fails the check: %v", err)
	}
	if probes, files := good.compiled(t); probes != 1 || files != 0 {
		t.Errorf("the good host compiled %d probes and %d other files, want the probe", probes, files)
	}
	err := CheckDistccHosts(ctx, distcc, cluster.BuildFarm{Engine: "distcc", Hosts: []string{good.Entry, refusing.Entry, closed}})
	if err == nil {
		t.Fatal("a farm with a refusing and a closed host passes the check")
	}
	t.Logf("the check says: %v", err)
	msg := err.Error()
	for _, want := range []string{"host " + refusing.Entry + ": distcc could not compile there", "host " + closed + ": distcc could not compile there", "--allow"} {
		if !strings.Contains(msg, want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
	if strings.Contains(msg, "host "+good.Entry) {
		t.Errorf("error blames the good host: %v", err)
	}
	if probes, files := refusing.compiled(t); probes+files != 0 {
		t.Errorf("the refusing host compiled %d files", probes+files)
	}
}

// TestFarmBuildEnvironment: a farm build compiles through the engine with
// ccache off even where ccache is installed, so that no object comes from
// ccache instead of the farm; without a farm ccache stays.
func TestFarmBuildEnvironment(t *testing.T) {
	distcc := testenv.LookPath(t, "distcc", "distcc")
	b := &Builder{Cache: &Cache{Dir: t.TempDir()}}
	farm := cluster.BuildFarm{Engine: "distcc", Hosts: []string{"b1:3632/8,lzo", "b2/4"}}
	env, vars, ccache, err := b.makeEnv("/src/linux", time.Unix(0, 0), KernelInputs{BuildFarm: farm})
	if err != nil {
		t.Fatal(err)
	}
	if want := []string{"CC=" + distcc + " gcc"}; !slices.Equal(vars, want) || ccache != "" {
		t.Errorf("farm build: make vars %q, ccache %q; want %q and no ccache", vars, ccache, want)
	}
	if !slices.Contains(env, "DISTCC_HOSTS=b1:3632/8,lzo b2/4") {
		t.Error("farm build: DISTCC_HOSTS is not the spec's entries")
	}
	// kbuild makes CONFIG_CC_VERSION_TEXT, and the kernel's banner, of the
	// first line of "$(CC) --version": through distcc it must be gcc's own.
	cc := strings.Fields(strings.TrimPrefix(vars[0], "CC="))
	cmd := exec.Command(cc[0], append(cc[1:], "--version")...)
	cmd.Env = env
	got, err := cmd.Output()
	if err != nil {
		t.Fatal(err)
	}
	if want := firstLine("gcc", "--version"); firstLineOf(string(got)) != want {
		t.Errorf("%s --version says %q, gcc says %q", vars[0], firstLineOf(string(got)), want)
	}
	if _, err := exec.LookPath("ccache"); err == nil {
		if _, vars, ccache, _ := b.makeEnv("/src/linux", time.Unix(0, 0), KernelInputs{}); ccache == "" || !strings.HasPrefix(vars[0], "CC="+ccache) {
			t.Errorf("local build with ccache installed: make vars %q, ccache %q", vars, ccache)
		}
	}
}

// farmNet is the private subnet of the farm hosts TestDistccFarmBuild
// starts: this machine is .1 and host i is .(i+2), each behind its own veth
// pair; nothing else is routed there.
const farmNet = "10.231.0"

// farmNamespaces creates n network namespaces reachable from this machine
// at farmNet.2, .3, ... and returns their names and addresses; t.Cleanup
// deletes them (and their veth pairs with them). A lock file keeps two
// test binaries from using the subnet at once.
func farmNamespaces(t *testing.T, n int) (names, addrs []string) {
	t.Helper()
	testenv.Root(t)
	testenv.LookPath(t, "ip", "iproute2")
	lockDir := "/run/lock"
	if _, err := os.Stat(lockDir); err != nil {
		lockDir = os.TempDir()
	}
	unlock, err := lock(filepath.Join(lockDir, "lvsforge-distcc-farm-test"))
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(unlock)
	ifaces, err := net.InterfaceAddrs()
	if err != nil {
		t.Fatal(err)
	}
	for _, a := range ifaces {
		if strings.HasPrefix(a.String(), farmNet+".") {
			t.Fatalf("%s.0/24 is already in use on this machine (%s): remove what a killed test run left behind", farmNet, a)
		}
	}
	run := func(args ...string) {
		t.Helper()
		if out, err := exec.Command("ip", args...).CombinedOutput(); err != nil {
			t.Fatalf("ip %s: %v: %s", strings.Join(args, " "), err, out)
		}
	}
	pid := os.Getpid()
	for i := range n {
		ns, veth, addr := fmt.Sprintf("lvsforge-distcc%d-%d", pid, i), fmt.Sprintf("ldc%dh%d", pid, i), fmt.Sprintf("%s.%d", farmNet, i+2)
		if out, err := exec.Command("ip", "netns", "add", ns).CombinedOutput(); err != nil {
			testenv.Missing(t, "network namespaces ("+strings.TrimSpace(string(out))+")", "run as root on a kernel with netns")
		}
		t.Cleanup(func() { exec.Command("ip", "netns", "del", ns).Run() })
		run("link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", ns)
		run("addr", "add", farmNet+".1", "peer", addr+"/32", "dev", veth)
		run("link", "set", veth, "up")
		run("-n", ns, "link", "set", "lo", "up")
		run("-n", ns, "addr", "add", addr, "peer", farmNet+".1/32", "dev", "eth0")
		run("-n", ns, "link", "set", "eth0", "up")
		names, addrs = append(names, ns), append(addrs, addr)
	}
	return names, addrs
}

// farmTestSpec is the spec `lvsforge init` writes for Debian's 6.1 tarball,
// with farm as its kernel.buildFarm.
func farmTestSpec(t *testing.T, sum string, farm cluster.BuildFarm) *cluster.Spec {
	t.Helper()
	dir := t.TempDir()
	if err := cluster.EnsureAuthkey(filepath.Join(dir, "authkey")); err != nil {
		t.Fatal(err)
	}
	path := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(path, cluster.ExampleYAML(cluster.DistroSource("6.1.192", debianKernelTarball, sum)), 0o644); err != nil {
		t.Fatal(err)
	}
	s, err := cluster.Load(path)
	if err != nil {
		t.Fatal(err)
	}
	s.Kernel.BuildFarm = farm
	return s
}

// farmBuild builds the spec's director kernel the way `lvsforge build
// kernel --role director --vm=false` does, into a cache of its own, and
// returns it with the build's wall time.
func farmBuild(t *testing.T, s *cluster.Spec, noCCache bool) (*KernelArtifacts, time.Duration) {
	t.Helper()
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := &Builder{Cache: c, SystemXZ: true, NoCCache: noCCache, Status: func(step, msg string) {
		if step != "compile" && step != "extract" {
			t.Logf("%s: %s", step, msg)
		}
	}}
	start := time.Now()
	art, err := b.BuildSpec(context.Background(), &Fetcher{Cache: c}, s, FetchOptions{}, SpecBuild{Roles: []string{cluster.RoleDirector}})
	if err != nil {
		t.Fatal(err)
	}
	k := art.Kernels[cluster.RoleDirector]
	if k.Cached {
		t.Fatalf("a build into an empty cache came from the cache: %s", k.Dir)
	}
	return k, time.Since(start)
}

// modulePaths are the .ko files in a modules tarball, sorted.
func modulePaths(t *testing.T, art *KernelArtifacts) []string {
	t.Helper()
	var mods []string
	for _, l := range strings.Split(listTarGz(t, art.Modules), "\n") {
		if strings.HasSuffix(l, ".ko") {
			mods = append(mods, l)
		}
	}
	slices.Sort(mods)
	return mods
}

// TestDistccFarmBuild builds the director kernel on a distcc farm of two
// real distccd daemons, each in a network namespace of this machine, then
// the same spec without the farm, and expects the same kernel: the same
// .config, release and modules, and the same bytes of bzImage and
// modules.tar.gz. Both daemons must have compiled objects, every C file
// must have gone to the farm, and distcc must not have fallen back to
// compiling here.
//
// To fit CI it builds the director kernel without the QEMU guest fragment
// (what `lvsforge build kernel --role director --vm=false` builds for
// hardware): tinyconfig, the director fragment and every IPVS scheduler as
// a module, about 800 objects and 29 modules; each build has its own cache,
// and so its own extraction, and neither uses ccache (the farm build never
// does; the local one is told not to, so that both compile every object).
// The farm leaves localhost out: its namespaces run on this machine's CPUs
// anyway, and every object they compile is one distcc really sent.
func TestDistccFarmBuild(t *testing.T) {
	kernelBuildPrereqs(t)
	testenv.LookPath(t, "distcc", "distcc")
	start := time.Now()
	names, addrs := farmNamespaces(t, 2)
	var daemons []*distccd
	farm := cluster.BuildFarm{Engine: "distcc"}
	for i, ns := range names {
		d := startDistccd(t, ns, addrs[i], 3632, 4, farmNet+".0/24")
		daemons = append(daemons, d)
		farm.Hosts = append(farm.Hosts, d.Entry)
	}
	sum, err := FileSHA256(debianKernelTarball)
	if err != nil {
		t.Fatal(err)
	}

	onFarm, farmTime := farmBuild(t, farmTestSpec(t, sum, farm), false)
	// Every C file of the kernel goes to the farm (distcc runs the
	// assembler files here); the farm check compiled its probe once on
	// each host.
	buildLog := readFile(t, onFarm.Log)
	cFiles, asmFiles := len(kernelCCs(buildLog)), strings.Count(buildLog, "\n  AS ")
	remote := 0
	var counts []string
	for _, d := range daemons {
		probes, files := d.compiled(t)
		remote += files
		counts = append(counts, fmt.Sprintf("%s %d", d.Entry, files))
		if probes != 1 || files == 0 {
			t.Errorf("distccd %s compiled %d probes and %d kernel files, want 1 and some", d.Entry, probes, files)
		}
	}
	t.Logf("farm build: %.0fs (make -j%d), %d C and %d assembler files; compiled remotely: %s", farmTime.Seconds(), FarmJobs(farm, runtime.NumCPU()), cFiles, asmFiles, strings.Join(counts, ", "))
	if remote != cFiles {
		t.Errorf("the farm compiled %d files, make compiled %d C files; not on the farm: %s", remote, cFiles, strings.Join(notRemote(t, buildLog, daemons), " "))
	}
	if f := onFarm.Manifest.Farm; f == nil || f.LocalFallbacks != 0 {
		t.Errorf("farm build manifest: %+v, want the farm with no local fallbacks", f)
	}
	if onFarm.Manifest.CCache != nil {
		t.Errorf("the farm build used ccache: %+v", onFarm.Manifest.CCache)
	}

	local, localTime := farmBuild(t, farmTestSpec(t, sum, cluster.BuildFarm{}), true)
	t.Logf("local build: %.0fs (make -j%d); whole test: %.0fs", localTime.Seconds(), runtime.NumCPU(), time.Since(start).Seconds())
	if local.Manifest.Farm != nil {
		t.Errorf("the local build has a farm: %+v", local.Manifest.Farm)
	}

	if local.Release != onFarm.Release {
		t.Errorf("release: farm %q, local %q", onFarm.Release, local.Release)
	}
	if a, b := readFile(t, onFarm.Config), readFile(t, local.Config); a != b {
		t.Errorf(".config differs between the farm and the local build:\n%s", lineDiff(a, b))
	}
	farmMods, localMods := modulePaths(t, onFarm), modulePaths(t, local)
	if len(localMods) == 0 || !slices.Equal(farmMods, localMods) {
		t.Errorf("modules: farm %v, local %v", farmMods, localMods)
	}
	// lvsforge's builds are reproducible, and distcc's hosts run this
	// machine's gcc on what this machine preprocessed: the bytes agree too.
	for _, name := range []string{"bzImage", "modules.tar.gz"} {
		if a, b := onFarm.Manifest.Files[name], local.Manifest.Files[name]; a != b {
			t.Errorf("%s: farm sha256 %s, local %s", name, a, b)
		}
	}
	t.Logf("%d modules, the same in both builds, as are bzImage and modules.tar.gz byte for byte", len(localMods))
}

func firstLineOf(s string) string {
	l, _, _ := strings.Cut(s, "\n")
	return strings.TrimSpace(l)
}

func readFile(t *testing.T, path string) string {
	t.Helper()
	data, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	return string(data)
}

// lineDiff lists the lines only one of a and b has.
func lineDiff(a, b string) string {
	in := func(s string) map[string]bool {
		m := map[string]bool{}
		for _, l := range strings.Split(s, "\n") {
			m[l] = true
		}
		return m
	}
	ma, mb := in(a), in(b)
	var out []string
	for _, l := range strings.Split(a, "\n") {
		if !mb[l] {
			out = append(out, "farm:  "+l)
		}
	}
	for _, l := range strings.Split(b, "\n") {
		if !ma[l] {
			out = append(out, "local: "+l)
		}
	}
	return strings.Join(out, "\n")
}
