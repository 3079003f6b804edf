package action

import (
	"context"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy"
)

// KernelConfirm makes the kernel each selected host runs, booted once
// after push --kernel --activate once, its default: Env.Kernels gives the
// release to confirm per role. A host not running it is refused
// (deploy.ErrNotRunning).
func KernelConfirm() *Action {
	return &Action{Name: "kernel confirm", Phases: []Phase{
		{Title: "connect", Do: func(ctx context.Context, r *Run) error {
			r.connect(ctx, r.Hosts)
			return nil
		}},
		{Title: "gather facts and plan", Do: func(ctx context.Context, r *Run) error {
			r.forEach(ctx, r.Hosts, func(h *cluster.Host, s *deploy.Session) {
				k := r.Kernels[h.Role]
				if k == nil {
					k = &deploy.Kernel{Release: r.Spec.Release(h.Role)}
				}
				if s.Gather(ctx, &deploy.Host{Target: s.Host.Target, Kernel: &deploy.Kernel{Release: k.Release, MakeDefault: true}}) == nil {
					s.MakePlan(ctx)
				}
			})
			return nil
		}},
		{Title: "apply", Do: applyHosts},
	}}
}

// RunKernelConfirm runs KernelConfirm on env and returns its report (see RunPush).
func RunKernelConfirm(ctx context.Context, env *Env) (*deploy.Report, error) {
	return runReported(ctx, env, KernelConfirm())
}

// KernelStatus reads each selected host's kernels: running, installed by
// lvsforge, GRUB's default and next boot.
func KernelStatus(ctx context.Context, env *Env) ([]*deploy.KernelStatus, error) {
	r, err := NewRun(env)
	if err != nil {
		return nil, err
	}
	out := make([]*deploy.KernelStatus, len(r.Hosts))
	a := &Action{Name: "kernel status", Phases: []Phase{{Title: "read", Do: func(ctx context.Context, r *Run) error {
		deploy.ForEach(len(r.Hosts), r.batch.Options().Concurrency, func(i int) {
			out[i] = r.session(ctx, r.Hosts[i]).KernelStatus(ctx)
		})
		return nil
	}}}}
	return out, a.Do(ctx, r)
}
