package roles

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// ManifestName is the file at the top of a rendered tree that records every
// file's mode, hash (but a secret's) and units, for push and for humans.
const ManifestName = "MANIFEST.json"

// ManifestFormat marks a manifest lvsforge wrote. A file merely named
// MANIFEST.json proves nothing: WriteTree replaces a directory only when
// its manifest has this format and lists everything the directory holds.
const ManifestFormat = "lvsforge.dev/render-manifest/v1"

// Manifest describes a rendered tree.
type Manifest struct {
	Format  string         `json:"format"`
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
// existing out is replaced only if it is empty or an earlier lvsforge tree
// that nobody added to or changed since (see checkReplaceable). An out that
// is a symlink is rendered into: the directory it points to is what gets
// replaced, never the link.
func WriteTree(out, clusterName string, hosts []HostFiles) (err error) {
	out = filepath.Clean(out)
	if st, err := os.Lstat(out); err == nil && st.Mode()&fs.ModeSymlink != 0 {
		target, err := filepath.EvalSymlinks(out)
		if err != nil {
			return fmt.Errorf("check output directory: %s is a symlink that does not resolve: %w", out, err)
		}
		out = target
	}
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
	m := Manifest{Format: ManifestFormat, Cluster: clusterName}
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

// checkReplaceable is nil when out does not exist, is an empty directory,
// or is provably an earlier render: its manifest is lvsforge's and lists
// every file and directory in out, and every file it hashes is unchanged.
// Otherwise replacing out could delete what a user wrote, so it names the
// first thing that is not lvsforge's.
func checkReplaceable(out string) error {
	st, err := os.Lstat(out)
	if errors.Is(err, fs.ErrNotExist) {
		return nil
	}
	if err != nil {
		return fmt.Errorf("check output directory: %w", err)
	}
	if !st.IsDir() {
		return fmt.Errorf("check output directory: %s is not a directory: refusing to replace it", out)
	}
	entries, err := os.ReadDir(out)
	if err != nil {
		return fmt.Errorf("check output directory: %w", err)
	}
	if len(entries) == 0 {
		return nil
	}
	m, err := readManifest(out)
	if err != nil {
		return fmt.Errorf("check output directory: %s is not empty and holds no earlier lvsforge render (%v): refusing to replace it", out, err)
	}
	files := map[string]ManifestFile{}
	dirs := map[string]bool{}
	for _, h := range m.Hosts {
		for _, f := range h.Files {
			rel := filepath.Join(h.Name, filepath.FromSlash(f.Path))
			files[rel] = f
			for d := filepath.Dir(rel); d != "."; d = filepath.Dir(d) {
				dirs[d] = true
			}
		}
	}
	return filepath.WalkDir(out, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return fmt.Errorf("check output directory: %w", err)
		}
		rel, err := filepath.Rel(out, p)
		if err != nil {
			return fmt.Errorf("check output directory: %w", err)
		}
		if rel == "." || rel == ManifestName && d.Type().IsRegular() {
			return nil
		}
		f, isFile := files[rel]
		switch {
		case d.IsDir() && dirs[rel], isFile && d.Type().IsRegular() && unchanged(p, f):
			return nil
		case isFile && d.Type().IsRegular():
			return fmt.Errorf("check output directory: %s was changed since lvsforge rendered it: refusing to replace %s", p, out)
		}
		return fmt.Errorf("check output directory: %s is not part of the earlier render in %s: refusing to replace it", p, out)
	})
}

// readManifest reads out's manifest and refuses anything lvsforge would
// not have written: another format, unknown fields, a host or file path
// that is not one name or one clean absolute path.
func readManifest(out string) (*Manifest, error) {
	b, err := os.ReadFile(filepath.Join(out, ManifestName))
	if err != nil {
		return nil, err
	}
	dec := json.NewDecoder(bytes.NewReader(b))
	dec.DisallowUnknownFields()
	var m Manifest
	if err := dec.Decode(&m); err != nil {
		return nil, fmt.Errorf("%s is not lvsforge's manifest: %w", ManifestName, err)
	}
	if m.Format == "" && m.Cluster != "" && len(m.Hosts) > 0 {
		// Renders before the format field: not provably lvsforge's.
		return nil, fmt.Errorf("%s has no format: a render by an older lvsforge, or not lvsforge's at all; remove the directory yourself if it is one", ManifestName)
	}
	if m.Format != ManifestFormat {
		return nil, fmt.Errorf("%s is not lvsforge's manifest: format %q, want %q", ManifestName, m.Format, ManifestFormat)
	}
	for _, h := range m.Hosts {
		if h.Name == "" || h.Name == "." || h.Name == ".." || strings.ContainsAny(h.Name, "/\\") {
			return nil, fmt.Errorf("%s is not lvsforge's manifest: host %q", ManifestName, h.Name)
		}
		for _, f := range h.Files {
			if !strings.HasPrefix(f.Path, "/") || path.Clean(f.Path) != f.Path || f.Path == "/" {
				return nil, fmt.Errorf("%s is not lvsforge's manifest: file %q", ManifestName, f.Path)
			}
		}
	}
	return &m, nil
}

// unchanged: a secret has no hash in the manifest, so only its presence
// is checked.
func unchanged(p string, f ManifestFile) bool {
	if f.SHA256 == "" {
		return f.Secret
	}
	data, err := os.ReadFile(p)
	if err != nil {
		return false
	}
	sum := sha256.Sum256(data)
	return hex.EncodeToString(sum[:]) == f.SHA256
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
