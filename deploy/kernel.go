package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/lvsforge/lvsforge/install"
	"github.com/lvsforge/lvsforge/internal/shell"
)

// Kernel is a built kernel to install, activate once, or confirm on a host.
// Its GRUB entry comes from roles (/etc/grub.d/42_lvsforge, one menuentry
// per installed /boot/vmlinuz-*, with --id lvsforge-RELEASE and panic=N);
// deploy installs the files, regenerates the GRUB configuration and sets the
// next or default entry.
type Kernel struct {
	// Release is `make kernelrelease`, e.g. 6.1.192-lvs.
	Release string
	// Image, SystemMap and Config land in /boot as vmlinuz-, System.map-
	// and config-RELEASE. All nil for confirm.
	Image     *install.Artifact
	SystemMap *install.Artifact
	Config    *install.Artifact
	// Modules is a tar.gz of lib/modules/RELEASE; nil for a kernel without modules.
	Modules *install.Artifact
	// ActivateOnce schedules the kernel for the next boot only (grub-reboot):
	// if it panics, panic=N reboots into the old default.
	ActivateOnce bool
	// MakeDefault makes the kernel the default (kernel confirm). It is
	// refused unless the host is running that kernel.
	MakeDefault bool
}

// ErrNotRunning is returned by kernel confirm for a host that is not
// running the kernel being confirmed.
var ErrNotRunning = errors.New("host is not running the kernel")

var releaseRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+~-]*$`)

// modulesDir is where the modules tarball is kept on the host (its hash is
// how a re-push knows the modules are already unpacked), beside a
// release-RELEASE marker per installed kernel.
const modulesDir = install.KernelDir

// LoadKernel opens the artifacts of one kernel build directory (the build
// package's layout: bzImage, System.map, config, kernelrelease and, when the
// kernel has modules, modules.tar.gz).
func LoadKernel(dir string) (*Kernel, error) {
	rel, err := os.ReadFile(filepath.Join(dir, "kernelrelease"))
	if err != nil {
		return nil, fmt.Errorf("read kernel release: %w", err)
	}
	k := &Kernel{Release: strings.TrimSpace(string(rel))}
	for _, a := range []struct {
		name     string
		dst      **install.Artifact
		optional bool
	}{
		{"bzImage", &k.Image, false},
		{"System.map", &k.SystemMap, false},
		{"config", &k.Config, true},
		{"modules.tar.gz", &k.Modules, true},
	} {
		p := filepath.Join(dir, a.name)
		if _, err := os.Stat(p); errors.Is(err, os.ErrNotExist) && a.optional {
			continue
		}
		if *a.dst, err = install.OpenArtifact(p); err != nil {
			return nil, err
		}
	}
	return k, k.check()
}

func (k *Kernel) check() error {
	if !releaseRe.MatchString(k.Release) {
		return fmt.Errorf("check kernel: bad release %q", k.Release)
	}
	return nil
}

// files are the kernel's files on the host.
func (k *Kernel) files() []install.File {
	var fs []install.File
	add := func(p string, a *install.Artifact) {
		if a != nil {
			fs = append(fs, install.File{Path: p, Mode: 0o644, Artifact: a})
		}
	}
	if k.Image != nil {
		// The marker by which /etc/grub.d/42_lvsforge lists every kernel
		// lvsforge installed, whatever local version the spec has now.
		fs = append(fs, install.File{Path: k.marker(), Mode: 0o644, Data: []byte(k.Release + "\n")})
	}
	add("/boot/vmlinuz-"+k.Release, k.Image)
	add("/boot/System.map-"+k.Release, k.SystemMap)
	add("/boot/config-"+k.Release, k.Config)
	add(k.modulesTarball(), k.Modules)
	return fs
}

// installs reports whether k is a kernel to install (push --kernel), not
// only one to confirm.
func (k *Kernel) installs() bool { return k != nil && k.Image != nil }

func (k *Kernel) modulesTarball() string { return modulesDir + "/modules-" + k.Release + ".tar.gz" }

// marker says lvsforge installed this kernel; 42_lvsforge reads it.
func (k *Kernel) marker() string { return modulesDir + "/release-" + k.Release }

// Bootloader facts: which GRUB tools the host has.
const (
	grubLegacyConf = "/boot/grub/grub.conf"
	// GrubLegacyStanza is where roles renders the GRUB legacy entry.
	grubLegacyStanza = install.GrubLegacyPath
)

// bootFactScript reports the GRUB tools in PATH, a GRUB legacy host (a
// grub.conf and no GRUB 2 grub.cfg: a GRUB legacy package may well ship
// tools named like GRUB 2's) and the kernels lvsforge installed; shell
// builtins only.
const bootFactScript = `for t in update-grub grub2-mkconfig grub-mkconfig grub-reboot grub2-reboot grub-set-default grub2-set-default grub-editenv grub2-editenv; do ` +
	`command -v "$t" >/dev/null 2>&1 && echo "G $t"; done; ` + legacyTest + ` && echo "G legacy"; ` +
	`for m in ` + modulesDir + `/release-*; do [ -e "$m" ] && echo "K ${m#*/release-}"; done; `

// legacyTest is true on a GRUB legacy host.
const legacyTest = `[ -f ` + grubLegacyConf + ` ] && [ ! -f /boot/grub/grub.cfg ] && [ ! -f /boot/grub2/grub.cfg ]`

// The marked block of grub.conf that lvsforge owns: one stanza per kernel
// it installed, rewritten from the spec on every push --kernel.
const (
	legacyBegin = "### BEGIN lvsforge"
	legacyEnd   = "### END lvsforge"
)

// legacyConfFile renders a GRUB legacy host's new grub.conf for installing
// k: its current content with lvsforge's marked block holding a stanza for
// every kernel lvsforge installed there (roles' stanza, with the release
// substituted), in place, or appended when it has none. Stanzas an older
// lvsforge appended without the markers are moved into the block. The
// block's stanzas keep their order and new ones are appended, so that the
// saved default (an index) still names the same entry. It returns the file
// and the index of k's entry.
func legacyConfFile(h *Host, k *Kernel, f *Facts) (*install.File, int, error) {
	var stanza []byte
	for _, hf := range h.Files {
		if hf.Path == grubLegacyStanza {
			stanza = hf.Data
		}
	}
	if stanza == nil {
		return nil, 0, fmt.Errorf("render %s: GRUB legacy host, but no %s to add to it", grubLegacyConf, grubLegacyStanza)
	}
	installed := []string{}
	for _, r := range f.Releases {
		if releaseRe.MatchString(r) {
			installed = append(installed, r)
		}
	}
	conf, idx, err := renderLegacyConf(f.GrubLegacyConf, stanza, k.Release, installed)
	if err != nil {
		return nil, 0, err
	}
	rf := f.Files[grubLegacyConf]
	mode := rf.Mode.Perm()
	if mode == 0 {
		mode = 0o600
	}
	return &install.File{Path: grubLegacyConf, Mode: mode, UID: rf.UID, GID: rf.GID, Data: conf, Boot: true}, idx, nil
}

func renderLegacyConf(old, stanza []byte, release string, installed []string) ([]byte, int, error) {
	var body []string
	for _, l := range strings.Split(string(stanza), "\n") {
		if t := strings.TrimSpace(l); t != "" && !strings.HasPrefix(t, "#") {
			body = append(body, l)
		}
	}
	if len(body) == 0 {
		return nil, 0, fmt.Errorf("render %s: empty stanza in %s", grubLegacyConf, grubLegacyStanza)
	}
	if rel, ok := lvsforgeTitle(body[0]); !ok || rel != release {
		return nil, 0, fmt.Errorf("render %s: %s does not start with \"title %s (lvsforge ...)\"", grubLegacyConf, grubLegacyStanza, release)
	}
	text := strings.TrimSuffix(string(old), "\n")
	var lines []string
	if text != "" {
		lines = strings.Split(text, "\n")
	}
	begin, end := -1, -1
	for i, l := range lines {
		if begin < 0 && strings.HasPrefix(l, legacyBegin) {
			begin = i
		} else if begin >= 0 && strings.HasPrefix(l, legacyEnd) {
			end = i
			break
		}
	}
	if begin >= 0 && end < 0 {
		return nil, 0, fmt.Errorf("render %s: %q without %q: repair the file by hand", grubLegacyConf, legacyBegin, legacyEnd)
	}
	var order, kept []string
	at := -1
	if begin >= 0 {
		for _, l := range lines[begin+1 : end] {
			if rel, ok := lvsforgeTitle(l); ok {
				order = append(order, rel)
			}
		}
		kept = append(append(kept, lines[:begin]...), lines[end+1:]...)
		at = begin
	} else {
		for i := 0; i < len(lines); {
			rel, ok := lvsforgeTitle(lines[i])
			if !ok {
				kept = append(kept, lines[i])
				i++
				continue
			}
			order = append(order, rel)
			// Older lvsforge appended "\n" + stanza.
			if n := len(kept); n > 0 && strings.TrimSpace(kept[n-1]) == "" {
				kept = kept[:n-1]
			}
			if at < 0 {
				at = len(kept)
			}
			for i++; i < len(lines); i++ {
				t := strings.TrimSpace(lines[i])
				if t == "" || strings.HasPrefix(t, "#") || isTitle(lines[i]) {
					break
				}
			}
		}
	}
	keep := map[string]bool{release: true}
	for _, r := range installed {
		keep[r] = true
	}
	var rels []string
	seen := map[string]bool{}
	add := func(r string) {
		if keep[r] && !seen[r] {
			seen[r] = true
			rels = append(rels, r)
		}
	}
	for _, r := range order {
		add(r)
	}
	sorted := append([]string(nil), installed...)
	sort.Strings(sorted)
	for _, r := range sorted {
		add(r)
	}
	add(release)
	block := []string{legacyBegin + ": a stanza per kernel lvsforge push --kernel installed; rewritten on every push, edit the spec instead"}
	idx := 0
	for i, r := range rels {
		if r == release {
			idx = i
		}
		for _, l := range body {
			block = append(block, strings.ReplaceAll(l, release, r))
		}
	}
	block = append(block, legacyEnd)
	if at < 0 {
		if n := len(kept); n > 0 && strings.TrimSpace(kept[n-1]) != "" {
			kept = append(kept, "")
		}
		at = len(kept)
	}
	for _, l := range kept[:at] {
		if isTitle(l) {
			idx++
		}
	}
	out := append(append(append([]string(nil), kept[:at]...), block...), kept[at:]...)
	return []byte(strings.Join(out, "\n") + "\n"), idx, nil
}

// isTitle reports a GRUB legacy menu entry's first line.
func isTitle(l string) bool {
	t := strings.TrimLeft(l, " \t")
	return len(t) > 5 && strings.HasPrefix(t, "title") && strings.ContainsRune(" \t=", rune(t[5]))
}

// lvsforgeTitle returns the release of a "title RELEASE (lvsforge ROLE)" line.
func lvsforgeTitle(l string) (string, bool) {
	if !isTitle(l) {
		return "", false
	}
	rest := strings.TrimLeft(strings.TrimLeft(l, " \t")[5:], " \t=")
	rel, tail, ok := strings.Cut(rest, " ")
	if !ok || !strings.HasPrefix(tail, "(lvsforge") || !releaseRe.MatchString(rel) {
		return "", false
	}
	return rel, true
}

// legacyIndex is the index GRUB legacy gives the entry of release in conf, or -1.
func legacyIndex(conf []byte, release string) int {
	n := 0
	for _, l := range strings.Split(string(conf), "\n") {
		if !isTitle(l) {
			continue
		}
		if rel, ok := lvsforgeTitle(l); ok && rel == release {
			return n
		}
		n++
	}
	return -1
}

// legacyDefaultSaved reports whether conf boots the saved default
// (`default saved`): savedefault is ignored otherwise.
func legacyDefaultSaved(conf []byte) bool {
	for _, l := range strings.Split(string(conf), "\n") {
		t := strings.TrimLeft(l, " \t")
		if v, ok := strings.CutPrefix(t, "default"); ok && v != "" && strings.ContainsRune(" \t=", rune(v[0])) {
			if strings.TrimSpace(strings.TrimLeft(v, " \t=")) == "saved" {
				return true
			}
		}
	}
	return false
}

// kernelOps plans the commands of a kernel install (run when its files or
// the boot files, at paths boot, changed) and of its activation or
// confirmation (run on every push that asks for it). changed tells whether
// a path is written by this push.
// legacyConf is a GRUB legacy host's grub.conf as it will be after this
// push's writes (nil on GRUB 2 hosts).
func kernelOps(k *Kernel, f *Facts, changed func(string) bool, boot []string, legacyConf []byte) (install, activate []Op, err error) {
	if err := k.check(); err != nil {
		return nil, nil, err
	}
	has := func(t string) bool { return f.Boot[t] }
	var ops []Op
	run := func(script string) { ops = append(ops, Op{Kind: OpRun, Argv: []string{"sh", "-c", script}}) }
	rel := shell.Quote(k.Release)
	if k.Modules != nil && changed(k.modulesTarball()) {
		// Unpack next to the destination and swap directories, so that a
		// failed unpack never leaves a half-populated lib/modules/RELEASE;
		// never extract over / (a tar entry "lib/" would replace a merged-/usr symlink).
		run(fmt.Sprintf(`set -e; mkdir -p /lib/modules; d=$(mktemp -d /lib/modules/.lvsforge-unpack.XXXXXX); `+
			`trap 'rm -rf "$d"' EXIT; tar -xzf %s -C "$d"; `+
			`[ -d "$d/lib/modules/"%[2]s ] || { echo "modules tarball has no lib/modules/"%[2]s >&2; exit 1; }; `+
			`rm -rf /lib/modules/%[2]s.lvsforge-old; if [ -d /lib/modules/%[2]s ]; then mv /lib/modules/%[2]s /lib/modules/%[2]s.lvsforge-old; fi; `+
			`mv "$d/lib/modules/"%[2]s /lib/modules/%[2]s; rm -rf /lib/modules/%[2]s.lvsforge-old`, shell.Quote(k.modulesTarball()), rel))
		ops = append(ops, Op{Kind: OpRun, Argv: []string{"depmod", "-a", "-F", "/boot/System.map-" + k.Release, k.Release}})
	}
	// GRUB's configuration is regenerated when the kernel or one of the
	// boot files (the GRUB script and settings roles renders) changed.
	installed := false
	for _, p := range append([]string{"/boot/vmlinuz-" + k.Release, "/boot/System.map-" + k.Release, k.marker()}, boot...) {
		installed = installed || changed(p)
	}
	legacy := has("legacy")
	var cfg string
	switch {
	case legacy:
		// GRUB legacy has no generator: grub.conf itself is one of this
		// push's writes (see legacyConfFile).
	case has("update-grub"):
		cfg = "/boot/grub/grub.cfg"
		if installed {
			ops = append(ops, Op{Kind: OpRun, Argv: []string{"update-grub"}})
		}
	case has("grub2-mkconfig"):
		cfg = "/boot/grub2/grub.cfg"
		if installed {
			ops = append(ops, Op{Kind: OpRun, Argv: []string{"grub2-mkconfig", "-o", cfg}})
		}
	case has("grub-mkconfig"):
		cfg = "/boot/grub/grub.cfg"
		if installed {
			ops = append(ops, Op{Kind: OpRun, Argv: []string{"grub-mkconfig", "-o", cfg}})
		}
	default:
		if k.Image != nil || k.ActivateOnce || k.MakeDefault {
			return nil, nil, fmt.Errorf("plan kernel %s: no GRUB found (update-grub, grub2-mkconfig, grub-mkconfig or %s)", k.Release, grubLegacyConf)
		}
	}
	nInstall := len(ops)
	entry := "lvsforge-" + k.Release
	pick := func(verb string) error {
		if legacy {
			return legacyPick(k, verb, legacyConf, run)
		}
		for _, tool := range []string{"grub-" + verb, "grub2-" + verb} {
			if has(tool) {
				// Refuse to point GRUB at an entry its configuration lacks:
				// the next boot would fall back silently.
				check := ""
				if verb == "set-default" {
					// saved_entry is only read with GRUB_DEFAULT=saved.
					check = `cat /etc/default/grub /etc/default/grub.d/*.cfg 2>/dev/null | grep -q '^GRUB_DEFAULT=["'"'"']*saved' || ` +
						`{ echo "GRUB_DEFAULT is not saved in /etc/default/grub: a default set with ` + tool + ` would be ignored" >&2; exit 1; }; `
				}
				run(fmt.Sprintf(`%sgrep -qF -- "--id '%s'" %s || { echo "no GRUB entry %s in %s" >&2; exit 1; }; %s %s`,
					check, entry, cfg, entry, cfg, tool, shell.Quote(entry)))
				return nil
			}
		}
		return fmt.Errorf("plan kernel %s: no grub-%s or grub2-%s on the host", k.Release, verb, verb)
	}
	if k.ActivateOnce {
		// A one-time boot falls back to the saved default; on a host where
		// none was ever saved, GRUB's default is the first entry, which may
		// well be the new kernel itself: pin the running kernel's entry first.
		for _, p := range []string{"grub", "grub2"} {
			if !legacy && has(p+"-set-default") && has(p+"-editenv") {
				run(fmt.Sprintf(`if ! %s list 2>/dev/null | grep -q '^saved_entry='; then `+
					`cur=$(awk -v k="/boot/vmlinuz-$(uname -r)" %s %s); `+
					`if [ -n "$cur" ]; then %s-set-default "$cur"; else echo "no GRUB entry for the running kernel $(uname -r) in %s: nothing to fall back to" >&2; exit 1; fi; fi`,
					p+"-editenv", shell.Quote(runningEntryAwk), cfg, p, cfg))
				break
			}
		}
		if err := pick("reboot"); err != nil {
			return nil, nil, err
		}
	}
	if k.MakeDefault {
		if f.Kernel != k.Release {
			return nil, nil, fmt.Errorf("confirm kernel %s: running %s: %w (push --kernel --activate once, reboot, check, then confirm)", k.Release, f.Kernel, ErrNotRunning)
		}
		if err := pick("set-default"); err != nil {
			return nil, nil, err
		}
	}
	return ops[:nInstall:nInstall], ops[nInstall:], nil
}

// legacyPick plans GRUB legacy's savedefault of k's entry, for the next
// boot only (verb "reboot") or as the default ("set-default"). The index
// comes from conf, the grub.conf this push leaves; the command checks that
// the entry at that index is still k's before pointing GRUB at it.
func legacyPick(k *Kernel, verb string, conf []byte, run func(string)) error {
	n := legacyIndex(conf, k.Release)
	if n < 0 {
		return fmt.Errorf("plan kernel %s: no GRUB legacy entry for it in %s (push --kernel installs one)", k.Release, grubLegacyConf)
	}
	check := ""
	once := " --once"
	if verb == "set-default" {
		once = ""
		// GRUB legacy boots the saved entry only with `default saved`.
		if !legacyDefaultSaved(conf) {
			return fmt.Errorf("confirm kernel %s: %s has no `default saved`, so GRUB legacy would ignore the default savedefault sets: put `default saved` in place of its `default` line", k.Release, grubLegacyConf)
		}
		check = fmt.Sprintf(`grep -Eq '^[[:space:]]*default[[:space:]=]+saved[[:space:]]*$' %s || { echo "%[1]s has no default saved" >&2; exit 1; }; `, grubLegacyConf)
	}
	title := "title " + k.Release + " (lvsforge"
	run(fmt.Sprintf(`%sawk -v n=%d '/^[ \t]*title[ \t=]/ { if (i++ == n) { print; exit } }' %s | grep -qF -- %s || `+
		`{ echo "entry %[2]d of %[3]s is not lvsforge's %[5]s" >&2; exit 1; }; `+
		`printf 'savedefault --default=%[2]d%[6]s\nquit\n' | grub --batch`,
		check, n, grubLegacyConf, shell.Quote(title), k.Release, once))
	return nil
}

// runningEntryAwk finds, in a grub.cfg, the id GRUB's saved_entry takes
// for the last entry that boots the kernel k: "SUBMENU>ENTRY" for the
// entries update-grub's 10_linux puts in its submenu, "lvsforge-RELEASE"
// for 42_lvsforge's. The last match, because 10_linux's first, top-level
// entry always boots the newest kernel, whichever that becomes; never a
// recovery entry (single-user mode is no place to fall back to).
const runningEntryAwk = `function id(l, s) { if (match(l, /(--id|menuentry_id_option)[ \t]+\047[^\047]*\047/)) { s = substr(l, RSTART, RLENGTH); sub(/^[^\047]*\047/, "", s); sub(/\047$/, "", s); return s } return "" } ` +
	`/^submenu / { sub_id = id($0); next } ` +
	`/^menuentry / { sub_id = ""; cur = id($0); next } ` +
	`/^[ \t]+menuentry / { cur = sub_id ">" id($0); next } ` +
	`/^[ \t]*linux(16)?[ \t]/ { for (i = 2; i <= NF; i++) if ($i == k && cur !~ /-recovery-/) found = cur } ` +
	`END { if (found != "") print found }`

// KernelStatus is what `kernel status` shows for a host.
type KernelStatus struct {
	Host      string   `json:"host"`
	Running   string   `json:"running"`
	Installed []string `json:"installed"`
	// Default and Next are GRUB's saved_entry and next_entry (GRUB legacy:
	// the titles of the default and the once-only entries).
	Default string `json:"default"`
	Next    string `json:"next"`
	Error   string `json:"error,omitempty"`
	err     error
}

// Err is the host's error.
func (s *KernelStatus) Err() error { return s.err }

const statusScript = `printf 'U '; uname -nr; for k in /boot/vmlinuz-*; do [ -e "$k" ] && echo "V ${k#/boot/vmlinuz-}"; done; ` +
	`if ` + legacyTest + `; then ` +
	`awk '/^[ \t]*default[ \t=]/ { sub(/^[ \t]*default[ \t=]+/, ""); print "LD " $0 } /^[ \t]*title[ \t=]/ { sub(/^[ \t]*title[ \t=]+/, ""); print "LT " $0 }' ` + grubLegacyConf + `; ` +
	`[ -f /boot/grub/default ] && head -n 1 /boot/grub/default | sed 's/^/LS /'; ` +
	`else for e in grub-editenv grub2-editenv; do if command -v $e >/dev/null 2>&1; then ` +
	`for f in /boot/grub/grubenv /boot/grub2/grubenv; do [ -f $f ] && $e $f list | sed 's/^/E /'; done; break; fi; done; fi; true`

// legacyStatus turns grub.conf's default line, its titles and the first
// line of /boot/grub/default ("N" or "N:ONCE") into the default and
// next-boot entries' titles. `default saved` is resolved through the
// default file; Red Hat's GRUB keeps it inside stage2 instead, where it
// cannot be read: then the default is unknown ("").
func legacyStatus(def string, titles []string, saved string) (dflt, next string) {
	entry := func(s string) string {
		n, err := strconv.Atoi(strings.TrimSpace(s))
		if err != nil || n < 0 {
			return ""
		}
		if n >= len(titles) {
			return fmt.Sprintf("entry %d (not in %s)", n, grubLegacyConf)
		}
		return titles[n]
	}
	if strings.TrimSpace(def) != "saved" {
		if def == "" {
			def = "0"
		}
		return entry(def), ""
	}
	d, once, ok := strings.Cut(strings.TrimSpace(saved), ":")
	dflt = entry(d)
	if ok {
		next = entry(once)
	}
	return dflt, next
}

// Status reports every host's kernels, read-only, with the same pool as Push.
func Status(ctx context.Context, targets []Target, o Options) []*KernelStatus {
	b := NewBatch(Options{Dial: o.Dial, Concurrency: o.Concurrency, DryRun: true})
	out := make([]*KernelStatus, len(targets))
	ForEach(len(targets), b.o.Concurrency, func(i int) {
		s := b.Open(ctx, targets[i])
		defer s.Close()
		out[i] = s.KernelStatus(ctx)
	})
	return out
}

// KernelStatus reads the host's kernels: running, installed by lvsforge,
// GRUB's default and next boot. A failure is the status's error.
func (s *Session) KernelStatus(ctx context.Context) *KernelStatus {
	st := &KernelStatus{Host: s.Host.Target.Name, Installed: []string{}}
	b, err := s.Query(ctx, statusScript)
	if err != nil {
		st.err, st.Error = err, err.Error()
		return st
	}
	var legacy bool
	var def, saved string
	var titles []string
	for _, line := range strings.Split(string(b), "\n") {
		tag, rest, _ := strings.Cut(line, " ")
		switch tag {
		case "LD":
			legacy, def = true, rest
		case "LT":
			legacy = true
			titles = append(titles, rest)
		case "LS":
			saved = rest
		case "U":
			_, st.Running, _ = strings.Cut(rest, " ")
		case "V":
			st.Installed = append(st.Installed, rest)
		case "E":
			if v, ok := strings.CutPrefix(rest, "saved_entry="); ok {
				st.Default = v
			} else if v, ok := strings.CutPrefix(rest, "next_entry="); ok {
				st.Next = v
			}
		}
	}
	if legacy {
		st.Default, st.Next = legacyStatus(def, titles, saved)
	}
	return st
}
