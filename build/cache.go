package build

import (
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"regexp"
	"strings"

	"github.com/lvsforge/lvsforge/internal/fsutil"
)

// ErrChecksum reports content whose sha256 is not the pinned one.
var ErrChecksum = errors.New("sha256 mismatch")

var sha256Re = regexp.MustCompile(`^[0-9a-f]{64}$`)

// Cache is lvsforge's on-disk store. Verified inputs live under blobs/,
// addressed by their sha256, so a name can never point at other bytes than
// the ones that were checked; downloads in progress live under downloads/ as
// *.part files and are only renamed into blobs/ after verification.
type Cache struct {
	Dir string
}

// DefaultCacheDir is $XDG_CACHE_HOME/lvsforge, or ~/.cache/lvsforge.
func DefaultCacheDir() (string, error) {
	if d := os.Getenv("XDG_CACHE_HOME"); d != "" {
		return filepath.Join(d, "lvsforge"), nil
	}
	home, err := os.UserHomeDir()
	if err != nil {
		return "", fmt.Errorf("find home directory: %w", err)
	}
	return filepath.Join(home, ".cache", "lvsforge"), nil
}

// NewCache opens (creating if needed) the cache rooted at dir.
func NewCache(dir string) (*Cache, error) {
	for _, sub := range []string{"blobs/sha256", "downloads", "artifacts", "work", "tmp"} {
		if err := os.MkdirAll(filepath.Join(dir, sub), 0o755); err != nil {
			return nil, fmt.Errorf("create cache: %w", err)
		}
	}
	return &Cache{Dir: dir}, nil
}

// BlobPath is where the blob with the given sha256 lives (whether or not it is there).
func (c *Cache) BlobPath(sum string) string {
	return filepath.Join(c.Dir, "blobs", "sha256", strings.ToLower(sum))
}

// Has reports whether a verified blob with this sha256 is in the cache.
func (c *Cache) Has(sum string) bool {
	_, err := os.Stat(c.BlobPath(sum))
	return err == nil
}

// ValidSHA256 reports whether s is 64 lower- or upper-case hex digits.
func ValidSHA256(s string) bool { return sha256Re.MatchString(strings.ToLower(s)) }

// FileSHA256 hashes a file.
func FileSHA256(path string) (string, error) {
	sum, err := fsutil.FileSHA256(path)
	if err != nil {
		return "", fmt.Errorf("hash file: %w", err)
	}
	return sum, nil
}

// commit hashes the file at tmp and, only if it matches want, renames it into
// the blob store. On a mismatch the file is removed so that neither the blob
// store nor a later resume ever sees those bytes again.
func (c *Cache) commit(tmp, want string) (string, error) {
	want = strings.ToLower(want)
	got, err := FileSHA256(tmp)
	if err != nil {
		return "", err
	}
	if got != want {
		os.Remove(tmp)
		// No file name: tmp is the cache's, the caller names the origin.
		return "", fmt.Errorf("%w: got %s, want %s", ErrChecksum, got, want)
	}
	if err := os.Chmod(tmp, 0o444); err != nil {
		return "", fmt.Errorf("commit blob: %w", err)
	}
	dst := c.BlobPath(want)
	if err := os.Rename(tmp, dst); err != nil {
		return "", fmt.Errorf("commit blob: %w", err)
	}
	return dst, nil
}

// writeFile puts data at path (inside the cache) atomically: a reader sees
// the old file or the whole new one.
func (c *Cache) writeFile(path string, data []byte) error {
	if err := os.MkdirAll(filepath.Dir(path), 0o755); err != nil {
		return err
	}
	return fsutil.WriteFileAtomic(path, data, 0o644)
}

// Import copies a local file into the cache if, and only if, its sha256 is
// the pinned one: a local tarball is trusted for what it hashes to, not for
// where it sits. A file larger than its kind's cap (MaxSize) is refused,
// one that grows past it while read too.
func (c *Cache) Import(path, sum string, kind Kind) (string, error) {
	if !ValidSHA256(sum) {
		return "", fmt.Errorf("import %s: a pinned sha256 is required for local files, got %q", path, sum)
	}
	if c.Has(sum) {
		return c.BlobPath(sum), nil
	}
	src, err := os.Open(path)
	if err != nil {
		return "", fmt.Errorf("import local file: %w", err)
	}
	defer src.Close()
	max := kind.MaxSize()
	if st, err := src.Stat(); err != nil {
		return "", fmt.Errorf("import %s: %w", path, err)
	} else if st.Size() > max {
		return "", fmt.Errorf("import %s: %w: %d bytes, more than %s", path, ErrTooLarge, st.Size(), capString(kind))
	}
	tmp, err := os.CreateTemp(filepath.Join(c.Dir, "tmp"), "import-*")
	if err != nil {
		return "", fmt.Errorf("import %s: %w", path, err)
	}
	defer os.Remove(tmp.Name())
	n, err := io.Copy(tmp, io.LimitReader(src, max+1))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", fmt.Errorf("import %s: %w", path, err)
	}
	if n > max {
		return "", fmt.Errorf("import %s: %w: more than %s", path, ErrTooLarge, capString(kind))
	}
	p, err := c.commit(tmp.Name(), sum)
	if err != nil {
		return "", fmt.Errorf("import %s: %w", path, err)
	}
	return p, nil
}
