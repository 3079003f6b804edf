package cluster

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
	"time"
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

// edited is base.yaml with pairs of old and new text applied, in order:
// each replaces the first occurrence of old, which must be there.
func edited(t *testing.T, edits ...[]string) string {
	t.Helper()
	b, err := os.ReadFile("testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := string(b)
	for _, e := range edits {
		for i := 0; i+1 < len(e); i += 2 {
			if !strings.Contains(text, e[i]) {
				t.Fatalf("the spec has no %q", e[i])
			}
			text = strings.Replace(text, e[i], e[i+1], 1)
		}
	}
	return text
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

// TestNoValueTakesTheDefault: a key written without a value is unset in
// YAML, so its default applies; only a written 0 is refused.
func TestNoValueTakesTheDefault(t *testing.T) {
	base, _ := os.ReadFile("testdata/base.yaml")
	text := strings.Replace(string(base), "  initdead: 120\n", "  initdead: 120\n  udpPort:\n  baud: null\n", 1)
	s, err := Parse([]byte(text), "c.yaml", "testdata")
	if err != nil {
		t.Fatal(err)
	}
	if s.HA.UDPPort != 694 || s.HA.Baud != 19200 {
		t.Errorf("udpPort %d, baud %d: want the defaults 694, 19200", s.HA.UDPPort, s.HA.Baud)
	}
}

// TestPointToPointLinkAddresses: a /31 has no network or broadcast
// address (RFC 3021), so both of its addresses are hosts'.
func TestPointToPointLinkAddresses(t *testing.T) {
	base, _ := os.ReadFile("testdata/base.yaml")
	text := strings.NewReplacer("heartbeatAddress: 192.168.0.1/24}", "heartbeatAddress: 10.9.9.0/31}",
		"heartbeatAddress: 192.168.0.2/24}", "heartbeatAddress: 10.9.9.1/31}").Replace(string(base))
	if _, err := Parse([]byte(text), "c.yaml", "testdata"); err != nil {
		t.Error(err)
	}
}

func TestDurations(t *testing.T) {
	for in, want := range map[string]string{"2": "2", "2s": "2", "500ms": "500ms", "1m": "60", "1500ms": "1500ms", "3600": "3600", "1h": "3600"} {
		var d Duration
		if err := d.decodeScalar(in); err != nil || d.HeartbeatString() != want {
			t.Errorf("%q -> %q, %v; want %q", in, d.HeartbeatString(), err, want)
		}
	}
	// Beyond 1h: 9999999999999 seconds would overflow time.Duration, and
	// 2 x deadtime with it.
	for _, in := range []string{"0", "0s", "0ms", "-1", "fast", "1.5us", "", "3601", "61m", "9999999999999", "99999999999999999999", "2562047h"} {
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

// TestValidateCodeBuiltSpec: a spec changed in code (as the VM scenarios do)
// meets the same bounds as a parsed one, at the parsed positions, and gets
// the realPort default a parsed one gets.
func TestValidateCodeBuiltSpec(t *testing.T) {
	s, err := parseFile(t, "base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	s.HA.Deadtime, s.HA.Initdead = Duration(2*time.Hour), Duration(4*time.Hour)
	err = Validate(s)
	want := "base.yaml:29:3: ha.deadtime: 7200 is longer than 1h: use at most 3600 seconds\n  base.yaml:30:3: ha.initdead: 14400 is longer than 1h: use at most 3600 seconds"
	if err == nil || !strings.Contains(err.Error(), want) {
		t.Errorf("got %v\nwant %s", err, want)
	}
	s, _ = parseFile(t, "base.yaml")
	s.Services = append(s.Services, Service{Name: "echo", VIP: "192.168.7.110", Port: 7, Protocol: "tcp", Scheduler: "rr",
		Forwarding: ForwardDR, Check: Check{Type: "connect", Interval: 5, Timeout: 3}})
	if err := Validate(s); err != nil {
		t.Fatal(err)
	}
	if s.Services[1].RealPort != 7 {
		t.Errorf("realPort %d, want the port 7", s.Services[1].RealPort)
	}
}
