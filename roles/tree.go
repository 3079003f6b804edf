package roles

import (
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"
	"strings"
)

// ManifestName is the file at the top of a rendered tree that records every
// file's mode, hash (but a secret's) and units, for push and for humans; its presence also
// marks a directory as lvsforge's to replace.
const ManifestName = "MANIFEST.json"

// Manifest describes a rendered tree.
type Manifest struct {
	Cluster string         `json:"cluster"`
	Hosts   []ManifestHost `json:"hosts"`
}

// ManifestHost is one host of a Manifest.
type ManifestHost struct {
	Name  string         `json:"name"`
	Role  string         `json:"role"`
	Files []ManifestFile `json:"files"`
}

// ManifestFile is one file of a ManifestHost.
type ManifestFile struct {
	Path string `json:"path"`
	Mode string `json:"mode"`
	// SHA256 is empty for a secret: a hash of a short secret is a way to check guesses of it.
	SHA256 string   `json:"sha256,omitempty"`
	Secret bool     `json:"secret,omitempty"`
	Units  []string `json:"units,omitempty"`
}

// WriteTree writes out/<host>/<path> for every file, plus the manifest. It
// renders into a temporary directory beside out and renames it into place
// only when everything was written, so a failure leaves out as it was. An
// existing out is replaced only if it is empty or an earlier lvsforge tree.
func WriteTree(out, clusterName string, hosts []HostFiles) (err error) {
	out = filepath.Clean(out)
	if err := checkReplaceable(out); err != nil {
		return err
	}
	parent := filepath.Dir(out)
	if err := os.MkdirAll(parent, 0o755); err != nil {
		return fmt.Errorf("create output parent: %w", err)
	}
	tmp, err := os.MkdirTemp(parent, "."+filepath.Base(out)+".tmp-")
	if err != nil {
		return fmt.Errorf("create temporary output: %w", err)
	}
	defer func() {
		if err != nil {
			os.RemoveAll(tmp)
		}
	}()
	if err := os.Chmod(tmp, 0o755); err != nil {
		return fmt.Errorf("create temporary output: %w", err)
	}
	m := Manifest{Cluster: clusterName}
	for _, hf := range hosts {
		mh := ManifestHost{Name: hf.Host.Name, Role: hf.Host.Role}
		for _, f := range hf.Files {
			dst := filepath.Join(tmp, hf.Host.Name, filepath.FromSlash(strings.TrimPrefix(f.Path, "/")))
			if err := os.MkdirAll(filepath.Dir(dst), 0o755); err != nil {
				return fmt.Errorf("write %s: %w", dst, err)
			}
			// Create with the final mode so a secret is never readable, even briefly.
			if err := os.WriteFile(dst, f.Data, f.Mode.Perm()); err != nil {
				return fmt.Errorf("write %s: %w", dst, err)
			}
			if err := os.Chmod(dst, f.Mode.Perm()); err != nil { // WriteFile's mode is cut by the umask
				return fmt.Errorf("write %s: %w", dst, err)
			}
			mf := ManifestFile{Path: f.Path, Mode: fmt.Sprintf("%04o", f.Mode.Perm()), Secret: f.Secret, Units: f.Units}
			if !f.Secret {
				sum := sha256.Sum256(f.Data)
				mf.SHA256 = hex.EncodeToString(sum[:])
			}
			mh.Files = append(mh.Files, mf)
		}
		m.Hosts = append(m.Hosts, mh)
	}
	b, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("encode manifest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(tmp, ManifestName), append(b, '\n'), 0o644); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	return swapInto(tmp, out)
}

func checkReplaceable(out string) error {
	entries, err := os.ReadDir(out)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check output directory: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	if _, err := os.Stat(filepath.Join(out, ManifestName)); err != nil {
		return fmt.Errorf("check output directory: %s is not empty and holds no earlier lvsforge render (%s): refusing to replace it", out, ManifestName)
	}
	return nil
}

// swapInto moves the finished tree to out, setting any earlier render aside
// first and removing it only once the new one is in place.
func swapInto(tmp, out string) error {
	old := ""
	if _, err := os.Stat(out); err == nil {
		old = tmp + ".old"
		if err := os.Rename(out, old); err != nil {
			return fmt.Errorf("set aside previous output: %w", err)
		}
	}
	if err := os.Rename(tmp, out); err != nil {
		if old != "" {
			os.Rename(old, out)
		}
		return fmt.Errorf("move output into place: %w", err)
	}
	if old != "" {
		os.RemoveAll(old)
	}
	return nil
}
