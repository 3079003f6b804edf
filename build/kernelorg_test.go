package build

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/lvsforge/lvsforge/cluster"
)

// kernelOrgSpec is a spec whose kernel comes from kernel.org mirrors.
func kernelOrgSpec(version string, mirrors ...string) *cluster.Spec {
	return &cluster.Spec{Dir: "/nonexistent", Kernel: cluster.Kernel{
		Version: version,
		Source:  cluster.KernelSource{Type: cluster.SourceKernelOrg, Mirrors: mirrors},
		Config:  cluster.KernelConfig{Base: "tinyconfig"},
	}}
}

func fingerprint(e *openpgp.Entity) string { return fmt.Sprintf("%X", e.PrimaryKey.Fingerprint) }

// TestKernelOrgSecondFetchOffline: once the kernel, its signed checksum
// list and ipvsadm are in the cache, FetchSpec needs no network: it works
// with the mirror shut down. The cached list is verified again each time,
// so another keyring does not accept it.
func TestKernelOrgSecondFetchOffline(t *testing.T) {
	key := testKey(t, "autosigner")
	tarball, ipvsadm := payload(300_000), payload(20_000)
	m := newMirror(t)
	m.files["/pub/v6.x/sha256sums.asc"] = clearsignText(t, key, sha(tarball)+"  linux-6.1.100.tar.xz\n")
	m.files["/pub/v6.x/linux-6.1.100.tar.xz"] = tarball
	m.files["/ipvsadm.tar.gz"] = ipvsadm
	s := kernelOrgSpec("6.1.100", m.url("/pub"))
	opt := FetchOptions{
		Verifier: Verifier{Keyring: openpgp.EntityList{key}, RequireFingerprint: fingerprint(key)},
		Ipvsadm:  Source{Name: "ipvsadm.tar.gz", URLs: []string{m.url("/ipvsadm.tar.gz")}, SHA256: sha(ipvsadm)},
	}
	f := newTestFetcher(t)
	first, err := f.FetchSpec(context.Background(), s, opt)
	if err != nil {
		t.Fatal(err)
	}
	m.srv.Close()
	offline := &Fetcher{Cache: f.Cache, Rounds: 1, Backoff: time.Millisecond}
	second, err := offline.FetchSpec(context.Background(), s, opt)
	if err != nil {
		t.Fatalf("second fetch with the mirror down: %v", err)
	}
	if fmt.Sprint(first.Items()) != fmt.Sprint(second.Items()) {
		t.Errorf("second fetch %+v, want %+v", second.Items(), first.Items())
	}
	other := opt
	other.Verifier = Verifier{Keyring: openpgp.EntityList{testKey(t, "other")}}
	if _, err := offline.FetchSpec(context.Background(), s, other); err == nil {
		t.Error("the cached sha256sums.asc was accepted under a keyring that does not verify it")
	}
}

func detachSign(t testing.TB, key *openpgp.Entity, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	if err := openpgp.ArmoredDetachSign(&buf, key, bytes.NewReader(data), nil); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

// TestKernelOrgTarSign: with kernel.source.verifyTarSign, FetchSpec fetches
// linux-VERSION.tar.sign from the mirror and checks it over the
// uncompressed tarball; a signature by another key, over other bytes, or a
// missing one fails the fetch. A verified one is remembered: the next fetch
// needs neither the network nor another decompression.
func TestKernelOrgTarSign(t *testing.T) {
	autosigner, releaser, mallory := testKey(t, "autosigner"), testKey(t, "gregkh"), testKey(t, "mallory")
	raw := makeTar(t, goodEntries)
	tarball := compress(t, FormatXZ, raw)
	tampered := bytes.Clone(raw)
	tampered[700] ^= 1
	v := Verifier{Keyring: openpgp.EntityList{autosigner}}
	cases := []struct {
		name    string
		sign    []byte // nil: no .tar.sign on the mirror
		keyring openpgp.EntityList
		wantErr error
	}{
		{"good", detachSign(t, releaser, raw), openpgp.EntityList{releaser}, nil},
		{"unknown signer", detachSign(t, mallory, raw), openpgp.EntityList{releaser}, ErrBadSignature},
		{"other bytes", detachSign(t, releaser, tampered), openpgp.EntityList{releaser}, ErrBadSignature},
		{"shipped keys refuse a test key", detachSign(t, releaser, raw), nil, ErrBadSignature},
		{"no .tar.sign", nil, openpgp.EntityList{releaser}, nil},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			m := newMirror(t)
			m.files["/v6.x/sha256sums.asc"] = clearsignText(t, autosigner, sha(tarball)+"  linux-6.1.7.tar.xz\n")
			m.files["/v6.x/linux-6.1.7.tar.xz"] = tarball
			if tc.sign != nil {
				m.files["/v6.x/linux-6.1.7.tar.sign"] = tc.sign
			}
			s := kernelOrgSpec("6.1.7", m.url(""))
			s.Kernel.Source.VerifyTarSign = true
			f := newTestFetcher(t)
			opt := FetchOptions{Verifier: v, SkipIpvsadm: true, TarSignKeyring: tc.keyring}
			got, err := f.FetchSpec(context.Background(), s, opt)
			switch {
			case tc.sign == nil:
				if err == nil || !strings.Contains(err.Error(), "linux-6.1.7.tar.sign") || !strings.Contains(err.Error(), "404") {
					t.Fatalf("err = %v, want a 404 for linux-6.1.7.tar.sign", err)
				}
				return
			case tc.wantErr != nil:
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				// Said once, naming where the signature came from; the
				// tarball was not fetched again for it.
				sign := m.url("/v6.x/linux-6.1.7.tar.sign")
				if msg := err.Error(); strings.Count(msg, sign) != 1 || strings.Contains(msg, "\n") {
					t.Errorf("error %q, want one line naming %s", msg, sign)
				}
				if n, k := m.requests("/v6.x/linux-6.1.7.tar.sign"), m.requests("/v6.x/linux-6.1.7.tar.xz"); n != 1 || k != 1 {
					t.Errorf("%d GETs of the .tar.sign, %d of the tarball, want 1 and 1", n, k)
				}
				return
			case err != nil:
				t.Fatal(err)
			}
			if !strings.HasPrefix(got.Kernel.SignedBy, fingerprint(releaser)) {
				t.Errorf("SignedBy = %q, want %s", got.Kernel.SignedBy, fingerprint(releaser))
			}
			m.srv.Close()
			// The cached tarball's bytes are replaced: were the signature
			// checked again, decompressing them would fail.
			os.Chmod(got.Kernel.Path, 0o644)
			if err := os.WriteFile(got.Kernel.Path, []byte("not xz"), 0o644); err != nil {
				t.Fatal(err)
			}
			again, err := (&Fetcher{Cache: f.Cache, Rounds: 1}).FetchSpec(context.Background(), s, opt)
			if err != nil || again.Kernel.SignedBy != got.Kernel.SignedBy {
				t.Errorf("second fetch offline: %v, SignedBy %q", err, again.Kernel.SignedBy)
			}
		})
	}
	// The switch belongs to kernel.org sources.
	f := newTestFetcher(t)
	s := kernelOrgSpec("6.1.7")
	s.Kernel.Source = cluster.KernelSource{Type: cluster.SourceDistro, Path: "/x.tar.xz", SHA256: sha(tarball), VerifyTarSign: true}
	if _, err := f.FetchSpec(context.Background(), s, FetchOptions{SkipIpvsadm: true}); err == nil || !strings.Contains(err.Error(), "verifyTarSign needs a kernel.org source") {
		t.Errorf("verifyTarSign on a distro source: err = %v", err)
	}
}

// TestShippedReleaseSignerKeys: the keys lvsforge ships for .tar.sign are
// Greg Kroah-Hartman's and Linus Torvalds' (their fingerprints, hashes of
// the keys, are the published ones) and both can verify signatures.
func TestShippedReleaseSignerKeys(t *testing.T) {
	el, err := ReleaseSignersKeyring()
	if err != nil {
		t.Fatal(err)
	}
	want := map[string]string{
		GregKHFingerprint:   "Greg Kroah-Hartman (Linux kernel stable release signing key) <greg@kroah.com>",
		TorvaldsFingerprint: "Linus Torvalds <torvalds@kernel.org>",
	}
	if len(el) != len(want) {
		t.Fatalf("%d keys, want %d", len(el), len(want))
	}
	for _, e := range el {
		id, ok := want[fingerprint(e)]
		if !ok {
			t.Errorf("unexpected key %s", fingerprint(e))
			continue
		}
		if _, ok := e.Identities[id]; !ok {
			t.Errorf("%s: no identity %q", fingerprint(e), id)
		}
		if keys := el.KeysByIdUsage(e.PrimaryKey.KeyId, packet.KeyFlagSign); len(keys) != 1 {
			t.Errorf("%s is not usable for signatures: %d keys", fingerprint(e), len(keys))
		}
	}
	// A shipped file that is not the pinned key is refused.
	if _, err := shippedKey(torvaldsKey, GregKHFingerprint, "Greg Kroah-Hartman"); err == nil {
		t.Error("a key with another fingerprint was accepted")
	}
}

// TestFetchSpecRealSources fetches Debian's linux-source-6.1 tarball, as a
// kernel.org release, and the real ipvsadm 1.31 tarball through FetchSpec
// from loopback mirrors, with a sha256sums.asc clearsigned by a key the
// test makes: the real verification path over real data, for each way a
// download can go wrong. Every case starts with an empty cache.
func TestFetchSpecRealSources(t *testing.T) {
	if testing.Short() {
		t.Skip("short: moves 130 MB per case")
	}
	needKernelTarball(t)
	kernel, err := os.ReadFile(debianKernelTarball)
	if err != nil {
		t.Fatal(err)
	}
	ipvsadm, err := os.ReadFile(ipvsadmTarball)
	if err != nil {
		t.Fatal(err)
	}
	key, mallory := testKey(t, "autosigner"), testKey(t, "mallory")
	const (
		version  = "6.1.0"
		sumsPath = "/pub/v6.x/sha256sums.asc"
		tarPath  = "/pub/v6.x/linux-6.1.0.tar.xz"
		ipvsPath = "/debian/ipvsadm_1.31.orig.tar.gz"
	)
	sums := fmt.Sprintf("%s  linux-6.0.tar.xz\n%s  linux-6.1.0.tar.xz\n", sha([]byte("other")), sha(kernel))
	corrupt := bytes.Clone(kernel)
	corrupt[len(corrupt)/2] ^= 0x20
	serve := func(m *mirror, signer *openpgp.Entity, tarball []byte) {
		m.files[sumsPath] = clearsignText(t, signer, sums)
		m.files[tarPath] = tarball
		m.files[ipvsPath] = ipvsadm
	}
	cases := []struct {
		name    string
		setup   func(first, second *mirror)
		wantErr error
		check   func(t *testing.T, first, second *mirror)
	}{
		{name: "good signature", setup: func(first, _ *mirror) { serve(first, key, kernel) }},
		{name: "bad signature", setup: func(first, _ *mirror) { serve(first, mallory, kernel) }, wantErr: ErrBadSignature},
		{name: "corrupted byte", setup: func(first, _ *mirror) { serve(first, key, corrupt) }, wantErr: ErrChecksum},
		{
			name: "cut half-way",
			setup: func(first, _ *mirror) {
				serve(first, key, kernel)
				first.cutOnce[tarPath] = true
			},
			check: func(t *testing.T, first, _ *mirror) {
				rs := first.rangeOf[tarPath]
				var from int
				if len(rs) != 1 || func() bool { _, err := fmt.Sscanf(rs[0], "bytes=%d-", &from); return err != nil }() || from <= 0 || from > len(kernel)/2 {
					t.Errorf("Range requests for the tarball %q, want one resuming within the first half", rs)
				}
				if n := first.requests(tarPath); n != 2 {
					t.Errorf("%d GETs of the tarball, want 2 (the cut one and the resume)", n)
				}
			},
		},
		{
			name:  "404 on the first mirror",
			setup: func(_, second *mirror) { serve(second, key, kernel) },
			check: func(t *testing.T, first, second *mirror) {
				for _, p := range []string{sumsPath, tarPath, ipvsPath} {
					if first.requests(p) == 0 || second.requests(p) != 1 {
						t.Errorf("%s: %d GETs from the first mirror, %d from the second; want the first tried, then one from the second", p, first.requests(p), second.requests(p))
					}
				}
			},
		},
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			first, second := newMirror(t), newMirror(t)
			tc.setup(first, second)
			s := kernelOrgSpec(version, first.url("/pub"), second.url("/pub"))
			f := newTestFetcher(t)
			got, err := f.FetchSpec(context.Background(), s, FetchOptions{
				Verifier: Verifier{Keyring: openpgp.EntityList{key, mallory}, RequireFingerprint: fingerprint(key)},
				Ipvsadm:  Source{Name: "ipvsadm-1.31.tar.gz", URLs: []string{first.url(ipvsPath), second.url(ipvsPath)}, SHA256: IpvsadmSource.SHA256},
			})
			parts, _ := filepath.Glob(filepath.Join(f.Cache.Dir, "downloads", "*.part"))
			if tc.wantErr != nil {
				if !errors.Is(err, tc.wantErr) {
					t.Fatalf("err = %v, want %v", err, tc.wantErr)
				}
				for _, b := range blobs(t, f.Cache) {
					if b == sha(kernel) || b == sha(corrupt) {
						t.Errorf("the kernel tarball entered the cache after %v", err)
					}
				}
				if len(parts) != 0 {
					t.Errorf("partial downloads kept: %v", parts)
				}
				return
			}
			if err != nil {
				t.Fatal(err)
			}
			for _, it := range []Item{got.Kernel, *got.Ipvsadm} {
				if sum, err := FileSHA256(it.Path); err != nil || sum != it.SHA256 || it.Path != f.Cache.BlobPath(it.SHA256) {
					t.Errorf("%s: %s hashes to %s (%v), want %s in the blob store", it.Name, it.Path, sum, err, it.SHA256)
				}
			}
			if got.Kernel.SHA256 != sha(kernel) || got.Ipvsadm.SHA256 != sha(ipvsadm) {
				t.Errorf("kernel %s ipvsadm %s, want %s %s", got.Kernel.SHA256, got.Ipvsadm.SHA256, sha(kernel), sha(ipvsadm))
			}
			if tc.check != nil {
				tc.check(t, first, second)
			}
		})
	}
}
