package cluster

import (
	"crypto/sha256"
	"encoding/hex"
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// TestExampleIsValidSeedCluster: the built-in example is the seed
// article's cluster, address for address.
func TestExampleIsValidSeedCluster(t *testing.T) {
	for name, src := range map[string]ExampleSource{
		"kernel.org": KernelOrgSource(),
		"distro":     DistroSource("6.1.192", "/usr/src/linux-source-6.1.tar.xz", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
	} {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			if err := EnsureAuthkey(filepath.Join(dir, "authkey")); err != nil {
				t.Fatal(err)
			}
			s, err := Example(src, dir)
			if err != nil {
				t.Fatalf("built-in example does not validate: %v", err)
			}
			want := map[string]string{"linuxha1": "192.168.7.9/24", "linuxha2": "192.168.7.10/24", "rs1": "192.168.7.11/24", "rs2": "192.168.7.12/24"}
			for n, a := range want {
				h := s.Host(n)
				if h == nil || h.Address != a {
					t.Fatalf("host %s: got %+v, want address %s", n, h, a)
				}
				if h.Gateway != "192.168.7.254" || h.Interfaces.Public != "eth0" {
					t.Errorf("host %s: gateway %q, public %q; want the seed's 192.168.7.254 on eth0", n, h.Gateway, h.Interfaces.Public)
				}
			}
			for n, hb := range map[string]string{"linuxha1": "192.168.0.1/24", "linuxha2": "192.168.0.2/24"} {
				if ifc := s.Host(n).Interfaces; ifc.Heartbeat != "eth1" || ifc.HeartbeatAddress != hb {
					t.Errorf("director %s: heartbeat link %s %s, want eth1 %s (the crossover cable)", n, ifc.Heartbeat, ifc.HeartbeatAddress, hb)
				}
			}
			var media []string
			for _, m := range s.HA.Media {
				media = append(media, m.Type+" "+m.Interface+m.Device)
			}
			if got := strings.Join(media, ", "); got != "bcast eth1, serial /dev/ttyS0" {
				t.Errorf("heartbeat media %q, want bcast eth1 and the null-modem cable on /dev/ttyS0", got)
			}
			if s.HA.Primary != "linuxha1" || s.HA.Backend != BackendHeartbeat || len(s.Services) != 2 || s.Services[0].Port != 23 || s.Services[1].Port != 80 {
				t.Errorf("not the seed's services/primary: %+v %+v", s.HA, s.Services)
			}
			for _, sv := range s.Services {
				if sv.VIP != "192.168.7.110" || sv.Scheduler != "rr" || sv.Forwarding != ForwardDR {
					t.Errorf("service %s: %+v", sv.Name, sv)
				}
				for _, rs := range []string{"rs1", "rs2"} {
					if h := s.Host(rs); !ServesService(h, sv.Name) || Weight(h, sv.Name) != 1 {
						t.Errorf("%s: serves %s %v with weight %d, want weight 1", rs, sv.Name, ServesService(h, sv.Name), Weight(h, sv.Name))
					}
				}
			}
		})
	}
}

// TestDetectSource: an installed linux-source-X.Y.tar.xz becomes a distro
// source pinned by its sha256; anything else under the glob is ignored, and
// without one the example builds the pinned kernel.org release.
func TestDetectSource(t *testing.T) {
	dir := t.TempDir()
	src, err := DetectSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	if src.KernelVersion != PinnedKernelOrgVersion || !strings.HasPrefix(src.SourceLines[0], "type: kernel.org") {
		t.Errorf("no tarball: got %+v, want kernel.org %s", src, PinnedKernelOrgVersion)
	}

	// A series dpkg has no package for, so the version is the series
	// whatever this machine has installed.
	tarball := []byte("not really xz, but hashed all the same\n")
	path := filepath.Join(dir, "linux-source-9.8.tar.xz")
	os.WriteFile(path, tarball, 0o644)
	os.WriteFile(filepath.Join(dir, "linux-source-rt.tar.xz"), []byte("decoy"), 0o644)
	src, err = DetectSource(dir)
	if err != nil {
		t.Fatal(err)
	}
	sum := sha256.Sum256(tarball)
	want := []string{
		"type: distro              # the distro's linux-source tarball, trusted by its pinned sha256",
		"path: " + path,
		"sha256: " + hex.EncodeToString(sum[:]),
	}
	if src.KernelVersion != "9.8" || strings.Join(src.SourceLines, "\n") != strings.Join(want, "\n") {
		t.Fatalf("got %+v, want version 9.8 and %q", src, want)
	}
	// The spec init writes from it is valid and says the same.
	if err := EnsureAuthkey(filepath.Join(dir, "authkey")); err != nil {
		t.Fatal(err)
	}
	s, err := Example(src, dir)
	if err != nil {
		t.Fatal(err)
	}
	if k := s.Kernel.Source; k.Type != SourceDistro || k.Path != path || k.SHA256 != hex.EncodeToString(sum[:]) {
		t.Errorf("parsed source %+v", k)
	}

	// An unreadable tarball is an error, not a silent fallback.
	if os.Geteuid() != 0 {
		os.Chmod(path, 0)
		if _, err := DetectSource(dir); err == nil || !strings.HasPrefix(err.Error(), "hash kernel tarball: ") {
			t.Errorf("unreadable tarball: %v", err)
		}
	}
}

func TestEnsureAuthkeyCreatesOnceWithMode0600(t *testing.T) {
	p := filepath.Join(t.TempDir(), "sub", "authkey")
	if err := EnsureAuthkey(p); err != nil {
		t.Fatal(err)
	}
	first, _ := os.ReadFile(p)
	st, _ := os.Stat(p)
	if st.Mode().Perm() != 0o600 {
		t.Errorf("mode %v, want 0600", st.Mode().Perm())
	}
	if err := EnsureAuthkey(p); err != nil {
		t.Fatal(err)
	}
	second, _ := os.ReadFile(p)
	if string(first) != string(second) {
		t.Error("EnsureAuthkey replaced an existing key")
	}
	s := &Spec{Dir: filepath.Dir(p), HA: HA{Authkey: Authkey{File: "authkey"}}}
	if sec, err := s.Secret(); err != nil || len(sec) != 48 {
		t.Errorf("Secret() = %q, %v", sec, err)
	}
	entries, _ := os.ReadDir(filepath.Dir(p))
	if len(entries) != 1 {
		t.Errorf("temp files left behind: %v", entries)
	}
}

// TestSecretErrorHasPosition: an authkey that goes missing after the spec
// was parsed is reported at its line, like every other spec error.
func TestSecretErrorHasPosition(t *testing.T) {
	dir := t.TempDir()
	if err := EnsureAuthkey(filepath.Join(dir, "authkey")); err != nil {
		t.Fatal(err)
	}
	base, _ := os.ReadFile("testdata/base.yaml")
	s, err := Parse(base, "c.yaml", dir)
	if err != nil {
		t.Fatal(err)
	}
	os.Remove(filepath.Join(dir, "authkey"))
	_, err = s.Secret()
	want := "c.yaml:33:13: ha.authkey.file: authkey file " + filepath.Join(dir, "authkey") + " does not exist: write the heartbeat secret into it (lvsforge init writes a random one), or use env"
	if err == nil || err.Error() != want {
		t.Errorf("got %v\nwant %s", err, want)
	}
}

// TestSecretFileIsBounded: a path that is no secret file (a device, a huge
// file) is refused without reading it.
func TestSecretFileIsBounded(t *testing.T) {
	big := filepath.Join(t.TempDir(), "big")
	os.WriteFile(big, []byte(strings.Repeat("a", maxSecretFile+1)), 0o600)
	for file, want := range map[string]string{
		"/dev/zero": "authkey file /dev/zero is not a regular file",
		big:         "authkey file " + big + " is larger than 4096 bytes",
	} {
		s := &Spec{File: "c.yaml", HA: HA{Authkey: Authkey{File: file}}}
		if _, err := s.Secret(); err == nil || !strings.Contains(err.Error(), want) {
			t.Errorf("%s: got %v, want %q", file, err, want)
		}
	}
}
