package action

import (
	"context"
	"errors"
	"fmt"
	"strings"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/ha"
	"github.com/lvsforge/lvsforge/ipvs"
)

// ErrFellBack means a host rebooted onto its old kernel: the new one did
// not boot (it panicked, and panic=N rebooted into the default).
var ErrFellBack = errors.New("the new kernel did not boot: the host is back on its old one")

// UpgradeOptions say how a rolling kernel upgrade proceeds.
type UpgradeOptions struct {
	// Batch is how many real servers are upgraded at once (1 when 0).
	Batch int
	// BootTimeout bounds a host's reboot, until its sshd answers again on
	// the new (or the old) kernel (DefaultBootTimeout when 0).
	BootTimeout time.Duration
}

// DefaultBootTimeout is how long a host may take to reboot.
const DefaultBootTimeout = 10 * time.Minute

// rebootCommand reboots a host once the command has returned, so that the
// session's reply arrives before the connection dies.
var rebootCommand = []string{"sh", "-c", "nohup sh -c 'sleep 1; systemctl reboot || reboot' >/dev/null 2>&1 &"}

// bootIDScript is the host's boot id: it changes with every boot.
const bootIDScript = "cat /proc/sys/kernel/random/boot_id"

// Upgrade moves every selected host to the role kernels in Env.Kernels
// (the builds push --kernel installs), one host at a time: each real
// server drained, installed, activated for one boot, rebooted, checked
// (running the new kernel, answering), confirmed and undrained; then the
// directors, the standby first, the active one after the VIPs moved off
// it. A host already running and confirmed on its new kernel is passed
// over, so a second run continues where the first stopped. A kernel that
// does not come back (it panics and falls back, or sshd is not back in
// time) stops the upgrade; that host stays drained unless it answers on
// its old kernel.
func Upgrade(o UpgradeOptions) *Action {
	return &Action{Name: "upgrade", Phases: []Phase{
		{Title: "connect", Do: func(ctx context.Context, r *Run) error {
			if err := oneHolder(r.Spec, "upgrade"); err != nil {
				return err
			}
			r.connect(ctx, r.Hosts)
			return r.failed(r.Hosts)
		}},
		{Title: "read each host's kernels", Do: func(ctx context.Context, r *Run) error { return r.upgradePlan(ctx) }},
		{Title: "upgrade one host at a time", Do: func(ctx context.Context, r *Run) error { return r.upgradeHosts(ctx, o) }},
	}}
}

// upgradeState is what upgrade's phases hand each other.
type upgradeState struct {
	// todo are the hosts to upgrade, in order: real servers, then the
	// standby directors, then the active one.
	todo   []*cluster.Host
	active string
	// drains are the directors' drains before the upgrade, and hosts each
	// host's push inputs (what push --kernel installs) with them.
	drains []ipvs.Drain
	hosts  map[string]*deploy.Host
}

// RunUpgrade runs Upgrade on env.
func RunUpgrade(ctx context.Context, env *Env, o UpgradeOptions) (*deploy.Report, error) {
	r, err := NewRun(env)
	if err != nil {
		return nil, err
	}
	err = Upgrade(o).Do(ctx, r)
	if !r.DryRun() { // a dry run's plan is the steps, in the log
		r.Report.WritePlans(r.batch.Options().Out)
	}
	return r.Report, err
}

// upgradePlan finds the hosts not yet on their role's new kernel, and the
// active director.
func (r *Run) upgradePlan(ctx context.Context) error {
	st := &upgradeState{}
	r.state = st
	if d, err := r.activeDirector(ctx); err == nil {
		st.active = d.Name
	}
	var err error
	if st.drains, err = r.recordedDrains(ctx, r.directors()); err != nil {
		return err
	}
	if st.hosts, err = r.render(st.drains); err != nil {
		return err
	}
	var rs, standby, active []*cluster.Host
	for _, h := range r.Hosts {
		k := r.Kernels[h.Role]
		if k == nil {
			return fmt.Errorf("no %s kernel to upgrade %s to (lvsforge build kernel --role %s)", h.Role, h.Name, h.Role)
		}
		ks := r.session(ctx, h).KernelStatus(ctx)
		if ks.Err() != nil {
			return fmt.Errorf("%s: %w", h.Name, ks.Err())
		}
		if ks.Running == k.Release && ks.Default == "lvsforge-"+k.Release && ks.Next == "" {
			r.logf("  %s: already on %s, confirmed", h.Name, k.Release)
			continue
		}
		switch {
		case h.Role == cluster.RoleRealServer:
			rs = append(rs, h)
		case h.Name == st.active:
			active = append(active, h)
		default:
			standby = append(standby, h)
		}
	}
	st.todo = append(append(rs, standby...), active...)
	if len(st.todo) == 0 {
		r.logf("  nothing to upgrade")
		return nil
	}
	r.logf("  order: %s", hostNames(st.todo))
	return nil
}

func (r *Run) upgradeHosts(ctx context.Context, o UpgradeOptions) error {
	st := r.state.(*upgradeState)
	if r.DryRun() {
		for _, h := range st.todo {
			r.logf("  %s: %s", h.Name, strings.Join(r.upgradeSteps(h, st.active), ", "))
		}
		return nil
	}
	drains := st.drains
	batch := max(o.Batch, 1)
	for i := 0; i < len(st.todo); {
		group := []*cluster.Host{st.todo[i]}
		if st.todo[i].Role == cluster.RoleRealServer {
			for j := i + 1; j < len(st.todo) && len(group) < batch && st.todo[j].Role == cluster.RoleRealServer; j++ {
				group = append(group, st.todo[j])
			}
		}
		err := r.upgradeGroup(ctx, group, drains, st.active, o)
		i += len(group)
		if err != nil {
			if rest := st.todo[i:]; len(rest) > 0 {
				return fmt.Errorf("%w; the upgrade stopped: %s untouched", err, hostNames(rest))
			}
			return err
		}
	}
	return nil
}

// upgradeSteps says what upgrading h does, for a dry run.
func (r *Run) upgradeSteps(h *cluster.Host, active string) []string {
	k := r.Kernels[h.Role]
	var steps []string
	switch {
	case h.Role == cluster.RoleRealServer:
		steps = append(steps, "drain on every director", "wait for its connections to end")
	case h.Name == active && r.Spec.HA.Backend == cluster.BackendHeartbeat:
		steps = append(steps, "move the VIPs to the standby (hb_standby)")
	}
	steps = append(steps, "install "+k.Release+" and activate it for one boot", "reboot, wait for sshd (at most "+r.bootTimeout(UpgradeOptions{}).String()+")",
		"check it runs "+k.Release, "kernel confirm")
	if h.Role == cluster.RoleRealServer {
		steps = append(steps, "wait until it answers", "undrain, wait for its weights")
	} else {
		steps = append(steps, "wait until the pair is healthy")
	}
	return steps
}

func (r *Run) bootTimeout(o UpgradeOptions) time.Duration {
	if o.BootTimeout > 0 {
		return o.BootTimeout
	}
	return DefaultBootTimeout
}

// upgradeGroup upgrades real servers side by side (one batch), or one director.
func (r *Run) upgradeGroup(ctx context.Context, group []*cluster.Host, drains []ipvs.Drain, active string, o UpgradeOptions) error {
	start := r.now()
	rs := group[0].Role == cluster.RoleRealServer
	if rs {
		with := drains
		for _, h := range group {
			with = ipvs.Merge(with, ipvs.Drain{Host: h.Name})
		}
		r.logf("  %s: drain", hostNames(group))
		if err := r.setDrains(ctx, with); err != nil {
			return fmt.Errorf("%s: drain: %w", hostNames(group), err)
		}
		for _, h := range group {
			if err := waitDrained(ctx, r, DrainRequest{Host: h.Name, Timeout: r.drainTimeout()}); err != nil {
				return fmt.Errorf("%s: %w (drained: lvsforge undrain %s when it is safe)", h.Name, err, h.Name)
			}
		}
	} else if group[0].Name == active && r.Spec.HA.Backend == cluster.BackendHeartbeat {
		if err := r.moveVIPsOff(ctx, group[0]); err != nil {
			return fmt.Errorf("%s: %w", group[0].Name, err)
		}
	}
	errs := make([]error, len(group))
	deploy.ForEach(len(group), len(group), func(i int) { errs[i] = r.upgradeHost(ctx, group[i], o) })
	var failed []*cluster.Host
	for i, err := range errs {
		if err != nil {
			failed = append(failed, group[i])
			r.session(ctx, group[i]).Fail(err)
		}
	}
	if rs {
		// Undrain what answers; a host that does not stays drained. A
		// host undrained is waited for until the checker gave it its
		// weights back, a fallen-back one too: the upgrade ends with it
		// serving, not about to.
		keep := drains
		var stays []*cluster.Host
		for _, h := range failed {
			if r.waitAnswers(ctx, h) != nil {
				keep = ipvs.Merge(keep, ipvs.Drain{Host: h.Name})
				stays = append(stays, h)
				r.logf("  %s: stays drained: it does not answer", h.Name)
			} else {
				r.logf("  %s: answers on its old kernel: undrained", h.Name)
			}
		}
		r.logf("  undrain")
		if err := r.setDrains(ctx, keep); err != nil {
			return fmt.Errorf("%s: undrain: %w", hostNames(group), err)
		}
		for _, h := range group {
			if !containsHost(stays, h) {
				if err := r.waitWeights(ctx, h, keep); err != nil {
					return fmt.Errorf("%s: %w", h.Name, err)
				}
			}
		}
	}
	for i, err := range errs {
		if err != nil {
			return fmt.Errorf("%s: %w", group[i].Name, err)
		}
	}
	if !rs {
		if err := r.waitPairHealthy(ctx); err != nil {
			return fmt.Errorf("%s: %w", group[0].Name, err)
		}
	}
	r.logf("  %s: upgraded in %.1f s", hostNames(group), r.now().Sub(start).Seconds())
	return nil
}

func containsHost(hs []*cluster.Host, h *cluster.Host) bool {
	for _, x := range hs {
		if x == h {
			return true
		}
	}
	return false
}

// moveVIPsOff moves the VIPs from director h to the standby (heartbeat's
// hb_standby) and waits until they are there.
func (r *Run) moveVIPsOff(ctx context.Context, h *cluster.Host) error {
	r.logf("  %s: move the VIPs to the standby", h.Name)
	if err := r.session(ctx, h).Run(ctx, "move the VIPs to the standby", ha.StandbyCommand()); err != nil {
		return err
	}
	return r.poll(ctx, "the VIPs on the standby", func(ctx context.Context) (bool, string) {
		holder, why := r.pairState(ctx)
		if holder == "" || holder == h.Name {
			return false, why + " (still on " + h.Name + ")"
		}
		return true, ""
	})
}

// upgradeHost pushes h's files with the new kernel (push --kernel),
// activated for one boot, reboots, checks that it runs it, and confirms it.
func (r *Run) upgradeHost(ctx context.Context, h *cluster.Host, o UpgradeOptions) error {
	k := *r.Kernels[h.Role]
	k.ActivateOnce, k.MakeDefault = true, false
	dh := *r.state.(*upgradeState).hosts[h.Name]
	dh.Kernel = &k
	s := r.session(ctx, h)
	dh.Target = s.Host.Target
	r.logf("  %s: install %s, activate it for one boot", h.Name, k.Release)
	if s.Gather(ctx, &dh) != nil || s.MakePlan(ctx) != nil || s.Apply(ctx) != nil {
		return fmt.Errorf("install %s: %w", k.Release, s.Err())
	}
	old, err := s.Query(ctx, bootIDScript)
	if err != nil {
		return err
	}
	r.logf("  %s: reboot", h.Name)
	if err := s.Run(ctx, "reboot", rebootCommand); err != nil {
		return err
	}
	s, err = r.waitRebooted(ctx, h, strings.TrimSpace(string(old)), r.bootTimeout(o))
	if err != nil {
		return err
	}
	ks := s.KernelStatus(ctx)
	if ks.Err() != nil {
		return ks.Err()
	}
	if ks.Running != k.Release {
		return fmt.Errorf("%s runs %s after the reboot, not %s: %w", h.Name, ks.Running, k.Release, ErrFellBack)
	}
	r.logf("  %s: runs %s; kernel confirm", h.Name, k.Release)
	if s.Gather(ctx, &deploy.Host{Target: s.Host.Target, Init: h.Init, Kernel: &deploy.Kernel{Release: k.Release, MakeDefault: true}}) != nil ||
		s.MakePlan(ctx) != nil || s.Apply(ctx) != nil {
		return fmt.Errorf("confirm %s: %w", k.Release, s.Err())
	}
	if h.Role == cluster.RoleRealServer {
		return r.waitAnswers(ctx, h)
	}
	return nil
}

// waitRebooted reconnects to h until it answers with another boot id than
// old, and returns the new session.
func (r *Run) waitRebooted(ctx context.Context, h *cluster.Host, old string, limit time.Duration) (*deploy.Session, error) {
	deadline := r.now().Add(limit)
	for {
		select {
		case <-ctx.Done():
			return nil, ctx.Err()
		case <-time.After(2 * time.Second):
		}
		prev := r.session(ctx, h).Report
		s := r.reconnect(ctx, h)
		// The new session carries on the host's report.
		s.Report.Plan = append(prev.Plan, s.Report.Plan...)
		s.Report.Commands = append(prev.Commands, s.Report.Commands...)
		s.Report.Changed = append(prev.Changed, s.Report.Changed...)
		s.Report.Steps = append(prev.Steps, s.Report.Steps...)
		if s.Err() == nil {
			if id, err := s.Query(ctx, bootIDScript); err == nil && strings.TrimSpace(string(id)) != old {
				r.logf("  %s: back after %.0f s", h.Name, limit.Seconds()-deadline.Sub(r.now()).Seconds())
				return s, nil
			}
		}
		if !r.now().Before(deadline) {
			return nil, fmt.Errorf("%s: sshd not back on a new boot within %s", h.Name, limit)
		}
	}
}
