package deploy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"github.com/lvsforge/lvsforge/internal/shell"
)

// tempPrefix starts every temporary file name; the leading dot keeps
// half-written files out of globs such as grub-mkconfig's /etc/grub.d/*.
const tempPrefix = ".lvsforge-tmp-"

// RemoteFile is the state of one target path on a host.
type RemoteFile struct {
	Exists bool
	IsDir  bool
	Mode   fs.FileMode
	UID    int
	GID    int
	SHA256 string
}

// Facts are what a push learns about a host before deciding anything. They
// are gathered for real, also in dry-run, by one read-only remote command.
type Facts struct {
	Kernel   string                `json:"kernel"`
	Hostname string                `json:"hostname"`
	Init     string                `json:"init"`
	Files    map[string]RemoteFile `json:"-"`
	Dirs     map[string]bool       `json:"-"`
	// StaleTemps are temporary files a killed push left behind.
	StaleTemps []string `json:"-"`
	// Pending are the steps an earlier push left unfinished (see pendingFile).
	Pending map[string]bool `json:"-"`
	// Boot holds the GRUB tools found in PATH and "legacy" for a GRUB
	// legacy host (grub.conf and no grub.cfg).
	Boot map[string]bool `json:"-"`
	// Located maps a File.Locate command to where the host has it.
	Located map[string]string `json:"-"`
	// Releases are the kernels lvsforge installed (their markers in modulesDir).
	Releases []string `json:"-"`
	// GrubLegacyConf is the content of a GRUB legacy host's grub.conf, read
	// when a kernel is installed, activated or confirmed.
	GrubLegacyConf []byte `json:"-"`
}

// commandRe is what File.Locate may name: it reaches the remote shell unquoted.
var commandRe = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9._+-]*$`)

// factScript builds the single command that reports kernel, hostname, init
// system, every target's mode, owner and sha256, which target directories
// exist and any stale temporaries in them. It starts three processes (uname, stat,
// sha256sum) however many files there are: at 100 hosts the fork/exec of a
// per-file loop costs more than everything else a no-op push does. locate
// are commands whose path is looked up first (File.Locate); their files are
// stat'ed and hashed where they are found.
func factScript(paths, large, locate []string) string {
	dirs := map[string]bool{path.Dir(pendingFile): true}
	var qp, qd []string
	for _, p := range paths {
		qp = append(qp, shell.Quote(p))
		dirs[path.Dir(p)] = true
	}
	for d := range dirs {
		qd = append(qd, shell.Quote(d))
	}
	sort.Strings(qd)
	var b strings.Builder
	b.WriteString(`printf 'U '; uname -nr; `)
	b.WriteString(`if [ -d /run/systemd/system ]; then echo "I systemd"; else echo "I sysv"; fi; `)
	b.WriteString(bootFactScript)
	b.WriteString(`[ -f ` + pendingFile + ` ] && while IFS= read -r l; do echo "P $l"; done < ` + pendingFile + `; `)
	for i, cmd := range locate {
		// command -v is a builtin; only an absolute path counts (not a
		// function or an alias).
		fmt.Fprintf(&b, `l%d=$(command -v %s 2>/dev/null); case "$l%[1]d" in /*) echo "L %[2]s $l%[1]d";; *) l%[1]d=;; esac; `, i, cmd)
		qp = append(qp, fmt.Sprintf(`${l%d:+"$l%[1]d"}`, i))
		qd = append(qd, fmt.Sprintf(`${l%d:+"${l%[1]d%%/*}"}`, i))
	}
	if len(qp) > 0 {
		// Missing files only make stat and the hashers complain on stderr.
		b.WriteString(`stat -L -c 'S %a %f %u %g %n' -- ` + strings.Join(qp, " ") + ` 2>/dev/null; `)
		isLarge := map[string]bool{}
		for _, p := range large {
			isLarge[shell.Quote(p)] = true
		}
		var small, big []string
		for _, q := range qp {
			if isLarge[q] {
				big = append(big, q)
			} else {
				small = append(small, q)
			}
		}
		b.WriteString(hashScript(small, big, false) + `; `)
	}
	b.WriteString(`for d in ` + strings.Join(qd, " ") + `; do ` +
		`if [ -d "$d" ]; then echo "D $d"; for t in "$d"/` + tempPrefix + `*; do [ -e "$t" ] && echo "T $t"; done; fi; done; `)
	b.WriteString(`true`)
	return b.String()
}

func isHex(s string) bool {
	for _, r := range s {
		if !strings.ContainsRune("0123456789abcdef", r) {
			return false
		}
	}
	return true
}

// parseFacts reads the fact script's output. Every requested path, and
// every located one, gets an entry: one that neither stat nor sha256sum
// reported does not exist.
func parseFacts(out []byte, paths []string) (*Facts, error) {
	f := &Facts{Files: map[string]RemoteFile{}, Dirs: map[string]bool{}, Boot: map[string]bool{}, Pending: map[string]bool{}, Located: map[string]string{}}
	sums := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if sum, name, ok := sumLine(line); ok {
			sums[name] = sum
			continue
		}
		if len(line) < 2 || line[1] != ' ' {
			return nil, fmt.Errorf("parse facts: unexpected line %q", line)
		}
		rest := line[2:]
		switch line[0] {
		case 'U':
			f.Hostname, f.Kernel, _ = strings.Cut(rest, " ")
		case 'I':
			f.Init = rest
		case 'S':
			// "S MODE RAWMODE UID GID PATH"
			fields := strings.SplitN(rest, " ", 5)
			if len(fields) != 5 {
				return nil, fmt.Errorf("parse facts: unexpected line %q", line)
			}
			m, err1 := strconv.ParseUint(fields[0], 8, 32)
			raw, err2 := strconv.ParseUint(fields[1], 16, 32)
			uid, err3 := strconv.Atoi(fields[2])
			gid, err4 := strconv.Atoi(fields[3])
			if err1 != nil || err2 != nil || err3 != nil || err4 != nil {
				return nil, fmt.Errorf("parse facts: mode or owner in %q", line)
			}
			f.Files[fields[4]] = RemoteFile{Exists: true, IsDir: raw&0o170000 == 0o040000, Mode: fs.FileMode(m), UID: uid, GID: gid}
		case 'G':
			f.Boot[rest] = true
		case 'K':
			f.Releases = append(f.Releases, rest)
		case 'L':
			cmd, p, ok := strings.Cut(rest, " ")
			if !ok {
				return nil, fmt.Errorf("parse facts: unexpected line %q", line)
			}
			f.Located[cmd] = p
		case 'P':
			f.Pending[rest] = true
		case 'D':
			f.Dirs[rest] = true
		case 'T':
			f.StaleTemps = append(f.StaleTemps, rest)
		default:
			return nil, fmt.Errorf("parse facts: unexpected line %q", line)
		}
	}
	all := append([]string(nil), paths...)
	for _, p := range f.Located {
		all = append(all, p)
	}
	for _, p := range all {
		rf := f.Files[p]
		// A file that exists but could not be hashed keeps an empty sum and
		// is rewritten.
		rf.SHA256 = sums[p]
		f.Files[p] = rf
	}
	return f, nil
}

// hashScript hashes files on the host: small ones with sha256sum, large
// ones (already shell-quoted, like small) with openssl where the host has
// it, which uses the CPU's SHA extensions where coreutils does not (12 MiB:
// 10 ms of CPU against 45, at every host of a push). strict falls back to
// sha256sum when openssl fails, so that every file gets its sum; otherwise
// a missing file (which fails openssl too) is just not reported, and an
// openssl too old for -r only costs a rewrite. Output: sumLine's format.
func hashScript(small, large []string, strict bool) string {
	var parts []string
	quiet := " 2>/dev/null"
	if strict {
		quiet = ""
	}
	if len(small) > 0 {
		parts = append(parts, "sha256sum -- "+strings.Join(small, " ")+quiet)
	}
	if len(large) > 0 {
		l := strings.Join(large, " ")
		if strict {
			parts = append(parts, "{ command -v openssl >/dev/null 2>&1 && openssl dgst -sha256 -r "+l+" || sha256sum -- "+l+"; }")
		} else {
			parts = append(parts, "if command -v openssl >/dev/null 2>&1; then openssl dgst -sha256 -r "+l+quiet+"; else sha256sum -- "+l+quiet+"; fi")
		}
	}
	if strict {
		return strings.Join(parts, " && ")
	}
	// A missing small file fails sha256sum: the large ones are hashed anyway.
	return strings.Join(parts, "; ")
}

// sumLine parses a line of sha256sum ("SUM  NAME") or openssl dgst -r
// ("SUM *NAME").
func sumLine(line string) (sum, name string, ok bool) {
	if len(line) > 66 && (line[64:66] == "  " || line[64:66] == " *") && isHex(line[:64]) {
		return line[:64], line[66:], true
	}
	return "", "", false
}

// factsFor is what gatherFacts asks about h's files: every path, the
// large ones (artifacts) among them, and the commands to locate.
func factsFor(h *Host) (paths, large, locate []string, err error) {
	seen := map[string]bool{}
	for _, f := range h.Files {
		if err := checkPath(f.Path); err != nil {
			return nil, nil, nil, err
		}
		paths = append(paths, f.Path)
		if f.Artifact != nil {
			large = append(large, f.Path)
		}
		if f.Locate != "" && !seen[f.Locate] {
			if !commandRe.MatchString(f.Locate) {
				return nil, nil, nil, fmt.Errorf("locate %q for %s: want a command name", f.Locate, f.Path)
			}
			seen[f.Locate] = true
			locate = append(locate, f.Locate)
		}
	}
	if h.Kernel != nil {
		paths = append(paths, grubLegacyConf)
	}
	return paths, large, locate, nil
}

// gatherFacts runs script (the fact script, or the fact script under the
// host's lock) and parses its output; with grubLegacy it also reads a GRUB
// legacy host's grub.conf. It changes nothing on the host.
func gatherFacts(ctx context.Context, c *Conn, run func(script string) ([]byte, error), paths, large, locate []string, grubLegacy bool) (*Facts, error) {
	out, err := run(factScript(paths, large, locate))
	if err != nil {
		return nil, fmt.Errorf("gather facts: %w", err)
	}
	f, err := parseFacts(out, paths)
	if err != nil {
		return nil, err
	}
	for cmd, p := range f.Located {
		if err := checkPath(p); err != nil {
			return nil, fmt.Errorf("gather facts: %s found at %w", cmd, err)
		}
	}
	if grubLegacy && f.Boot["legacy"] {
		if f.GrubLegacyConf, err = readRemote(c, grubLegacyConf); err != nil {
			return nil, fmt.Errorf("gather facts: %w", err)
		}
		if len(f.GrubLegacyConf) > maxDiffSize {
			return nil, fmt.Errorf("gather facts: %s is larger than %d bytes", grubLegacyConf, maxDiffSize)
		}
	}
	return f, nil
}
