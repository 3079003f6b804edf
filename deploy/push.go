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
	"time"

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
// only plans, every host at once (Concurrency at a time). Every host is
// attempted; the report holds each one's outcome. The actions (package
// action) order hosts themselves with Sessions; this is their step that
// works on hosts in parallel.
func Push(ctx context.Context, hosts []Host, o Options) *Report {
	b := NewBatch(o)
	rep := &Report{DryRun: b.o.DryRun, Hosts: make([]*HostReport, len(hosts))}
	ForEach(len(hosts), b.o.Concurrency, func(i int) {
		s := b.Open(ctx, hosts[i].Target)
		defer s.Close()
		rep.Hosts[i] = s.Report
		if s.Gather(ctx, &hosts[i]) == nil && s.MakePlan(ctx) == nil {
			s.Apply(ctx)
		}
	})
	rep.WritePlans(b.o.Out)
	return rep
}

// WritePlans prints what each host's plan did (or, in a dry-run, will do),
// in host order, and the diffs. A dry-run shows every host's plan; a real
// run what it did to the hosts it changed. The summary table covers the
// others, and every host's error (once: it is not repeated here).
func (r *Report) WritePlans(w io.Writer) {
	for _, h := range r.Hosts {
		if len(h.Plan) > 0 || (r.DryRun && h.err == nil) {
			verb := "plan"
			if !r.DryRun {
				verb = "applied"
				if h.err != nil {
					verb = "attempted"
				}
			}
			fmt.Fprintf(w, "%s (%s, kernel %s, init %s) %s:\n", h.Host, h.Address, orDash(h.Kernel), orDash(h.Init), verb)
			if len(h.Plan) == 0 {
				fmt.Fprintf(w, "  nothing to do (%d files unchanged)\n", h.Unchanged)
			}
			for _, op := range h.Plan {
				fmt.Fprintf(w, "  %s\n", op)
			}
		}
		w.Write(h.diff)
	}
}

// ForEach runs fn for 0..n-1 with at most limit at once and waits for all.
func ForEach(n, limit int, fn func(i int)) {
	sem := make(chan struct{}, max(limit, 1))
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
