package vmtests

import (
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// cacheFile stores data under cacheDir/kind named by its hash and returns
// the path; an existing file is reused.
func cacheFile(cacheDir, kind string, data []byte, ext string) (string, error) {
	dir := filepath.Join(cacheDir, kind)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return "", fmt.Errorf("create cache dir: %w", err)
	}
	sum := sha256.Sum256(data)
	path := filepath.Join(dir, hex.EncodeToString(sum[:])+ext)
	if _, err := os.Stat(path); err == nil {
		return path, nil
	}
	// Write to a temporary name and rename, so a concurrent test never sees
	// half a file under the final name.
	tmp, err := os.CreateTemp(dir, ".tmp-*")
	if err != nil {
		return "", fmt.Errorf("cache %s: %w", kind, err)
	}
	if _, err := tmp.Write(data); err != nil {
		tmp.Close()
		os.Remove(tmp.Name())
		return "", fmt.Errorf("cache %s: %w", kind, err)
	}
	if err := tmp.Close(); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("cache %s: %w", kind, err)
	}
	if err := os.Rename(tmp.Name(), path); err != nil {
		os.Remove(tmp.Name())
		return "", fmt.Errorf("cache %s: %w", kind, err)
	}
	return path, nil
}
