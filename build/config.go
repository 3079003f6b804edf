package build

import (
	"bufio"
	"bytes"
	"context"
	"embed"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"regexp"
	"sort"
	"strings"

	"github.com/lvsforge/lvsforge/internal/fsutil"
)

//go:embed fragments/*.config
var fragmentFS embed.FS

// Fragment is a named Kconfig fragment: lines of CONFIG_X=v or "# CONFIG_X is not set".
type Fragment struct {
	Name string
	Data []byte
}

// Fragment names shipped with lvsforge.
const (
	FragmentDirector   = "director"
	FragmentRealServer = "realserver"
	FragmentVM         = "vm"
	FragmentFWMark     = "fwmark"
	FragmentBGP        = "bgp"
)

// BuiltinFragment returns one of the fragments shipped in build/fragments.
func BuiltinFragment(name string) (Fragment, error) {
	data, err := fragmentFS.ReadFile("fragments/" + name + ".config")
	if err != nil {
		return Fragment{}, fmt.Errorf("load fragment %q: %w", name, err)
	}
	return Fragment{Name: name, Data: data}, nil
}

// Schedulers maps each IPVS scheduler name to its Kconfig option, in the
// order ipvsadm's man page lists them. Not every kernel has all of them
// (fo and ovf came in 4.x, mh in 4.18, twos in 5.12).
var Schedulers = []struct{ Name, Option string }{
	{"rr", "IP_VS_RR"}, {"wrr", "IP_VS_WRR"}, {"lc", "IP_VS_LC"}, {"wlc", "IP_VS_WLC"},
	{"lblc", "IP_VS_LBLC"}, {"lblcr", "IP_VS_LBLCR"}, {"dh", "IP_VS_DH"}, {"sh", "IP_VS_SH"},
	{"sed", "IP_VS_SED"}, {"nq", "IP_VS_NQ"}, {"fo", "IP_VS_FO"}, {"ovf", "IP_VS_OVF"},
	{"mh", "IP_VS_MH"}, {"twos", "IP_VS_TWOS"},
}

// SchedulersIn returns the schedulers the kernel tree at srcDir defines, read
// from net/netfilter/ipvs/Kconfig (net/ipv4/ipvs/Kconfig before 2.6.28).
func SchedulersIn(srcDir string) ([]string, error) {
	var data []byte
	var err error
	for _, p := range []string{"net/netfilter/ipvs/Kconfig", "net/ipv4/ipvs/Kconfig"} {
		if data, err = os.ReadFile(filepath.Join(srcDir, p)); err == nil {
			break
		}
	}
	if err != nil {
		return nil, fmt.Errorf("find IPVS Kconfig: %w", err)
	}
	defined := map[string]bool{}
	for _, m := range kconfigDefRe.FindAllSubmatch(data, -1) {
		defined[string(m[1])] = true
	}
	var out []string
	for _, s := range Schedulers {
		if defined[s.Option] {
			out = append(out, s.Name)
		}
	}
	return out, nil
}

// SchedulerFragment enables every scheduler the tree has, as modules (so
// "ipvsadm -A ... -s NAME" proves each one loads).
func SchedulerFragment(srcDir string) (Fragment, error) {
	names, err := SchedulersIn(srcDir)
	if err != nil {
		return Fragment{}, err
	}
	var b bytes.Buffer
	b.WriteString("# every IPVS scheduler this kernel defines\n")
	for _, s := range Schedulers {
		for _, n := range names {
			if n == s.Name {
				fmt.Fprintf(&b, "CONFIG_%s=m\n", s.Option)
			}
		}
	}
	return Fragment{Name: "ipvs-schedulers", Data: b.Bytes()}, nil
}

var (
	kconfigDefRe = regexp.MustCompile(`(?m)^\s*(?:menu)?config\s+([A-Za-z0-9_]+)\s*$`)
	optionRe     = regexp.MustCompile(`^CONFIG_([A-Za-z0-9_]+)=(.*)$`)
	notSetRe     = regexp.MustCompile(`^# CONFIG_([A-Za-z0-9_]+) is not set$`)
)

// ParseOption parses "CONFIG_X=v" or "# CONFIG_X is not set" into (X, v);
// "is not set" and "=n" both give "n".
func ParseOption(line string) (name, value string, ok bool) {
	line = strings.TrimSpace(line)
	if m := notSetRe.FindStringSubmatch(line); m != nil {
		return m[1], "n", true
	}
	if m := optionRe.FindStringSubmatch(line); m != nil {
		return m[1], m[2], true
	}
	return "", "", false
}

// parseConfig reads options from a fragment or .config; comments and blank
// lines are skipped, the last setting of an option wins.
func parseConfig(data []byte) (map[string]string, []string, error) {
	vals := map[string]string{}
	var order []string
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 1<<16), 1<<20)
	for n := 1; sc.Scan(); n++ {
		line := strings.TrimSpace(sc.Text())
		if line == "" {
			continue
		}
		name, v, ok := ParseOption(line)
		if !ok {
			if strings.HasPrefix(line, "#") {
				continue
			}
			return nil, nil, fmt.Errorf("line %d: %q is not CONFIG_NAME=value", n, line)
		}
		if _, seen := vals[name]; !seen {
			order = append(order, name)
		}
		vals[name] = v
	}
	return vals, order, sc.Err()
}

// ReadConfig reads a .config into option name (without CONFIG_) -> value.
func ReadConfig(path string) (map[string]string, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read config: %w", err)
	}
	vals, _, err := parseConfig(data)
	if err != nil {
		return nil, fmt.Errorf("parse %s: %w", path, err)
	}
	return vals, nil
}

// ErrOptionsDropped reports requested options that the final .config does
// not have as requested.
var ErrOptionsDropped = errors.New("requested kernel options did not survive olddefconfig")

// DroppedOption is one requested option that kconfig changed.
type DroppedOption struct {
	Option    string // without CONFIG_
	Requested string
	Got       string // "" when unset
	// DependsOn are the "depends on" expressions of the option's Kconfig
	// entry, and Unmet the symbols in them that are not enabled.
	DependsOn []string
	Unmet     []string
}

func (d DroppedOption) String() string {
	got := d.Got
	if got == "" {
		got = "unset"
	}
	s := fmt.Sprintf("CONFIG_%s: requested %s, got %s", d.Option, d.Requested, got)
	if len(d.Unmet) > 0 {
		s += " (unmet dependency: " + strings.Join(d.Unmet, ", ") + ")"
	} else if len(d.DependsOn) > 0 {
		s += " (depends on " + strings.Join(d.DependsOn, "; ") + ")"
	} else if d.Got == "" {
		s += " (no such option in this kernel, or not visible here)"
	}
	return s
}

// DroppedError lists every option that vanished.
type DroppedError struct{ Options []DroppedOption }

func (e *DroppedError) Error() string {
	var parts []string
	for _, o := range e.Options {
		parts = append(parts, o.String())
	}
	return fmt.Sprintf("check kernel config: %v: %s", ErrOptionsDropped, strings.Join(parts, "; "))
}

func (e *DroppedError) Unwrap() error { return ErrOptionsDropped }

// satisfied says whether kconfig's value got meets the request want.
func satisfied(want, got string) bool {
	switch want {
	case "n":
		return got == "" || got == "n"
	case "m":
		// A select or a bool parent can force a tristate to y; the code is there.
		return got == "m" || got == "y"
	}
	return got == want
}

// CheckConfig compares requested options (name without CONFIG_ -> value) with
// the final .config at configPath and returns a *DroppedError naming every
// one that did not survive, with its Kconfig dependencies from srcDir.
func CheckConfig(srcDir, configPath string, requested map[string]string) error {
	final, err := ReadConfig(configPath)
	if err != nil {
		return err
	}
	var dropped []DroppedOption
	for name, want := range requested {
		got := final[name]
		if satisfied(want, got) {
			continue
		}
		d := DroppedOption{Option: name, Requested: want, Got: got}
		d.DependsOn = kconfigDepends(srcDir, name)
		d.Unmet = unmetSymbols(d.DependsOn, final)
		dropped = append(dropped, d)
	}
	if len(dropped) == 0 {
		return nil
	}
	sort.Slice(dropped, func(i, j int) bool { return dropped[i].Option < dropped[j].Option })
	return &DroppedError{Options: dropped}
}

var symRe = regexp.MustCompile(`[A-Z][A-Z0-9_]+`)

// unmetSymbols picks the symbols of the dependency expressions that are off.
// It does not evaluate the expressions (a "|| X=n" alternative may be the one
// that holds), so it lists candidates: enough to tell a user where to look.
func unmetSymbols(deps []string, final map[string]string) []string {
	seen := map[string]bool{}
	var out []string
	for _, d := range deps {
		// Negated or "=n" terms are satisfied by an unset symbol.
		d = regexp.MustCompile(`!\s*[A-Z0-9_]+|[A-Z0-9_]+\s*!?=\s*[nmy]\b`).ReplaceAllString(d, "")
		for _, s := range symRe.FindAllString(d, -1) {
			if seen[s] {
				continue
			}
			seen[s] = true
			if v := final[s]; v == "" || v == "n" {
				out = append(out, "CONFIG_"+s)
			}
		}
	}
	return out
}

// kconfigDepends finds the "depends on" lines of the definition of name in
// the tree's Kconfig files (the first definition found, in walk order).
func kconfigDepends(srcDir, name string) []string {
	var deps []string
	def := regexp.MustCompile(`^\s*(?:menu)?config\s+` + regexp.QuoteMeta(name) + `\s*$`)
	filepath.WalkDir(srcDir, func(p string, d fs.DirEntry, err error) error {
		if err != nil || deps != nil {
			return filepath.SkipAll
		}
		if d.IsDir() {
			if n := d.Name(); n == "Documentation" || n == "tools" || strings.HasPrefix(n, ".") && p != srcDir {
				return filepath.SkipDir
			}
			return nil
		}
		if !strings.HasPrefix(d.Name(), "Kconfig") {
			return nil
		}
		data, err := os.ReadFile(p)
		if err != nil || !bytes.Contains(data, []byte(name)) {
			return nil
		}
		lines := strings.Split(string(data), "\n")
		for i, l := range lines {
			if !def.MatchString(l) {
				continue
			}
			// Enclosing "if" blocks are dependencies too (the IPVS
			// schedulers sit inside "if IP_VS").
			found := []string{}
			var ifs []string
			for _, above := range lines[:i] {
				t := strings.TrimSpace(above)
				if cond, ok := strings.CutPrefix(t, "if "); ok {
					ifs = append(ifs, strings.TrimSpace(cond))
				} else if t == "endif" && len(ifs) > 0 {
					ifs = ifs[:len(ifs)-1]
				}
			}
			found = append(found, ifs...)
			for _, body := range lines[i+1:] {
				t := strings.TrimSpace(body)
				if body != "" && body[0] != ' ' && body[0] != '\t' && !strings.HasPrefix(t, "#") {
					break // the next top-level statement ends the entry
				}
				if rest, ok := strings.CutPrefix(t, "depends on"); ok {
					found = append(found, strings.TrimSpace(rest))
				}
			}
			deps = found
			return filepath.SkipAll
		}
		return nil
	})
	return deps
}

func makeBase(base string) bool {
	return base == "tinyconfig" || base == "defconfig" || base == "allnoconfig"
}

// signingKeyDefault is the kernel's own MODULE_SIG_KEY, which kbuild
// generates when it is missing.
const signingKeyDefault = "certs/signing_key.pem"

// DistroKeysFragment undoes what a distro's config (/boot/config-*) points
// at outside a vanilla tree: Debian's CONFIG_SYSTEM_TRUSTED_KEYS and
// CONFIG_SYSTEM_REVOCATION_KEYS name debian/certs/*.pem, which only
// Debian's own source package has, and the build stops on the missing
// file. Each of those that does not name a file inside srcDir is blanked,
// and a MODULE_SIG_KEY that does not is reset to the kernel's default
// (a key the build generates). A path outside the tree would also be an
// input the cache key does not cover. The fragment is empty when the base
// needs none of this.
func DistroKeysFragment(base map[string]string, srcDir string) Fragment {
	inTree := func(p string) bool {
		if !filepath.IsLocal(p) {
			return false
		}
		st, err := os.Stat(filepath.Join(srcDir, p))
		return err == nil && st.Mode().IsRegular()
	}
	var b bytes.Buffer
	for _, o := range []string{"SYSTEM_TRUSTED_KEYS", "SYSTEM_REVOCATION_KEYS"} {
		if p := unquoteConfig(base[o]); p != "" && !inTree(p) {
			fmt.Fprintf(&b, "# the base config's %q is not in this tree\nCONFIG_%s=\"\"\n", p, o)
		}
	}
	if p := unquoteConfig(base["MODULE_SIG_KEY"]); p != "" && p != signingKeyDefault && !inTree(p) {
		fmt.Fprintf(&b, "# the base config's %q is not in this tree\nCONFIG_MODULE_SIG_KEY=%q\n", p, signingKeyDefault)
	}
	return Fragment{Name: "distro-keys", Data: b.Bytes()}
}

// unquoteConfig turns a .config string value ("x") into x.
func unquoteConfig(v string) string {
	if len(v) >= 2 && v[0] == '"' && v[len(v)-1] == '"' {
		return strings.ReplaceAll(v[1:len(v)-1], `\"`, `"`)
	}
	return v
}

// ConfigRequest is one kernel configuration: a base, fragments merged over it
// in order, then the spec's options and local version.
type ConfigRequest struct {
	SrcDir, OutDir string
	Base           string
	Fragments      []Fragment
	Options        []string
	LocalVersion   string
	// MakeVars are extra make variables (CC=...), the same as for the build
	// so that kconfig sees the same compiler.
	MakeVars []string
}

// Configure writes OutDir/.config: the base (make tinyconfig/defconfig/
// allnoconfig, or a copy of a file), then the kernel's merge_config.sh -m
// with every fragment, then make olddefconfig; finally every requested
// option is read back and any that kconfig dropped fails with *DroppedError.
func Configure(ctx context.Context, mk command, logName string, req ConfigRequest) error {
	if err := os.MkdirAll(req.OutDir, 0o755); err != nil {
		return fmt.Errorf("configure kernel: %w", err)
	}
	o := "O=" + req.OutDir
	config := filepath.Join(req.OutDir, ".config")
	switch {
	case makeBase(req.Base):
		if err := mk.run(ctx, logName, "make", append(append([]string{o}, req.MakeVars...), req.Base)...); err != nil {
			return fmt.Errorf("configure kernel: %w", err)
		}
	default:
		if err := fsutil.CopyFile(req.Base, config, 0o644); err != nil {
			return fmt.Errorf("configure kernel: base config: %w", err)
		}
	}
	var distro []Fragment
	if !makeBase(req.Base) {
		data, err := os.ReadFile(config)
		if err != nil {
			return fmt.Errorf("configure kernel: base config: %w", err)
		}
		base, _, err := parseConfig(data)
		if err != nil {
			return fmt.Errorf("configure kernel: base config %s: %w", req.Base, err)
		}
		if f := DistroKeysFragment(base, req.SrcDir); len(f.Data) > 0 {
			distro = append(distro, f)
		}
	}
	spec := &bytes.Buffer{}
	for _, o := range req.Options {
		if _, _, ok := ParseOption(o); !ok {
			return fmt.Errorf("configure kernel: option %q is not CONFIG_NAME=value", o)
		}
		spec.WriteString(strings.TrimSpace(o) + "\n")
	}
	if req.LocalVersion != "" {
		fmt.Fprintf(spec, "CONFIG_LOCALVERSION=%q\n", req.LocalVersion)
	}
	// The distro fixes come first, so that the role's fragments and the
	// spec can still set those options; they are not read back.
	all := append(append(distro, req.Fragments...), Fragment{Name: "spec", Data: spec.Bytes()})
	fragDir := filepath.Join(req.OutDir, ".lvsforge-fragments")
	os.RemoveAll(fragDir)
	if err := os.MkdirAll(fragDir, 0o755); err != nil {
		return fmt.Errorf("configure kernel: %w", err)
	}
	requested := map[string]string{}
	args := []string{filepath.Join(req.SrcDir, "scripts", "kconfig", "merge_config.sh"), "-m", "-O", req.OutDir, config}
	for i, f := range all {
		vals, order, err := parseConfig(f.Data)
		if err != nil {
			return fmt.Errorf("configure kernel: fragment %s: %w", f.Name, err)
		}
		for _, name := range order {
			if i >= len(distro) {
				requested[name] = vals[name]
			}
		}
		p := filepath.Join(fragDir, fmt.Sprintf("%02d-%s.config", i, f.Name))
		if err := os.WriteFile(p, f.Data, 0o644); err != nil {
			return fmt.Errorf("configure kernel: %w", err)
		}
		args = append(args, p)
	}
	if err := mk.run(ctx, logName, "sh", args...); err != nil {
		return fmt.Errorf("merge kernel config: %w", err)
	}
	if err := mk.run(ctx, logName, "make", append(append([]string{o}, req.MakeVars...), "olddefconfig")...); err != nil {
		return fmt.Errorf("configure kernel: %w", err)
	}
	return CheckConfig(req.SrcDir, config, requested)
}
