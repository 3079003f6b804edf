package cluster_test

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/roles"
)

// TestFullyQualifiedHostNames: a host named as Red Hat's `uname -n` names it
// (linuxha1.example.com) is heartbeat's node and keepalived's router_id
// under that name, and gets its directory of the rendered tree.
func TestFullyQualifiedHostNames(t *testing.T) {
	dir := t.TempDir()
	if err := cluster.EnsureAuthkey(filepath.Join(dir, "authkey")); err != nil {
		t.Fatal(err)
	}
	fqdn := strings.NewReplacer("linuxha1", "linuxha1.example.com", "linuxha2", "linuxha2.example.com", "rs1", "rs1.example.com")
	for _, backend := range []string{"heartbeat", "keepalived"} {
		t.Run(backend, func(t *testing.T) {
			text := fqdn.Replace(string(cluster.ExampleYAML(cluster.KernelOrgSource())))
			if backend == "keepalived" {
				// keepalived uses none of heartbeat's settings.
				text = text[:strings.Index(text, "\nha:\n")+1] + "ha:\n  backend: keepalived\n  primary: linuxha1.example.com\n"
			}
			s, err := cluster.Parse([]byte(text), "c.yaml", dir)
			if err != nil {
				t.Fatal(err)
			}
			hosts, err := roles.Render(s)
			if err != nil {
				t.Fatal(err)
			}
			out := filepath.Join(t.TempDir(), "out")
			if err := roles.WriteTree(out, s.Metadata.Name, hosts); err != nil {
				t.Fatal(err)
			}
			want := map[string][]string{
				"linuxha1.example.com/etc/ha.d/ha.cf":           {"\nnode linuxha1.example.com\n", "\nnode linuxha2.example.com\n"},
				"linuxha1.example.com/etc/ha.d/haresources":     {"\nlinuxha1.example.com lvs-vip\n"},
				"rs1.example.com/usr/local/sbin/lvs-realserver": {"LVS real-server settings of rs1.example.com"},
			}
			if backend == "keepalived" {
				want = map[string][]string{
					"linuxha1.example.com/etc/keepalived/keepalived.conf": {"router_id linuxha1.example.com\n", "state MASTER"},
					"linuxha2.example.com/etc/keepalived/keepalived.conf": {"router_id linuxha2.example.com\n", "state BACKUP"},
				}
			}
			for file, lines := range want {
				b, err := os.ReadFile(filepath.Join(out, file))
				if err != nil {
					t.Error(err)
					continue
				}
				for _, l := range lines {
					if !strings.Contains(string(b), l) {
						t.Errorf("%s has no %q:\n%s", file, l, b)
					}
				}
			}
		})
	}
}

// TestNoHostNamedAsTheManifest: a host's directory sits beside the rendered
// tree's manifest, so no host may take its name.
func TestNoHostNamedAsTheManifest(t *testing.T) {
	base, err := os.ReadFile("testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.Replace(string(base), "  - name: rs1\n", "  - name: "+strings.ToLower(roles.ManifestName)+"\n", 1)
	want := `c.yaml:22:5: hosts[2].name: invalid value "manifest.json": the rendered tree holds its manifest under that name beside the hosts' directories; rename the host`
	if _, err := cluster.Parse([]byte(text), "c.yaml", "testdata"); err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v\nwant %s", err, want)
	}
}
