// Package patches owns kernel patch series: it resolves the named patch sets
// of a cluster spec into an ordered list of pinned entries, and applies a
// fetched series to a source tree with GNU patch, all or nothing: every patch
// is checked with --dry-run first, a patch that is already in the tree is
// recognised and skipped, and when one fails the patches applied before it
// are reversed so the tree is back where it started.
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
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/ulikunitz/xz"
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

// Resolve returns, in order, the patches of the named sets. Relative files
// are taken relative to dir (the spec's directory). Every entry must pin a
// sha256: a patch is code that goes into a kernel.
func Resolve(sets []cluster.PatchSet, names []string, dir string) ([]Entry, error) {
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
			e.Name = s.Name + "/" + filepath.Base(base)
			out = append(out, e)
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

	type done struct {
		p     Patch
		plain string
	}
	var applied []done
	rollback := func() error {
		// Restoring the tree must finish even when ctx was cancelled.
		rctx := context.WithoutCancel(ctx)
		var errs []error
		for i := len(applied) - 1; i >= 0; i-- {
			d := applied[i]
			if out, err := runPatch(rctx, prog, dir, d.p.Strip, d.plain, "-R"); err != nil {
				errs = append(errs, fmt.Errorf("reverse %s: %w: %s", d.p.Name, err, out))
			}
		}
		return errors.Join(errs...)
	}
	for i, p := range series {
		plain := filepath.Join(tmp, fmt.Sprintf("%03d.patch", i))
		if err := decompressTo(p.Path, plain); err != nil {
			rerr := rollback()
			return res, errors.Join(fmt.Errorf("apply patch %s: %w", p.Name, err), rerr)
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
		if out, err := runPatch(ctx, prog, dir, p.Strip, plain); err != nil {
			// The dry run passed, so this is unexpected (disk full, a race);
			// the partial patch cannot be reversed reliably by patch itself.
			return res, errors.Join(fmt.Errorf("apply patch %s after a clean dry run: %w: %s", p.Name, err, out), rollback())
		}
		applied = append(applied, done{p, plain})
		res.Applied = append(res.Applied, p.Name)
	}
	return res, nil
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
