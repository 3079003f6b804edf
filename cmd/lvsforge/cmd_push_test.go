package main

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy/sshtest"
)

// testSpec writes the seed example with its four hosts pointed at sshd test
// hosts (sysv init, as there is no systemd in the namespaces).
func testSpec(t *testing.T, c *sshtest.Cluster) string {
	t.Helper()
	dir := t.TempDir()
	if err := cluster.EnsureAuthkey(filepath.Join(dir, "authkey")); err != nil {
		t.Fatal(err)
	}
	y := string(cluster.ExampleYAML(cluster.KernelOrgSource()))
	i := 0
	y = regexp.MustCompile(`(?m)^  - name: (linuxha1|linuxha2|rs1|rs2)\b.*$`).ReplaceAllStringFunc(y, func(line string) string {
		h := c.Hosts[i]
		i++
		return fmt.Sprintf("%s\n    ssh: {address: %s, key: %s}", line, h.Addr, c.ClientKeyFile)
	})
	y = strings.ReplaceAll(y, "init: systemd", "init: sysv")
	p := filepath.Join(dir, "cluster.yaml")
	if err := os.WriteFile(p, []byte(y), 0o644); err != nil {
		t.Fatal(err)
	}
	return p
}

func runApp(args ...string) (int, string, string) {
	var out, errb bytes.Buffer
	code := NewApp(strings.NewReader(""), &out, &errb).Run(context.Background(), append([]string{"lvsforge"}, args...))
	return code, out.String(), errb.String()
}

func TestPushDryRunCLI(t *testing.T) {
	c := sshtest.Start(t, 4)
	spec := testSpec(t, c)
	common := []string{"-f", spec, "--known-hosts", c.KnownHostsFile, "--ssh-config", "none"}

	code, out, errs := runApp(append([]string{"push", "--dry-run", "--diff"}, common...)...)
	if code != ExitOK {
		t.Fatalf("push --dry-run: exit %d\n%s\n%s", code, out, errs)
	}
	for _, want := range []string{"write /etc/ha.d/authkeys mode 0600 secret (new)", "+++ b/linuxha1:/etc/ha.d/haresources", "linuxha2", "planned"} {
		if !strings.Contains(out, want) {
			t.Errorf("dry-run output lacks %q:\n%s", want, out)
		}
	}
	secret, _ := os.ReadFile(filepath.Join(filepath.Dir(spec), "authkey"))
	if s := strings.TrimSpace(string(secret)); s == "" || strings.Contains(out+errs, s) {
		t.Errorf("the authkey secret is printed (or empty)")
	}

	code, out, errs = runApp(append([]string{"kernel", "status", "--hosts", "rs1,linuxha1"}, common...)...)
	if code != ExitOK || !strings.Contains(out, "RUNNING") || !strings.Contains(out, "rs1") {
		t.Errorf("kernel status: exit %d\n%s\n%s", code, out, errs)
	}
	code, _, errs = runApp(append([]string{"kernel", "confirm", "--hosts", "rs1"}, common...)...)
	if code != ExitFailure || !strings.Contains(errs, "rs1") {
		t.Errorf("kernel confirm of a kernel rs1 does not run: exit %d\n%s", code, errs)
	}

	// JSON, one host down: exit status 1 naming it, the others planned.
	c.Hosts[3].Stop()
	code, out, errs = runApp(append([]string{"push", "--dry-run", "--json", "--role", "realserver"}, common...)...)
	if code != ExitFailure || !strings.Contains(errs, "rs2") {
		t.Fatalf("push with rs2 down: exit %d, stderr %s", code, errs)
	}
	var rep struct {
		Hosts []struct {
			Host, Result string
			Plan         []string
		}
	}
	if err := json.Unmarshal([]byte(out), &rep); err != nil {
		t.Fatalf("--json output is not JSON: %v\n%s", err, out)
	}
	if len(rep.Hosts) != 2 || rep.Hosts[0].Host != "rs1" || rep.Hosts[0].Result != "planned" || len(rep.Hosts[0].Plan) == 0 || rep.Hosts[1].Result != "failed" {
		t.Errorf("report: %+v", rep)
	}

	if code, _, _ := runApp(append([]string{"push", "--hosts", "nosuch"}, common...)...); code != ExitUsage {
		t.Errorf("--hosts nosuch: exit %d, want %d", code, ExitUsage)
	}
}
