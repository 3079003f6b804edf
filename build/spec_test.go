package build

import (
	"context"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/cluster"
)

func TestFetchSpecWithPatches(t *testing.T) {
	dir := t.TempDir()
	tarball := payload(200_000)
	os.WriteFile(filepath.Join(dir, "linux.tar.xz"), tarball, 0o644)
	local := []byte("--- a/x\n+++ b/x\n")
	os.WriteFile(filepath.Join(dir, "01-local.patch"), local, 0o644)
	remote := []byte("--- a/y\n+++ b/y\n")
	m := newMirror(t)
	m.files["/02-remote.patch.gz"] = remote
	ipvsadm, err := os.ReadFile(ipvsadmTarball)
	if err != nil {
		t.Fatal(err)
	}
	m.files["/ipvsadm.tar.gz"] = ipvsadm

	s := &cluster.Spec{Dir: dir, Kernel: cluster.Kernel{
		Version: "6.1.0",
		Source:  cluster.KernelSource{Type: cluster.SourceDistro, Path: "linux.tar.xz", SHA256: sha(tarball)},
		Config:  cluster.KernelConfig{Base: "tinyconfig"},
		Director: cluster.RoleKernel{PatchSets: []string{"lvs"}, LocalVersion: "-lvs",
			Options: []string{"CONFIG_IP_VS_TAB_BITS=14"}},
	}, PatchSets: []cluster.PatchSet{{Name: "lvs", Patches: []cluster.PatchEntry{
		{File: "01-local.patch", SHA256: sha(local)},
		{URL: m.url("/02-remote.patch.gz"), SHA256: sha(remote)},
	}}}}
	f := newTestFetcher(t)
	src := IpvsadmSource
	src.URLs = []string{m.url("/missing"), m.url("/ipvsadm.tar.gz")}
	got, err := f.FetchSpec(context.Background(), s, FetchOptions{Ipvsadm: src})
	if err != nil {
		t.Fatal(err)
	}
	if got.Kernel.Path != f.Cache.BlobPath(sha(tarball)) {
		t.Errorf("kernel at %s", got.Kernel.Path)
	}
	series := got.Patches[cluster.RoleDirector]
	if len(series) != 2 || series[0].Name != "lvs/01-local.patch" || series[1].Path != f.Cache.BlobPath(sha(remote)) || series[1].Strip != 1 {
		t.Fatalf("director series = %+v", series)
	}
	if len(got.Patches[cluster.RoleRealServer]) != 0 {
		t.Errorf("realserver got patches %+v", got.Patches[cluster.RoleRealServer])
	}
	if got.Ipvsadm == nil || got.Ipvsadm.SHA256 != IpvsadmSource.SHA256 {
		t.Errorf("ipvsadm = %+v", got.Ipvsadm)
	}
	if n := len(got.Items()); n != 4 {
		t.Errorf("Items() has %d entries, want 4", n)
	}

	in, err := KernelInputsFor(s, cluster.RoleDirector, got, true)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, fr := range in.Fragments {
		names = append(names, fr.Name)
	}
	if strings.Join(names, ",") != "director,vm" || !in.IPVSSchedulers || in.LocalVersion != "-lvs" || len(in.Patches) != 2 {
		t.Errorf("inputs = %+v", in)
	}
	// A firewall-mark service: the director's kernel gets what its
	// iptables marks need; the bgp backend: the director's kernel gets
	// policy routing (the table lvs-bgp keeps the announcements in). The
	// real servers' get neither.
	fw := *s
	fw.Services = append([]cluster.Service{{Name: "mail", VIP: "192.168.7.111", FWMark: 7, FWMarkPorts: []int{25}}}, s.Services...)
	bgp := *s
	bgp.HA.Backend = cluster.BackendBGP
	for _, tc := range []struct {
		what     string
		spec     *cluster.Spec
		director string
	}{{"a firewall-mark service", &fw, "director,fwmark,vm"}, {"the bgp backend", &bgp, "director,bgp,vm"}} {
		for role, want := range map[string]string{cluster.RoleDirector: tc.director, cluster.RoleRealServer: "realserver,vm"} {
			fin, err := KernelInputsFor(tc.spec, role, got, true)
			if err != nil {
				t.Fatal(err)
			}
			var fnames []string
			for _, fr := range fin.Fragments {
				fnames = append(fnames, fr.Name)
			}
			if strings.Join(fnames, ",") != want {
				t.Errorf("%s fragments with %s = %v, want %s", role, tc.what, fnames, want)
			}
		}
	}
	k1, err := in.CacheKey()
	if err != nil {
		t.Fatal(err)
	}
	in.Options = append(in.Options, "CONFIG_IP_VS_DEBUG=y")
	if k2, _ := in.CacheKey(); k2 == k1 {
		t.Error("cache key ignores options")
	}

	// A wrong pin on a local patch: nothing is built from it.
	s.PatchSets[0].Patches[0].SHA256 = sha([]byte("other"))
	if _, err := f.FetchSpec(context.Background(), s, FetchOptions{Ipvsadm: src}); err == nil || !strings.Contains(err.Error(), "lvs/01-local.patch") {
		t.Errorf("wrong patch pin: err = %v", err)
	}
}
