package deploy

import (
	"context"
	"errors"
	"fmt"
	"sync/atomic"
	"time"

	"github.com/lvsforge/lvsforge/install"
	"github.com/lvsforge/lvsforge/internal/shell"
)

// Batch is one push to any number of hosts: its options and what their
// sessions share (the slots for large uploads, the name of this run's
// backups).
type Batch struct {
	o   Options
	env applyEnv
}

// NewBatch starts a push with options o.
func NewBatch(o Options) *Batch {
	o = o.withDefaults()
	uploads := make(chan struct{}, o.UploadConcurrency)
	return &Batch{o: o, env: applyEnv{
		backupDir: o.BackupDir,
		keep:      o.Backups,
		stamp:     time.Now().UTC().Format("20060102T150405.000000000Z"),
		largeFile: o.LargeFile,
		uploadSlot: func(ctx context.Context, size int64) (func(), error) {
			if size < o.LargeFile {
				return func() {}, nil
			}
			select {
			case uploads <- struct{}{}:
				return func() { <-uploads }, nil
			case <-ctx.Done():
				return nil, ctx.Err()
			}
		},
	}}
}

// Options are the batch's options, with their defaults.
func (b *Batch) Options() Options { return b.o }

// Session is the work on one host: its connection, what a push learnt
// (Facts) and decided (Plan), and its report. A push's steps are Gather,
// MakePlan and Apply, in that order; each records its error in the report
// and returns it, and a step after a failed one does nothing. Query reads
// the host and Run runs commands on it, between those steps or instead.
type Session struct {
	// Host is what the push installs: the host given to Gather, with its
	// boot files only when a kernel is installed, the kernel's files and
	// the units' fingerprints.
	Host   *Host
	Report *HostReport
	Facts  *Facts
	Plan   *Plan

	b     *Batch
	c     *Conn
	sh    *hostShell
	start time.Time
}

// Open connects to the host at t. The session is never nil: a failed
// connection is its report's error.
func (b *Batch) Open(ctx context.Context, t Target) *Session {
	s := &Session{Host: &Host{Target: t}, b: b, start: time.Now(), Report: &HostReport{
		Host: t.Name, Address: t.Addr(), Changed: []string{}, Commands: []string{}, Plan: []string{},
	}}
	c, err := Dial(ctx, t, b.o.Dial)
	if err != nil {
		s.Fail(err)
		return s
	}
	s.c = c
	if !b.o.DryRun {
		// Held until the push is done: the temporaries the facts find
		// are then a dead push's, never a concurrent one's.
		if s.sh, err = openShell(c); err != nil {
			s.Fail(err)
		}
	}
	return s
}

// Err is the session's error, nil while every step succeeded.
func (s *Session) Err() error { return s.Report.err }

// Fail records err as the session's error (a step the caller ran around
// it failed) and returns it.
func (s *Session) Fail(err error) error {
	s.Report.err = err
	return err
}

// run runs a read-only script, under the host's push lock when the
// session holds it.
func (s *Session) run(ctx context.Context, script string) ([]byte, error) {
	if s.sh != nil {
		return s.sh.Run(ctx, script)
	}
	return s.c.output(ctx, script)
}

// Query runs a read-only script on the host (status, facts of the HA
// daemons) and returns its output. It changes nothing: mutations go
// through a Plan.
func (s *Session) Query(ctx context.Context, script string) ([]byte, error) {
	if err := s.Err(); err != nil {
		return nil, err
	}
	return s.run(ctx, script)
}

// Gather learns the host's facts for installing h (the session's host,
// with its files): its kernel, init system, each target file's state,
// pending steps. It changes nothing, in a dry-run too.
func (s *Session) Gather(ctx context.Context, h *Host) error {
	if err := s.Err(); err != nil {
		return err
	}
	s.Host = h.pushed()
	paths, large, locate, err := factsFor(s.Host)
	if err != nil {
		return s.Fail(err)
	}
	facts, err := gatherFacts(ctx, s.c, func(script string) ([]byte, error) { return s.run(ctx, script) }, paths, large, locate, s.Host.Kernel != nil)
	if err != nil {
		return s.Fail(err)
	}
	s.Facts = facts
	s.Report.Kernel, s.Report.Init = facts.Kernel, facts.Init
	if len(locate) > 0 {
		// Each located file goes where the host has its command.
		hl := *s.Host
		hl.Files = append([]install.File(nil), s.Host.Files...)
		for i := range hl.Files {
			if p := facts.Located[hl.Files[i].Locate]; hl.Files[i].Locate != "" && p != "" {
				hl.Files[i].Path = p
			}
		}
		s.Host = &hl
	}
	return nil
}

// MakePlan decides everything the push will do to the host, from its facts.
func (s *Session) MakePlan(ctx context.Context) error {
	if err := s.Err(); err != nil {
		return err
	}
	plan, err := buildPlan(s.Host, s.Facts, s.b.o.Backups > 0, s.b.o.BackupDir)
	if err != nil {
		return s.Fail(err)
	}
	s.setPlan(plan)
	if s.b.o.Diff {
		if s.Report.diff, err = diffPlan(s.c, plan); err != nil {
			return s.Fail(err)
		}
	}
	return nil
}

func (s *Session) setPlan(plan *Plan) {
	s.Plan = plan
	r := s.Report
	r.Unchanged = len(plan.Unchanged)
	r.Changed = append(r.Changed, plan.Changed()...)
	for _, op := range plan.Ops {
		r.Plan = append(r.Plan, op.String())
		switch op.Kind {
		case OpRun, OpEnable, OpRestart, OpReload:
			r.Commands = append(r.Commands, shell.Join(op.Argv))
		}
	}
}

// Apply carries the plan out; in a dry-run, or with nothing to do, it
// does nothing.
func (s *Session) Apply(ctx context.Context) error {
	if err := s.Err(); err != nil {
		return err
	}
	if s.b.o.DryRun || !s.Plan.Mutates() {
		return nil
	}
	env := s.b.env
	var sent atomic.Int64
	env.sent = &sent
	leftover, failed, err := apply(ctx, s.c, s.sh, s.Plan, env)
	s.Report.BytesSent += sent.Load()
	s.Report.Steps = append(s.Report.Steps, steps(s.Plan.Ops, failed)...)
	if err != nil {
		if len(leftover) > 0 {
			err = errors.Join(err, cleanupTemps(s.Host.Target, s.b.o.Dial, leftover))
		}
		return s.Fail(err)
	}
	return nil
}

// Run runs commands on the host as one step of the session (a VIP moved,
// a reboot asked for): a plan of its own, through the same chokepoint as
// every other change, printed by a dry-run and recorded in the report. The
// session's Plan stays the push's.
func (s *Session) Run(ctx context.Context, step string, cmds ...[]string) error {
	if err := s.Err(); err != nil {
		return err
	}
	p := &Plan{Host: s.Host.Target.Name, Facts: s.Facts}
	for _, c := range cmds {
		if len(c) == 0 {
			return s.Fail(fmt.Errorf("run %s on %s: empty command", step, p.Host))
		}
		p.Ops = append(p.Ops, Op{Kind: OpRun, Argv: c, Step: step})
	}
	for _, op := range p.Ops {
		s.Report.Plan = append(s.Report.Plan, op.String())
		s.Report.Commands = append(s.Report.Commands, shell.Join(op.Argv))
	}
	if s.b.o.DryRun {
		return nil
	}
	_, failed, err := apply(ctx, s.c, s.sh, p, s.b.env)
	s.Report.Steps = append(s.Report.Steps, steps(p.Ops, failed)...)
	if err != nil {
		return s.Fail(err)
	}
	return nil
}

// Close ends the session and completes its report.
func (s *Session) Close() {
	if s.sh != nil {
		s.sh.Close()
	}
	if s.c != nil {
		s.c.Close()
	}
	r := s.Report
	r.Duration = time.Since(s.start)
	r.Seconds = r.Duration.Round(time.Millisecond).Seconds()
	switch {
	case r.err != nil:
		r.Result, r.Error = ResultFailed, r.err.Error()
	case s.b.o.DryRun:
		r.Result = ResultPlanned
	default:
		r.Result = ResultOK
	}
}
