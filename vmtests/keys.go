package vmtests

import (
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"golang.org/x/crypto/ssh"
)

// harnessKey returns the SSH key the harness logs in to its VMs with,
// kept in the cache (vmtest/id_ed25519, created once), so that a boot disk
// built with root's authorized key can be cached too, and `lvsforge vm ssh`
// finds it.
func harnessKey(cacheDir string) (ssh.Signer, string, error) {
	// Absolute: the path becomes the hosts' ssh.key, which push resolves
	// against the spec's directory when it is relative.
	cacheDir, err := filepath.Abs(cacheDir)
	if err != nil {
		return nil, "", fmt.Errorf("read harness key: %w", err)
	}
	dir := filepath.Join(cacheDir, "vmtest")
	path := filepath.Join(dir, "id_ed25519")
	if data, err := os.ReadFile(path); err == nil {
		signer, err := ssh.ParsePrivateKey(data)
		if err != nil {
			return nil, "", fmt.Errorf("read harness key %s: %w", path, err)
		}
		return signer, path, nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return nil, "", fmt.Errorf("read harness key: %w", err)
	}
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, "", fmt.Errorf("create harness key: %w", err)
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return nil, "", fmt.Errorf("generate harness key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "lvsforge vmtest")
	if err != nil {
		return nil, "", fmt.Errorf("generate harness key: %w", err)
	}
	tmp, err := os.CreateTemp(dir, ".key-*")
	if err != nil {
		return nil, "", fmt.Errorf("create harness key: %w", err)
	}
	defer os.Remove(tmp.Name())
	_, err = tmp.Write(pem.EncodeToMemory(block))
	if cerr := tmp.Close(); err == nil {
		err = cerr
	}
	// Link, not rename: of two runs racing, the first key wins for both.
	if err == nil {
		if err = os.Link(tmp.Name(), path); errors.Is(err, fs.ErrExist) {
			err = nil
		}
	}
	if err != nil {
		return nil, "", fmt.Errorf("write harness key: %w", err)
	}
	return harnessKey(cacheDir)
}
