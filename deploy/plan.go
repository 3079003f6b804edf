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

// buildPlan compares the wanted files with the facts. backups says whether
// replaced files are kept, in backupDir. readOld returns a file's current
// content; it is only called to choose between a unit's reload and restart.
func buildPlan(h *Host, facts *Facts, backups bool, backupDir string, readOld func(string) ([]byte, error)) (*Plan, error) {
	p := &Plan{Host: h.Target.Name, Facts: facts}
	if err := checkHostname(h.Target.Name, facts); err != nil {
		return nil, err
	}
	// SysV scripts run under systemd too (the units' OnSystemd commands);
	// a systemd unit file means nothing to sysvinit.
	if h.Init != "" && facts.Init != "" && h.Init != facts.Init && (h.Init != cluster.InitSysV || facts.Init != cluster.InitSystemd) {
		return nil, fmt.Errorf("plan %s: the host runs %s, the spec says init: %s (its units and enable commands would be %s's): %w; set `init: %s` on host %s in the spec",
			h.Target.Name, facts.Init, h.Init, h.Init, ErrInitMismatch, facts.Init, h.Target.Name)
	}
	for _, t := range facts.StaleTemps {
		p.Ops = append(p.Ops, Op{Kind: OpRemoveTemp, Path: t})
	}
	units := map[string]*install.Unit{}
	hostUnits := make([]install.Unit, len(h.Units))
	for i := range h.Units {
		u := h.Units[i].On(facts.Init)
		if units[u.Name] != nil {
			return nil, fmt.Errorf("plan %s: unit %s is defined twice", h.Target.Name, u.Name)
		}
		hostUnits[i] = u
		units[u.Name] = &hostUnits[i]
	}
	files := h.Files
	var legacyConf []byte
	if k := h.Kernel; k != nil && facts.Boot["legacy"] {
		legacyConf = facts.GrubLegacyConf
		if k.Image != nil {
			f, _, err := legacyConfFile(h, k, facts)
			if err != nil {
				return nil, fmt.Errorf("plan %s: %w", h.Target.Name, err)
			}
			files = append(append([]install.File(nil), h.Files...), *f)
			legacyConf = f.Data
		}
	}
	seen := map[string]bool{}
	mkdirs := map[string]bool{}
	var writes, attrs []Op
	touched := map[string][]Op{} // unit -> its changed files
	for i := range files {
		f := &files[i]
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
		mode := f.FinalMode()
		var ops []Op
		switch {
		case rf.Exists && rf.SHA256 == f.SHA256():
			if rf.UID != f.UID || rf.GID != f.GID {
				// Before the chmod: chown clears set-id bits.
				ops = append(ops, Op{Kind: OpChown, Path: f.Path, UID: f.UID, GID: f.GID, OldUID: rf.UID, OldGID: rf.GID, File: f})
			}
			if rf.Mode != mode || (len(ops) > 0 && mode&(fs.ModeSetuid|fs.ModeSetgid) != 0) {
				ops = append(ops, Op{Kind: OpChmod, Path: f.Path, Mode: mode, OldMode: rf.Mode, File: f})
			}
			if len(ops) == 0 {
				p.Unchanged = append(p.Unchanged, f.Path)
				continue
			}
			attrs = append(attrs, ops...)
		default:
			ops = []Op{{Kind: OpWrite, Path: f.Path, Mode: mode, UID: f.UID, GID: f.GID, File: f, New: !rf.Exists, Backup: rf.Exists && backups}}
			if d := path.Dir(f.Path); !facts.Dirs[d] && !mkdirs[d] {
				mkdirs[d] = true
				p.Ops = append(p.Ops, Op{Kind: OpMkdir, Path: d})
			}
			writes = append(writes, ops...)
		}
		for _, u := range f.Units {
			touched[u] = append(touched[u], ops[0])
		}
	}
	p.Ops = append(p.Ops, writes...)
	if len(writes) > 0 {
		v := Op{Kind: OpVerify}
		var b []string
		for _, w := range writes {
			v.Paths = append(v.Paths, w.Path)
			if w.Backup {
				b = append(b, w.Path)
			}
		}
		p.Ops = append(p.Ops, v)
		if len(b) > 0 {
			p.Ops = append(p.Ops, Op{Kind: OpBackup, Path: backupDir, Paths: b})
		}
	}
	// The commit: renames, their sync and the owner and mode changes. The
	// pending steps are recorded before it starts.
	commitStart := len(p.Ops)
	dirs := map[string]bool{}
	for _, w := range writes {
		p.Ops = append(p.Ops, Op{Kind: OpRename, Path: w.Path})
		dirs[path.Dir(w.Path)] = true
	}
	if len(writes) > 0 {
		p.Ops = append(p.Ops, Op{Kind: OpSync, Paths: slices.Sorted(maps.Keys(dirs))})
	}
	p.Ops = append(p.Ops, attrs...)
	// What an earlier push changed but could not finish (a command or a
	// restart failed, or it was cut off during its commit) is done again,
	// although its files are now in place.
	pending := facts.Pending
	leftOver := map[string]bool{} // units restarted only because they are pending
	for u := range pending {
		if name, ok := strings.CutPrefix(u, "unit "); ok && units[name] != nil && touched[name] == nil {
			touched[name] = []Op{{Kind: OpChmod}} // unknown change: restart, not reload
			leftOver[name] = true
		}
	}
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
			p.Ops = append(p.Ops, Op{Kind: OpRun, Argv: c, LeftOver: len(writes) == 0})
		}
	}
	if k := h.Kernel; k != nil {
		written := map[string]bool{}
		for _, w := range writes {
			written[w.Path] = true
		}
		var boot []string
		for _, f := range files {
			if f.Boot {
				boot = append(boot, f.Path)
			}
		}
		install, activate, err := kernelOps(k, facts, func(p string) bool { return written[p] || pending["kernel"] }, boot, legacyConf)
		if err != nil {
			return nil, fmt.Errorf("plan %s: %w", h.Target.Name, err)
		}
		if len(install) > 0 {
			marks = append(marks, "kernel")
		}
		// An install with none of its files written is an earlier push's.
		leftOverKernel := true
		for _, f := range k.files() {
			leftOverKernel = leftOverKernel && !written[f.Path]
		}
		for _, b := range boot {
			leftOverKernel = leftOverKernel && !written[b]
		}
		for i := range install {
			install[i].Step, install[i].LeftOver = stepKernelInstall, leftOverKernel
		}
		for i := range activate {
			activate[i].Step = stepKernelOnce
			if k.MakeDefault {
				activate[i].Step = stepKernelConfirm
			}
		}
		p.Ops = append(append(p.Ops, install...), activate...)
	}
	for _, u := range hostUnits {
		changed := touched[u.Name]
		if len(changed) == 0 {
			continue
		}
		marks = append(marks, "unit "+u.Name)
		for _, c := range u.Enable {
			p.Ops = append(p.Ops, Op{Kind: OpEnable, Unit: u.Name, Argv: c, LeftOver: leftOver[u.Name]})
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
			p.Ops = append(p.Ops, Op{Kind: kind, Unit: u.Name, Argv: c, LeftOver: leftOver[u.Name]})
		}
	}
	// The steps after the files are recorded as pending before the first
	// file is renamed into place and cleared once they all succeeded, so
	// that a push cut off anywhere in between is finished by the next one.
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
		rest := append([]Op(nil), p.Ops[commitStart:]...)
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
		if len(writes) > 0 || len(attrs) > 0 {
			step = stepCommit
		}
		p.Ops = append(p.Ops[:commitStart], Op{Kind: OpMarkPending, Path: pendingFile, Argv: append(marks, carry...), Step: step})
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
	for i := range p.Ops {
		if p.Ops[i].Step == "" {
			p.Ops[i].Step = defaultStep(p.Ops[i])
		}
	}
	return p, nil
}

// pendingFile lists, one per line, the steps of a push that have not
// completed on the host: "commands", "kernel", "unit NAME".
const pendingFile = install.PendingFile

// needsRestart decides whether a unit that can reload must restart anyway.
// ldirectord's reload only applies changes inside existing virtual blocks:
// a virtual service added or removed needs a restart. keepalived's reload
// (SIGHUP) re-reads everything and applies added, removed and changed
// virtual_server blocks to the IPVS table, but it also rebuilds the VRRP
// instances, which may flap the VIPs: anything outside the virtual_server
// blocks (global_defs, vrrp_instance, lvs_sync_daemon) restarts it. A new
// file, a mode change or a secret (not read back) always restarts.
func needsRestart(unit string, changed []Op, readOld func(string) ([]byte, error)) (bool, error) {
	for _, op := range changed {
		if op.Kind != OpWrite || op.New || op.File.Secret || op.File.Artifact != nil {
			return true, nil
		}
		var same func(old, cur []byte) bool
		switch unit {
		case "ldirectord":
			same = func(old, cur []byte) bool { return virtuals(old) == virtuals(cur) }
		case "keepalived":
			same = func(old, cur []byte) bool { return keepalivedOutsideVirtuals(old) == keepalivedOutsideVirtuals(cur) }
		default:
			continue
		}
		old, err := readOld(op.Path)
		if err != nil {
			return false, err
		}
		if !same(old, op.File.Data) {
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

// keepalivedOutsideVirtuals is a keepalived.conf without its comments and
// its top-level virtual_server blocks, normalised to one token per line.
func keepalivedOutsideVirtuals(cfg []byte) string {
	var out []string
	depth, skip := 0, false
	for _, line := range strings.Split(string(cfg), "\n") {
		if i := strings.IndexAny(line, "#!"); i >= 0 {
			line = line[:i]
		}
		for _, tok := range strings.Fields(strings.NewReplacer("{", " { ", "}", " } ").Replace(line)) {
			if depth == 0 && tok == "virtual_server" {
				skip = true
			}
			switch tok {
			case "{":
				depth++
			case "}":
				depth--
			}
			if !skip {
				out = append(out, tok)
			}
			if skip && depth == 0 && tok == "}" {
				skip = false
			}
		}
	}
	return strings.Join(out, "\n")
}
