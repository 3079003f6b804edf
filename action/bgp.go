package action

import (
	"context"
	"fmt"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/ha"
)

// The bgp backend runs every director at once, each holding the VIPs on lo
// and announcing them. status, drain, upgrade and the rolling push read a
// live cluster through the one director that holds the VIPs on an
// interface, and move the VIPs off a director before its change: neither
// exists with bgp. Rather than answer wrongly (a drain that waits on one
// director of three, a push that restarts every director at once), they
// refuse until they learn the bgp way.

// oneHolder refuses verb on a bgp spec.
func oneHolder(spec *cluster.Spec, verb string) error {
	if spec.HA.Backend != cluster.BackendBGP {
		return nil
	}
	return fmt.Errorf("%s with ha.backend bgp is not supported yet: it reads the cluster through the one director that holds the VIPs, "+
		"and every bgp director holds them (see the README's Scaling out)", verb)
}

// bgpRollout refuses a push that would interrupt more than one host of a
// live bgp cluster (a director's keepalived runs) at once: lvsforge cannot
// yet drain a real server on every director nor wait for a director's
// routes to come back. One host per push (--hosts) is the user's call.
func (r *Run) bgpRollout(ctx context.Context) error {
	if r.Spec.HA.Backend != cluster.BackendBGP {
		return nil
	}
	var interrupted []*cluster.Host
	for _, h := range r.Hosts {
		if s := r.session(ctx, h); s.Err() == nil && s.Plan != nil && len(s.Plan.Interrupts) > 0 {
			interrupted = append(interrupted, h)
		}
	}
	if len(interrupted) < 2 {
		return nil
	}
	live := ""
	for _, d := range r.directors() {
		out, err := r.session(ctx, d).Query(ctx, ha.Query(cluster.BackendKeepalived))
		if err != nil {
			continue
		}
		if hd, err := ha.Parse(d.Name, out); err == nil && hd.Running {
			live = d.Name
			break
		}
	}
	if live == "" {
		return nil // not serving yet: everything at once, as a first push
	}
	return fmt.Errorf("the bgp cluster is live (keepalived runs on %s) and this push restarts services on %s at once; "+
		"a rolling push of a bgp cluster is not supported yet: push one host at a time with --hosts (a director withdraws its routes while it restarts)",
		live, hostNames(interrupted))
}
