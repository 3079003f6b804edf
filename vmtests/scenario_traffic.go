package vmtests

import (
	"context"
	"net/netip"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/ipvs"
)

// The scenarios of traffic through the VIPs: the spec as given, weighted round robin.
var (
	seedDR = &Scenario{
		Name: "seed-dr",
		Doc:  "the spec as given (the seed's LVS-DR cluster by default): 200 requests split as its scheduler and weights say; every service answers through its VIP; every director's IPVS table is the rendered one (the standby keeps it too)",
		Run: func(ctx context.Context, r *Run) error {
			if err := trafficCheck(ctx, r, 200, netip.Addr{}); err != nil {
				return err
			}
			return checkTables(ctx, r)
		},
	}
	wrrScenario = &Scenario{
		Name: "wrr",
		Doc:  "scheduler wrr with weights 3:1 (3 for each service's first real server, 1 for the others) splits 200 requests 150/50 within 5 %; then scheduler sh sends each of 8 client addresses to one server",
		Spec: func(s *cluster.Spec) error {
			for i := range s.Services {
				s.Services[i].Scheduler = "wrr"
				s.Services[i].Persistence = nil
			}
			t := ipvs.Build(s)
			for _, sv := range s.Services {
				for j, d := range t.Named(sv.Name).Dests {
					h := s.Host(d.Host)
					if h.Weights == nil {
						h.Weights = map[string]int{}
					}
					h.Weights[sv.Name] = 1
					if j == 0 {
						h.Weights[sv.Name] = 3
					}
				}
			}
			return nil
		},
		Run: runWRR,
	}
)

// checkTables compares every running director's IPVS table with the
// rendered rules: the active one's, and the standby's, which keeps the
// table too (heartbeat's hot standby, keepalived on every node), so that a
// takeover has nothing to load.
func checkTables(ctx context.Context, r *Run) error {
	if _, err := r.C.ActiveDirector(ctx, r.Spec.Services[0].VIP); err != nil {
		return err
	}
	for _, d := range r.Spec.HostsByRole(cluster.RoleDirector) {
		if err := r.C.CheckRules(ctx, d.Name, r.Spec); err != nil {
			r.Errorf("%v", err)
		}
	}
	return nil
}

func runWRR(ctx context.Context, r *Run) error {
	if err := trafficCheck(ctx, r, 200, netip.Addr{}); err != nil {
		return err
	}
	// Then sh: each client address always reaches one server.
	sh, err := deriveSpec(r.Spec, func(s *cluster.Spec) error {
		for i := range s.Services {
			s.Services[i].Scheduler = "sh"
		}
		return nil
	})
	if err != nil {
		return err
	}
	if _, err := r.C.Converge(ctx, sh); err != nil {
		return err
	}
	sv := checkedServices(sh)[0]
	servers := map[string]bool{}
	for _, src := range ClientAddrs {
		t, err := r.C.Requests(ctx, sv, 10, src)
		if err != nil {
			return err
		}
		if t.Failed > 0 || len(t.By) != 1 {
			r.Errorf("sh: client %s reached %s, want one server for all 10 requests\nanswers: %s\n%s", src, t, t.Sequence(), r.C.lbState(ctx, sv))
		}
		for n := range t.By {
			servers[n] = true
		}
	}
	r.Figure("sh: servers reached by 8 clients", float64(len(servers)), "")
	return nil
}
