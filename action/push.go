package action

import (
	"context"
	"fmt"
	"strings"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/install"
	"github.com/lvsforge/lvsforge/ipvs"
	"github.com/lvsforge/lvsforge/roles"
)

// pushState is what push's phases hand each other.
type pushState struct {
	drains []ipvs.Drain
	// hosts are the push inputs, by host name.
	hosts map[string]*deploy.Host
}

func (r *Run) push() *pushState {
	if st, ok := r.state.(*pushState); ok {
		return st
	}
	st := &pushState{hosts: map[string]*deploy.Host{}}
	r.state = st
	return st
}

// Push installs each selected host's rendered files, restarting or
// reloading what changed. Every host is reached and planned first; then
// the changes that interrupt nothing are applied on every host at once, and
// those that would (an HA daemon's restart, a real server's VIP set-up) one
// host at a time in a safe order (see rollout).
func Push() *Action {
	return &Action{Name: "push", Phases: []Phase{
		{Title: "connect", Do: func(ctx context.Context, r *Run) error {
			r.connect(ctx, r.Hosts)
			return nil
		}},
		{Title: "read the drains the directors keep", Skip: noDirectorSelected, Do: readDrains},
		{Title: "render", Do: renderHosts},
		{Title: "gather facts and plan", Do: planHosts},
		{Title: "apply, rolling where a change interrupts service", Do: func(ctx context.Context, r *Run) error { return r.applyRollout(ctx) }},
	}}
}

// RunPush runs Push on env and returns its report. The error is the
// action's (a phase failed); a host's failure is in the report (Err).
func RunPush(ctx context.Context, env *Env) (*deploy.Report, error) {
	return runReported(ctx, env, Push())
}

// runReported runs a on env, writes the hosts' plans and returns the report.
func runReported(ctx context.Context, env *Env, a *Action) (*deploy.Report, error) {
	r, err := NewRun(env)
	if err != nil {
		return nil, err
	}
	err = a.Do(ctx, r)
	r.Report.WritePlans(r.batch.Options().Out)
	return r.Report, err
}

func noDirectorSelected(r *Run) string {
	if len(r.selected(cluster.RoleDirector)) == 0 {
		return "no director selected: the real servers' files do not depend on drains"
	}
	return ""
}

// readDrains reads the drains each reachable selected director records
// and keeps all of them: a drain recorded on either director (the other
// was unreachable when it was made) stays drained.
func readDrains(ctx context.Context, r *Run) error {
	st := r.push()
	drains, err := r.recordedDrains(ctx, r.selected(cluster.RoleDirector))
	if err != nil {
		return err
	}
	st.drains = drains
	if len(drains) > 0 {
		r.logf("  drained: %s", strings.TrimSpace(drainsText(drains)))
	}
	return nil
}

// recordedDrains is the union of the drains the reachable directors of
// hosts record.
func (r *Run) recordedDrains(ctx context.Context, directors []*cluster.Host) ([]ipvs.Drain, error) {
	var drains []ipvs.Drain
	for _, d := range directors {
		s := r.session(ctx, d)
		out, err := s.Query(ctx, "cat "+install.DrainsFile+" 2>/dev/null; true")
		if err != nil {
			continue // unreachable: the push reports it
		}
		ds, err := ipvs.ParseDrains(out)
		if err != nil {
			return nil, fmt.Errorf("read %s's drains: %w", d.Name, err)
		}
		for _, x := range ds {
			if r.Spec.Host(x.Host) == nil {
				r.logf("  %s records a drain of %s, which the spec no longer has: dropped", d.Name, x.Host)
				continue
			}
			drains = ipvs.Merge(drains, x)
		}
	}
	return drains, nil
}

func drainsText(drains []ipvs.Drain) string {
	return strings.TrimPrefix(string(ipvs.FormatDrains(drains)), ipvs.DrainsHeader)
}

// renderHosts renders the spec (with the drains) into each selected host's
// push inputs.
func renderHosts(_ context.Context, r *Run) error {
	st := r.push()
	hosts, err := r.render(st.drains)
	if err != nil {
		return err
	}
	st.hosts = hosts
	return nil
}

// render renders the spec with drains into the push inputs of the run's
// hosts, by name: files, units, the role's kernel and, on the directors,
// ipvsadm. Targets are the sessions' (set when planned).
func (r *Run) render(drains []ipvs.Drain) (map[string]*deploy.Host, error) {
	rendered, err := roles.RenderDrained(r.Spec, drains)
	if err != nil {
		return nil, err
	}
	out := map[string]*deploy.Host{}
	for _, hf := range rendered {
		h := r.Spec.Host(hf.Host.Name)
		if !r.isSelected(h) {
			continue
		}
		dh := &deploy.Host{Init: h.Init, Files: hf.Files, Units: hf.Units}
		if k := r.Kernels[h.Role]; k != nil {
			dh.Kernel = k
		}
		if r.Ipvsadm != nil && h.Role == cluster.RoleDirector {
			dh.Files = append(dh.Files, install.File{Path: deploy.IpvsadmPath, Locate: "ipvsadm", Mode: 0o755, Artifact: r.Ipvsadm})
		}
		out[h.Name] = dh
	}
	return out, nil
}

func (r *Run) isSelected(h *cluster.Host) bool {
	for _, x := range r.Hosts {
		if x == h {
			return true
		}
	}
	return false
}

// planHosts gathers each selected host's facts and plans its push.
func planHosts(ctx context.Context, r *Run) error {
	st := r.push()
	r.forEach(ctx, r.Hosts, func(h *cluster.Host, s *deploy.Session) {
		dh := *st.hosts[h.Name]
		dh.Target = s.Host.Target
		if s.Gather(ctx, &dh) == nil {
			s.MakePlan(ctx)
		}
	})
	return nil
}

// applyHosts applies the plans on every host at once.
func applyHosts(ctx context.Context, r *Run) error {
	if r.DryRun() {
		return nil
	}
	r.forEach(ctx, r.Hosts, func(h *cluster.Host, s *deploy.Session) { s.Apply(ctx) })
	return nil
}
