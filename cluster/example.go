package cluster

import (
	"bytes"
	"crypto/rand"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strings"
	"text/template"

	"github.com/lvsforge/lvsforge/internal/fsutil"
)

//go:embed example.yaml
var exampleText string

var exampleTmpl = template.Must(template.New("example.yaml").Parse(exampleText))

// PinnedKernelOrgVersion is the kernel.org LTS release the example builds
// when no distro kernel tarball is installed: the 6.1 series Debian 12 ships.
const PinnedKernelOrgVersion = "6.1.192"

// ExampleSource is the kernel source written into the example spec.
type ExampleSource struct {
	KernelVersion string
	// SourceLines are the YAML lines under kernel.source.
	SourceLines []string
}

// KernelOrgSource is the example's source when no distro tarball is installed.
func KernelOrgSource() ExampleSource {
	return ExampleSource{
		KernelVersion: PinnedKernelOrgVersion,
		SourceLines: []string{
			"type: kernel.org          # verified through kernel.org's signed sha256sums.asc",
			"mirrors: [https://cdn.kernel.org/pub/linux/kernel]",
		},
	}
}

// DistroSource pins a distro linux-source tarball by its sha256.
func DistroSource(version, path, sha string) ExampleSource {
	return ExampleSource{
		KernelVersion: version,
		SourceLines: []string{
			"type: distro              # the distro's linux-source tarball, trusted by its pinned sha256",
			"path: " + path,
			"sha256: " + sha,
		},
	}
}

var reDistroTarball = regexp.MustCompile(`^linux-source-([0-9]+\.[0-9]+)\.tar\.xz$`)

// DetectSource points at an installed distro kernel tarball
// (/usr/src/linux-source-X.Y.tar.xz, Debian's linux-source-X.Y package),
// hashing it to pin it, and falls back to the pinned kernel.org release.
func DetectSource(srcDir string) (ExampleSource, error) {
	matches, _ := filepath.Glob(filepath.Join(srcDir, "linux-source-*.tar.xz"))
	for i := len(matches) - 1; i >= 0; i-- {
		m := reDistroTarball.FindStringSubmatch(filepath.Base(matches[i]))
		if m == nil {
			continue
		}
		sum, err := fsutil.FileSHA256(matches[i])
		if err != nil {
			return ExampleSource{}, fmt.Errorf("hash kernel tarball: %w", err)
		}
		return DistroSource(distroVersion(m[1]), matches[i], sum), nil
	}
	return KernelOrgSource(), nil
}

// distroVersion asks dpkg which upstream release the linux-source-X.Y
// package holds (6.1.192-2 -> 6.1.192); without dpkg it is X.Y.
func distroVersion(series string) string {
	out, err := exec.Command("dpkg-query", "-W", "-f=${Version}", "linux-source-"+series).Output()
	if err == nil {
		v := strings.SplitN(strings.TrimSpace(string(out)), "-", 2)[0]
		if reVersion.MatchString(v) {
			return v
		}
	}
	return series
}

// ExampleYAML is the seed's cluster as a commented spec.
func ExampleYAML(src ExampleSource) []byte {
	var b bytes.Buffer
	if err := exampleTmpl.Execute(&b, src); err != nil {
		panic("cluster: example template: " + err.Error())
	}
	return b.Bytes()
}

// ExampleFile is the name the built-in example is reported under.
const ExampleFile = "<built-in example>"

// Example parses the built-in example with the given source. Its authkey
// file lives in dir, which must hold one (see EnsureAuthkey).
func Example(src ExampleSource, dir string) (*Spec, error) {
	return Parse(ExampleYAML(src), ExampleFile, dir)
}

// ExampleDir is where the built-in example keeps its generated authkey:
// $XDG_CONFIG_HOME/lvsforge/example.
func ExampleDir() (string, error) {
	d, err := os.UserConfigDir()
	if err != nil {
		return "", fmt.Errorf("find config directory: %w", err)
	}
	return filepath.Join(d, "lvsforge", "example"), nil
}

// EnsureAuthkey creates a random heartbeat secret at path (mode 0600) unless
// a file is already there. It is written to a temp file and linked into
// place, so a crash never leaves an empty or partial key.
func EnsureAuthkey(path string) error {
	if _, err := os.Stat(path); err == nil {
		return nil
	} else if !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("check authkey: %w", err)
	}
	if err := os.MkdirAll(filepath.Dir(path), 0o700); err != nil {
		return fmt.Errorf("create authkey directory: %w", err)
	}
	secret := make([]byte, 24)
	if _, err := rand.Read(secret); err != nil {
		return fmt.Errorf("generate authkey: %w", err)
	}
	tmp, err := os.CreateTemp(filepath.Dir(path), ".authkey-*")
	if err != nil {
		return fmt.Errorf("create authkey: %w", err)
	}
	defer os.Remove(tmp.Name())
	if err := tmp.Chmod(0o600); err == nil {
		_, err = tmp.WriteString(hex.EncodeToString(secret) + "\n")
		if err == nil {
			err = tmp.Sync()
		}
		if cerr := tmp.Close(); err == nil {
			err = cerr
		}
		if err == nil {
			// Link, not rename: two racing callers must not replace each other's key.
			err = os.Link(tmp.Name(), path)
			if errors.Is(err, fs.ErrExist) {
				err = nil
			}
		}
	}
	if err != nil {
		return fmt.Errorf("write authkey: %w", err)
	}
	return nil
}

// reSecret is what a heartbeat secret may hold: authkeys splits on whitespace.
var reSecret = regexp.MustCompile(`^[\x21-\x7e]{8,256}$`)

// maxSecretFile bounds what is read as an authkey file: a secret is one
// short line, and a path such as /dev/zero must not be read forever.
const maxSecretFile = 4096

// Secret reads the heartbeat authkey secret from the file or environment
// variable the spec names. The error names the field, at its place in the
// spec, never the secret.
func (s *Spec) Secret() (string, error) {
	secret, field, problem := s.readSecret()
	if problem != "" {
		return "", &FieldError{File: s.File, Pos: lookupPos(s.pos, field), Path: field, Msg: problem}
	}
	return secret, nil
}

// readSecret is Secret for the validator: on failure it returns the field
// at fault and what is wrong with it.
func (s *Spec) readSecret() (secret, field, problem string) {
	ak := s.HA.Authkey
	var raw, from string
	switch {
	case ak.File != "":
		field = "ha.authkey.file"
		p := s.localPath(ak.File)
		b, problem := readSecretFile(p)
		if problem != "" {
			return "", field, problem
		}
		raw, from = string(b), p
	case ak.Env != "":
		field = "ha.authkey.env"
		v, ok := os.LookupEnv(ak.Env)
		if !ok {
			return "", field, fmt.Sprintf("environment variable %s is not set: export it holding the heartbeat secret, or use file", ak.Env)
		}
		raw, from = v, "$"+ak.Env
	default:
		return "", "ha.authkey", "heartbeat needs an authkey: set file (a file holding the secret) or env (a variable holding it)"
	}
	secret = strings.TrimSpace(raw)
	if !reSecret.MatchString(secret) {
		return "", field, fmt.Sprintf("the secret in %s is not valid: expected 8-256 printable ASCII characters without spaces", from)
	}
	return secret, "", ""
}

func readSecretFile(p string) ([]byte, string) {
	st, err := os.Stat(p)
	switch {
	case errors.Is(err, fs.ErrNotExist):
		return nil, fmt.Sprintf("authkey file %s does not exist: write the heartbeat secret into it (lvsforge init writes a random one), or use env", p)
	case err != nil:
		return nil, fmt.Sprintf("cannot read the authkey: %v", err)
	case !st.Mode().IsRegular():
		return nil, fmt.Sprintf("authkey file %s is not a regular file: expected a file holding the heartbeat secret", p)
	case st.Mode().Perm()&0o077 != 0:
		return nil, fmt.Sprintf("authkey file %s can be read or written by group or other (mode %04o): a heartbeat secret must be private, as heartbeat demands of its authkeys file; chmod 600 %s", p, st.Mode().Perm(), p)
	}
	f, err := os.Open(p)
	if err != nil {
		return nil, fmt.Sprintf("cannot read the authkey: %v", err)
	}
	defer f.Close()
	b, err := io.ReadAll(io.LimitReader(f, maxSecretFile+1))
	if err != nil {
		return nil, fmt.Sprintf("cannot read the authkey: %v", err)
	}
	if len(b) > maxSecretFile {
		return nil, fmt.Sprintf("authkey file %s is larger than %d bytes: expected one line holding the heartbeat secret", p, maxSecretFile)
	}
	return b, ""
}
