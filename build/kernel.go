package build

import (
	"archive/tar"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/internal/fsutil"
	"github.com/lvsforge/lvsforge/patches"
)

// Builder runs kernel and ipvsadm builds whose inputs are already verified
// and whose results it keeps in Cache, keyed by every input.
type Builder struct {
	Cache *Cache
	// Jobs is make's -j (default: the number of CPUs, plus what the
	// spec's build farm hosts take; see FarmJobs).
	Jobs int
	// SystemXZ lets extraction use the system's xz.
	SystemXZ bool
	// NoCCache disables ccache even when it is installed (a build on a
	// farm never uses it; see makeEnv).
	NoCCache bool
	// Status, when set, receives each step as it starts ("extract",
	// "patch", "configure", "compile", ...) and, under the same step name,
	// the progress of extraction (about once a second) and of compilation;
	// the CLI turns it into a progress line or log lines.
	Status func(step, msg string)
}

func (b *Builder) status(step, format string, args ...any) {
	if b.Status != nil {
		b.Status(step, fmt.Sprintf(format, args...))
	}
}

// jobs is make's -j for a build of in.
func (b *Builder) jobs(in KernelInputs) int {
	if b.Jobs > 0 {
		return b.Jobs
	}
	if in.BuildFarm.Engine != "" {
		return FarmJobs(in.BuildFarm, runtime.NumCPU())
	}
	return runtime.NumCPU()
}

// PatchInput is a verified patch with the sha256 it was verified against.
type PatchInput struct {
	patches.Patch
	SHA256 string
}

// KernelInputs is everything a kernel build depends on. The CLI fills it
// from the cluster spec after fetch; tests fill it directly.
type KernelInputs struct {
	Role    string
	Version string
	// Tarball is the verified source tarball (normally a cache blob) and
	// TarballSHA256 its hash.
	Tarball       string
	TarballSHA256 string
	Patches       []PatchInput
	// Base is tinyconfig, defconfig, allnoconfig, or a path to a config file.
	Base string
	// Fragments are merged over the base in order (role fragment, vm, ...).
	Fragments []Fragment
	// IPVSSchedulers adds a fragment enabling every scheduler the tree defines.
	IPVSSchedulers bool
	// Options are the spec's own CONFIG_X=v lines, merged last.
	Options      []string
	LocalVersion string
	BuildFarm    cluster.BuildFarm
	// Package, when "deb" or "rpm", also builds the kernel's bindeb-pkg or
	// binrpm-pkg packages into the artifacts.
	Package string
}

// Package formats Builder.Kernel can produce.
const (
	PackageDeb = "deb"
	PackageRPM = "rpm"
)

// KernelArtifacts are the files of one kernel build.
type KernelArtifacts struct {
	Dir       string
	BzImage   string
	SystemMap string
	Config    string
	// Modules is a tar.gz of lib/modules/RELEASE, "" when CONFIG_MODULES is off.
	Modules string
	// Packages are the .deb or .rpm files of a build with Package set.
	Packages []string
	Release  string
	Log      string
	Manifest Manifest
	// Cached is true when the artifacts came from the cache without running make.
	Cached bool
}

// Manifest is manifest.json, written beside the artifacts.
type Manifest struct {
	Kind         string             `json:"kind"`
	Role         string             `json:"role,omitempty"`
	Version      string             `json:"version,omitempty"`
	Release      string             `json:"release,omitempty"`
	Key          string             `json:"key"`
	Inputs       any                `json:"inputs"`
	ConfigSHA256 string             `json:"configSHA256,omitempty"`
	Files        map[string]string  `json:"files"`
	Toolchain    map[string]string  `json:"toolchain"`
	Timings      map[string]float64 `json:"timingsSeconds"`
	CCache       *CCacheStats       `json:"ccache,omitempty"`
	Farm         *FarmStats         `json:"farm,omitempty"`
	Built        time.Time          `json:"built"`
}

// CCacheStats are ccache's hit and miss counts during one build.
type CCacheStats struct {
	Hits   int `json:"hits"`
	Misses int `json:"misses"`
}

// FarmStats is what a build farm was asked to do in one build.
type FarmStats struct {
	Engine string   `json:"engine"`
	Hosts  []string `json:"hosts"`
	// LocalFallbacks are the compiles distcc ran here after failing to
	// hand them to a host (their warnings are in build.log).
	LocalFallbacks int `json:"localFallbacks"`
}

// kernelKey is hashed into the cache key; changing any field rebuilds.
type kernelKey struct {
	Schema        int
	Arch          string
	TarballSHA256 string
	Patches       []string
	Base          string
	Fragments     []string
	Schedulers    bool
	Options       []string
	LocalVersion  string
	Toolchain     map[string]string
	Targets       []string
	// KCFLAGS are the user's own (from the environment), which lvsforge
	// adds its flags to; omitted when empty, like Package, so that keys of
	// builds without them are what they always were.
	KCFLAGS string `json:",omitempty"`
	Package string `json:",omitempty"`
}

func toolchain() map[string]string {
	return map[string]string{
		"gcc":  firstLine("gcc", "--version"),
		"ld":   firstLine("ld", "--version"),
		"make": firstLine("make", "--version"),
	}
}

func hashJSON(v any) string {
	data, _ := json.Marshal(v)
	s := sha256.Sum256(data)
	return hex.EncodeToString(s[:])
}

func hashBytes(b []byte) string {
	s := sha256.Sum256(b)
	return hex.EncodeToString(s[:])
}

var kernelTargets = []string{"bzImage", "modules"}

var localVersionRe = regexp.MustCompile(`^[A-Za-z0-9._+-]*$`)

func (in KernelInputs) key() (kernelKey, error) {
	k := kernelKey{
		Schema: 1, Arch: runtime.GOARCH, TarballSHA256: strings.ToLower(in.TarballSHA256),
		Schedulers: in.IPVSSchedulers, LocalVersion: in.LocalVersion,
		Toolchain: toolchain(), Targets: kernelTargets,
	}
	if !ValidSHA256(in.TarballSHA256) {
		return k, fmt.Errorf("build kernel: tarball sha256 %q is not a sha256", in.TarballSHA256)
	}
	if !localVersionRe.MatchString(in.LocalVersion) {
		return k, fmt.Errorf("build kernel: localVersion %q may only hold letters, digits and ._+-", in.LocalVersion)
	}
	switch in.Package {
	case "", PackageDeb, PackageRPM:
		k.Package = in.Package
	default:
		return k, fmt.Errorf("build kernel: package %q: want %s or %s", in.Package, PackageDeb, PackageRPM)
	}
	k.KCFLAGS = strings.TrimSpace(os.Getenv("KCFLAGS"))
	for _, p := range in.Patches {
		if !ValidSHA256(p.SHA256) {
			return k, fmt.Errorf("build kernel: patch %s has no sha256", p.Name)
		}
		k.Patches = append(k.Patches, fmt.Sprintf("%s -p%d", strings.ToLower(p.SHA256), p.Strip))
	}
	switch in.Base {
	case "tinyconfig", "defconfig", "allnoconfig":
		k.Base = in.Base
	case "":
		return k, errors.New("build kernel: no base config (tinyconfig, defconfig or a file)")
	default:
		sum, err := FileSHA256(in.Base)
		if err != nil {
			return k, fmt.Errorf("build kernel: base config: %w", err)
		}
		k.Base = "file:" + sum
	}
	for _, f := range in.Fragments {
		k.Fragments = append(k.Fragments, f.Name+":"+hashBytes(f.Data))
	}
	for _, o := range in.Options {
		// Appended one by one so that nil and empty lists give one key.
		k.Options = append(k.Options, strings.TrimSpace(o))
		if _, _, ok := ParseOption(o); !ok {
			return k, fmt.Errorf("build kernel: option %q is not CONFIG_NAME=value or \"# CONFIG_NAME is not set\"", o)
		}
	}
	return k, nil
}

// CacheKey is the key a build of these inputs is cached under.
func (in KernelInputs) CacheKey() (string, error) {
	k, err := in.key()
	if err != nil {
		return "", err
	}
	return hashJSON(k), nil
}

func kernelArtifacts(dir string, m Manifest, cached bool) *KernelArtifacts {
	a := &KernelArtifacts{
		Dir: dir, BzImage: filepath.Join(dir, "bzImage"), SystemMap: filepath.Join(dir, "System.map"),
		Config: filepath.Join(dir, "config"), Release: m.Release, Log: filepath.Join(dir, "build.log"),
		Manifest: m, Cached: cached,
	}
	if _, ok := m.Files["modules.tar.gz"]; ok {
		a.Modules = filepath.Join(dir, "modules.tar.gz")
	}
	for name := range m.Files {
		if strings.HasPrefix(name, "packages/") {
			a.Packages = append(a.Packages, filepath.Join(dir, name))
		}
	}
	sort.Strings(a.Packages)
	return a
}

// Kernel builds a kernel, or returns the cached artifacts of an identical
// earlier build without extracting or running make.
func (b *Builder) Kernel(ctx context.Context, in KernelInputs) (*KernelArtifacts, error) {
	start := time.Now()
	k, err := in.key()
	if err != nil {
		return nil, err
	}
	key := hashJSON(k)
	if dir, m, ok := b.cachedArtifacts("kernel", key); ok {
		b.status("cached", "%s kernel %s: cached (%s)", in.Role, m.Release, dir)
		return kernelArtifacts(dir, m, true), nil
	}
	if err := b.checkFarm(ctx, in); err != nil {
		return nil, err
	}
	timings := map[string]float64{}
	lap := func(name string, since time.Time) { timings[name] = time.Since(since).Seconds() }

	// The source tree depends only on the tarball and the patches, so roles
	// share it; each role has its own O= directory so its objects survive
	// for incremental rebuilds.
	srcKey := hashJSON([]any{k.TarballSHA256, k.Patches})[:20]
	srcRoot := filepath.Join(b.Cache.Dir, "work", "src-"+srcKey)
	t := time.Now()
	if err := b.prepareSource(ctx, in, srcRoot); err != nil {
		return nil, err
	}
	date, err := b.sourceDate(ctx, in, srcRoot)
	if err != nil {
		return nil, err
	}
	lap("extractAndPatch", t)
	src := SingleTopDir(srcRoot)
	role := in.Role
	if role == "" {
		role = "kernel"
	}
	outDir := filepath.Join(b.Cache.Dir, "work", "out-"+srcKey+"-"+role)
	// One build at a time per O= directory, across processes.
	st, cached, err := lockedStore(b, outDir+".lock", "kernel", key, kernelArtifacts)
	if err != nil || cached != nil {
		return cached, err
	}
	defer st.close()
	tmpArt, logPath := st.Tmp, st.LogPath

	env, makeVars, ccache, err := b.makeEnv(src, date, in)
	if err != nil {
		return nil, err
	}
	mk := command{dir: src, env: env, log: st.Log}

	t = time.Now()
	b.status("configure", "%s: configuring (%s + %d fragments + %d options)", role, in.Base, len(in.Fragments), len(in.Options))
	frags := append([]Fragment(nil), in.Fragments...)
	if in.IPVSSchedulers {
		sf, err := SchedulerFragment(src)
		if err != nil {
			return nil, fmt.Errorf("build kernel: %w", err)
		}
		frags = append(frags, sf)
	}
	if err := Configure(ctx, mk, logPath, ConfigRequest{
		SrcDir: src, OutDir: outDir, Base: in.Base, Fragments: frags,
		Options: in.Options, LocalVersion: in.LocalVersion, MakeVars: makeVars,
	}); err != nil {
		return nil, err
	}
	lap("configure", t)
	final, err := ReadConfig(filepath.Join(outDir, ".config"))
	if err != nil {
		return nil, err
	}
	modules := final["MODULES"] == "y"

	var before CCacheStats
	if ccache != "" {
		before = ccacheStats(ccache)
	}
	t = time.Now()
	targets := []string{"bzImage"}
	if modules {
		targets = append(targets, "modules")
	}
	objects, fallbacks := 0, 0
	mk.line = func(l string) {
		if strings.HasPrefix(l, "  CC ") || strings.HasPrefix(l, "  AS ") {
			objects++
			if objects%50 == 0 {
				b.status("compile", "%s: %d objects compiled", role, objects)
			}
		}
		if distccFallback(l) {
			fallbacks++
		}
	}
	jobs := b.jobs(in)
	b.status("compile", "%s: make -j%d %s", role, jobs, strings.Join(targets, " "))
	args := append([]string{"O=" + outDir, fmt.Sprintf("-j%d", jobs)}, makeVars...)
	if err := mk.run(ctx, logPath, "make", append(args, targets...)...); err != nil {
		return nil, fmt.Errorf("build %s kernel: %w", role, err)
	}
	lap("compile", t)
	mk.line = nil
	release, err := output(ctx, src, env, "make", append([]string{"-s", "O=" + outDir}, append(makeVars, "kernelrelease")...)...)
	if err != nil {
		return nil, fmt.Errorf("build %s kernel: %w", role, err)
	}

	files := map[string]string{}
	for name, from := range map[string]string{
		"bzImage":    filepath.Join(outDir, "arch", "x86", "boot", "bzImage"),
		"System.map": filepath.Join(outDir, "System.map"),
		"config":     filepath.Join(outDir, ".config"),
	} {
		if err := fsutil.CopyFile(from, filepath.Join(tmpArt, name), 0o644); err != nil {
			return nil, fmt.Errorf("collect kernel artifacts: %w", err)
		}
	}
	if err := os.WriteFile(filepath.Join(tmpArt, "kernelrelease"), []byte(release+"\n"), 0o644); err != nil {
		return nil, fmt.Errorf("collect kernel artifacts: %w", err)
	}
	if modules {
		t = time.Now()
		b.status("modules", "%s: installing modules", role)
		stage := filepath.Join(outDir, ".lvsforge-modules")
		os.RemoveAll(stage)
		if err := mk.run(ctx, logPath, "make", append(append([]string{"O=" + outDir, "INSTALL_MOD_PATH=" + stage}, makeVars...), "modules_install")...); err != nil {
			return nil, fmt.Errorf("install %s modules: %w", role, err)
		}
		// modules_install links build and source to this machine's work
		// tree: they dangle on every host the modules go to, and would make
		// two builds of one kernel differ by where their cache is.
		for _, link := range []string{"build", "source"} {
			if err := os.Remove(filepath.Join(stage, "lib", "modules", release, link)); err != nil && !errors.Is(err, fs.ErrNotExist) {
				return nil, fmt.Errorf("pack %s modules: %w", role, err)
			}
		}
		if err := writeTarGz(filepath.Join(tmpArt, "modules.tar.gz"), stage, date); err != nil {
			return nil, fmt.Errorf("pack %s modules: %w", role, err)
		}
		lap("modules", t)
	}
	names := []string{"bzImage", "System.map", "config", "kernelrelease", "modules.tar.gz"}
	if in.Package != "" {
		t = time.Now()
		b.status("package", "%s: make %s", role, packageTargets[in.Package])
		pkgs, err := b.buildPackages(ctx, mk, logPath, outDir, append([]string{fmt.Sprintf("-j%d", jobs)}, makeVars...), in.Package, release, date, filepath.Join(tmpArt, "packages"))
		if err != nil {
			return nil, fmt.Errorf("package %s kernel: %w", role, err)
		}
		for _, p := range pkgs {
			names = append(names, "packages/"+filepath.Base(p))
		}
		lap("package", t)
	}
	for _, name := range names {
		p := filepath.Join(tmpArt, name)
		if _, err := os.Stat(p); err != nil {
			continue
		}
		if files[name], err = FileSHA256(p); err != nil {
			return nil, err
		}
	}
	m := Manifest{
		Kind: "kernel", Role: role, Version: in.Version, Release: release, Key: key, Inputs: k,
		ConfigSHA256: files["config"], Files: files, Toolchain: k.Toolchain, Timings: timings, Built: time.Now().UTC(),
	}
	if ccache != "" {
		after := ccacheStats(ccache)
		m.CCache = &CCacheStats{Hits: after.Hits - before.Hits, Misses: after.Misses - before.Misses}
	}
	if f := in.BuildFarm; f.Engine != "" {
		m.Farm = &FarmStats{Engine: f.Engine, Hosts: f.Hosts, LocalFallbacks: fallbacks}
		if fallbacks > 0 {
			b.status("farm", "%s: %d compiles ran here, not on the build farm (distcc's warnings are in %s)", role, fallbacks, filepath.Join(st.Dir, "build.log"))
		}
	}
	timings["total"] = time.Since(start).Seconds()
	if err := st.commit(m); err != nil {
		return nil, err
	}
	// A readable name per role and release, pointing at the keyed directory.
	link := filepath.Join(b.Cache.Dir, "artifacts", "kernel", role+"-"+release)
	os.Remove(link)
	os.Symlink(key, link)
	b.status("done", "%s kernel %s built in %.0fs (%s)", role, release, timings["total"], st.Dir)
	return kernelArtifacts(st.Dir, m, false), nil
}

// prepareSource extracts and patches the tree once per (tarball, patches);
// it appears at srcRoot only when complete.
func (b *Builder) prepareSource(ctx context.Context, in KernelInputs, srcRoot string) error {
	if _, err := os.Stat(srcRoot); err == nil {
		return nil
	}
	unlock, err := lock(srcRoot + ".lock")
	if err != nil {
		return fmt.Errorf("lock source tree: %w", err)
	}
	defer unlock()
	if _, err := os.Stat(srcRoot); err == nil {
		return nil
	}
	tmp := srcRoot + ".tmp"
	os.RemoveAll(tmp)
	b.status("extract", "extracting linux %s source", in.Version)
	start, shown := time.Now(), time.Now()
	var date sourceDate
	err = Extract(ctx, in.Tarball, tmp, ExtractOptions{
		SystemXZ: b.SystemXZ,
		Header:   date.observe,
		Progress: func(read, size int64) {
			if read < size && time.Since(shown) >= time.Second {
				shown = time.Now()
				b.status("extract", "extracting linux %s source: %s", in.Version, byteProgress(read, size, time.Since(start)))
			}
		},
	})
	if err != nil {
		return err
	}
	if st, err := os.Stat(in.Tarball); err == nil {
		b.status("extracted", "extracted linux %s source: %s in %.1fs", in.Version, mib(st.Size()), time.Since(start).Seconds())
	}
	// Recorded before any patch changes a file's mtime.
	if err := writeSourceDate(srcRoot, date.time()); err != nil {
		return err
	}
	if len(in.Patches) > 0 {
		b.status("patch", "applying %d patches", len(in.Patches))
		var series []patches.Patch
		for _, p := range in.Patches {
			series = append(series, p.Patch)
		}
		if _, err := patches.Apply(ctx, SingleTopDir(tmp), series); err != nil {
			os.RemoveAll(tmp)
			return err
		}
	}
	if err := os.Rename(tmp, srcRoot); err != nil {
		return fmt.Errorf("store source tree: %w", err)
	}
	return nil
}

// makeEnv returns the environment and make variables of a reproducible
// build, and the ccache binary in use ("" when none, and always on a build
// farm).
func (b *Builder) makeEnv(src string, date time.Time, in KernelInputs) (env, vars []string, ccache string, err error) {
	// The work directory's name must not leak into the image. The user's
	// own KCFLAGS stay (they are part of the cache key).
	kcflags := "-ffile-prefix-map=" + src + "/="
	if user := strings.TrimSpace(os.Getenv("KCFLAGS")); user != "" {
		kcflags = user + " " + kcflags
	}
	env = append(os.Environ(),
		"LC_ALL=C",
		"KBUILD_BUILD_TIMESTAMP="+kbuildTimestamp(date),
		"KBUILD_BUILD_USER=lvsforge",
		"KBUILD_BUILD_HOST=lvsforge",
		"KBUILD_BUILD_VERSION=1",
		"KCFLAGS="+kcflags,
	)
	farm, err := farmEngine(in.BuildFarm)
	if err != nil {
		return nil, nil, "", err
	}
	if farm != "" {
		// No ccache on a farm: its hits would hide a farm that compiles
		// nothing, and on a miss it runs the preprocessor here once more
		// before distcc runs it again, on the machine that preprocesses
		// for every host and is a farm's bottleneck. Unchanged inputs are
		// still answered by the artifact cache and the kept O= directory.
		env = append(env, FarmEnv(in.BuildFarm)...)
		return env, []string{"CC=" + farm + " " + farmCompiler}, "", nil
	}
	if !b.NoCCache {
		if p, err := exec.LookPath("ccache"); err == nil {
			ccache = p
			// Paths under the cache differ per source key; relative paths
			// let ccache hit across them.
			env = append(env, "CCACHE_BASEDIR="+filepath.Join(b.Cache.Dir, "work"))
			return env, []string{"CC=" + ccache + " gcc"}, ccache, nil
		}
	}
	return env, nil, "", nil
}

var ccacheStatRe = regexp.MustCompile(`(?m)^(direct_cache_hit|preprocessed_cache_hit|cache_miss)\s+(\d+)`)

func ccacheStats(ccache string) CCacheStats {
	out, err := exec.Command(ccache, "--print-stats").Output()
	if err != nil {
		return CCacheStats{}
	}
	var s CCacheStats
	for _, m := range ccacheStatRe.FindAllStringSubmatch(string(out), -1) {
		n, _ := strconv.Atoi(m[2])
		if m[1] == "cache_miss" {
			s.Misses += n
		} else {
			s.Hits += n
		}
	}
	return s
}

// writeTarGz packs dir into a tar.gz with sorted names, root ownership and
// one fixed mtime, so the same tree always gives the same bytes.
func writeTarGz(path, dir string, mtime time.Time) error {
	f, err := os.Create(path)
	if err != nil {
		return err
	}
	defer f.Close()
	zw := gzip.NewWriter(f)
	tw := tar.NewWriter(zw)
	var names []string
	err = filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		if p != dir {
			names = append(names, p)
		}
		return nil
	})
	if err != nil {
		return err
	}
	sort.Strings(names)
	for _, p := range names {
		info, err := os.Lstat(p)
		if err != nil {
			return err
		}
		link := ""
		if info.Mode()&fs.ModeSymlink != 0 {
			if link, err = os.Readlink(p); err != nil {
				return err
			}
		}
		hdr, err := tar.FileInfoHeader(info, link)
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(dir, p)
		hdr.Name = filepath.ToSlash(rel)
		if info.IsDir() {
			hdr.Name += "/"
		}
		hdr.ModTime, hdr.AccessTime, hdr.ChangeTime = mtime, time.Time{}, time.Time{}
		hdr.Uid, hdr.Gid, hdr.Uname, hdr.Gname = 0, 0, "root", "root"
		hdr.Format = tar.FormatPAX
		if err := tw.WriteHeader(hdr); err != nil {
			return err
		}
		if info.Mode().IsRegular() {
			in, err := os.Open(p)
			if err != nil {
				return err
			}
			_, err = io.Copy(tw, in)
			in.Close()
			if err != nil {
				return err
			}
		}
	}
	if err := tw.Close(); err != nil {
		return err
	}
	if err := zw.Close(); err != nil {
		return err
	}
	return f.Close()
}
