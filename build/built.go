package build

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
)

// ErrNotBuilt means the cache holds no build of what was asked for.
var ErrNotBuilt = errors.New("not built")

// ReadManifest reads the manifest.json of an artifact directory.
func ReadManifest(dir string) (Manifest, error) {
	var m Manifest
	b, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil {
		return m, fmt.Errorf("read manifest: %w", err)
	}
	if err := json.Unmarshal(b, &m); err != nil {
		return m, fmt.Errorf("parse %s: %w", filepath.Join(dir, "manifest.json"), err)
	}
	return m, nil
}

// LatestKernel is the directory of the last kernel built for a spec's role
// and release (the artifacts/kernel/ROLE-RELEASE link a build leaves), in
// the layout push --kernel installs from. It does not build: a release
// never built is ErrNotBuilt, and a build whose options or kernel source
// differ from the spec's is refused, naming the difference. The vm
// fragment is not compared: whichever of the two builds came last is
// what the user built last.
func LatestKernel(cacheDir string, s *cluster.Spec, role, release string) (string, error) {
	rebuild := fmt.Sprintf("build it with `lvsforge build kernel --role %s`", role)
	dir, err := filepath.EvalSymlinks(filepath.Join(cacheDir, "artifacts", "kernel", role+"-"+release))
	if err != nil {
		return "", fmt.Errorf("find the %s kernel %s in %s: %w (%s)", role, release, cacheDir, ErrNotBuilt, rebuild)
	}
	m, err := ReadManifest(dir)
	if err != nil {
		return "", fmt.Errorf("find the %s kernel %s: %w", role, release, err)
	}
	var in struct {
		Options       []string
		TarballSHA256 string
	}
	raw, _ := json.Marshal(m.Inputs)
	json.Unmarshal(raw, &in)
	rk, err := RoleKernel(s, role)
	if err != nil {
		return "", err
	}
	var want []string
	for _, o := range rk.Options {
		want = append(want, strings.TrimSpace(o))
	}
	switch {
	case m.Kind != "kernel" || m.Release != release:
		return "", fmt.Errorf("find the %s kernel %s: %s holds %s %s", role, release, dir, m.Kind, m.Release)
	case strings.Join(in.Options, "\n") != strings.Join(want, "\n"):
		return "", fmt.Errorf("find the %s kernel %s: the cached build (%s) has options %q, the spec %q: %s", role, release, dir, in.Options, want, rebuild)
	case s.Kernel.Source.SHA256 != "" && !strings.EqualFold(in.TarballSHA256, s.Kernel.Source.SHA256):
		return "", fmt.Errorf("find the %s kernel %s: the cached build (%s) is of another kernel source than the spec's sha256: %s", role, release, dir, rebuild)
	}
	return dir, nil
}

// LatestIpvsadm is the ipvsadm binary of the cache to install: a static one
// before a dynamic one (it runs on any host), then the newest; "" when
// none was built.
func LatestIpvsadm(cacheDir string) (string, error) {
	dirs, err := filepath.Glob(filepath.Join(cacheDir, "artifacts", "ipvsadm", "*"))
	if err != nil {
		return "", fmt.Errorf("find ipvsadm: %w", err)
	}
	best, bestStatic := "", false
	var bestTime time.Time
	for _, d := range dirs {
		m, err := ReadManifest(d)
		if err != nil || m.Kind != "ipvsadm" {
			continue
		}
		var in struct{ Static bool }
		raw, _ := json.Marshal(m.Inputs)
		json.Unmarshal(raw, &in)
		bin := filepath.Join(d, "ipvsadm")
		if _, err := os.Stat(bin); err != nil {
			continue
		}
		if best == "" || (in.Static && !bestStatic) || (in.Static == bestStatic && m.Built.After(bestTime)) {
			best, bestStatic, bestTime = bin, in.Static, m.Built
		}
	}
	return best, nil
}
