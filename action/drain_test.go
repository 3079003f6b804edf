package action

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/internal/clustertest"
	"github.com/lvsforge/lvsforge/ipvs"
)

// TestConnsOfFilters runs the drain's connection listing through sh and
// awk on a saved `ipvsadm -L -n -c` (ipvsadm replaced by cat): it keeps
// the lines to the drained host's addresses, and only those, and they
// parse into its open connections.
func TestConnsOfFilters(t *testing.T) {
	want := ipvs.Build(clustertest.Example(t))
	saved := filepath.Join(t.TempDir(), "conns")
	os.WriteFile(saved, []byte(`IPVS connection entries
pro expire state       source             virtual            destination
TCP 14:59  ESTABLISHED 192.168.7.1:41000  192.168.7.110:80   192.168.7.11:80
TCP 14:59  ESTABLISHED 192.168.7.11:41001 192.168.7.110:80   192.168.7.12:80
TCP 00:59  SYN_RECV    192.168.7.1:41002  192.168.7.110:23   192.168.7.11:23
TCP 14:59  ESTABLISHED 192.168.7.1:41003  192.168.7.110:80   192.168.7.111:80
`), 0o644)
	cmd := strings.Replace(connsOf(want, "rs1"), "ipvsadm -L -n -c", "cat "+saved, 1)
	out, err := exec.Command("sh", "-c", cmd).CombinedOutput()
	if err != nil {
		t.Fatalf("%s: %v\n%s", cmd, err, out)
	}
	if got := strings.Count(string(out), "\n"); got != 2 || !strings.Contains(string(out), ":41000 ") || !strings.Contains(string(out), ":41002 ") {
		t.Fatalf("%s kept:\n%s\nwant the lines of ports 41000 and 41002", cmd, out)
	}
	conns, err := ipvs.ParseConns(string(out))
	if err != nil {
		t.Fatal(err)
	}
	if n := want.OpenConns(conns, ipvs.Drain{Host: "rs1"}); n != 2 {
		t.Errorf("%d open connections to rs1, want 2", n)
	}
}
