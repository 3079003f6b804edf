package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

func parseFile(t *testing.T, name string) (*Spec, error) {
	t.Helper()
	data, err := os.ReadFile(filepath.Join("testdata", name))
	if err != nil {
		t.Fatal(err)
	}
	dir, _ := filepath.Abs("testdata")
	return Parse(data, name, dir)
}

func TestFullAndBaseSpecsAreValid(t *testing.T) {
	for _, f := range []string{"base.yaml", "full.yaml"} {
		if _, err := parseFile(t, f); err != nil {
			t.Errorf("%s: %v", f, err)
		}
	}
}

func TestDefaults(t *testing.T) {
	s, err := parseFile(t, "base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	sv, h, ha := s.Services[0], s.Hosts[2], s.HA
	if sv.Protocol != "tcp" || sv.Check.Type != "connect" || sv.Check.Interval != 10 || sv.Check.Timeout != 5 || sv.RealPort != 80 {
		t.Errorf("service defaults: %+v", sv)
	}
	if h.SSH.User != "root" || h.SSH.Port != 22 || h.Interfaces.Public != "eth0" || h.OS != OSDebian || h.Init != InitSystemd || h.KernelProfile != ProfileModern {
		t.Errorf("host defaults: %+v", h)
	}
	if ha.Primary != "d1" || ha.Warntime.HeartbeatString() != "10" || !*ha.AutoFailback || ha.UDPPort != 694 || ha.Baud != 19200 || ha.Authkey.Method != "sha1" {
		t.Errorf("ha defaults: %+v", ha)
	}
	if s.Kernel.Source.Type != SourceKernelOrg || s.Kernel.Config.Base != "tinyconfig" || s.Kernel.PanicTimeout != 10 {
		t.Errorf("kernel defaults: %+v", s.Kernel)
	}
}

func TestDurations(t *testing.T) {
	for in, want := range map[string]string{"2": "2", "2s": "2", "500ms": "500ms", "1m": "60", "1500ms": "1500ms"} {
		var d Duration
		if err := d.decodeScalar(in); err != nil || d.HeartbeatString() != want {
			t.Errorf("%q -> %q, %v; want %q", in, d.HeartbeatString(), err, want)
		}
	}
	for _, in := range []string{"-1", "fast", "1.5us", ""} {
		var d Duration
		if err := d.decodeScalar(in); err == nil {
			t.Errorf("%q accepted", in)
		}
	}
}

// TestManyErrorsReportedTogether: unknown fields, wrong types and semantic
// errors come back in one report, in file order.
func TestManyErrorsReportedTogether(t *testing.T) {
	base, _ := os.ReadFile("testdata/base.yaml")
	bad := strings.NewReplacer(
		"  name: t\n", "  name: t\n  colour: blue\n",
		"    port: 80\n", "    port: eighty\n",
		"    scheduler: rr\n", "    scheduler: fastest\n",
		"  deadtime: 30\n", "  deadtime: 1\n",
	).Replace(string(base))
	_, err := Parse([]byte(bad), "c.yaml", "testdata")
	es, ok := err.(Errors)
	if !ok {
		t.Fatalf("want Errors, got %T %v", err, err)
	}
	var lines []int
	for _, e := range es {
		lines = append(lines, e.Pos.Line)
	}
	if len(es) != 5 {
		t.Fatalf("want 5 problems (colour, port, scheduler, deadtime, initdead), got %d:\n%v", len(es), err)
	}
	for i := 1; i < len(lines); i++ {
		if lines[i] < lines[i-1] {
			t.Errorf("errors not in file order: %v", lines)
		}
	}
}
