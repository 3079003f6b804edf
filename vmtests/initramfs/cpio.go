// Package initramfs builds the small initramfs images the VM tests boot: a
// newc cpio writer (the only format the kernel unpacks), kernel-module
// dependency resolution from the host's modules.dep, and a busybox guest
// whose init brings up the network from the kernel command line and leaves a
// shell on the serial console. Written in Go rather than with cpio(1) so the
// archive is byte-for-byte reproducible (fixed inode numbers, zero mtimes)
// and can be cached by content hash.
package initramfs

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path"
	"sort"
	"strings"
)

// File type bits of the cpio mode field (the same as st_mode).
const (
	modeDir     = 0o040000
	modeRegular = 0o100000
	modeSymlink = 0o120000
	modeChar    = 0o020000
)

type entry struct {
	name         string // without leading slash
	mode         uint32 // type and permission bits
	data         []byte // file contents or symlink target
	major, minor uint32 // device numbers of a node
}

// Archive is an in-memory initramfs. Paths are absolute guest paths; missing
// parent directories are added with mode 0755. Adding a path twice replaces
// the earlier entry, so a caller can override a default file.
type Archive struct {
	entries map[string]entry
}

// NewArchive returns an empty archive.
func NewArchive() *Archive { return &Archive{entries: map[string]entry{}} }

func clean(p string) (string, error) {
	c := strings.TrimPrefix(path.Clean("/"+p), "/")
	if c == "" || c == "." {
		return "", fmt.Errorf("add %q: not a file path", p)
	}
	return c, nil
}

func (a *Archive) add(e entry) error {
	name, err := clean(e.name)
	if err != nil {
		return err
	}
	e.name = name
	for dir := path.Dir(name); dir != "."; dir = path.Dir(dir) {
		if old, ok := a.entries[dir]; ok {
			if old.mode&0o170000 != modeDir {
				return fmt.Errorf("add %s: parent %s is not a directory", name, dir)
			}
			continue
		}
		a.entries[dir] = entry{name: dir, mode: modeDir | 0o755}
	}
	a.entries[name] = e
	return nil
}

// Dir adds a directory.
func (a *Archive) Dir(p string, perm fs.FileMode) error {
	return a.add(entry{name: p, mode: modeDir | uint32(perm.Perm())})
}

// File adds a regular file with the given contents.
func (a *Archive) File(p string, data []byte, perm fs.FileMode) error {
	return a.add(entry{name: p, mode: modeRegular | uint32(perm.Perm()), data: data})
}

// CopyFile adds the host file at hostPath as p, keeping its permission bits.
func (a *Archive) CopyFile(p, hostPath string) error {
	st, err := os.Stat(hostPath)
	if err != nil {
		return fmt.Errorf("add %s: %w", p, err)
	}
	data, err := os.ReadFile(hostPath)
	if err != nil {
		return fmt.Errorf("add %s: %w", p, err)
	}
	return a.File(p, data, st.Mode())
}

// Symlink adds a symbolic link p pointing at target.
func (a *Archive) Symlink(p, target string) error {
	return a.add(entry{name: p, mode: modeSymlink | 0o777, data: []byte(target)})
}

// CharDev adds a character device node; the kernel creates it while
// unpacking, which is how /dev/console exists before devtmpfs is mounted.
func (a *Archive) CharDev(p string, perm fs.FileMode, major, minor uint32) error {
	return a.add(entry{name: p, mode: modeChar | uint32(perm.Perm()), major: major, minor: minor})
}

// WriteTo writes the archive in newc format. Entries are sorted by path, so
// directories precede their contents and equal archives give equal bytes.
func (a *Archive) WriteTo(w io.Writer) (int64, error) {
	names := make([]string, 0, len(a.entries))
	for n := range a.entries {
		names = append(names, n)
	}
	sort.Strings(names)
	cw := &countWriter{w: w}
	for i, n := range names {
		e := a.entries[n]
		writeEntry(cw, uint32(i+1), e)
	}
	writeEntry(cw, 0, entry{name: "TRAILER!!!"})
	if cw.err != nil {
		return cw.n, fmt.Errorf("write initramfs: %w", cw.err)
	}
	return cw.n, nil
}

// Bytes returns the archive as newc cpio bytes.
func (a *Archive) Bytes() []byte {
	var b bytes.Buffer
	a.WriteTo(&b) // a bytes.Buffer does not fail
	return b.Bytes()
}

// Hash returns the hex SHA-256 of the archive bytes: a cache key that changes
// whenever any file, mode or name changes.
func (a *Archive) Hash() string {
	sum := sha256.Sum256(a.Bytes())
	return hex.EncodeToString(sum[:])
}

func writeEntry(w *countWriter, ino uint32, e entry) {
	nlink := uint32(1)
	if e.mode&0o170000 == modeDir {
		nlink = 2
	}
	// newc header: magic then 13 eight-digit hex fields; namesize counts the
	// NUL; name and data are each padded to a multiple of 4 bytes.
	fmt.Fprintf(w, "070701%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x%08x",
		ino, e.mode, 0, 0, nlink, 0, len(e.data), 0, 0, e.major, e.minor, len(e.name)+1, 0)
	w.Write([]byte(e.name))
	w.Write([]byte{0})
	w.pad()
	w.Write(e.data)
	w.pad()
}

type countWriter struct {
	w   io.Writer
	n   int64
	err error
}

func (c *countWriter) Write(p []byte) (int, error) {
	if c.err != nil {
		return 0, c.err
	}
	n, err := c.w.Write(p)
	c.n += int64(n)
	c.err = err
	return n, err
}

func (c *countWriter) pad() {
	if r := c.n % 4; r != 0 {
		c.Write(make([]byte, 4-r))
	}
}
