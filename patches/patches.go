// Package patches owns kernel patch series: it resolves the named patch sets
// of a cluster spec into an ordered list of pinned entries for one role, and
// applies a fetched series to a source tree with GNU patch, all or nothing:
// every patch is checked with --dry-run first, a patch that is already in
// the tree is recognised and skipped, and the files each patch is about to
// change are copied aside first, so that when any patch fails (even half-way
// through, after a clean dry run) the tree is put back byte for byte.
package patches

import (
	"bufio"
	"bytes"
	"compress/bzip2"
	"compress/gzip"
	"context"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"time"

	"github.com/ulikunitz/xz"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/internal/fsutil"
)

// Entry is one patch of a resolved series, not yet fetched.
type Entry struct {
	// Name identifies the patch in messages: SET/BASENAME.
	Name string
	// Set is the patch set it came from.
	Set string
	// File is an absolute local path, or empty when URL is set.
	File   string
	URL    string
	SHA256 string
	Strip  int
	// Roles are the roles the entry is limited to; empty means all.
	Roles []string
}

// Patch is a fetched, verified patch ready to apply.
type Patch struct {
	Name string
	// Path is the patch file, plain or compressed (gz, xz, bz2).
	Path  string
	Strip int
}

// ErrUnknownSet reports a patch set name that the spec does not define.
var ErrUnknownSet = errors.New("unknown patch set")

// Resolve returns, in order, the patches of the named sets that apply to
// role: entries whose roles list names it, or that list no roles. An empty
// role keeps every entry. Relative files are taken relative to dir (the
// spec's directory). Every entry must pin a sha256: a patch is code that
// goes into a kernel.
func Resolve(sets []cluster.PatchSet, names []string, role, dir string) ([]Entry, error) {
	byName := map[string]cluster.PatchSet{}
	for _, s := range sets {
		byName[s.Name] = s
	}
	var out []Entry
	for _, n := range names {
		s, ok := byName[n]
		if !ok {
			return nil, fmt.Errorf("resolve patch set %q: %w", n, ErrUnknownSet)
		}
		for i, p := range s.Patches {
			e := Entry{Set: s.Name, URL: p.URL, SHA256: strings.ToLower(p.SHA256), Strip: 1}
			if p.Strip != nil {
				if *p.Strip < 0 {
					return nil, fmt.Errorf("resolve patch set %q entry %d: strip must be >= 0, got %d", n, i+1, *p.Strip)
				}
				e.Strip = *p.Strip
			}
			base := p.File
			switch {
			case p.File != "" && p.URL != "":
				return nil, fmt.Errorf("resolve patch set %q entry %d: file and url are exclusive", n, i+1)
			case p.File != "":
				e.File = p.File
				if !filepath.IsAbs(e.File) {
					e.File = filepath.Join(dir, e.File)
				}
			case p.URL != "":
				base = p.URL
			default:
				return nil, fmt.Errorf("resolve patch set %q entry %d: needs file or url", n, i+1)
			}
			if !sha256Re.MatchString(e.SHA256) {
				return nil, fmt.Errorf("resolve patch set %q entry %d: sha256 must be 64 hex digits, got %q", n, i+1, p.SHA256)
			}
			applies := len(p.Roles) == 0 || role == ""
			for j, r := range p.Roles {
				if r != cluster.RoleDirector && r != cluster.RoleRealServer {
					return nil, fmt.Errorf("resolve patch set %q entry %d: roles[%d]: unknown role %q: want %s or %s", n, i+1, j, r, cluster.RoleDirector, cluster.RoleRealServer)
				}
				applies = applies || r == role
			}
			e.Roles = p.Roles
			e.Name = s.Name + "/" + filepath.Base(base)
			if applies {
				out = append(out, e)
			}
		}
	}
	return out, nil
}

// Error is a patch that does not apply. The tree has been restored.
type Error struct {
	Patch string
	// File and Hunk locate the first failure GNU patch reported; Hunk is 0
	// when the file itself is missing or patch gave no hunk.
	File   string
	Hunk   int
	Output string
	// RollbackErr is set if restoring the tree failed too.
	RollbackErr error
}

func (e *Error) Error() string {
	msg := fmt.Sprintf("apply patch %s: does not apply", e.Patch)
	if e.File != "" {
		msg += ": file " + e.File
	}
	if e.Hunk > 0 {
		msg += fmt.Sprintf(", hunk #%d failed", e.Hunk)
	}
	if e.RollbackErr != nil {
		msg += fmt.Sprintf(" (and restoring the tree failed: %v)", e.RollbackErr)
	}
	return msg
}

// Result says what Apply did.
type Result struct {
	Applied []string
	// AlreadyApplied lists patches found already in the tree and skipped.
	AlreadyApplied []string
}

// Apply applies the series to the tree at dir with GNU patch. See the package comment.
func Apply(ctx context.Context, dir string, series []Patch) (Result, error) {
	var res Result
	prog, err := exec.LookPath("patch")
	if err != nil {
		return res, fmt.Errorf("apply patches: %w (install GNU patch)", err)
	}
	tmp, err := os.MkdirTemp("", "lvsforge-patches-")
	if err != nil {
		return res, fmt.Errorf("apply patches: %w", err)
	}
	defer os.RemoveAll(tmp)

	snap := &snapshot{root: dir, store: filepath.Join(tmp, "saved"), files: map[string]saved{}}
	// Restoring the tree must finish even when ctx was cancelled; it needs
	// no program, only the copies.
	rollback := snap.restore
	for i, p := range series {
		plain := filepath.Join(tmp, fmt.Sprintf("%03d.patch", i))
		if err := decompressTo(p.Path, plain); err != nil {
			return res, errors.Join(fmt.Errorf("apply patch %s: %w", p.Name, err), rollback())
		}
		out, err := runPatch(ctx, prog, dir, p.Strip, plain, "--dry-run")
		if err != nil {
			// Not applicable forwards: already applied if it reverses cleanly.
			if _, rerr := runPatch(ctx, prog, dir, p.Strip, plain, "--dry-run", "-R"); rerr == nil {
				res.AlreadyApplied = append(res.AlreadyApplied, p.Name)
				continue
			}
			if ctx.Err() != nil {
				return res, errors.Join(fmt.Errorf("apply patch %s: %w", p.Name, ctx.Err()), rollback())
			}
			pe := &Error{Patch: p.Name, Output: out}
			pe.File, pe.Hunk = firstFailure(out, p.Strip)
			pe.RollbackErr = rollback()
			res.Applied = nil
			return res, pe
		}
		// What patch said it would touch, and what the diff's headers
		// name: a file missing from one list is still saved.
		if err := snap.save(append(checkedFiles(out), headerFiles(plain, p.Strip)...)); err != nil {
			return res, errors.Join(fmt.Errorf("apply patch %s: %w", p.Name, err), rollback())
		}
		if out, err := runPatch(ctx, prog, dir, p.Strip, plain); err != nil {
			// The dry run passed, so this is unexpected (disk full, a race)
			// and the patch may be half applied; the snapshot undoes it.
			res.Applied = nil
			return res, errors.Join(fmt.Errorf("apply patch %s after a clean dry run: %w: %s", p.Name, err, out), rollback())
		}
		res.Applied = append(res.Applied, p.Name)
	}
	return res, nil
}

// snapshot holds the state, before the series changed anything, of every
// file a patch of the series touches: its bytes, mode, mtime or link
// target, or that it did not exist (with the directories that did not).
type snapshot struct {
	root, store string
	files       map[string]saved
	order       []string
	// absentDirs are directories that did not exist, deepest last.
	absentDirs []string
	seenDirs   map[string]bool
}

type saved struct {
	exists bool
	copy   string
	link   string
	mode   fs.FileMode
	mtime  time.Time
}

// save records the current state of each path not recorded yet. It runs
// before the patch that may change them, so the first record of a path is
// its state before the whole series.
func (s *snapshot) save(rels []string) error {
	if s.seenDirs == nil {
		s.seenDirs = map[string]bool{}
	}
	for _, rel := range rels {
		rel = filepath.Clean(rel)
		if _, ok := s.files[rel]; ok || !filepath.IsLocal(rel) {
			continue
		}
		p := filepath.Join(s.root, rel)
		st, err := os.Lstat(p)
		switch {
		case errors.Is(err, fs.ErrNotExist):
			s.files[rel] = saved{}
			var dirs []string
			for d := filepath.Dir(rel); d != "."; d = filepath.Dir(d) {
				if s.seenDirs[d] {
					break
				}
				s.seenDirs[d] = true
				if _, err := os.Lstat(filepath.Join(s.root, d)); err == nil {
					break
				}
				dirs = append(dirs, d)
			}
			for i := len(dirs) - 1; i >= 0; i-- {
				s.absentDirs = append(s.absentDirs, dirs[i])
			}
		case err != nil:
			return fmt.Errorf("save %s: %w", rel, err)
		case st.IsDir():
			continue // a header naming a directory: patch never rewrites one
		case st.Mode()&fs.ModeSymlink != 0:
			link, err := os.Readlink(p)
			if err != nil {
				return fmt.Errorf("save %s: %w", rel, err)
			}
			s.files[rel] = saved{exists: true, link: link}
		default:
			if err := os.MkdirAll(s.store, 0o700); err != nil {
				return fmt.Errorf("save %s: %w", rel, err)
			}
			cp := filepath.Join(s.store, fmt.Sprint(len(s.order)))
			if err := fsutil.CopyFile(p, cp, 0o600); err != nil {
				return fmt.Errorf("save %s: %w", rel, err)
			}
			s.files[rel] = saved{exists: true, copy: cp, mode: st.Mode().Perm(), mtime: st.ModTime()}
		}
		s.order = append(s.order, rel)
	}
	return nil
}

// restore puts every recorded path back and removes what the series created.
func (s *snapshot) restore() error {
	var errs []error
	for _, rel := range s.order {
		f := s.files[rel]
		p := filepath.Join(s.root, rel)
		switch {
		case !f.exists:
			if err := os.RemoveAll(p); err != nil {
				errs = append(errs, fmt.Errorf("remove %s: %w", rel, err))
			}
		case f.link != "":
			os.RemoveAll(p)
			if err := os.Symlink(f.link, p); err != nil {
				errs = append(errs, fmt.Errorf("restore %s: %w", rel, err))
			}
		default:
			if err := restoreFile(f, p); err != nil {
				errs = append(errs, fmt.Errorf("restore %s: %w", rel, err))
			}
		}
	}
	for i := len(s.absentDirs) - 1; i >= 0; i-- {
		// Only if empty: the directory was created by the series.
		os.Remove(filepath.Join(s.root, s.absentDirs[i]))
	}
	return errors.Join(errs...)
}

func restoreFile(f saved, p string) error {
	if err := os.MkdirAll(filepath.Dir(p), 0o755); err != nil {
		return err
	}
	tmp := p + ".lvsforge-restore"
	if err := fsutil.CopyFile(f.copy, tmp, f.mode); err != nil {
		return err
	}
	if err := os.Chmod(tmp, f.mode); err != nil {
		return err
	}
	if err := os.Chtimes(tmp, f.mtime, f.mtime); err != nil {
		return err
	}
	if st, err := os.Lstat(p); err == nil && st.IsDir() {
		os.RemoveAll(p)
	}
	return os.Rename(tmp, p)
}

var checkingRe = regexp.MustCompile(`^checking file (.+?)(?: \((?:renamed|copied) from (.+)\))?$`)

// checkedFiles lists the files a GNU patch dry run said it would touch
// ("checking file X", "checking file Y (renamed from X)").
func checkedFiles(out string) []string {
	var files []string
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		m := checkingRe.FindStringSubmatch(sc.Text())
		if m == nil {
			continue
		}
		for _, f := range m[1:] {
			if f != "" {
				files = append(files, unquote(f))
			}
		}
	}
	return files
}

// unquote drops the quotes GNU patch puts around names with odd characters.
func unquote(name string) string {
	if len(name) >= 2 && (name[0] == '\'' || name[0] == '"') && name[len(name)-1] == name[0] {
		return name[1 : len(name)-1]
	}
	return name
}

// headerFiles lists the files the diff's own headers name (---/+++ lines
// and git's rename/copy lines), with strip leading components removed.
func headerFiles(patch string, strip int) []string {
	f, err := os.Open(patch)
	if err != nil {
		return nil
	}
	defer f.Close()
	var files []string
	sc := bufio.NewScanner(f)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		for _, pre := range []string{"rename from ", "rename to ", "copy from ", "copy to "} {
			if rest, ok := strings.CutPrefix(line, pre); ok {
				files = append(files, rest) // git gives these without a/ b/
			}
		}
		if !strings.HasPrefix(line, "--- ") && !strings.HasPrefix(line, "+++ ") {
			continue
		}
		name, _, _ := strings.Cut(line[4:], "\t")
		name = strings.TrimSpace(name)
		if name == "/dev/null" || name == "" {
			continue
		}
		parts := strings.Split(name, "/")
		if strip >= len(parts) {
			continue
		}
		files = append(files, strings.Join(parts[strip:], "/"))
	}
	return files
}

// runPatch runs GNU patch non-interactively. --forward makes patch refuse,
// rather than silently reverse, a patch that looks applied (what --batch
// alone would do); no backup or reject files are left in the tree.
func runPatch(ctx context.Context, prog, dir string, strip int, file string, extra ...string) (string, error) {
	args := []string{"-d", dir, fmt.Sprintf("-p%d", strip), "--batch", "--forward",
		"--no-backup-if-mismatch", "--reject-file=-", "-i", file}
	args = append(args, extra...)
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Env = append(os.Environ(), "LC_ALL=C")
	out, err := cmd.CombinedOutput()
	return string(out), err
}

var (
	sha256Re = regexp.MustCompile(`^[0-9a-f]{64}$`)
	fileRe   = regexp.MustCompile(`^(?:checking|patching) file '?(.+?)'?$`)
	hunkRe   = regexp.MustCompile(`^Hunk #(\d+) FAILED`)
	noFile   = regexp.MustCompile(`^can't find file to patch`)
)

// firstFailure finds the first file and hunk GNU patch reported as failed.
// For a missing file, patch prints the diff header after the complaint, and
// the name there still carries the -p components, which are stripped here.
func firstFailure(out string, strip int) (file string, hunk int) {
	var cur string
	missing := false
	sc := bufio.NewScanner(strings.NewReader(out))
	for sc.Scan() {
		line := sc.Text()
		if missing {
			if f := strings.Fields(strings.TrimPrefix(line, "|")); len(f) >= 2 && (f[0] == "+++" || f[0] == "---") && f[1] != "/dev/null" {
				parts := strings.Split(f[1], "/")
				if strip < len(parts) {
					parts = parts[strip:]
				}
				file = strings.Join(parts, "/")
				if f[0] == "+++" {
					return file, 0
				}
			}
			continue
		}
		if m := fileRe.FindStringSubmatch(line); m != nil {
			cur = m[1]
			continue
		}
		if m := hunkRe.FindStringSubmatch(line); m != nil {
			fmt.Sscan(m[1], &hunk)
			return cur, hunk
		}
		if noFile.MatchString(line) {
			missing = true
		}
	}
	if missing {
		return file, 0
	}
	return cur, 0
}

// decompressTo writes the patch at src, decompressed if it is gz, xz or bz2, to dst.
func decompressTo(src, dst string) error {
	in, err := os.Open(src)
	if err != nil {
		return err
	}
	defer in.Close()
	br := bufio.NewReader(in)
	head, _ := br.Peek(6)
	var r io.Reader = br
	switch {
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		if r, err = xz.NewReader(br); err != nil {
			return fmt.Errorf("open xz patch: %w", err)
		}
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		if r, err = gzip.NewReader(br); err != nil {
			return fmt.Errorf("open gzip patch: %w", err)
		}
	case bytes.HasPrefix(head, []byte("BZh")):
		r = bzip2.NewReader(br)
	}
	out, err := os.Create(dst)
	if err != nil {
		return err
	}
	if _, err := io.Copy(out, r); err != nil {
		out.Close()
		return fmt.Errorf("decompress %s: %w", src, err)
	}
	return out.Close()
}
