package deploy

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"strings"
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
	Image     *Artifact
	SystemMap *Artifact
	Config    *Artifact
	// Modules is a tar.gz of lib/modules/RELEASE; nil for a kernel without modules.
	Modules *Artifact
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
const modulesDir = "/var/lib/lvsforge/kernel"

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
		dst      **Artifact
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
		if *a.dst, err = OpenArtifact(p); err != nil {
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
func (k *Kernel) files() []File {
	var fs []File
	add := func(p string, a *Artifact) {
		if a != nil {
			fs = append(fs, File{Path: p, Mode: 0o644, Artifact: a})
		}
	}
	if k.Image != nil {
		// The marker by which /etc/grub.d/42_lvsforge lists every kernel
		// lvsforge installed, whatever local version the spec has now.
		fs = append(fs, File{Path: k.marker(), Mode: 0o644, Data: []byte(k.Release + "\n")})
	}
	add("/boot/vmlinuz-"+k.Release, k.Image)
	add("/boot/System.map-"+k.Release, k.SystemMap)
	add("/boot/config-"+k.Release, k.Config)
	add(k.modulesTarball(), k.Modules)
	return fs
}

func (k *Kernel) modulesTarball() string { return modulesDir + "/modules-" + k.Release + ".tar.gz" }

// marker says lvsforge installed this kernel; 42_lvsforge reads it.
func (k *Kernel) marker() string { return modulesDir + "/release-" + k.Release }

// Bootloader facts: which GRUB tools the host has.
const (
	grubLegacyConf = "/boot/grub/grub.conf"
	// GrubLegacyStanza is where roles renders the GRUB legacy entry.
	grubLegacyStanza = "/etc/lvsforge/grub-legacy.conf"
)

// bootFactScript reports the GRUB tools in PATH and a GRUB legacy config;
// shell builtins only.
const bootFactScript = `for t in update-grub grub2-mkconfig grub-mkconfig grub-reboot grub2-reboot grub-set-default grub2-set-default grub-editenv grub2-editenv; do ` +
	`command -v "$t" >/dev/null 2>&1 && echo "G $t"; done; [ -f ` + grubLegacyConf + ` ] && echo "G legacy"; `

// kernelOps plans the commands of a kernel install (run when its files
// changed) and of its activation or confirmation (run on every push that
// asks for it). changed tells whether a path is written by this push.
func kernelOps(k *Kernel, f *Facts, changed func(string) bool) (install, activate []Op, err error) {
	if err := k.check(); err != nil {
		return nil, nil, err
	}
	has := func(t string) bool { return f.Boot[t] }
	var ops []Op
	run := func(script string) { ops = append(ops, Op{Kind: OpRun, Argv: []string{"sh", "-c", script}}) }
	rel := shellQuote(k.Release)
	if k.Modules != nil && changed(k.modulesTarball()) {
		// Unpack next to the destination and swap directories, so that a
		// failed unpack never leaves a half-populated lib/modules/RELEASE;
		// never extract over / (a tar entry "lib/" would replace a merged-/usr symlink).
		run(fmt.Sprintf(`set -e; mkdir -p /lib/modules; d=$(mktemp -d /lib/modules/.lvsforge-unpack.XXXXXX); `+
			`trap 'rm -rf "$d"' EXIT; tar -xzf %s -C "$d"; `+
			`[ -d "$d/lib/modules/"%[2]s ] || { echo "modules tarball has no lib/modules/"%[2]s >&2; exit 1; }; `+
			`rm -rf /lib/modules/%[2]s.lvsforge-old; if [ -d /lib/modules/%[2]s ]; then mv /lib/modules/%[2]s /lib/modules/%[2]s.lvsforge-old; fi; `+
			`mv "$d/lib/modules/"%[2]s /lib/modules/%[2]s; rm -rf /lib/modules/%[2]s.lvsforge-old`, shellQuote(k.modulesTarball()), rel))
		ops = append(ops, Op{Kind: OpRun, Argv: []string{"depmod", "-a", "-F", "/boot/System.map-" + k.Release, k.Release}})
	}
	installed := false
	for _, p := range []string{"/boot/vmlinuz-" + k.Release, "/boot/System.map-" + k.Release, k.marker(), "/etc/grub.d/42_lvsforge", grubLegacyStanza} {
		installed = installed || changed(p)
	}
	var cfg string
	switch {
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
	case has("legacy"):
		if installed {
			// Append roles' stanza once; GRUB legacy has no generator.
			run(fmt.Sprintf(`grep -q "^title %s (lvsforge" %s || { echo; grep -v '^#' %s; } >> %s`,
				regexp.QuoteMeta(k.Release), grubLegacyConf, grubLegacyStanza, grubLegacyConf))
		}
	default:
		if k.Image != nil || k.ActivateOnce || k.MakeDefault {
			return nil, nil, fmt.Errorf("plan kernel %s: no GRUB found (update-grub, grub2-mkconfig, grub-mkconfig or %s)", k.Release, grubLegacyConf)
		}
	}
	nInstall := len(ops)
	entry := "lvsforge-" + k.Release
	pick := func(verb string) error {
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
				run(fmt.Sprintf(`%sgrep -q -- "--id '%s'" %s || { echo "no GRUB entry %s in %s" >&2; exit 1; }; %s %s`,
					check, entry, cfg, entry, cfg, tool, shellQuote(entry)))
				return nil
			}
		}
		if has("legacy") {
			once := ""
			if verb == "reboot" {
				once = " --once"
			}
			run(fmt.Sprintf(`n=$(awk '/^title /{i++} /^title %s \(lvsforge/{print i-1; exit}' %s); `+
				`[ -n "$n" ] || { echo "no GRUB legacy entry for %s" >&2; exit 1; }; `+
				`printf 'savedefault --default=%%s%s\nquit\n' "$n" | grub --batch`,
				regexp.QuoteMeta(k.Release), grubLegacyConf, k.Release, once))
			return nil
		}
		return fmt.Errorf("plan kernel %s: no grub-%s or grub2-%s on the host", k.Release, verb, verb)
	}
	if k.ActivateOnce {
		// A one-time boot falls back to the saved default; on a host where
		// none was ever saved, GRUB's default is the first entry, which may
		// well be the new kernel itself: pin the running kernel's entry first.
		for _, p := range []string{"grub", "grub2"} {
			if has(p+"-set-default") && has(p+"-editenv") {
				run(fmt.Sprintf(`if ! %s list 2>/dev/null | grep -q '^saved_entry='; then `+
					`cur=$(awk -v k="/boot/vmlinuz-$(uname -r)" %s %s); `+
					`if [ -n "$cur" ]; then %s-set-default "$cur"; else echo "no GRUB entry for the running kernel $(uname -r) in %s: nothing to fall back to" >&2; exit 1; fi; fi`,
					p+"-editenv", shellQuote(runningEntryAwk), cfg, p, cfg))
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
	// the default index).
	Default string `json:"default"`
	Next    string `json:"next"`
	Error   string `json:"error,omitempty"`
	err     error
}

// Err is the host's error.
func (s *KernelStatus) Err() error { return s.err }

const statusScript = `printf 'U '; uname -nr; for k in /boot/vmlinuz-*; do [ -e "$k" ] && echo "V ${k#/boot/vmlinuz-}"; done; ` +
	`for e in grub-editenv grub2-editenv; do if command -v $e >/dev/null 2>&1; then ` +
	`for f in /boot/grub/grubenv /boot/grub2/grubenv; do [ -f $f ] && $e $f list | sed 's/^/E /'; done; break; fi; done; ` +
	`[ -f ` + grubLegacyConf + ` ] && sed -n 's/^default[ =]*/E saved_entry=/p' ` + grubLegacyConf + `; true`

// Status reports every host's kernels, read-only, with the same pool as Push.
func Status(ctx context.Context, targets []Target, o Options) []*KernelStatus {
	o = o.withDefaults()
	out := make([]*KernelStatus, len(targets))
	forEachHost(len(targets), o.Concurrency, func(i int) {
		st := &KernelStatus{Host: targets[i].Name, Installed: []string{}}
		out[i] = st
		c, err := Dial(ctx, targets[i], o.Dial)
		if err != nil {
			st.err, st.Error = err, err.Error()
			return
		}
		defer c.Close()
		b, err := c.output(ctx, statusScript)
		if err != nil {
			st.err, st.Error = err, err.Error()
			return
		}
		for _, line := range strings.Split(string(b), "\n") {
			tag, rest, _ := strings.Cut(line, " ")
			switch tag {
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
	})
	return out
}
