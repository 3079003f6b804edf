package cluster

import (
	"os"
	"strings"
	"testing"
)

// TestWeightsDefaultToServing: a real server serves every service, with
// weight 1 unless its weights say otherwise, and not at all where its
// weight is 0. A service added to a spec whose real servers already have
// weights for the others reaches all of them.
func TestWeightsDefaultToServing(t *testing.T) {
	base, err := os.ReadFile("testdata/base.yaml")
	if err != nil {
		t.Fatal(err)
	}
	text := strings.NewReplacer(
		"    forwarding: dr\n", "    forwarding: dr\n  - {name: https, vip: 192.168.7.110, port: 443}\n",
		"    address: 192.168.7.11/24\n    gateway: 192.168.7.254\n",
		"    address: 192.168.7.11/24\n    gateway: 192.168.7.254\n    weights: {http: 3}\n"+
			"  - {name: rs2, role: realserver, address: 192.168.7.12/24, weights: {https: 0}}\n"+
			"  - {name: rs3, role: realserver, address: 192.168.7.13/24}\n",
	).Replace(string(base))
	s, err := Parse([]byte(text), "c.yaml", "testdata")
	if err != nil {
		t.Fatal(err)
	}
	names := func(hosts []*Host) string {
		var out []string
		for _, h := range hosts {
			out = append(out, h.Name)
		}
		return strings.Join(out, " ")
	}
	for _, tc := range []struct {
		service, servers string
		weights          map[string]int
	}{
		{"http", "rs1 rs2 rs3", map[string]int{"rs1": 3, "rs2": 1, "rs3": 1}},
		{"https", "rs1 rs3", map[string]int{"rs1": 1, "rs2": 0, "rs3": 1}},
	} {
		if got := names(s.RealServers(s.Service(tc.service))); got != tc.servers {
			t.Errorf("real servers of %s: %q, want %q", tc.service, got, tc.servers)
		}
		for rs, w := range tc.weights {
			h := s.Host(rs)
			if got := Weight(h, tc.service); got != w {
				t.Errorf("weight of %s for %s: %d, want %d", rs, tc.service, got, w)
			}
			if ServesService(h, tc.service) != (w > 0) {
				t.Errorf("%s serves %s: %v, want %v", rs, tc.service, !(w > 0), w > 0)
			}
		}
	}
}
