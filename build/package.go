package build

import (
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"time"
)

// packageTargets are the kernel's own make targets for each format.
var packageTargets = map[string]string{PackageDeb: "bindeb-pkg", PackageRPM: "binrpm-pkg"}

// packageTools are the programs each format needs beyond a kernel build,
// with the Debian packages that have them (rsync: headers_install).
var packageTools = map[string][][2]string{
	PackageDeb: {{"dpkg-buildpackage", "dpkg-dev"}, {"fakeroot", "fakeroot"}, {"rsync", "rsync"}},
	PackageRPM: {{"rpmbuild", "rpm"}, {"rsync", "rsync"}},
}

// packageEnv makes the kernel's packaging scripts reuse the build that
// just ran instead of relinking: bindeb-pkg runs make again with
// KBUILD_BUILD_VERSION set to the package revision, so the revision must be
// the 1 the build used, or the packaged image would differ from bzImage.
// The maintainer and dates are fixed too, so the packages do not vary by
// user, host or day.
func packageEnv(release string, date time.Time) []string {
	return []string{
		"KDEB_PKGVERSION=" + release + "-1",
		"KDEB_CHANGELOG_DIST=unstable",
		"DEBEMAIL=lvsforge <lvsforge@localhost>",
		"SOURCE_DATE_EPOCH=" + strconv.FormatInt(date.Unix(), 10),
	}
}

// buildPackages runs bindeb-pkg or binrpm-pkg in the O= directory of a
// finished build and moves the packages into dest, returning their paths.
// dpkg-buildpackage writes into the parent of the O= directory, which all
// builds share, so packaging holds a lock on it.
func (b *Builder) buildPackages(ctx context.Context, mk command, logName, outDir string, makeArgs []string, format, release string, date time.Time, dest string) ([]string, error) {
	for _, tool := range packageTools[format] {
		if _, err := exec.LookPath(tool[0]); err != nil {
			return nil, fmt.Errorf("find %s for %s packages: not installed (apt-get install %s)", tool[0], format, tool[1])
		}
	}
	if err := os.MkdirAll(dest, 0o755); err != nil {
		return nil, err
	}
	mk.env = append(append([]string(nil), mk.env...), packageEnv(release, date)...)
	args := append([]string{"O=" + outDir}, makeArgs...)
	var out string
	var patterns []string
	switch format {
	case PackageDeb:
		out = filepath.Dir(outDir)
		unlock, err := lock(filepath.Join(out, ".package.lock"))
		if err != nil {
			return nil, err
		}
		defer unlock()
		patterns = []string{"*.deb"}
		// -d: dpkg-buildpackage would check the generated Build-Depends
		// (cpio, ...) in dpkg's database; the build they are for is done.
		args = append(args, "DPKG_FLAGS=-d")
		clean := func() {
			for _, pat := range []string{"*.deb", "*.buildinfo", "*.changes"} {
				old, _ := filepath.Glob(filepath.Join(out, pat))
				for _, p := range old {
					os.Remove(p)
				}
			}
		}
		clean() // an interrupted run's leftovers are not this build's
		defer clean()
	case PackageRPM:
		out = filepath.Join(outDir, ".lvsforge-rpm")
		if strings.ContainsAny(out, "'\"\\ ") {
			return nil, fmt.Errorf("build rpm packages: the cache path %s holds a quote or space, which rpmbuild's make variable cannot carry", out)
		}
		os.RemoveAll(out)
		defer os.RemoveAll(out)
		args = append(args, "RPMOPTS=--define '_topdir "+out+"'")
		patterns = []string{"RPMS/*/*.rpm"}
	default:
		return nil, fmt.Errorf("build packages: unknown format %q", format)
	}
	if err := mk.run(ctx, logName, "make", append(args, packageTargets[format])...); err != nil {
		return nil, err
	}
	var pkgs []string
	for _, pat := range patterns {
		found, _ := filepath.Glob(filepath.Join(out, pat))
		for _, p := range found {
			to := filepath.Join(dest, filepath.Base(p))
			if err := os.Rename(p, to); err != nil {
				return nil, err
			}
			pkgs = append(pkgs, to)
		}
	}
	if len(pkgs) == 0 {
		return nil, fmt.Errorf("make %s wrote no package into %s", packageTargets[format], out)
	}
	sort.Strings(pkgs)
	return pkgs, nil
}
