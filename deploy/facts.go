package deploy

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io/fs"
	"path"
	"sort"
	"strconv"
	"strings"
)

// Init systems a host can run.
const (
	InitSystemd = "systemd"
	InitSysV    = "sysv"
)

// tempPrefix starts every temporary file name; the leading dot keeps
// half-written files out of globs such as grub-mkconfig's /etc/grub.d/*.
const tempPrefix = ".lvsforge-tmp-"

// RemoteFile is the state of one target path on a host.
type RemoteFile struct {
	Exists bool
	IsDir  bool
	Mode   fs.FileMode
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
	// Boot holds the GRUB tools found in PATH and "legacy" for a GRUB legacy grub.conf.
	Boot map[string]bool `json:"-"`
}

// factScript builds the single command that reports kernel, hostname, init
// system, every target's mode and sha256, which target directories exist and
// any stale temporaries in them. It starts three processes (uname, stat,
// sha256sum) however many files there are: at 100 hosts the fork/exec of a
// per-file loop costs more than everything else a no-op push does.
func factScript(paths []string) string {
	dirs := map[string]bool{}
	var qp, qd []string
	for _, p := range paths {
		qp = append(qp, shellQuote(p))
		dirs[path.Dir(p)] = true
	}
	for d := range dirs {
		qd = append(qd, shellQuote(d))
	}
	sort.Strings(qd)
	var b strings.Builder
	b.WriteString(`printf 'U '; uname -nr; `)
	b.WriteString(`if [ -d /run/systemd/system ]; then echo "I systemd"; else echo "I sysv"; fi; `)
	b.WriteString(bootFactScript)
	b.WriteString(`[ -f ` + pendingFile + ` ] && while IFS= read -r l; do echo "P $l"; done < ` + pendingFile + `; `)
	if len(qp) > 0 {
		all := strings.Join(qp, " ")
		// Missing files only make stat and sha256sum complain on stderr.
		b.WriteString(`stat -L -c 'S %a %f %n' -- ` + all + ` 2>/dev/null; `)
		b.WriteString(`sha256sum -- ` + all + ` 2>/dev/null; `)
		b.WriteString(`for d in ` + strings.Join(qd, " ") + `; do ` +
			`if [ -d "$d" ]; then echo "D $d"; for t in "$d"/` + tempPrefix + `*; do [ -e "$t" ] && echo "T $t"; done; fi; done; `)
	}
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

// parseFacts reads the fact script's output. Every requested path gets an
// entry: one that neither stat nor sha256sum reported does not exist.
func parseFacts(out []byte, paths []string) (*Facts, error) {
	f := &Facts{Files: map[string]RemoteFile{}, Dirs: map[string]bool{}, Boot: map[string]bool{}, Pending: map[string]bool{}}
	sums := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if len(line) > 66 && line[64:66] == "  " && isHex(line[:64]) {
			sums[line[66:]] = line[:64]
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
			// "S MODE RAWMODE PATH"
			fields := strings.SplitN(rest, " ", 3)
			if len(fields) != 3 {
				return nil, fmt.Errorf("parse facts: unexpected line %q", line)
			}
			m, err1 := strconv.ParseUint(fields[0], 8, 32)
			raw, err2 := strconv.ParseUint(fields[1], 16, 32)
			if err1 != nil || err2 != nil {
				return nil, fmt.Errorf("parse facts: mode in %q", line)
			}
			f.Files[fields[2]] = RemoteFile{Exists: true, IsDir: raw&0o170000 == 0o040000, Mode: fs.FileMode(m)}
		case 'G':
			f.Boot[rest] = true
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
	for _, p := range paths {
		rf := f.Files[p]
		// A file that exists but could not be hashed keeps an empty sum and
		// is rewritten.
		rf.SHA256 = sums[p]
		f.Files[p] = rf
	}
	return f, nil
}

// gatherFacts runs the fact script; it changes nothing on the host.
func gatherFacts(ctx context.Context, c *Conn, paths []string) (*Facts, error) {
	out, err := c.output(ctx, factScript(paths))
	if err != nil {
		return nil, fmt.Errorf("gather facts: %w", err)
	}
	return parseFacts(out, paths)
}
