package cluster

import (
	"os"
	"path/filepath"
	"testing"
)

func TestExampleIsValidSeedCluster(t *testing.T) {
	for name, src := range map[string]ExampleSource{
		"kernel.org": KernelOrgSource(),
		"distro":     DistroSource("6.1.192", "/usr/src/linux-source-6.1.tar.xz", "0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"),
	} {
		t.Run(name, func(t *testing.T) {
			s, err := Example(src, t.TempDir())
			if err != nil {
				t.Fatalf("built-in example does not validate: %v", err)
			}
			want := map[string]string{"linuxha1": "192.168.7.9/24", "linuxha2": "192.168.7.10/24", "rs1": "192.168.7.11/24", "rs2": "192.168.7.12/24"}
			for n, a := range want {
				if h := s.Host(n); h == nil || h.Address != a {
					t.Errorf("host %s: got %+v, want address %s", n, h, a)
				}
			}
			if s.HA.Primary != "linuxha1" || len(s.Services) != 2 || s.Services[0].Port != 23 || s.Services[1].Port != 80 {
				t.Errorf("not the seed's services/primary: %+v %+v", s.HA, s.Services)
			}
			for _, sv := range s.Services {
				if sv.VIP != "192.168.7.110" || sv.Scheduler != "rr" || sv.Forwarding != ForwardDR {
					t.Errorf("service %s: %+v", sv.Name, sv)
				}
			}
		})
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
