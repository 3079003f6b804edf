package action

import (
	"context"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/ha"
	"github.com/lvsforge/lvsforge/ipvs"
)

// Rollout waits, with their defaults: how long a real server's connections
// may take to end once drained, and how long a host has to come back
// healthy after its change.
const (
	DefaultDrainTimeout  = 2 * time.Minute
	DefaultHealthTimeout = 3 * time.Minute
	// settlePolls is how many polls in a row the VIPs must stay where they
	// are before a director's change counts as done: a heartbeat that
	// restarts with auto_failback takes them back a few seconds later.
	settlePolls = 3
	pollEvery   = time.Second
)

// rollout is the order in which a live cluster gets the changes that
// interrupt service (install.Unit.Interrupts): the real servers one at a
// time, each drained before and undrained after; then the directors one
// at a time, the standby first, the VIPs moved off the active one before
// its change. Each step waits for the host to come back healthy and stops
// the rollout at the first that does not.
type rollout struct {
	// active is the director holding the VIPs ("" when none does: the
	// cluster is not live and everything is applied at once).
	active string
	// atOnce are the hosts whose changes interrupt nothing.
	atOnce []*cluster.Host
	// realServers and directors are the rest, in the order they go.
	realServers, directors []*cluster.Host
}

// planRollout sorts the planned hosts.
func (r *Run) planRollout(ctx context.Context) *rollout {
	ro := &rollout{}
	if d, err := r.activeDirector(ctx); err == nil {
		ro.active = d.Name
	}
	for _, h := range r.Hosts {
		s := r.session(ctx, h)
		if s.Err() != nil || s.Plan == nil {
			continue
		}
		switch {
		case ro.active == "" || len(s.Plan.Interrupts) == 0:
			ro.atOnce = append(ro.atOnce, h)
		case h.Role == cluster.RoleRealServer:
			ro.realServers = append(ro.realServers, h)
		case h.Name != ro.active:
			ro.directors = append(ro.directors, h)
		}
	}
	if a := r.Spec.Host(ro.active); a != nil && r.isSelected(a) {
		if s := r.session(ctx, a); s.Err() == nil && s.Plan != nil && len(s.Plan.Interrupts) > 0 {
			ro.directors = append(ro.directors, a) // the active one last
		}
	}
	return ro
}

// describe is the rollout's order and waits, for a dry run and the log.
func (ro *rollout) describe(r *Run, ctx context.Context) []string {
	var lines []string
	if ro.active == "" {
		return []string{"no director holds the VIPs (not live): every host at once"}
	}
	if len(ro.atOnce) > 0 {
		lines = append(lines, "at once (nothing interrupted): "+hostNames(ro.atOnce))
	}
	for _, h := range ro.realServers {
		lines = append(lines, fmt.Sprintf("%s: drain on every director, wait for its connections to end (at most %s), apply (restart %s), wait until it answers (at most %s), undrain, wait for its weights",
			h.Name, r.drainTimeout(), strings.Join(r.session(ctx, h).Plan.Interrupts, ", "), r.healthTimeout()))
	}
	for _, h := range ro.directors {
		what := "standby"
		if h.Name == ro.active {
			what = "active: the VIPs moved to the standby first"
		}
		lines = append(lines, fmt.Sprintf("%s (%s): apply (restart %s), wait until the pair is healthy and the VIPs settled (at most %s)",
			h.Name, what, strings.Join(r.session(ctx, h).Plan.Interrupts, ", "), r.healthTimeout()))
	}
	return lines
}

func hostNames(hs []*cluster.Host) string {
	var n []string
	for _, h := range hs {
		n = append(n, h.Name)
	}
	return joinComma(n)
}

func (r *Run) drainTimeout() time.Duration {
	if r.DrainTimeout > 0 {
		return r.DrainTimeout
	}
	return DefaultDrainTimeout
}

func (r *Run) healthTimeout() time.Duration {
	if r.HealthTimeout > 0 {
		return r.HealthTimeout
	}
	return DefaultHealthTimeout
}

// applyRollout applies the planned hosts: at once where nothing is
// interrupted, then the rollout. It stops at the first host that fails or
// does not come back healthy, and says which hosts were left untouched.
func (r *Run) applyRollout(ctx context.Context) error {
	ro := r.planRollout(ctx)
	if err := r.bgpRollout(ctx); err != nil {
		return err
	}
	steps := ro.describe(r, ctx)
	r.logf("  rollout:")
	for _, l := range steps {
		r.logf("    %s", l)
	}
	if r.DryRun() {
		return nil
	}
	r.forEach(ctx, ro.atOnce, func(h *cluster.Host, s *deploy.Session) { s.Apply(ctx) })
	order := append(slices.Clone(ro.realServers), ro.directors...)
	if err := r.failed(ro.atOnce); err != nil {
		if len(order) > 0 {
			return fmt.Errorf("%w; the rollout did not start: %s untouched", err, hostNames(order))
		}
		return nil // reported per host
	}
	if len(order) == 0 {
		return nil
	}
	drains, err := r.recordedDrains(ctx, r.directors())
	if err != nil {
		return err
	}
	for i, h := range order {
		var err error
		if h.Role == cluster.RoleRealServer {
			err = r.rollRealServer(ctx, h, drains)
		} else {
			err = r.rollDirector(ctx, h, ro.active)
		}
		if err != nil {
			if rest := order[i+1:]; len(rest) > 0 {
				return fmt.Errorf("%s: %w; the rollout stopped: %s untouched", h.Name, err, hostNames(rest))
			}
			return fmt.Errorf("%s: %w", h.Name, err)
		}
	}
	return nil
}

// rollRealServer applies h's plan drained: new connections go to the other
// real servers while h's change interrupts its own.
func (r *Run) rollRealServer(ctx context.Context, h *cluster.Host, drains []ipvs.Drain) error {
	start := r.now()
	r.logf("  %s: drain", h.Name)
	if err := r.setDrains(ctx, ipvs.Merge(drains, ipvs.Drain{Host: h.Name})); err != nil {
		return fmt.Errorf("drain: %w", err)
	}
	// Until the checker has reloaded, new connections may still reach h.
	if err := r.waitOut(ctx, ipvs.Drain{Host: h.Name}); err != nil {
		return fmt.Errorf("drain: %w (it stays drained: lvsforge undrain %s when it is safe)", err, h.Name)
	}
	if err := waitDrained(ctx, r, DrainRequest{Host: h.Name, Timeout: r.drainTimeout()}); err != nil {
		return fmt.Errorf("drain: %w (it stays drained: lvsforge undrain %s when it is safe)", err, h.Name)
	}
	r.logf("  %s: apply", h.Name)
	if err := r.session(ctx, h).Apply(ctx); err != nil {
		return fmt.Errorf("apply: %w (it stays drained)", err)
	}
	if err := r.waitAnswers(ctx, h); err != nil {
		return fmt.Errorf("%w (it stays drained: lvsforge undrain %s once it answers)", err, h.Name)
	}
	r.logf("  %s: undrain", h.Name)
	if err := r.setDrains(ctx, drains); err != nil {
		return fmt.Errorf("undrain: %w", err)
	}
	if err := r.waitWeights(ctx, h, drains); err != nil {
		return err
	}
	r.logf("  %s: done in %.1f s", h.Name, r.now().Sub(start).Seconds())
	return nil
}

// setDrains renders the directors' files with drains and pushes them
// (every director: a reload of the checker).
func (r *Run) setDrains(ctx context.Context, drains []ipvs.Drain) error {
	ds := r.directors()
	env := *r.Env
	env.Kernels, env.Ipvsadm = nil, nil // the directors' configuration only
	sub := r.sub(ds, &env, &pushState{drains: drains, hosts: map[string]*deploy.Host{}})
	if err := renderHosts(ctx, sub); err != nil {
		return err
	}
	if err := planHosts(ctx, sub); err != nil {
		return err
	}
	r.forEach(ctx, ds, func(h *cluster.Host, s *deploy.Session) { s.Apply(ctx) })
	return r.failed(ds)
}

// waitAnswers waits until each TCP service h serves answers from the
// active director on h's own address (the check the checker makes).
func (r *Run) waitAnswers(ctx context.Context, h *cluster.Host) error {
	var probes []string
	for _, s := range ipvs.Build(r.Spec).ServicesOf(h.Name) {
		d := s.DestOf(h.Name)
		port := d.Port
		if sv := r.Spec.Service(s.Name); sv != nil && sv.Check.Port != 0 {
			port = uint16(sv.Check.Port)
		}
		if s.Mark == 0 && s.Proto != ipvs.TCP || port == 0 {
			continue
		}
		p := fmt.Sprintf("timeout 3 bash -c '</dev/tcp/%s/%d'", d.Addr, port)
		if !slices.Contains(probes, p) {
			probes = append(probes, p)
		}
	}
	if len(probes) == 0 {
		return nil
	}
	script := strings.Join(probes, " && ")
	return r.poll(ctx, h.Name+" answers its services", func(ctx context.Context) (bool, string) {
		d, err := r.activeDirector(ctx)
		if err != nil {
			return false, err.Error()
		}
		if _, err := r.session(ctx, d).Query(ctx, script); err != nil {
			return false, "does not answer from " + d.Name
		}
		return true, ""
	})
}

// waitWeights waits until the active director's live table gives h the
// weights the spec (with drains) gives it: the checker has put it back.
func (r *Run) waitWeights(ctx context.Context, h *cluster.Host, drains []ipvs.Drain) error {
	want := ipvs.Build(r.Spec).Drained(drains)
	return r.pollLive(ctx, h.Name+" back in the active director's table", func(live *ipvs.Table, d string) (bool, string) {
		for _, s := range want.ServicesOf(h.Name) {
			wd := s.DestOf(h.Name)
			ls := live.Service(s.Key)
			if ls == nil {
				return false, s.Key.String() + " missing on " + d
			}
			ld := ls.Dest(wd.Addr, wd.Port)
			if ld == nil || ld.Weight != wd.Weight {
				return false, fmt.Sprintf("%s: %s has another weight than %d on %s", s.Key, wd.AddrPort(), wd.Weight, d)
			}
		}
		return true, ""
	})
}

// waitOut waits until the active director's live table sends no new
// connection to the real server of drain dr: for each service the drain
// covers, the server is at weight 0 or not in the table at all (a checker
// without quiescent takes a failing server out). The services the drain
// does not cover are not looked at: a server is often drained because one
// of them fails its check.
func (r *Run) waitOut(ctx context.Context, dr ipvs.Drain) error {
	want := ipvs.Build(r.Spec)
	return r.pollLive(ctx, dr.Host+" drained in the active director's table", func(live *ipvs.Table, d string) (bool, string) {
		for _, s := range want.ServicesOf(dr.Host) {
			if !dr.Covers(s.Name) {
				continue
			}
			wd := s.DestOf(dr.Host)
			if ls := live.Service(s.Key); ls != nil {
				if ld := ls.Dest(wd.Addr, wd.Port); ld != nil && ld.Weight > 0 {
					return false, fmt.Sprintf("%s: %s still at weight %d on %s", s.Key, wd.AddrPort(), ld.Weight, d)
				}
			}
		}
		return true, ""
	})
}

// pollLive polls the active director's live table (ipvsadm -S -n) until ok
// says so; see poll.
func (r *Run) pollLive(ctx context.Context, what string, ok func(live *ipvs.Table, director string) (bool, string)) error {
	return r.poll(ctx, what, func(ctx context.Context) (bool, string) {
		d, err := r.activeDirector(ctx)
		if err != nil {
			return false, err.Error()
		}
		out, err := r.session(ctx, d).Query(ctx, "ipvsadm -S -n")
		if err != nil {
			return false, err.Error()
		}
		live, err := ipvs.ParseRules(string(out))
		if err != nil {
			return false, err.Error()
		}
		return ok(live, d.Name)
	})
}

// rollDirector applies director h's plan: the VIPs moved off it first when
// it holds them (heartbeat: hb_standby; keepalived: its own stop hands
// mastership over), then it waits until the pair is healthy and the VIPs
// have settled.
func (r *Run) rollDirector(ctx context.Context, h *cluster.Host, active string) error {
	start := r.now()
	s := r.session(ctx, h)
	if h.Name == active && r.Spec.HA.Backend == cluster.BackendHeartbeat {
		r.logf("  %s: move the VIPs to the standby", h.Name)
		if err := s.Run(ctx, "move the VIPs to the standby", ha.StandbyCommand()); err != nil {
			return err
		}
		if err := r.poll(ctx, "the VIPs on the standby", func(ctx context.Context) (bool, string) {
			holder, err := r.activeDirector(ctx)
			if err != nil {
				return false, err.Error()
			}
			return holder.Name != h.Name, "still on " + holder.Name
		}); err != nil {
			return err
		}
	}
	r.logf("  %s: apply", h.Name)
	if err := s.Apply(ctx); err != nil {
		return fmt.Errorf("apply: %w", err)
	}
	if err := r.waitPairHealthy(ctx); err != nil {
		return err
	}
	r.logf("  %s: done in %.1f s", h.Name, r.now().Sub(start).Seconds())
	return nil
}

// waitPairHealthy waits until every director's HA daemon runs and sees
// the others, one director holds every VIP, and that stays so for
// settlePolls polls.
func (r *Run) waitPairHealthy(ctx context.Context) error {
	stable, last := 0, ""
	return r.poll(ctx, "the directors healthy and the VIPs settled", func(ctx context.Context) (bool, string) {
		holder, why := r.pairState(ctx)
		if holder == "" {
			stable = 0
			return false, why
		}
		if holder != last {
			stable, last = 0, holder
		}
		stable++
		return stable >= settlePolls, "settling"
	})
}

// pairState is the director holding every VIP when every director's HA
// daemon runs and sees every other active, or "" and why not.
func (r *Run) pairState(ctx context.Context) (string, string) {
	holder := ""
	for _, d := range r.directors() {
		out, err := r.session(ctx, d).Query(ctx, ha.Query(r.Spec.HA.Backend))
		if err != nil {
			return "", d.Name + ": " + err.Error()
		}
		hd, err := ha.Parse(d.Name, out)
		if err != nil {
			return "", err.Error()
		}
		if !hd.Running {
			return "", r.Spec.HA.Backend + " not running on " + d.Name
		}
		for peer, st := range hd.Peers {
			if r.Spec.Host(peer) != nil && st != "active" {
				return "", fmt.Sprintf("%s sees %s %s", d.Name, peer, st)
			}
		}
		holds := 0
		for _, v := range r.Spec.VIPs() {
			if hd.Holds(netip.MustParseAddr(v)) {
				holds++
			}
		}
		switch {
		case holds == 0:
		case holds < len(r.Spec.VIPs()) || holder != "":
			return "", "the VIPs are split or doubly held"
		default:
			holder = d.Name
		}
	}
	if holder == "" {
		return "", "no director holds the VIPs"
	}
	return holder, ""
}

// poll checks every pollEvery until check says done or the health timeout
// passes; the error says what was waited for and the last reason.
func (r *Run) poll(ctx context.Context, what string, check func(context.Context) (bool, string)) error {
	deadline := r.now().Add(r.healthTimeout())
	for {
		ok, why := check(ctx)
		if ok {
			return nil
		}
		if !r.now().Before(deadline) {
			return fmt.Errorf("not healthy after %s: waited for %s (%s)", r.healthTimeout(), what, why)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(pollEvery):
		}
	}
}
