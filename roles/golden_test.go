package roles

import (
	"bytes"
	"flag"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/cluster"
)

var update = flag.Bool("update", false, "rewrite the golden files under testdata/golden")

// variants are the specs whose every rendered file is kept as a golden file.
// "seed" is the built-in example itself.
var variants = []string{"seed", "tun", "nat", "wrr-persist", "keepalived", "keepalived-options", "heartbeat-sync", "bgp", "dual-stack", "keepalived-dual-stack"}

func loadVariant(t testing.TB, name string) *cluster.Spec {
	t.Helper()
	dir, _ := filepath.Abs("testdata/specs")
	// A checkout leaves the fixture secret as the umask says; a spec may
	// name only a private one.
	if err := os.Chmod(filepath.Join(dir, "authkey"), 0o600); err != nil {
		t.Fatal(err)
	}
	if name == "seed" {
		s, err := cluster.Example(cluster.KernelOrgSource(), dir)
		if err != nil {
			t.Fatal(err)
		}
		return s
	}
	s, err := cluster.Load(filepath.Join(dir, name+".yaml"))
	if err != nil {
		t.Fatal(err)
	}
	return s
}

// renderTree renders a variant into a fresh directory and returns it.
func renderTree(t testing.TB, name string) string {
	t.Helper()
	s := loadVariant(t, name)
	hosts, err := Render(s)
	if err != nil {
		t.Fatal(err)
	}
	out := filepath.Join(t.TempDir(), "out")
	if err := WriteTree(out, s.Metadata.Name, hosts); err != nil {
		t.Fatal(err)
	}
	return out
}

type treeFile struct {
	mode fs.FileMode
	data []byte
}

func readTree(t testing.TB, root string) map[string]treeFile {
	t.Helper()
	files := map[string]treeFile{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		b, err := os.ReadFile(p)
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		files[filepath.ToSlash(rel)] = treeFile{info.Mode().Perm(), b}
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	return files
}

// TestGolden compares every rendered file (bytes and mode) of every variant
// with testdata/golden/<variant>; go test ./roles -update rewrites them.
func TestGolden(t *testing.T) {
	for _, name := range variants {
		t.Run(name, func(t *testing.T) {
			got := readTree(t, renderTree(t, name))
			golden := filepath.Join("testdata", "golden", name)
			if *update {
				os.RemoveAll(golden)
				for rel, f := range got {
					p := filepath.Join(golden, filepath.FromSlash(rel))
					if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
						t.Fatal(err)
					}
					if err := os.WriteFile(p, f.data, 0o644); err != nil {
						t.Fatal(err)
					}
				}
				return
			}
			want := readTree(t, golden)
			for rel, f := range got {
				w, ok := want[rel]
				if !ok {
					t.Errorf("%s: rendered but has no golden file (run go test ./roles -update)", rel)
					continue
				}
				if !bytes.Equal(f.data, w.data) {
					t.Errorf("%s differs from its golden file (run go test ./roles -update and review the diff):\n--- got\n%s", rel, f.data)
				}
			}
			for rel := range want {
				if _, ok := got[rel]; !ok {
					t.Errorf("%s: golden file no longer rendered", rel)
				}
			}
		})
	}
}

// TestModes checks the modes the tree and the push manifest record: secrets
// 0600, scripts 0755, everything else 0644.
func TestModes(t *testing.T) {
	for _, name := range variants {
		for rel, f := range readTree(t, renderTree(t, name)) {
			want := fs.FileMode(0o644)
			switch {
			case strings.HasSuffix(rel, "/etc/ha.d/authkeys"):
				want = 0o600
			case bytes.HasPrefix(f.data, []byte("#!")):
				want = 0o755
			}
			if f.mode != want {
				t.Errorf("%s/%s: mode %04o, want %04o", name, rel, f.mode, want)
			}
		}
	}
	s := loadVariant(t, "seed")
	hosts, _ := Render(s)
	for _, f := range hosts[0].Files {
		if f.Path == AuthkeysPath && (!f.Secret || f.Mode != 0o600) {
			t.Errorf("authkeys: secret=%v mode=%04o, want secret 0600", f.Secret, f.Mode)
		}
	}
}

// TestDeterministic renders every variant twice and compares the bytes.
func TestDeterministic(t *testing.T) {
	for _, name := range variants {
		a, b := readTree(t, renderTree(t, name)), readTree(t, renderTree(t, name))
		if len(a) != len(b) {
			t.Fatalf("%s: %d files then %d", name, len(a), len(b))
		}
		for rel, f := range a {
			if !bytes.Equal(f.data, b[rel].data) || f.mode != b[rel].mode {
				t.Errorf("%s/%s differs between two renders", name, rel)
			}
		}
	}
}

func testNonce() int { return os.Getpid() }

// TestTunnelSysctlsAfterIPIP: tunl0's rp_filter exists only once ipip is
// loaded, so on a TUN real server the sysctl unit loads it first (found by
// the tun VM scenario, where sysctl -p failed on a fresh host).
func TestTunnelSysctlsAfterIPIP(t *testing.T) {
	hosts, err := Render(loadVariant(t, "tun"))
	if err != nil {
		t.Fatal(err)
	}
	for _, h := range hosts {
		if h.Host.Role != cluster.RoleRealServer {
			continue
		}
		for _, u := range h.Units {
			if u.Name != "sysctl" {
				continue
			}
			if len(u.Restart) != 2 || strings.Join(u.Restart[0], " ") != "modprobe ipip" || u.Restart[1][0] != "sysctl" {
				t.Errorf("%s: sysctl unit runs %v, want modprobe ipip, then sysctl", h.Host.Name, u.Restart)
			}
		}
	}
}
