package build

import (
	"bytes"
	"context"
	"os"
	"path/filepath"
	"testing"

	"github.com/lvsforge/lvsforge/internal/testenv"
)

// ipvsadmTarball is the real ipvsadm 1.31 source as Debian's source mirror
// serves it (apt-get source --download-only ipvsadm), kept in testdata so
// the test needs no network.
const (
	ipvsadmTarball = "testdata/ipvsadm_1.31.orig.tar.gz"
	ipvsadmSHA256  = "7276bcf214f31051188b2e44f11029e57303f37e54126e517000c1b2123a6d4e"
)

func TestBuildIpvsadm(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	testenv.IpvsadmBuild(t)
	data, err := os.ReadFile(ipvsadmTarball)
	if err != nil {
		t.Fatal(err)
	}
	// Through the real fetch path: loopback mirror, pinned sha256.
	m := newMirror(t)
	m.files["/ipvsadm/ipvsadm-1.31.tar.gz"] = data
	f := newTestFetcher(t)
	paths, err := f.Fetch(context.Background(), Source{Name: "ipvsadm-1.31.tar.gz", URLs: []string{m.url("/ipvsadm/ipvsadm-1.31.tar.gz")}, SHA256: ipvsadmSHA256})
	if err != nil {
		t.Fatal(err)
	}
	b := &Builder{Cache: f.Cache}
	for _, static := range []bool{false, true} {
		art, err := b.Ipvsadm(context.Background(), IpvsadmInputs{Tarball: paths[0], TarballSHA256: ipvsadmSHA256, Static: static})
		if err != nil {
			t.Fatal(err)
		}
		if art.Version != "1.31" || art.Cached {
			t.Errorf("static=%v: version %q cached %v", static, art.Version, art.Cached)
		}
		dyn, err := IsDynamic(art.Binary)
		if err != nil || dyn == static {
			t.Errorf("static=%v: binary dynamic=%v (%v)", static, dyn, err)
		}
		// Running it would talk to the host's IPVS (and modprobe ip_vs):
		// the version string compiled in is enough here; the VM tests run it.
		bin, err := os.ReadFile(art.Binary)
		if err != nil || !bytes.Contains(bin, []byte("v1.31 2019/12/24")) {
			t.Errorf("static=%v: binary lacks the 1.31 version string (%v)", static, err)
		}
		again, err := b.Ipvsadm(context.Background(), IpvsadmInputs{Tarball: paths[0], TarballSHA256: ipvsadmSHA256, Static: static})
		if err != nil || !again.Cached || again.Dir != art.Dir {
			t.Errorf("static=%v: second build not from the cache (%v)", static, err)
		}
		if _, err := os.Stat(filepath.Join(art.Dir, "manifest.json")); err != nil {
			t.Error(err)
		}
	}
}
