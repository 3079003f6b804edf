package ipvs

import (
	"reflect"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/internal/clustertest"
)

func TestDrains(t *testing.T) {
	tb := Build(clustertest.Example(t))
	drains := Merge(nil, Drain{Host: "rs1"})
	drains = Merge(drains, Drain{Host: "rs2", Services: []string{"http"}})
	d := tb.Drained(drains)
	var got []string
	for _, s := range d.Services {
		for _, x := range s.Dests {
			got = append(got, s.Name+" "+x.Host+" "+strings.Repeat("w", x.Weight))
		}
	}
	want := []string{"telnet rs1 ", "telnet rs2 w", "http rs1 ", "http rs2 "}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("drained weights %q, want %q", got, want)
	}
	if tb.Named("http").Dests[0].Weight != 1 {
		t.Error("Drained changed the table it was called on")
	}
	tb.Timeouts.TCP, tb.Sysctls = 900, []Sysctl{{}}
	if d := tb.Drained(drains); d.Timeouts != tb.Timeouts || len(d.Sysctls) != 1 {
		t.Errorf("Drained lost the table's settings: %+v", d)
	}
	rec := FormatDrains(drains)
	if !strings.HasSuffix(string(rec), "\nrs1 *\nrs2 http\n") {
		t.Errorf("record:\n%s", rec)
	}
	back, err := ParseDrains(rec)
	if err != nil || !reflect.DeepEqual(back, drains) {
		t.Errorf("parsed back %v, %v; want %v", back, err, drains)
	}
	// rs1 drained for all, undrained for telnet: still drained for http.
	left := tb.Undrain(drains, "rs1", []string{"telnet"})
	if want := []Drain{{Host: "rs1", Services: []string{"http"}}, {Host: "rs2", Services: []string{"http"}}}; !reflect.DeepEqual(left, want) {
		t.Errorf("after undrain rs1 telnet: %v, want %v", left, want)
	}
	if left = tb.Undrain(left, "rs2", nil); len(left) != 1 || left[0].Host != "rs1" {
		t.Errorf("after undrain rs2: %v", left)
	}
	// A second drain of some services of a host drained for all keeps all.
	if m := Merge(drains, Drain{Host: "rs1", Services: []string{"http"}}); !m[0].All() {
		t.Errorf("merging into an all-services drain narrowed it: %v", m)
	}
	if _, err := ParseDrains([]byte("rs1\n")); err == nil {
		t.Error("a record line without services parsed")
	}
}
