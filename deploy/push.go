package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"io"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lvsforge/lvsforge/install"
	"github.com/lvsforge/lvsforge/internal/shell"

	"github.com/lvsforge/lvsforge/deploy/internal/udiff"
)

// Options configure a push.
type Options struct {
	Dial DialOptions
	// Concurrency bounds the hosts worked on at once (default 16).
	Concurrency int
	// UploadConcurrency bounds concurrent uploads of files of at least
	// LargeFile bytes across all hosts (default 4, LargeFile 1 MiB): many
	// parallel kernel uploads only split the same uplink and CPU.
	UploadConcurrency int
	LargeFile         int64
	// DryRun gathers facts and reports the plan; nothing is changed.
	DryRun bool
	// Diff adds unified diffs of changed non-secret files to the output.
	Diff bool
	// Backups is how many previous versions of each replaced file are kept
	// under BackupDir; 0 means 3, negative disables backups.
	Backups   int
	BackupDir string
	// Out receives the per-host plans of a dry-run and the diffs, in host order.
	Out io.Writer
}

// DefaultBackupDir is where replaced files are kept on the hosts.
const DefaultBackupDir = "/var/backups/lvsforge"

func (o Options) withDefaults() Options {
	if o.Concurrency <= 0 {
		o.Concurrency = 16
	}
	if o.UploadConcurrency <= 0 {
		o.UploadConcurrency = 4
	}
	if o.LargeFile <= 0 {
		o.LargeFile = 1 << 20
	}
	if o.Backups == 0 {
		o.Backups = 3
	}
	if o.BackupDir == "" {
		o.BackupDir = DefaultBackupDir
	}
	if o.Out == nil {
		o.Out = io.Discard
	}
	return o
}

// Result values of a HostReport.
const (
	ResultOK      = "ok"
	ResultPlanned = "planned" // dry-run
	ResultFailed  = "failed"
)

// HostReport is the outcome on one host. It never holds secret content.
type HostReport struct {
	Host      string   `json:"host"`
	Address   string   `json:"address"`
	Kernel    string   `json:"kernel,omitempty"`
	Init      string   `json:"init,omitempty"`
	Changed   []string `json:"changed"`
	Unchanged int      `json:"unchanged"`
	// Commands are the commands run (or, in a dry-run, to be run).
	Commands  []string `json:"commands"`
	Plan      []string `json:"plan"`
	BytesSent int64    `json:"bytesSent"`
	// Steps are what a real run did, step by step ("files in place",
	// "heartbeat restart"), so that a failed push says what ran and what
	// did not.
	Steps    []Step        `json:"steps,omitempty"`
	Result   string        `json:"result"`
	Error    string        `json:"error,omitempty"`
	Duration time.Duration `json:"-"`
	Seconds  float64       `json:"seconds"`
	err      error
	diff     []byte
}

// Err is the host's error, unwrappable to the sentinels of this package.
func (h *HostReport) Err() error { return h.err }

// Report is the outcome of a push on every host, in the order given.
type Report struct {
	DryRun bool          `json:"dryRun"`
	Hosts  []*HostReport `json:"hosts"`
}

// Failed lists the hosts that failed.
func (r *Report) Failed() []string {
	var f []string
	for _, h := range r.Hosts {
		if h.err != nil {
			f = append(f, h.Host)
		}
	}
	return f
}

// Err joins the failures into one error naming every failed host, or is nil.
func (r *Report) Err() error {
	var errs []error
	for _, h := range r.Hosts {
		if h.err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", h.Host, h.err))
		}
	}
	if len(errs) == 0 {
		return nil
	}
	return fmt.Errorf("failed on %d of %d hosts (%s): %w", len(errs), len(r.Hosts), strings.Join(r.Failed(), ", "), errors.Join(errs...))
}

// Push installs every host's files and runs its commands, or with DryRun
// only plans. Every host is attempted; the report holds each one's outcome.
func Push(ctx context.Context, hosts []Host, o Options) *Report {
	o = o.withDefaults()
	rep := &Report{DryRun: o.DryRun, Hosts: make([]*HostReport, len(hosts))}
	uploads := make(chan struct{}, o.UploadConcurrency)
	slot := func(ctx context.Context, size int64) (func(), error) {
		if size < o.LargeFile {
			return func() {}, nil
		}
		select {
		case uploads <- struct{}{}:
			return func() { <-uploads }, nil
		case <-ctx.Done():
			return nil, ctx.Err()
		}
	}
	stamp := time.Now().UTC().Format("20060102T150405.000000000Z")
	forEachHost(len(hosts), o.Concurrency, func(i int) {
		rep.Hosts[i] = pushHost(ctx, &hosts[i], o, applyEnv{
			backupDir:  o.BackupDir,
			keep:       o.Backups,
			stamp:      stamp,
			uploadSlot: slot,
			largeFile:  o.LargeFile,
		})
	})
	for _, h := range rep.Hosts {
		// A dry-run shows every host's plan; a real run what it did to
		// the hosts it changed. The summary table covers the others, and
		// every host's error (once: it is not repeated here).
		if len(h.Plan) > 0 || (o.DryRun && h.err == nil) {
			verb := "plan"
			if !o.DryRun {
				verb = "applied"
				if h.err != nil {
					verb = "attempted"
				}
			}
			fmt.Fprintf(o.Out, "%s (%s, kernel %s, init %s) %s:\n", h.Host, h.Address, orDash(h.Kernel), orDash(h.Init), verb)
			if len(h.Plan) == 0 {
				fmt.Fprintf(o.Out, "  nothing to do (%d files unchanged)\n", h.Unchanged)
			}
			for _, op := range h.Plan {
				fmt.Fprintf(o.Out, "  %s\n", op)
			}
		}
		o.Out.Write(h.diff)
	}
	return rep
}

// forEachHost runs fn for 0..n-1 with at most limit at once and waits for all.
func forEachHost(n, limit int, fn func(i int)) {
	sem := make(chan struct{}, limit)
	var wg sync.WaitGroup
	for i := 0; i < n; i++ {
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			fn(i)
		}()
	}
	wg.Wait()
}

func pushHost(ctx context.Context, h *Host, o Options, env applyEnv) *HostReport {
	start := time.Now()
	r := &HostReport{Host: h.Target.Name, Address: h.Target.Addr(), Changed: []string{}, Commands: []string{}, Plan: []string{}}
	defer func() {
		r.Duration = time.Since(start)
		r.Seconds = r.Duration.Round(time.Millisecond).Seconds()
		switch {
		case r.err != nil:
			r.Result, r.Error = ResultFailed, r.err.Error()
		case o.DryRun:
			r.Result = ResultPlanned
		default:
			r.Result = ResultOK
		}
	}()
	c, err := Dial(ctx, h.Target, o.Dial)
	if err != nil {
		r.err = err
		return r
	}
	defer c.Close()
	h = h.pushed()
	paths, large, locate, err := factsFor(h)
	if err != nil {
		r.err = err
		return r
	}
	run := func(script string) ([]byte, error) { return c.output(ctx, script) }
	var sh *hostShell
	if !o.DryRun {
		// Held until the push is done: the temporaries the facts find
		// are then a dead push's, never a concurrent one's.
		if sh, err = openShell(c); err != nil {
			r.err = err
			return r
		}
		defer sh.Close()
		run = func(script string) ([]byte, error) { return sh.Run(ctx, script) }
	}
	facts, err := gatherFacts(ctx, c, run, paths, large, locate, h.Kernel != nil)
	if err != nil {
		r.err = err
		return r
	}
	r.Kernel, r.Init = facts.Kernel, facts.Init
	if len(locate) > 0 {
		// Each located file goes where the host has its command.
		hl := *h
		hl.Files = append([]install.File(nil), h.Files...)
		for i := range hl.Files {
			if p := facts.Located[hl.Files[i].Locate]; hl.Files[i].Locate != "" && p != "" {
				hl.Files[i].Path = p
			}
		}
		h = &hl
	}
	plan, err := buildPlan(h, facts, o.Backups > 0, o.BackupDir)
	if err != nil {
		r.err = err
		return r
	}
	r.Unchanged = len(plan.Unchanged)
	r.Changed = append(r.Changed, plan.Changed()...)
	for _, op := range plan.Ops {
		r.Plan = append(r.Plan, op.String())
		switch op.Kind {
		case OpRun, OpEnable, OpRestart, OpReload:
			r.Commands = append(r.Commands, shell.Join(op.Argv))
		}
	}
	if o.Diff {
		r.diff, err = diffPlan(c, plan)
		if err != nil {
			r.err = err
			return r
		}
	}
	if o.DryRun || !plan.Mutates() {
		return r
	}
	var sent atomic.Int64
	env.sent = &sent
	leftover, failed, err := apply(ctx, c, sh, plan, env)
	r.BytesSent = sent.Load()
	r.Steps = steps(plan.Ops, failed)
	if err != nil {
		r.err = err
		if len(leftover) > 0 {
			r.err = errors.Join(err, cleanupTemps(h.Target, o.Dial, leftover))
		}
	}
	return r
}

// cleanupTemps removes temporaries over a fresh connection: the usual reason
// they are left is that the first connection died mid-upload. If this fails
// too, the next push's facts find them and its plan removes them.
func cleanupTemps(t Target, o DialOptions, tmps []string) error {
	ctx, cancel := context.WithTimeout(context.Background(), o.withDefaults().ConnectTimeout*2)
	defer cancel()
	c, err := Dial(ctx, t, o)
	if err != nil {
		return fmt.Errorf("reconnect to remove temps (the next push removes them): %w", err)
	}
	defer c.Close()
	return removeTemps(c, tmps)
}

// maxDiffSize is the largest remote file read for --diff; bigger files are
// reported as differing without a diff.
const maxDiffSize = 1 << 20

// diffPlan renders unified diffs of the plan's writes, reading the current
// versions over SFTP. Secrets and binaries get one line saying they changed.
func diffPlan(c *Conn, p *Plan) ([]byte, error) {
	var out bytes.Buffer
	var ops []Op
	for _, op := range p.Ops {
		if op.Kind == OpWrite {
			ops = append(ops, op)
		}
	}
	sort.SliceStable(ops, func(i, j int) bool { return ops[i].Path < ops[j].Path })
	for _, op := range ops {
		label := p.Host + ":" + op.Path
		if op.File.Secret {
			fmt.Fprintf(&out, "secret %s changed (not shown)\n", label)
			continue
		}
		if op.File.Artifact != nil || op.File.Size() > maxDiffSize {
			fmt.Fprintf(&out, "binary or large file %s changed\n", label)
			continue
		}
		var old []byte
		if !op.New {
			var err error
			if old, err = readRemote(c, op.Path); err != nil {
				return nil, err
			}
		}
		if len(old) > maxDiffSize || bytes.IndexByte(old, 0) >= 0 || bytes.IndexByte(op.File.Data, 0) >= 0 {
			fmt.Fprintf(&out, "binary or large file %s changed\n", label)
			continue
		}
		oldName := "a/" + label
		if op.New {
			oldName = "/dev/null"
		}
		out.Write(udiff.Diff(oldName, old, "b/"+label, op.File.Data))
	}
	return out.Bytes(), nil
}

func orDash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

// readRemote reads up to maxDiffSize+1 bytes of a remote file over SFTP.
func readRemote(c *Conn, p string) ([]byte, error) {
	s, err := c.SFTP()
	if err != nil {
		return nil, err
	}
	f, err := s.Open(p)
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxDiffSize+1))
	if err != nil {
		return nil, fmt.Errorf("read %s: %w", p, err)
	}
	return b, nil
}
