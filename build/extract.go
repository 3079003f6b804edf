package build

import (
	"archive/tar"
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
	"path"
	"path/filepath"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/ulikunitz/xz"
)

// ErrUnsafePath reports an archive entry that would land outside the
// extraction directory (absolute path, "..", or a link pointing out).
var ErrUnsafePath = errors.New("unsafe path in archive")

// Compression formats recognised by their magic bytes.
const (
	FormatPlain = "plain"
	FormatXZ    = "xz"
	FormatGzip  = "gzip"
	FormatBzip2 = "bzip2"
)

// DetectFormat names the compression of the stream that starts with head.
// Content, not file names, decides: blobs in the cache are named by hash.
func DetectFormat(head []byte) string {
	switch {
	case bytes.HasPrefix(head, []byte{0xfd, '7', 'z', 'X', 'Z', 0}):
		return FormatXZ
	case bytes.HasPrefix(head, []byte{0x1f, 0x8b}):
		return FormatGzip
	case bytes.HasPrefix(head, []byte("BZh")):
		return FormatBzip2
	}
	return FormatPlain
}

// Decompress returns a reader over the decompressed contents of r, whatever
// its format. Close the returned reader to release an external decoder.
// With systemXZ, xz streams are piped through the system's xz when it is
// installed (measurably faster than the pure-Go decoder on kernel tarballs).
func Decompress(ctx context.Context, r io.Reader, systemXZ bool) (io.ReadCloser, error) {
	br := bufio.NewReaderSize(r, 1<<20)
	head, _ := br.Peek(6)
	switch DetectFormat(head) {
	case FormatXZ:
		if systemXZ {
			if xzPath, err := exec.LookPath("xz"); err == nil {
				return pipeThrough(ctx, unread(r, br), xzPath, "-dc")
			}
		}
		zr, err := xz.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("open xz stream: %w", err)
		}
		return io.NopCloser(zr), nil
	case FormatGzip:
		zr, err := gzip.NewReader(br)
		if err != nil {
			return nil, fmt.Errorf("open gzip stream: %w", err)
		}
		return zr, nil
	case FormatBzip2:
		return io.NopCloser(bzip2.NewReader(br)), nil
	}
	return io.NopCloser(br), nil
}

// unread returns what br has buffered of r followed by the rest of r: r
// itself, rewound, when r is a file (an external decoder then reads it
// directly, with no copy through this process), else br.
func unread(r io.Reader, br *bufio.Reader) io.Reader {
	f, ok := r.(*os.File)
	if !ok {
		return br
	}
	pos, err := f.Seek(0, io.SeekCurrent)
	if err != nil {
		return br
	}
	if _, err := f.Seek(pos-int64(br.Buffered()), io.SeekStart); err != nil {
		return br
	}
	return f
}

// cmdReader is an external decoder's stdout; Close reaps it and reports its failure.
type cmdReader struct {
	io.ReadCloser
	cmd    *exec.Cmd
	stderr *bytes.Buffer
}

func (c *cmdReader) Close() error {
	c.ReadCloser.Close()
	if err := c.cmd.Wait(); err != nil {
		return fmt.Errorf("run %s: %w: %s", c.cmd.Path, err, strings.TrimSpace(c.stderr.String()))
	}
	return nil
}

func pipeThrough(ctx context.Context, in io.Reader, prog string, args ...string) (io.ReadCloser, error) {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Stdin = in
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.StdoutPipe()
	if err != nil {
		return nil, fmt.Errorf("start %s: %w", prog, err)
	}
	if err := cmd.Start(); err != nil {
		return nil, fmt.Errorf("start %s: %w", prog, err)
	}
	return &cmdReader{ReadCloser: out, cmd: cmd, stderr: &stderr}, nil
}

// ExtractOptions tune Extract.
type ExtractOptions struct {
	// SystemXZ uses the system's xz for .xz archives when it is installed.
	SystemXZ bool
	// Progress, when set, is called about five times a second with how
	// much of the (compressed) archive has been read and its size, and
	// once at the end with the two equal.
	Progress func(read, size int64)
	// Header, when set, sees the header of every entry extracted.
	Header func(*tar.Header)
}

// progressEvery is how often Extract reports progress.
var progressEvery = 200 * time.Millisecond

// Extract unpacks the tar archive (plain, xz, gzip or bzip2) at archive into
// dest, which must not exist yet. It extracts into a temporary sibling and
// renames it into place, so dest either holds a whole tree or is absent.
// Refused with ErrUnsafePath: entries with absolute paths or that ".."
// takes out; symlinks that lead outside the tree, resolved as the kernel
// would through every other symlink of the archive whether or not their
// target exists; hard links to or through a symlink; entries whose path
// goes through a symlink (even "l/../x"), or that would replace one.
// Modification times are kept, and permission bits without setuid, setgid,
// sticky, and group and other write.
func Extract(ctx context.Context, archive, dest string, opt ExtractOptions) error {
	if _, err := os.Lstat(dest); err == nil {
		return fmt.Errorf("extract %s: destination %s exists", archive, dest)
	}
	f, err := os.Open(archive)
	if err != nil {
		return fmt.Errorf("extract archive: %w", err)
	}
	defer f.Close()
	if err := os.MkdirAll(filepath.Dir(dest), 0o755); err != nil {
		return fmt.Errorf("extract %s: %w", archive, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(dest), "."+filepath.Base(dest)+".extract-")
	if err != nil {
		return fmt.Errorf("extract %s: %w", archive, err)
	}
	ok := false
	defer func() {
		if !ok {
			os.RemoveAll(tmp)
		}
	}()
	rc, err := Decompress(ctx, f, opt.SystemXZ)
	if err != nil {
		return fmt.Errorf("extract %s: %w", archive, err)
	}
	// Started once Decompress has rewound what it peeked at for a system xz.
	stop := func() {}
	if opt.Progress != nil {
		st, err := f.Stat()
		if err != nil {
			rc.Close()
			return fmt.Errorf("extract %s: %w", archive, err)
		}
		ticker := time.NewTicker(progressEvery)
		defer ticker.Stop()
		stop = reportOffset(f, st.Size(), opt.Progress, ticker.C)
		defer stop()
	}
	// Buffered: tar reads each 512-byte header on its own.
	err = untar(ctx, bufio.NewReaderSize(rc, 1<<20), tmp, opt.Header)
	if cerr := rc.Close(); err == nil && cerr != nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("extract %s: %w", archive, err)
	}
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("extract %s: %w", archive, err)
	}
	if err := os.Rename(tmp, dest); err != nil {
		return fmt.Errorf("extract %s: %w", archive, err)
	}
	ok = true
	stop()
	if opt.Progress != nil {
		st, _ := f.Stat()
		opt.Progress(st.Size(), st.Size())
	}
	return nil
}

// reportOffset calls progress with the file offset of f at every tick
// until the returned stop is called (once or more). The offset is the
// descriptor's own, which a system xz reading the same descriptor advances
// too, so both decoders are measured without copying the archive through
// this process. Reports never go back and never pass size.
func reportOffset(f *os.File, size int64, progress func(read, size int64), ticks <-chan time.Time) (stop func()) {
	done := make(chan struct{})
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		var last int64
		for {
			select {
			case <-done:
				return
			case <-ticks:
				if pos, err := f.Seek(0, io.SeekCurrent); err == nil {
					last = max(last, min(pos, size))
					progress(last, size)
				}
			}
		}
	}()
	var once sync.Once
	return func() {
		once.Do(func() {
			close(done)
			<-finished
		})
	}
}

// inTree cleans an archive path and reports whether it stays inside the tree.
func inTree(name string) (string, bool) {
	if name == "" || filepath.IsAbs(name) || strings.HasPrefix(name, "/") {
		return "", false
	}
	c := filepath.Clean(name)
	if c == ".." || strings.HasPrefix(c, "../") {
		return "", false
	}
	return c, true
}

// maxLinkHops is how many symlinks one resolution may follow, as Linux's
// limit (40) before ELOOP.
const maxLinkHops = 40

// viaSymlink returns the first symlink of links that the archive path name
// (clean, once cleaned) passes through, its last component included when
// last is set. It reads the path as written: "l/../x" goes through l even
// though it cleans to "x", which is what the kernel would resolve.
func viaSymlink(name, clean string, links map[string]string, last bool) (string, bool) {
	if !strings.Contains(name, "..") {
		// Without "..", the prefixes of the clean path are the directories
		// the name walks through; slicing them allocates nothing, which
		// matters over a kernel's 80,000 entries.
		for i := 0; i < len(clean); i++ {
			if clean[i] == '/' {
				if _, ok := links[clean[:i]]; ok {
					return clean[:i], true
				}
			}
		}
		if _, ok := links[clean]; ok && last {
			return clean, true
		}
		return "", false
	}
	comps := strings.Split(strings.TrimRight(name, "/"), "/")
	if !last {
		comps = comps[:len(comps)-1]
	}
	cur := ""
	for _, c := range comps {
		cur = path.Join(cur, c)
		if _, ok := links[cur]; ok {
			return cur, true
		}
	}
	return "", false
}

// linkEscapes resolves the symlink at link (a clean path in the tree) as the
// kernel would, through the other symlinks in links, and says why it is
// unsafe: it leaves the tree, or loops; "" when it stays inside. A
// component that is not a symlink counts as a directory whether or not it
// exists: a link that only dangles today leads outside as soon as a patch
// or a build creates its target.
func linkEscapes(links map[string]string, link string) string {
	var dir []string
	if d := path.Dir(link); d != "." {
		dir = strings.Split(d, "/")
	}
	// todo is the rest of the path to resolve, its next component last.
	var todo []string
	push := func(target string) {
		comps := strings.Split(target, "/")
		for i := len(comps) - 1; i >= 0; i-- {
			todo = append(todo, comps[i])
		}
	}
	push(links[link])
	for hops := 1; len(todo) > 0; {
		c := todo[len(todo)-1]
		todo = todo[:len(todo)-1]
		switch c {
		case "", ".":
		case "..":
			if len(dir) == 0 {
				return "leads outside the tree"
			}
			dir = dir[:len(dir)-1]
		default:
			next := append(dir, c)
			target, ok := links[strings.Join(next, "/")]
			if !ok {
				dir = next
				continue
			}
			if path.IsAbs(target) {
				return "leads outside the tree"
			}
			if hops++; hops > maxLinkHops {
				return fmt.Sprintf("goes through more than %d symlinks (a loop)", maxLinkHops)
			}
			// Resolved from the directory holding that symlink: dir.
			push(target)
		}
	}
	return ""
}

// noSharedWrite is what Extract takes away from every mode in an archive:
// an extracted tree is written by lvsforge alone, whatever the archive
// says, so that no other user can change a source before it is built.
const noSharedWrite = 0o022

func untar(ctx context.Context, r io.Reader, root string, seen func(*tar.Header)) error {
	tr := tar.NewReader(r)
	// links maps every symlink made so far to its target, and order lists
	// them as the archive did: nothing may be created beneath one, so no
	// write ever follows a link, and once the whole tree is known each one
	// is resolved through all the others.
	links := map[string]string{}
	var order []string
	type dirTime struct {
		rel, path string
		hdr       *tar.Header
	}
	var dirs []dirTime
	// made holds the directories known to exist, so that a tree of 80,000
	// files costs one mkdir per directory, not a stat per file. A
	// directory an entry later replaces by a symlink is caught by the
	// symlink check before anything is made beneath it.
	made := map[string]bool{root: true}
	mkdirs := func(dir string) error {
		if made[dir] {
			return nil
		}
		if err := os.MkdirAll(dir, 0o755); err != nil {
			return err
		}
		for d := dir; !made[d]; d = filepath.Dir(d) {
			made[d] = true
		}
		return nil
	}
	buf := make([]byte, 1<<20)
	for n := 0; ; n++ {
		if n%1024 == 0 && ctx.Err() != nil {
			return ctx.Err()
		}
		hdr, err := tr.Next()
		if err == io.EOF {
			break
		}
		if err != nil {
			return fmt.Errorf("read tar: %w", err)
		}
		rel, ok := inTree(hdr.Name)
		if !ok {
			return fmt.Errorf("%w: %q is outside the tree", ErrUnsafePath, hdr.Name)
		}
		if seen != nil {
			seen(hdr)
		}
		if rel == "." {
			continue
		}
		if len(links) > 0 {
			if l, ok := viaSymlink(hdr.Name, rel, links, false); ok {
				return fmt.Errorf("%w: %q goes through symlink %q", ErrUnsafePath, hdr.Name, l)
			}
			if _, ok := links[rel]; ok && hdr.Typeflag != tar.TypeSymlink {
				return fmt.Errorf("%w: %q would replace symlink %q", ErrUnsafePath, hdr.Name, rel)
			}
		}
		target := filepath.Join(root, rel)
		mode := os.FileMode(hdr.Mode) & os.ModePerm &^ noSharedWrite
		switch hdr.Typeflag {
		case tar.TypeDir:
			if err := mkdirs(target); err != nil {
				return err
			}
			dirs = append(dirs, dirTime{rel, target, hdr})
		case tar.TypeReg, tar.TypeRegA, tar.TypeGNUSparse:
			if err := mkdirs(filepath.Dir(target)); err != nil {
				return err
			}
			if err := writeFile(target, tr, buf, mode, hdr.ModTime); err != nil {
				return fmt.Errorf("write %s: %w", rel, err)
			}
		case tar.TypeSymlink:
			// Where it leads is decided once every symlink is known.
			if filepath.IsAbs(hdr.Linkname) {
				return fmt.Errorf("%w: symlink %q -> absolute %q", ErrUnsafePath, hdr.Name, hdr.Linkname)
			}
			if err := mkdirs(filepath.Dir(target)); err != nil {
				return err
			}
			os.Remove(target)
			if err := os.Symlink(hdr.Linkname, target); err != nil {
				return err
			}
			if _, ok := links[rel]; !ok {
				order = append(order, rel)
			}
			links[rel] = hdr.Linkname
		case tar.TypeLink:
			lrel, ok := inTree(hdr.Linkname)
			if !ok {
				return fmt.Errorf("%w: hardlink %q -> %q leaves the tree", ErrUnsafePath, hdr.Name, hdr.Linkname)
			}
			// The link is made to the cleaned path, which no symlink
			// redirects; a target written through one, or that is one
			// (a second name for a symlink resolves from elsewhere), is
			// refused all the same.
			if l, ok := viaSymlink(hdr.Linkname, lrel, links, true); ok && l == lrel {
				return fmt.Errorf("%w: hardlink %q -> %q is a symlink", ErrUnsafePath, hdr.Name, hdr.Linkname)
			} else if ok {
				return fmt.Errorf("%w: hardlink %q -> %q goes through symlink %q", ErrUnsafePath, hdr.Name, hdr.Linkname, l)
			}
			if err := mkdirs(filepath.Dir(target)); err != nil {
				return err
			}
			os.Remove(target)
			if err := os.Link(filepath.Join(root, lrel), target); err != nil {
				return err
			}
		case tar.TypeXGlobalHeader, tar.TypeXHeader:
			// Metadata only (git's commit id in kernel tarballs).
		default:
			// Devices and FIFOs have no place in a source tree.
			return fmt.Errorf("%w: %q has unsupported type %q", ErrUnsafePath, hdr.Name, string(hdr.Typeflag))
		}
	}
	for _, l := range order {
		if why := linkEscapes(links, l); why != "" {
			return fmt.Errorf("%w: symlink %q -> %q %s", ErrUnsafePath, l, links[l], why)
		}
	}
	// Directory modes and times last: writing files inside changes both.
	for i := len(dirs) - 1; i >= 0; i-- {
		d := dirs[i]
		if _, ok := links[d.rel]; ok {
			continue // replaced by a symlink: Chmod would follow it
		}
		os.Chmod(d.path, os.FileMode(d.hdr.Mode)&os.ModePerm&^noSharedWrite|0o700)
		os.Chtimes(d.path, d.hdr.ModTime, d.hdr.ModTime)
	}
	return nil
}

// writeFile writes one regular file of an archive with its exact mode
// (not masked by the umask) and modification time, on the open descriptor.
func writeFile(target string, r io.Reader, buf []byte, mode os.FileMode, mtime time.Time) error {
	// O_NOFOLLOW: an earlier entry of the same name that is a symlink must
	// not redirect this write.
	out, err := os.OpenFile(target, os.O_WRONLY|os.O_CREATE|os.O_TRUNC|syscall.O_NOFOLLOW, mode)
	if err != nil {
		return err
	}
	// Only the Writer: *os.File's ReadFrom would allocate a buffer of its
	// own for every file instead of using buf.
	_, err = io.CopyBuffer(struct{ io.Writer }{out}, r, buf)
	if err == nil {
		err = out.Chmod(mode)
	}
	if err == nil {
		tv := syscall.NsecToTimeval(mtime.UnixNano())
		err = syscall.Futimes(int(out.Fd()), []syscall.Timeval{tv, tv})
	}
	if cerr := out.Close(); err == nil {
		err = cerr
	}
	return err
}

// SingleTopDir returns the only directory at the top of an extracted tree
// (linux-6.1.192/ in a kernel tarball), or dir itself when there are several entries.
func SingleTopDir(dir string) string {
	ents, err := os.ReadDir(dir)
	if err != nil || len(ents) != 1 || !ents[0].IsDir() {
		return dir
	}
	return filepath.Join(dir, ents[0].Name())
}
