package deploy

import (
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strings"
)

// OpKind is what an Op does to the host.
type OpKind string

// Op kinds, in the order apply performs them.
const (
	OpRemoveTemp OpKind = "remove-temp" // a temporary file a killed push left behind
	OpMkdir      OpKind = "mkdir"
	OpWrite      OpKind = "write"
	OpChmod      OpKind = "chmod"
	OpRun        OpKind = "run"
	OpEnable     OpKind = "enable"
	OpRestart    OpKind = "restart"
	OpReload     OpKind = "reload"
	// OpMarkPending and OpClearPending bracket the commands; see pendingFile.
	OpMarkPending  OpKind = "mark-pending"
	OpClearPending OpKind = "clear-pending"
)

// Op is one remote mutation. A Plan's Ops are exactly what apply does, in order.
type Op struct {
	Kind OpKind
	Path string
	Mode fs.FileMode
	// File is the content of a write.
	File *File
	// New is set for a write to a path that did not exist; otherwise the old
	// version is backed up first (when backups are enabled).
	New    bool
	Backup bool
	// OldMode is the mode a chmod changes from.
	OldMode fs.FileMode
	// Argv is the command of run, restart and reload ops.
	Argv []string
	// Unit is the daemon of a restart or reload.
	Unit string
}

// String is the op as dry-run and --json show it. It never contains a
// secret's content or hash.
func (o Op) String() string {
	switch o.Kind {
	case OpRemoveTemp:
		return "remove stale temp " + o.Path
	case OpMkdir:
		return "mkdir " + o.Path
	case OpWrite:
		state := "changed"
		if o.New {
			state = "new"
		}
		if o.Backup {
			state += ", backup"
		}
		if o.File.Secret {
			return fmt.Sprintf("write %s mode %04o secret (%s)", o.Path, o.Mode, state)
		}
		return fmt.Sprintf("write %s mode %04o size %d sha256 %.12s (%s)", o.Path, o.Mode, o.File.size(), o.File.sha256(), state)
	case OpChmod:
		return fmt.Sprintf("chmod %04o %s (was %04o)", o.Mode, o.Path, o.OldMode)
	case OpMarkPending:
		return fmt.Sprintf("record pending %s in %s", strings.Join(o.Argv, ", "), o.Path)
	case OpClearPending:
		return "clear " + o.Path
	case OpRun:
		return "run " + shellJoin(o.Argv)
	case OpEnable, OpRestart, OpReload:
		return fmt.Sprintf("%s %s: %s", o.Kind, o.Unit, shellJoin(o.Argv))
	}
	return string(o.Kind) + " " + o.Path
}

// Plan is everything a push will do to one host, decided from its facts.
type Plan struct {
	Host      string
	Facts     *Facts
	Ops       []Op
	Unchanged []string
}

// Changed lists the paths whose content or mode the plan changes.
func (p *Plan) Changed() []string {
	var c []string
	for _, o := range p.Ops {
		if o.Kind == OpWrite || o.Kind == OpChmod {
			c = append(c, o.Path)
		}
	}
	return c
}

// Mutates reports whether applying the plan changes anything.
func (p *Plan) Mutates() bool { return len(p.Ops) > 0 }

// buildPlan compares the wanted files with the facts. backups says whether
// replaced files are kept. readOld returns a file's current content; it is
// only called to choose between a unit's reload and restart.
func buildPlan(h *Host, facts *Facts, backups bool, readOld func(string) ([]byte, error)) (*Plan, error) {
	p := &Plan{Host: h.Target.Name, Facts: facts}
	for _, t := range facts.StaleTemps {
		p.Ops = append(p.Ops, Op{Kind: OpRemoveTemp, Path: t})
	}
	units := map[string]*Unit{}
	for i := range h.Units {
		u := &h.Units[i]
		if units[u.Name] != nil {
			return nil, fmt.Errorf("plan %s: unit %s is defined twice", h.Target.Name, u.Name)
		}
		units[u.Name] = u
	}
	seen := map[string]bool{}
	mkdirs := map[string]bool{}
	var writes []Op
	touched := map[string][]Op{} // unit -> its changed files
	for i := range h.Files {
		f := &h.Files[i]
		if err := checkPath(f.Path); err != nil {
			return nil, err
		}
		if seen[f.Path] {
			return nil, fmt.Errorf("plan %s: %s is listed twice", h.Target.Name, f.Path)
		}
		seen[f.Path] = true
		for _, u := range f.Units {
			if units[u] == nil {
				return nil, fmt.Errorf("plan %s: %s names unit %s, which the host does not define", h.Target.Name, f.Path, u)
			}
		}
		rf, ok := facts.Files[f.Path]
		if !ok {
			return nil, fmt.Errorf("plan %s: no facts for %s", h.Target.Name, f.Path)
		}
		if rf.IsDir {
			return nil, fmt.Errorf("plan %s: %s is a directory on the host", h.Target.Name, f.Path)
		}
		mode := f.mode()
		var op *Op
		switch {
		case rf.Exists && rf.SHA256 == f.sha256() && rf.Mode == mode:
			p.Unchanged = append(p.Unchanged, f.Path)
		case rf.Exists && rf.SHA256 == f.sha256():
			op = &Op{Kind: OpChmod, Path: f.Path, Mode: mode, OldMode: rf.Mode, File: f}
		default:
			op = &Op{Kind: OpWrite, Path: f.Path, Mode: mode, File: f, New: !rf.Exists, Backup: rf.Exists && backups}
			if d := path.Dir(f.Path); !facts.Dirs[d] && !mkdirs[d] {
				mkdirs[d] = true
				p.Ops = append(p.Ops, Op{Kind: OpMkdir, Path: d})
			}
		}
		if op == nil {
			continue
		}
		writes = append(writes, *op)
		for _, u := range f.Units {
			touched[u] = append(touched[u], *op)
		}
	}
	p.Ops = append(p.Ops, writes...)
	// What an earlier push changed but could not finish (a command or a
	// restart failed) is done again, although its files are now in place.
	pending := facts.Pending
	for u := range pending {
		if name, ok := strings.CutPrefix(u, "unit "); ok && units[name] != nil && touched[name] == nil {
			touched[name] = []Op{{Kind: OpChmod}} // unknown change: restart, not reload
		}
	}
	cmdStart := len(p.Ops)
	var marks []string
	// Commands are post-install steps (sysctl --system, depmod): idempotent,
	// and only worth running when a file changed.
	if len(writes) > 0 || pending["commands"] {
		if len(h.Commands) > 0 {
			marks = append(marks, "commands")
		}
		for _, c := range h.Commands {
			if len(c) == 0 {
				return nil, fmt.Errorf("plan %s: empty command", h.Target.Name)
			}
			p.Ops = append(p.Ops, Op{Kind: OpRun, Argv: c})
		}
	}
	if h.Kernel != nil {
		written := map[string]bool{}
		for _, w := range writes {
			if w.Kind == OpWrite {
				written[w.Path] = true
			}
		}
		install, activate, err := kernelOps(h.Kernel, facts, func(p string) bool { return written[p] || pending["kernel"] })
		if err != nil {
			return nil, fmt.Errorf("plan %s: %w", h.Target.Name, err)
		}
		if len(install) > 0 {
			marks = append(marks, "kernel")
		}
		p.Ops = append(append(p.Ops, install...), activate...)
	}
	for _, u := range h.Units {
		changed := touched[u.Name]
		if len(changed) == 0 {
			continue
		}
		marks = append(marks, "unit "+u.Name)
		for _, c := range u.Enable {
			p.Ops = append(p.Ops, Op{Kind: OpEnable, Unit: u.Name, Argv: c})
		}
		restart := true
		if len(u.Reload) > 0 {
			var err error
			if restart, err = needsRestart(u.Name, changed, readOld); err != nil {
				return nil, fmt.Errorf("plan %s: %w", h.Target.Name, err)
			}
		}
		kind, cmds := OpRestart, u.Restart
		if !restart {
			kind, cmds = OpReload, u.Reload
		}
		for _, c := range cmds {
			p.Ops = append(p.Ops, Op{Kind: kind, Unit: u.Name, Argv: c})
		}
	}
	// The steps after the files are recorded as pending first and cleared
	// once they all succeeded, so that a failure is retried by the next push.
	// Pending steps this push cannot do (a kernel install when pushed
	// without --kernel, a unit no longer rendered) stay recorded.
	var carry []string
	for step := range pending {
		name, isUnit := strings.CutPrefix(step, "unit ")
		if (step == "kernel" && h.Kernel == nil) || (isUnit && units[name] == nil) {
			carry = append(carry, step)
		}
	}
	sort.Strings(carry)
	switch {
	case len(marks) > 0:
		cmds := append([]Op(nil), p.Ops[cmdStart:]...)
		p.Ops = append(p.Ops[:cmdStart], Op{Kind: OpMarkPending, Path: pendingFile, Argv: append(marks, carry...)})
		p.Ops = append(p.Ops, cmds...)
		if len(carry) > 0 {
			p.Ops = append(p.Ops, Op{Kind: OpMarkPending, Path: pendingFile, Argv: carry})
		} else {
			p.Ops = append(p.Ops, Op{Kind: OpClearPending, Path: pendingFile})
		}
	case len(pending) > 0 && len(carry) == 0:
		p.Ops = append(p.Ops, Op{Kind: OpClearPending, Path: pendingFile})
	case len(carry) < len(pending):
		p.Ops = append(p.Ops, Op{Kind: OpMarkPending, Path: pendingFile, Argv: carry})
	}
	return p, nil
}

// pendingFile lists, one per line, the steps of a push that have not
// completed on the host: "commands", "kernel", "unit NAME".
const pendingFile = "/var/lib/lvsforge/pending"

// needsRestart decides whether a unit that can reload must restart anyway.
// ldirectord's reload only applies changes inside existing virtual blocks:
// a virtual service added or removed needs a restart. A new file, a mode
// change or a secret (not read back) always restarts.
func needsRestart(unit string, changed []Op, readOld func(string) ([]byte, error)) (bool, error) {
	for _, op := range changed {
		if op.Kind != OpWrite || op.New || op.File.Secret || op.File.Artifact != nil {
			return true, nil
		}
		if unit != "ldirectord" {
			continue
		}
		old, err := readOld(op.Path)
		if err != nil {
			return false, err
		}
		if virtuals(old) != virtuals(op.File.Data) {
			return true, nil
		}
	}
	return false, nil
}

// virtuals lists an ldirectord config's virtual= lines (the global ones:
// indented lines belong to a block).
func virtuals(cfg []byte) string {
	var v []string
	for _, line := range strings.Split(string(cfg), "\n") {
		if strings.HasPrefix(line, "virtual") {
			v = append(v, strings.Join(strings.Fields(line), " "))
		}
	}
	return strings.Join(v, "\n")
}
