package roles

import (
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/install"
	"github.com/lvsforge/lvsforge/ipvs"
)

// A drain lives in what the checkers read: ldirectord.cf and
// keepalived.conf give the drained real server weight 0 (ldirectord and
// keepalived restore a server's configured weight after a good check), the
// rules loaded at boot too, and the directors record the drain.
func TestRenderDrained(t *testing.T) {
	drains := []ipvs.Drain{{Host: "rs1", Services: []string{"http"}}}
	for _, c := range []struct {
		variant, file string
		want, keep    []string
	}{
		{"seed", LdirectordPath, []string{"real=192.168.7.11:80 gate 0"}, []string{"real=192.168.7.11:23 gate 1", "real=192.168.7.12:80 gate 1"}},
		{"seed", "/etc/ipvsadm.rules", []string{"-r 192.168.7.11:80 -g -w 0"}, []string{"-r 192.168.7.11:23 -g -w 1"}},
		{"seed", install.DrainsFile, []string{"\nrs1 http\n"}, nil},
		{"keepalived", "/etc/keepalived/keepalived.conf", []string{"real_server 192.168.7.11 80 {\n        weight 0"}, []string{"real_server 192.168.7.12 80 {\n        weight 1"}},
	} {
		hosts, err := RenderDrained(loadVariant(t, c.variant), drains)
		if err != nil {
			t.Fatal(err)
		}
		var data string
		for _, f := range hosts[0].Files {
			if f.Path == c.file {
				data = string(f.Data)
			}
		}
		if data == "" {
			t.Fatalf("%s: %s not rendered for %s", c.variant, c.file, hosts[0].Host.Name)
		}
		for _, w := range c.want {
			if !strings.Contains(data, w) {
				t.Errorf("%s %s lacks %q:\n%s", c.variant, c.file, w, data)
			}
		}
		for _, w := range c.keep {
			if !strings.Contains(data, w) {
				t.Errorf("%s %s: an undrained server lost its weight, want %q:\n%s", c.variant, c.file, w, data)
			}
		}
	}
}
