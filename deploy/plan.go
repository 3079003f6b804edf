package deploy

import (
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/install"
	"github.com/lvsforge/lvsforge/internal/shell"
)

// OpKind is what an Op does to the host.
type OpKind string

// Op kinds, in the order apply performs them.
const (
	OpRemoveTemp OpKind = "remove-temp" // a temporary file a killed push left behind
	OpMkdir      OpKind = "mkdir"
	// OpWrite uploads a file to a temporary beside it: owner and mode set
	// before any data, fsynced and its sha256 checked on the host as soon as
	// it has landed (OpVerify waits for every check).
	OpWrite  OpKind = "write"
	OpVerify OpKind = "verify"
	// OpBackup copies the files about to be replaced to the backup directory.
	OpBackup OpKind = "backup"
	// OpRename moves a verified temporary into place; OpSync then fsyncs the
	// directories that hold the renames, before anything is restarted.
	OpRename OpKind = "rename"
	OpSync   OpKind = "sync"
	OpChmod  OpKind = "chmod"
	OpChown  OpKind = "chown"
	OpRun    OpKind = "run"
	OpEnable OpKind = "enable"
	// OpRestart and OpReload apply a unit's changed files.
	OpRestart OpKind = "restart"
	OpReload  OpKind = "reload"
	// OpMarkPending and OpClearPending bracket everything from the first
	// rename to the last restart; see pendingFile.
	OpMarkPending  OpKind = "mark-pending"
	OpClearPending OpKind = "clear-pending"
)

// Op is one remote mutation. A Plan's Ops are exactly what apply does, in order.
type Op struct {
	Kind OpKind
	Path string
	Mode fs.FileMode
	// UID and GID are the owner a write or chown sets.
	UID, GID int
	// File is the content of a write.
	File *install.File
	// New is set for a write to a path that did not exist; otherwise the old
	// version is backed up first (when backups are enabled).
	New    bool
	Backup bool
	// OldMode, OldUID and OldGID are what a chmod or chown changes from.
	OldMode        fs.FileMode
	OldUID, OldGID int
	// Argv is the command of run, restart and reload ops.
	Argv []string
	// Paths are the files of a verify or backup and the directories of a sync.
	Paths []string
	// Unit is the daemon of a restart or reload.
	Unit string
	// LeftOver marks a command an earlier push left pending (it failed, or
	// the push was cut off): this push runs it although nothing changed.
	LeftOver bool
	// Step names the part of the push the op belongs to ("files in place",
	// "heartbeat restart"): a failed push reports which steps ran.
	Step string
}

// Steps of a push besides the units' ("NAME enable", "NAME restart",
// "NAME reload"). stepPending, the pending record's update after the
// commands, is only reported when it failed.
const (
	stepStaleTemps    = "stale temporaries removed"
	stepUpload        = "files uploaded"
	stepCommit        = "files in place"
	stepCommands      = "commands"
	stepKernelInstall = "kernel install"
	stepKernelOnce    = "kernel boot once"
	stepKernelConfirm = "kernel confirm"
	stepPending       = "pending record"
)

// defaultStep is the step of an op that buildPlan did not name.
func defaultStep(o Op) string {
	switch o.Kind {
	case OpRemoveTemp:
		return stepStaleTemps
	case OpMkdir, OpWrite, OpVerify, OpBackup:
		return stepUpload
	case OpRename, OpSync, OpChmod, OpChown:
		return stepCommit
	case OpEnable, OpRestart, OpReload:
		return o.Unit + " " + string(o.Kind)
	case OpRun:
		return stepCommands
	}
	return stepPending
}

const leftOverNote = " (left over from a failed push)"

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
		owner := ""
		if o.UID != 0 || o.GID != 0 {
			owner = fmt.Sprintf(" owner %d:%d", o.UID, o.GID)
		}
		if o.File.Secret {
			return fmt.Sprintf("write %s mode %04o%s secret (%s)", o.Path, o.Mode, owner, state)
		}
		return fmt.Sprintf("write %s mode %04o%s size %d sha256 %.12s (%s)", o.Path, o.Mode, owner, o.File.Size(), o.File.SHA256(), state)
	case OpVerify:
		return fmt.Sprintf("verify %d uploads on the host: fsync each, compare its sha256", len(o.Paths))
	case OpBackup:
		return fmt.Sprintf("back up %s to %s", strings.Join(o.Paths, ", "), o.Path)
	case OpRename:
		return "rename temp into " + o.Path
	case OpSync:
		return "sync " + strings.Join(o.Paths, " ")
	case OpChmod:
		return fmt.Sprintf("chmod %04o %s (was %04o)", o.Mode, o.Path, o.OldMode)
	case OpChown:
		return fmt.Sprintf("chown %d:%d %s (was %d:%d)", o.UID, o.GID, o.Path, o.OldUID, o.OldGID)
	case OpMarkPending:
		return fmt.Sprintf("record pending %s in %s", strings.Join(o.Argv, ", "), o.Path)
	case OpClearPending:
		return "clear " + o.Path
	case OpRun:
		if o.LeftOver {
			return "run" + leftOverNote + " " + shell.Join(o.Argv)
		}
		return "run " + shell.Join(o.Argv)
	case OpEnable, OpRestart, OpReload:
		note := ""
		if o.LeftOver {
			note = leftOverNote
		}
		return fmt.Sprintf("%s %s%s: %s", o.Kind, o.Unit, note, shell.Join(o.Argv))
	}
	return string(o.Kind) + " " + o.Path
}

// Plan is everything a push will do to one host, decided from its facts.
type Plan struct {
	Host      string
	Facts     *Facts
	Ops       []Op
	Unchanged []string
	// Interrupts are the units the plan restarts whose restart interrupts
	// the host's service (install.Unit.Interrupts).
	Interrupts []string
}

// Changed lists the paths whose content, mode or owner the plan changes.
func (p *Plan) Changed() []string {
	var c []string
	seen := map[string]bool{}
	for _, o := range p.Ops {
		if (o.Kind == OpWrite || o.Kind == OpChmod || o.Kind == OpChown) && !seen[o.Path] {
			seen[o.Path] = true
			c = append(c, o.Path)
		}
	}
	return c
}

// Mutates reports whether applying the plan changes anything.
func (p *Plan) Mutates() bool { return len(p.Ops) > 0 }

// ErrInitMismatch means a host runs another init system than the spec says.
var ErrInitMismatch = errors.New("init system differs from the spec")

// ErrHostnameMismatch means a host's uname -n is not its name in the spec.
// heartbeat finds its own node line in ha.cf by uname -n, and keepalived's
// router_id is the spec's name too: such a host would run a cluster it is
// not part of, or it is another machine than the spec describes.
var ErrHostnameMismatch = errors.New("host name differs from the spec")

// checkHostname compares the host's uname -n with its name in the spec,
// exactly, as heartbeat does: a fully qualified name matches only itself.
func checkHostname(name string, f *Facts) error {
	if f.Hostname == "" || f.Hostname == name {
		return nil
	}
	return fmt.Errorf("plan %s: the host's uname -n is %q, the spec names it %q: %w (heartbeat's node and keepalived's router_id must be the uname -n); "+
		"set the host's name in the spec to %[2]q (a fully qualified name is fine), or rename the host to %[3]q (hostnamectl set-hostname %[3]s)",
		name, f.Hostname, name, ErrHostnameMismatch)
}

// pendingFile lists, one per line, the steps of a push that have not
// completed on the host: "commands", "kernel", "unit NAME".
const pendingFile = install.PendingFile

// buildPlan compares the wanted files with the facts and lays out, in
// order, everything a push does to the host. backups says whether replaced
// files are kept, in backupDir. Each step is a method of planner, in the
// order the ops run.
func buildPlan(h *Host, facts *Facts, backups bool, backupDir string) (*Plan, error) {
	if err := checkHost(h, facts); err != nil {
		return nil, err
	}
	pl := &planner{h: h, f: facts, p: &Plan{Host: h.Target.Name, Facts: facts}, touched: map[string][]Op{}, leftOver: map[string]bool{}}
	if err := pl.resolveUnits(); err != nil {
		return nil, err
	}
	files, legacyConf, err := pl.withLegacyConf()
	if err != nil {
		return nil, err
	}
	for _, t := range facts.StaleTemps {
		pl.p.Ops = append(pl.p.Ops, Op{Kind: OpRemoveTemp, Path: t})
	}
	if err := pl.compare(files, backups); err != nil {
		return nil, err
	}
	pl.upload(backupDir)
	commitStart := len(pl.p.Ops)
	pl.commit()
	pl.pendingUnits()
	if err := pl.commands(); err != nil {
		return nil, err
	}
	if err := pl.kernel(files, legacyConf); err != nil {
		return nil, err
	}
	pl.unitOps()
	pl.record(commitStart)
	for i := range pl.p.Ops {
		if pl.p.Ops[i].Step == "" {
			pl.p.Ops[i].Step = defaultStep(pl.p.Ops[i])
		}
	}
	return pl.p, nil
}

// checkHost refuses a host that is not the one the spec describes: another
// uname -n, or an init system its units are not for. SysV scripts run
// under systemd too (the units' OnSystemd commands); a systemd unit file
// means nothing to sysvinit.
func checkHost(h *Host, facts *Facts) error {
	if err := checkHostname(h.Target.Name, facts); err != nil {
		return err
	}
	if h.Init != "" && facts.Init != "" && h.Init != facts.Init && (h.Init != cluster.InitSysV || facts.Init != cluster.InitSystemd) {
		return fmt.Errorf("plan %s: the host runs %s, the spec says init: %s (its units and enable commands would be %s's): %w; set `init: %s` on host %s in the spec",
			h.Target.Name, facts.Init, h.Init, h.Init, ErrInitMismatch, facts.Init, h.Target.Name)
	}
	return nil
}

// planner builds one host's plan.
type planner struct {
	h *Host
	f *Facts
	p *Plan
	// units are the host's units with the commands for its init system,
	// in order, and by name.
	units  []install.Unit
	byName map[string]*install.Unit
	// writes and attrs are the file ops; touched maps a unit to the ops of
	// its changed files, and leftOver the units touched only because an
	// earlier push left them pending.
	writes, attrs []Op
	touched       map[string][]Op
	leftOver      map[string]bool
	// marks are the steps recorded as pending while the plan runs.
	marks []string
}

func (pl *planner) errorf(format string, args ...any) error {
	return fmt.Errorf("plan %s: "+format, append([]any{pl.h.Target.Name}, args...)...)
}

func (pl *planner) resolveUnits() error {
	pl.byName = map[string]*install.Unit{}
	pl.units = make([]install.Unit, len(pl.h.Units))
	for i := range pl.h.Units {
		u := pl.h.Units[i].On(pl.f.Init)
		if pl.byName[u.Name] != nil {
			return pl.errorf("unit %s is defined twice", u.Name)
		}
		pl.units[i] = u
		pl.byName[u.Name] = &pl.units[i]
	}
	return nil
}

// withLegacyConf is the host's files plus, on a GRUB legacy host getting a
// kernel, its grub.conf with lvsforge's stanza merged in; and that
// grub.conf as it will be.
func (pl *planner) withLegacyConf() ([]install.File, []byte, error) {
	k := pl.h.Kernel
	if k == nil || !pl.f.Boot["legacy"] {
		return pl.h.Files, nil, nil
	}
	if k.Image == nil {
		return pl.h.Files, pl.f.GrubLegacyConf, nil
	}
	f, _, err := legacyConfFile(pl.h, k, pl.f)
	if err != nil {
		return nil, nil, pl.errorf("%w", err)
	}
	return append(slices.Clone(pl.h.Files), *f), f.Data, nil
}

// compare decides each file's ops: nothing, an owner or mode change, or a
// write (with the directory it needs).
func (pl *planner) compare(files []install.File, backups bool) error {
	seen := map[string]bool{}
	mkdirs := map[string]bool{}
	for i := range files {
		f := &files[i]
		if err := checkPath(f.Path); err != nil {
			return err
		}
		if seen[f.Path] {
			return pl.errorf("%s is listed twice", f.Path)
		}
		seen[f.Path] = true
		for _, u := range f.Units {
			if pl.byName[u] == nil {
				return pl.errorf("%s names unit %s, which the host does not define", f.Path, u)
			}
		}
		rf, ok := pl.f.Files[f.Path]
		if !ok {
			return pl.errorf("no facts for %s", f.Path)
		}
		if rf.IsDir {
			return pl.errorf("%s is a directory on the host", f.Path)
		}
		mode := f.FinalMode()
		var ops []Op
		if rf.Exists && rf.SHA256 == f.SHA256() {
			if rf.UID != f.UID || rf.GID != f.GID {
				// Before the chmod: chown clears set-id bits.
				ops = append(ops, Op{Kind: OpChown, Path: f.Path, UID: f.UID, GID: f.GID, OldUID: rf.UID, OldGID: rf.GID, File: f})
			}
			if rf.Mode != mode || (len(ops) > 0 && mode&(fs.ModeSetuid|fs.ModeSetgid) != 0) {
				ops = append(ops, Op{Kind: OpChmod, Path: f.Path, Mode: mode, OldMode: rf.Mode, File: f})
			}
			if len(ops) == 0 {
				pl.p.Unchanged = append(pl.p.Unchanged, f.Path)
				continue
			}
			pl.attrs = append(pl.attrs, ops...)
		} else {
			ops = []Op{{Kind: OpWrite, Path: f.Path, Mode: mode, UID: f.UID, GID: f.GID, File: f, New: !rf.Exists, Backup: rf.Exists && backups}}
			if d := path.Dir(f.Path); !pl.f.Dirs[d] && !mkdirs[d] {
				mkdirs[d] = true
				pl.p.Ops = append(pl.p.Ops, Op{Kind: OpMkdir, Path: d})
			}
			pl.writes = append(pl.writes, ops...)
		}
		for _, u := range f.Units {
			pl.touched[u] = append(pl.touched[u], ops[0])
		}
	}
	return nil
}

// upload: the writes, their verification on the host, the backups.
func (pl *planner) upload(backupDir string) {
	pl.p.Ops = append(pl.p.Ops, pl.writes...)
	if len(pl.writes) == 0 {
		return
	}
	v := Op{Kind: OpVerify}
	var b []string
	for _, w := range pl.writes {
		v.Paths = append(v.Paths, w.Path)
		if w.Backup {
			b = append(b, w.Path)
		}
	}
	pl.p.Ops = append(pl.p.Ops, v)
	if len(b) > 0 {
		pl.p.Ops = append(pl.p.Ops, Op{Kind: OpBackup, Path: backupDir, Paths: b})
	}
}

// commit: the renames, their sync, the owner and mode changes.
func (pl *planner) commit() {
	dirs := map[string]bool{}
	for _, w := range pl.writes {
		pl.p.Ops = append(pl.p.Ops, Op{Kind: OpRename, Path: w.Path})
		dirs[path.Dir(w.Path)] = true
	}
	if len(pl.writes) > 0 {
		pl.p.Ops = append(pl.p.Ops, Op{Kind: OpSync, Paths: slices.Sorted(maps.Keys(dirs))})
	}
	pl.p.Ops = append(pl.p.Ops, pl.attrs...)
}

// pendingUnits: what an earlier push changed but could not finish (a
// restart failed, or it was cut off during its commit) is done again,
// although its files are now in place; an unknown change restarts.
func (pl *planner) pendingUnits() {
	for u := range pl.f.Pending {
		if name, ok := strings.CutPrefix(u, "unit "); ok && pl.byName[name] != nil && pl.touched[name] == nil {
			pl.touched[name] = []Op{{Kind: OpChmod}}
			pl.leftOver[name] = true
		}
	}
}

// commands are post-install steps (sysctl --system, depmod): idempotent,
// and only worth running when a file changed, or left pending.
func (pl *planner) commands() error {
	if len(pl.writes) == 0 && !pl.f.Pending["commands"] {
		return nil
	}
	if len(pl.h.Commands) > 0 {
		pl.marks = append(pl.marks, "commands")
	}
	for _, c := range pl.h.Commands {
		if len(c) == 0 {
			return pl.errorf("empty command")
		}
		pl.p.Ops = append(pl.p.Ops, Op{Kind: OpRun, Argv: c, LeftOver: len(pl.writes) == 0})
	}
	return nil
}

// kernel: a kernel's install (modules, GRUB), then its activation.
func (pl *planner) kernel(files []install.File, legacyConf []byte) error {
	k := pl.h.Kernel
	if k == nil {
		return nil
	}
	written := map[string]bool{}
	for _, w := range pl.writes {
		written[w.Path] = true
	}
	var boot []string
	for _, f := range files {
		if f.Boot {
			boot = append(boot, f.Path)
		}
	}
	install, activate, err := kernelOps(k, pl.f, func(p string) bool { return written[p] || pl.f.Pending["kernel"] }, boot, legacyConf)
	if err != nil {
		return pl.errorf("%w", err)
	}
	if len(install) > 0 {
		pl.marks = append(pl.marks, "kernel")
	}
	// An install with none of its files written is an earlier push's.
	leftOver := true
	for _, f := range k.files() {
		leftOver = leftOver && !written[f.Path]
	}
	for _, b := range boot {
		leftOver = leftOver && !written[b]
	}
	for i := range install {
		install[i].Step, install[i].LeftOver = stepKernelInstall, leftOver
	}
	for i := range activate {
		activate[i].Step = stepKernelOnce
		if k.MakeDefault {
			activate[i].Step = stepKernelConfirm
		}
	}
	pl.p.Ops = append(append(pl.p.Ops, install...), activate...)
	return nil
}

// unitOps enable and restart, or reload, every unit with a changed file. A
// unit that can reload reloads, unless a file of it is new (the daemon may
// not run yet) or its fingerprint (what its reload cannot apply, which
// roles says: install.Unit.Fingerprint) differs from the one last applied
// on the host; a unit pending from a failed push restarts.
func (pl *planner) unitOps() {
	fpWritten := map[string]bool{}
	for _, w := range pl.writes {
		fpWritten[w.Path] = true
	}
	for _, u := range pl.units {
		changed := pl.touched[u.Name]
		if len(changed) == 0 {
			continue
		}
		pl.marks = append(pl.marks, "unit "+u.Name)
		for _, c := range u.Enable {
			pl.p.Ops = append(pl.p.Ops, Op{Kind: OpEnable, Unit: u.Name, Argv: c, LeftOver: pl.leftOver[u.Name]})
		}
		restart := len(u.Reload) == 0 || pl.leftOver[u.Name] || (u.Fingerprint != "" && fpWritten[fingerprintPath(u.Name)])
		for _, op := range changed {
			restart = restart || op.New
		}
		kind, cmds := OpRestart, u.Restart
		if !restart {
			kind, cmds = OpReload, u.Reload
		} else if u.Interrupts {
			pl.p.Interrupts = append(pl.p.Interrupts, u.Name)
		}
		for _, c := range cmds {
			pl.p.Ops = append(pl.p.Ops, Op{Kind: kind, Unit: u.Name, Argv: c, LeftOver: pl.leftOver[u.Name]})
		}
	}
}

// fingerprintPath is where a unit's fingerprint, as last applied, is kept.
func fingerprintPath(unit string) string { return install.UnitStateDir + "/" + unit }

// fingerprintFiles are the files that keep each unit's fingerprint on the
// host. They name no unit: a fingerprint that alone changed (the first
// push of a version of lvsforge that keeps them) restarts nothing.
func fingerprintFiles(units []install.Unit) []install.File {
	var out []install.File
	for _, u := range units {
		if u.Fingerprint != "" {
			out = append(out, install.File{Path: fingerprintPath(u.Name), Mode: 0o644, Data: []byte(u.Fingerprint + "\n")})
		}
	}
	return out
}

// record brackets everything after the uploads: the steps are recorded as
// pending before the first file is renamed into place and cleared once
// they all succeeded, so that a push cut off anywhere in between is
// finished by the next one. Pending steps this push cannot do (a kernel
// install when pushed without --kernel, a unit no longer rendered) stay
// recorded.
func (pl *planner) record(commitStart int) {
	pending := pl.f.Pending
	var carry []string
	for step := range pending {
		name, isUnit := strings.CutPrefix(step, "unit ")
		if (step == "kernel" && pl.h.Kernel == nil) || (isUnit && pl.byName[name] == nil) {
			carry = append(carry, step)
		}
	}
	sort.Strings(carry)
	p := pl.p
	switch {
	case len(pl.marks) > 0:
		rest := slices.Clone(p.Ops[commitStart:])
		for i := range rest {
			// The record's rename is synced with the files'.
			if d := path.Dir(pendingFile); rest[i].Kind == OpSync && !slices.Contains(rest[i].Paths, d) {
				rest[i].Paths = append(rest[i].Paths, d)
				slices.Sort(rest[i].Paths)
			}
		}
		// The record belongs to the commit, or, when nothing is renamed
		// (a retry of what an earlier push left), to the bookkeeping.
		step := stepPending
		if len(pl.writes) > 0 || len(pl.attrs) > 0 {
			step = stepCommit
		}
		p.Ops = append(p.Ops[:commitStart], Op{Kind: OpMarkPending, Path: pendingFile, Argv: append(pl.marks, carry...), Step: step})
		p.Ops = append(p.Ops, rest...)
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
}
