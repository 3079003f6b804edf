package build

import (
	"bytes"
	"context"
	"debug/elf"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
)

// defaultFarmJobs is what a build farm host without /jobs is counted for:
// distcc's own default limit per remote host.
const defaultFarmJobs = 4

// farmCompiler is the compiler a farm build hands to its engine: the name
// distcc sends to the hosts, which must find it in distccd's whitelist
// (/usr/lib/distcc) and on its PATH.
const farmCompiler = "gcc"

// FarmHost splits a build farm entry, host[:port][/jobs][,options] (distcc's
// own syntax; ",lzo" compresses what goes over the network); port is "" and
// jobs 0 when not given.
func FarmHost(entry string) (host, port string, jobs int) {
	host, _, _ = strings.Cut(entry, ",")
	if i := strings.LastIndexByte(host, '/'); i >= 0 {
		jobs, _ = strconv.Atoi(host[i+1:])
		host = host[:i]
	}
	if i := strings.LastIndexByte(host, ':'); i >= 0 {
		host, port = host[:i], host[i+1:]
	}
	return host, port, jobs
}

// isLocalFarmHost says whether a farm entry's host is this machine.
func isLocalFarmHost(host string) bool { return host == "localhost" || host == "127.0.0.1" }

// FarmJobs is the make -j for a build on a farm: the local CPUs plus each
// host's /jobs (defaultFarmJobs when it gives none). A localhost entry is
// the local machine, already counted.
func FarmJobs(f cluster.BuildFarm, localCPUs int) int {
	n := localCPUs
	for _, h := range f.Hosts {
		host, _, jobs := FarmHost(h)
		if isLocalFarmHost(host) {
			continue
		}
		if jobs <= 0 {
			jobs = defaultFarmJobs
		}
		n += jobs
	}
	return n
}

// distccKeepsCompiler keeps distcc from renaming the compiler; see FarmEnv.
const distccKeepsCompiler = "DISTCC_NO_REWRITE_CROSS=1"

// FarmEnv is the environment that points the farm's engine at its hosts.
// distcc takes the entries as they are (host[:port][/limit][,lzo] is its
// own syntax), and keeps "gcc" as it is: by default it runs
// x86_64-linux-gnu-gcc instead, also for the kernel's own "$(CC)
// --version", whose first line becomes CONFIG_CC_VERSION_TEXT and the
// kernel's banner, so a farm build would not be the kernel a local build
// of the same spec is. (distcc(1) calls the variable
// DISTCC_NO_CROSS_REWRITE; distcc 3.4 reads DISTCC_NO_REWRITE_CROSS.)
// The hosts must then be of this machine's architecture, which
// CheckDistccHosts checks. icecc takes only the scheduler's host name: the
// first entry, without :port, /jobs or options, which icecc would read as
// part of the name.
func FarmEnv(f cluster.BuildFarm) []string {
	switch f.Engine {
	case "distcc":
		return []string{"DISTCC_HOSTS=" + strings.Join(f.Hosts, " "), distccKeepsCompiler}
	case "icecc":
		if len(f.Hosts) > 0 {
			host, _, _ := FarmHost(f.Hosts[0])
			return []string{"ICECC_SCHEDULER_HOST=" + host}
		}
	}
	return nil
}

// farmProbe is the file CheckDistccHosts compiles on each host, named so
// that it stands out in a distccd's log.
const farmProbe = "lvsforge-farm-probe.c"

// farmProbeTimeout bounds one host's probe compile: distcc gives up a
// connection after a few seconds, but a host that accepts and never
// answers would hold it for DISTCC_IO_TIMEOUT (300 s).
const farmProbeTimeout = 60 * time.Second

// CheckDistccHosts compiles a probe file on each distcc host of f, one host
// at a time in DISTCC_HOSTS, with distcc's local fallback off, and compares
// the compiler that ran there with this machine's: the object's
// architecture and the .comment section gcc writes into every object
// ("GCC: (Debian 12.2.0-14) 12.2.0"). Without it a farm that refuses every
// job (this machine not in distccd's --allow, gcc not in its
// /usr/lib/distcc whitelist, distccd down) still gives a kernel: distcc
// compiles each file locally and warns in a log nobody reads. A host with
// another gcc would link objects of two compilers into one kernel. Every
// host is checked, at once, and every failing host reported.
func CheckDistccHosts(ctx context.Context, distcc string, f cluster.BuildFarm) error {
	dir, err := os.MkdirTemp("", "lvsforge-farm-")
	if err != nil {
		return fmt.Errorf("check build farm: %w", err)
	}
	defer os.RemoveAll(dir)
	src := filepath.Join(dir, farmProbe)
	if err := os.WriteFile(src, []byte("int lvsforge_farm_probe(int x) { return x + 1; }\n"), 0o644); err != nil {
		return fmt.Errorf("check build farm: %w", err)
	}
	env := append(os.Environ(), "LC_ALL=C", distccKeepsCompiler)
	local := filepath.Join(dir, "local.o")
	if _, err := output(ctx, dir, env, farmCompiler, "-c", src, "-o", local); err != nil {
		return fmt.Errorf("check build farm: compile the probe here: %w", err)
	}
	want, err := objectOrigin(local)
	if err != nil {
		return fmt.Errorf("check build farm: %w", err)
	}
	errs := make([]error, len(f.Hosts))
	var wg sync.WaitGroup
	for i, entry := range f.Hosts {
		// distcc runs "localhost" jobs itself, without a distccd to ask
		// (127.0.0.1 is a distccd on this machine, and is checked).
		if host, _, _ := FarmHost(entry); host == "localhost" {
			continue
		}
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = probeDistccHost(ctx, distcc, entry, src, filepath.Join(dir, strconv.Itoa(i)), env, want)
		}()
	}
	wg.Wait()
	if err := errors.Join(errs...); err != nil {
		return fmt.Errorf("check build farm: %w", err)
	}
	return nil
}

// probeDistccHost compiles src on the one host entry and checks the
// compiler that ran there against want. Its own DISTCC_DIR keeps distcc
// from skipping the host for a failure an earlier build recorded (distcc
// backs off a failed host for a minute) and the probe's failure from
// reaching the user's builds.
func probeDistccHost(ctx context.Context, distcc, entry, src, dir string, env []string, want string) error {
	ctx, cancel := context.WithTimeout(ctx, farmProbeTimeout)
	defer cancel()
	if err := os.Mkdir(dir, 0o700); err != nil {
		return fmt.Errorf("host %s: %w", entry, err)
	}
	obj := filepath.Join(dir, "probe.o")
	cmd := exec.CommandContext(ctx, distcc, farmCompiler, "-c", src, "-o", obj)
	cmd.Dir = dir
	// Clipped: the probes of the other hosts append to the same env.
	cmd.Env = append(slices.Clip(env), "DISTCC_HOSTS="+entry, "DISTCC_FALLBACK=0", "DISTCC_DIR="+dir)
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	if err := cmd.Run(); err != nil {
		return fmt.Errorf("host %s: distcc could not compile there (%w): %s; the host needs distccd running, with --allow covering this machine's address and %s in /usr/lib/distcc (update-distcc-symlinks)",
			entry, err, strings.Join(strings.Fields(stderr.String()), " "), farmCompiler)
	}
	got, err := objectOrigin(obj)
	if err != nil {
		return fmt.Errorf("host %s: %w", entry, err)
	}
	if got != want {
		return fmt.Errorf("host %s compiles with %q, this machine with %q: a kernel's objects must come from one compiler", entry, got, want)
	}
	return nil
}

// objectOrigin says what made an object: its ELF class and machine, and
// the compiler identification gcc leaves in its .comment section.
func objectOrigin(obj string) (string, error) {
	f, err := elf.Open(obj)
	if err != nil {
		return "", fmt.Errorf("read compiler of %s: %w", filepath.Base(obj), err)
	}
	defer f.Close()
	s := f.Section(".comment")
	if s == nil {
		return "", fmt.Errorf("read compiler of %s: no .comment section", filepath.Base(obj))
	}
	data, err := s.Data()
	if err != nil {
		return "", fmt.Errorf("read compiler of %s: %w", filepath.Base(obj), err)
	}
	return fmt.Sprintf("%s for %s %s", strings.Trim(string(data), "\x00"), f.Class, f.Machine), nil
}

// distccFallback says whether a line of make's output is distcc saying it
// compiled a file here instead of on the farm (a host down or refusing mid-build, a remote
// failure retried locally).
func distccFallback(line string) bool {
	return strings.HasPrefix(line, "distcc[") &&
		(strings.Contains(line, "running locally instead") || strings.Contains(line, "retrying locally"))
}

// farmEngine is the path of the farm's engine, "" without a farm. A build
// farm the spec names must be installed: a build that silently ran on one
// machine would not be what was asked for.
func farmEngine(f cluster.BuildFarm) (string, error) {
	if f.Engine == "" {
		return "", nil
	}
	p, err := exec.LookPath(f.Engine)
	if err != nil {
		return "", fmt.Errorf("build kernel: the spec's build farm uses %s, which is not installed (apt-get install %s)", f.Engine, f.Engine)
	}
	return p, nil
}

// checkFarm makes sure, before anything is extracted or compiled, that the
// farm's engine is installed and that every distcc host compiles with this
// machine's compiler.
func (b *Builder) checkFarm(ctx context.Context, in KernelInputs) error {
	engine, err := farmEngine(in.BuildFarm)
	if err != nil || in.BuildFarm.Engine != "distcc" {
		return err
	}
	b.status("farm", "checking the build farm: %s", strings.Join(in.BuildFarm.Hosts, " "))
	return CheckDistccHosts(ctx, engine, in.BuildFarm)
}
