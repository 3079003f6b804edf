// Package action holds lvsforge's multi-step operations on a cluster's
// hosts: push, kernel confirm and status, status, drain and undrain,
// upgrade. Each is an Action, a name and an ordered list of phases; each
// phase is one step over the hosts (connect, read the directors' state,
// render, plan, apply, move the VIPs...). The CLI and the VM tests run the
// same actions, so that a rehearsal in VMs runs what production runs.
// Every change to a host goes through a deploy.Session (its plans, or its
// Run), so a dry run shows all of it.
package action

import (
	"context"
	"fmt"
	"io"
	"sync"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/install"
)

// Env is what an action works with: the spec, which of its hosts, how to
// reach them, and what a push adds to the rendered files.
type Env struct {
	Spec *cluster.Spec
	// Only names the hosts the action is limited to (--hosts, --role);
	// empty: every host of the spec.
	Only []string
	// Target says how a host is reached: its spec and ssh_config, or the
	// forwarded port of its VM.
	Target func(h *cluster.Host) (deploy.Target, error)
	// Deploy are the push options (dial, concurrency, dry run, backups);
	// Deploy.Out receives the per-host plans.
	Deploy deploy.Options
	// Log receives one line per phase and per step of a rollout; nil
	// discards them.
	Log io.Writer
	// Kernels are the built kernels a push installs (push --kernel, upgrade)
	// or a kernel confirm confirms, by role.
	Kernels map[string]*deploy.Kernel
	// Ipvsadm, when set, is installed on the directors.
	Ipvsadm *install.Artifact
	// Now is the clock (time.Now when nil); rollouts time their waits by it.
	Now func() time.Time
	// DrainTimeout and HealthTimeout bound a rollout's waits for a real
	// server's connections to end and for a host to come back healthy
	// (DefaultDrainTimeout, DefaultHealthTimeout when 0).
	DrainTimeout, HealthTimeout time.Duration
}

// Phase is one step of an action.
type Phase struct {
	Title string
	// Skip, when set, says why the phase has nothing to do ("": run it).
	Skip func(*Run) string
	Do   func(context.Context, *Run) error
}

// Action is a named, ordered list of phases.
type Action struct {
	Name   string
	Phases []Phase
}

// Run is one execution of an action: its environment, the hosts it works
// on, their sessions, and what the phases found for the later ones.
type Run struct {
	*Env
	// Hosts are the spec's hosts the action works on, in spec order.
	Hosts  []*cluster.Host
	Report *deploy.Report

	batch *deploy.Batch
	// mu guards sessions, which a run shares with its sub-runs (withState).
	mu       *sync.Mutex
	sessions map[string]*deploy.Session
	// state is what each action's phases share (pushState, statusState...).
	state any
}

// NewRun prepares a run of env: the hosts it names, a batch for their sessions.
func NewRun(env *Env) (*Run, error) {
	r := &Run{Env: env, mu: &sync.Mutex{}, sessions: map[string]*deploy.Session{}, batch: deploy.NewBatch(env.Deploy)}
	want := map[string]bool{}
	for _, n := range env.Only {
		if env.Spec.Host(n) == nil {
			return nil, fmt.Errorf("select hosts: no host %q in the spec", n)
		}
		want[n] = true
	}
	for i := range env.Spec.Hosts {
		if h := &env.Spec.Hosts[i]; len(want) == 0 || want[h.Name] {
			r.Hosts = append(r.Hosts, h)
		}
	}
	r.Report = &deploy.Report{DryRun: r.batch.Options().DryRun}
	return r, nil
}

// Do runs the action's phases in order; the first that fails ends it, and
// the error says which phase and which ones did not run. Sessions are
// closed at the end.
func (a *Action) Do(ctx context.Context, r *Run) error {
	defer r.closeAll()
	for i, p := range a.Phases {
		if p.Skip != nil {
			if why := p.Skip(r); why != "" {
				r.logf("%s [%d/%d] %s: skipped (%s)", a.Name, i+1, len(a.Phases), p.Title, why)
				continue
			}
		}
		r.logf("%s [%d/%d] %s", a.Name, i+1, len(a.Phases), p.Title)
		if err := p.Do(ctx, r); err != nil {
			var rest []string
			for _, q := range a.Phases[i+1:] {
				rest = append(rest, q.Title)
			}
			if len(rest) > 0 {
				return fmt.Errorf("%s: %s: %w (not run: %s)", a.Name, p.Title, err, joinComma(rest))
			}
			return fmt.Errorf("%s: %s: %w", a.Name, p.Title, err)
		}
	}
	return nil
}

func (r *Run) logf(format string, args ...any) {
	if r.Log != nil {
		fmt.Fprintf(r.Log, format+"\n", args...)
	}
}

func (r *Run) now() time.Time {
	if r.Env.Now != nil {
		return r.Env.Now()
	}
	return time.Now()
}

// sub is a run over hosts with its own phase state, sharing r's
// sessions and report: a step of an action that is another's phases.
func (r *Run) sub(hosts []*cluster.Host, env *Env, state any) *Run {
	return &Run{Env: env, Hosts: hosts, Report: r.Report, batch: r.batch, mu: r.mu, sessions: r.sessions, state: state}
}

// DryRun reports whether the run only plans.
func (r *Run) DryRun() bool { return r.batch.Options().DryRun }

// session returns the open session to host h, connecting on first use. A
// host that could not be reached has a session whose Err says why; its
// report joins the run's report once.
func (r *Run) session(ctx context.Context, h *cluster.Host) *deploy.Session {
	r.mu.Lock()
	s := r.sessions[h.Name]
	r.mu.Unlock()
	if s != nil {
		return s
	}
	t, err := r.Target(h)
	if err != nil {
		s = r.batch.Open(ctx, deploy.Target{Name: h.Name})
		s.Report.Host = h.Name
		s.Fail(fmt.Errorf("resolve %s: %w", h.Name, err))
	} else {
		s = r.batch.Open(ctx, t)
	}
	r.mu.Lock()
	defer r.mu.Unlock()
	if old := r.sessions[h.Name]; old != nil {
		s.Close()
		return old
	}
	r.sessions[h.Name] = s
	return s
}

// connect opens sessions to hosts, Concurrency at a time.
func (r *Run) connect(ctx context.Context, hosts []*cluster.Host) {
	deploy.ForEach(len(hosts), r.batch.Options().Concurrency, func(i int) { r.session(ctx, hosts[i]) })
}

// forEach runs fn for each host with an open session, Concurrency at a time.
func (r *Run) forEach(ctx context.Context, hosts []*cluster.Host, fn func(h *cluster.Host, s *deploy.Session)) {
	deploy.ForEach(len(hosts), r.batch.Options().Concurrency, func(i int) {
		if s := r.session(ctx, hosts[i]); s.Err() == nil {
			fn(hosts[i], s)
		}
	})
}

// reconnect replaces host h's session with a new one (after a reboot).
func (r *Run) reconnect(ctx context.Context, h *cluster.Host) *deploy.Session {
	r.mu.Lock()
	old := r.sessions[h.Name]
	delete(r.sessions, h.Name)
	r.mu.Unlock()
	if old != nil {
		old.Close()
	}
	s := r.session(ctx, h)
	return s
}

// closeAll closes the sessions and reports, in spec order, every host the
// action works on and every other host it changed (the directors of a
// drain around a real server's change); a host only read is not reported.
func (r *Run) closeAll() {
	r.mu.Lock()
	defer r.mu.Unlock()
	for _, h := range r.Spec.Hosts {
		s := r.sessions[h.Name]
		if s == nil {
			continue
		}
		s.Close()
		if r.isSelected(r.Spec.Host(h.Name)) || len(s.Report.Plan) > 0 {
			r.Report.Hosts = append(r.Report.Hosts, s.Report)
		}
	}
}

// failed is the first of hosts whose session failed, as an error naming
// every failed one, or nil.
func (r *Run) failed(hosts []*cluster.Host) error {
	var names []string
	var first error
	for _, h := range hosts {
		r.mu.Lock()
		s := r.sessions[h.Name]
		r.mu.Unlock()
		if s != nil && s.Err() != nil {
			names = append(names, h.Name)
			if first == nil {
				first = s.Err()
			}
		}
	}
	if first == nil {
		return nil
	}
	return fmt.Errorf("failed on %d of %d hosts (%s): %w", len(names), len(hosts), joinComma(names), first)
}

func joinComma(s []string) string {
	out := ""
	for i, x := range s {
		if i > 0 {
			out += ", "
		}
		out += x
	}
	return out
}

// directors are the spec's directors, in spec order.
func (r *Run) directors() []*cluster.Host { return r.Spec.HostsByRole(cluster.RoleDirector) }

// selected are r.Hosts of role.
func (r *Run) selected(role string) []*cluster.Host {
	var out []*cluster.Host
	for _, h := range r.Hosts {
		if h.Role == role {
			out = append(out, h)
		}
	}
	return out
}
