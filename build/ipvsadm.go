package build

import (
	"context"
	"debug/elf"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lvsforge/lvsforge/internal/fsutil"
)

// IpvsadmInputs is everything an ipvsadm build depends on.
type IpvsadmInputs struct {
	// Tarball is the verified ipvsadm source tarball, TarballSHA256 its hash.
	Tarball       string
	TarballSHA256 string
	// Static links libnl and popt in, for hosts that lack those libraries.
	Static bool
}

// IpvsadmArtifacts are the files of one ipvsadm build.
type IpvsadmArtifacts struct {
	Dir      string
	Binary   string
	Version  string
	Log      string
	Manifest Manifest
	Cached   bool
}

type ipvsadmKey struct {
	Schema        int
	TarballSHA256 string
	Static        bool
	Toolchain     map[string]string
	Libs          map[string]string
}

// Ipvsadm builds ipvsadm from its source tarball with libnl-genl-3 and popt
// (Debian: libnl-3-dev libnl-genl-3-dev libpopt-dev pkg-config), or returns
// the cached binary of an identical earlier build.
func (b *Builder) Ipvsadm(ctx context.Context, in IpvsadmInputs) (*IpvsadmArtifacts, error) {
	start := time.Now()
	if !ValidSHA256(in.TarballSHA256) {
		return nil, fmt.Errorf("build ipvsadm: tarball sha256 %q is not a sha256", in.TarballSHA256)
	}
	libs := map[string]string{}
	for _, pc := range []string{"libnl-genl-3.0", "popt"} {
		v, err := output(ctx, "", nil, "pkg-config", "--modversion", pc)
		if err != nil {
			return nil, fmt.Errorf("build ipvsadm: %s not found by pkg-config (Debian: apt-get install libnl-3-dev libnl-genl-3-dev libpopt-dev pkg-config): %w", pc, err)
		}
		libs[pc] = v
	}
	k := ipvsadmKey{Schema: 1, TarballSHA256: strings.ToLower(in.TarballSHA256), Static: in.Static, Toolchain: toolchain(), Libs: libs}
	key := hashJSON(k)
	if dir, m, ok := b.cachedArtifacts("ipvsadm", key); ok {
		b.status("cached", "ipvsadm %s: cached (%s)", m.Version, dir)
		return ipvsadmArtifacts(dir, m, true), nil
	}
	if err := os.MkdirAll(filepath.Join(b.Cache.Dir, "work"), 0o755); err != nil {
		return nil, fmt.Errorf("build ipvsadm: %w", err)
	}
	st, cached, err := lockedStore(b, filepath.Join(b.Cache.Dir, "work", "ipvsadm-"+key[:16]+".lock"), "ipvsadm", key, ipvsadmArtifacts)
	if err != nil || cached != nil {
		return cached, err
	}
	defer st.close()
	work, err := os.MkdirTemp(filepath.Join(b.Cache.Dir, "work"), "ipvsadm-")
	if err != nil {
		return nil, fmt.Errorf("build ipvsadm: %w", err)
	}
	defer os.RemoveAll(work)

	b.status("extract", "extracting %s", filepath.Base(in.Tarball))
	if err := Extract(ctx, in.Tarball, filepath.Join(work, "src"), ExtractOptions{SystemXZ: b.SystemXZ}); err != nil {
		return nil, err
	}
	src := SingleTopDir(filepath.Join(work, "src"))
	ver, _ := os.ReadFile(filepath.Join(src, "VERSION"))
	version := strings.TrimSpace(string(ver))

	// No -j: ipvsadm's Makefile does not order the link after libipvs.a.
	var args []string
	if in.Static {
		// The final link line is "$(CC) $(CFLAGS) -o $@ $^ $(LIBS)": -static
		// there makes only the ipvsadm binary static, not libipvs.so.
		static, err := output(ctx, "", nil, "pkg-config", "--static", "--libs", "libnl-genl-3.0", "popt")
		if err != nil {
			return nil, fmt.Errorf("build ipvsadm: %w", err)
		}
		args = append(args, "LIBS=-static "+static)
	}
	env := append(os.Environ(), "LC_ALL=C", "SOURCE_DATE_EPOCH=0")
	b.status("compile", "ipvsadm %s: make%s", version, map[bool]string{true: " (static)", false: ""}[in.Static])
	mk := command{dir: src, env: env, log: st.Log}
	if err := mk.run(ctx, st.LogPath, "make", args...); err != nil {
		return nil, fmt.Errorf("build ipvsadm: %w", err)
	}
	bin := filepath.Join(st.Tmp, "ipvsadm")
	if err := fsutil.CopyFile(filepath.Join(src, "ipvsadm"), bin, 0o755); err != nil {
		return nil, fmt.Errorf("collect ipvsadm: %w", err)
	}
	if in.Static {
		if dyn, err := IsDynamic(bin); err != nil || dyn {
			return nil, fmt.Errorf("build ipvsadm: --static produced a dynamically linked binary (%v)", err)
		}
	}
	sum, err := FileSHA256(bin)
	if err != nil {
		return nil, err
	}
	m := Manifest{
		Kind: "ipvsadm", Version: version, Release: version, Key: key, Inputs: k,
		Files: map[string]string{"ipvsadm": sum}, Toolchain: k.Toolchain,
		Timings: map[string]float64{"total": time.Since(start).Seconds()}, Built: time.Now().UTC(),
	}
	if err := st.commit(m); err != nil {
		return nil, err
	}
	b.status("done", "ipvsadm %s built (%s)", version, st.Dir)
	return ipvsadmArtifacts(st.Dir, m, false), nil
}

func ipvsadmArtifacts(dir string, m Manifest, cached bool) *IpvsadmArtifacts {
	return &IpvsadmArtifacts{Dir: dir, Binary: filepath.Join(dir, "ipvsadm"), Version: m.Version,
		Log: filepath.Join(dir, "build.log"), Manifest: m, Cached: cached}
}

// IsDynamic reports whether an ELF binary needs a dynamic loader.
func IsDynamic(path string) (bool, error) {
	f, err := elf.Open(path)
	if err != nil {
		return false, fmt.Errorf("read ELF: %w", err)
	}
	defer f.Close()
	for _, p := range f.Progs {
		if p.Type == elf.PT_INTERP {
			return true, nil
		}
	}
	return false, nil
}
