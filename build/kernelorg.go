package build

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/cavaliergopher/grab/v3"
)

// KernelOrgAutosignerFingerprint is the primary-key fingerprint of the
// "Kernel.org checksum autosigner <autosigner@kernel.org>" key that signs
// every sha256sums.asc. lvsforge ships the key (keys/, from kernel.org's own
// pgpkeys repository) and refuses the shipped copy unless its fingerprint
// is this one.
const KernelOrgAutosignerFingerprint = "B8868C80BA62A1FFFAF5FDA9632D3A06589DA6B1"

//go:embed keys/kernel.org-autosigner.asc
var autosignerKey []byte

// ShippedKeyring is the kernel.org autosigner key lvsforge ships, checked
// against KernelOrgAutosignerFingerprint.
func ShippedKeyring() (openpgp.EntityList, error) {
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(autosignerKey))
	if err != nil {
		return nil, fmt.Errorf("read the shipped kernel.org key: %w", err)
	}
	if len(el) != 1 || !strings.EqualFold(hex.EncodeToString(el[0].PrimaryKey.Fingerprint), KernelOrgAutosignerFingerprint) {
		return nil, fmt.Errorf("read the shipped kernel.org key: it is not %s", KernelOrgAutosignerFingerprint)
	}
	return el, nil
}

// DefaultKernelOrgMirrors are the kernel.org bases under which v6.x/ etc. live.
var DefaultKernelOrgMirrors = []string{
	"https://cdn.kernel.org/pub/linux/kernel",
	"https://mirrors.edge.kernel.org/pub/linux/kernel",
}

// ErrBadSignature reports a clearsigned file whose signature does not verify
// against the keyring.
var ErrBadSignature = errors.New("bad or untrusted signature")

// ErrNotListed reports a file missing from a signed sha256sums list.
var ErrNotListed = errors.New("not listed in sha256sums")

// LoadKeyring reads an OpenPGP keyring file, armored or binary.
func LoadKeyring(path string) (openpgp.EntityList, error) {
	data, err := os.ReadFile(path)
	if err != nil {
		return nil, fmt.Errorf("read keyring: %w", err)
	}
	var el openpgp.EntityList
	if bytes.Contains(data, []byte("-----BEGIN PGP PUBLIC KEY BLOCK-----")) {
		el, err = openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	} else {
		el, err = openpgp.ReadKeyRing(bytes.NewReader(data))
	}
	if err != nil {
		return nil, fmt.Errorf("parse keyring %s: %w", path, err)
	}
	return el, nil
}

// Verifier checks clearsigned checksum lists.
type Verifier struct {
	Keyring openpgp.EntityList
	// RequireFingerprint, when set, accepts only signatures whose signer's
	// primary key has this fingerprint (hex, spaces ignored), so a keyring
	// holding other keys cannot vouch for kernel.org's sums.
	RequireFingerprint string
}

// VerifyClearsigned checks a clearsigned document and returns only the text
// the signature covers: anything outside the signed block is dropped, so a
// tampered mirror cannot append lines that would be believed.
func (v Verifier) VerifyClearsigned(data []byte) ([]byte, error) {
	if len(v.Keyring) == 0 {
		return nil, fmt.Errorf("verify clearsigned file: %w: empty keyring (export the Kernel.org checksum autosigner key, fingerprint %s, and pass it as the keyring)", ErrBadSignature, KernelOrgAutosignerFingerprint)
	}
	block, _ := clearsign.Decode(data)
	if block == nil {
		return nil, fmt.Errorf("verify clearsigned file: %w: no clearsigned block", ErrBadSignature)
	}
	signer, err := block.VerifySignature(v.Keyring, nil)
	if err != nil {
		return nil, fmt.Errorf("verify clearsigned file: %w: %v", ErrBadSignature, err)
	}
	if want := strings.ToUpper(strings.ReplaceAll(v.RequireFingerprint, " ", "")); want != "" {
		got := fmt.Sprintf("%X", signer.PrimaryKey.Fingerprint)
		if got != want {
			return nil, fmt.Errorf("verify clearsigned file: %w: signed by %s, want %s", ErrBadSignature, got, want)
		}
	}
	return block.Plaintext, nil
}

// LookupSHA256 finds name in a sha256sum-format list ("HASH  NAME" lines).
func LookupSHA256(list []byte, name string) (string, error) {
	sc := bufio.NewScanner(bytes.NewReader(list))
	for sc.Scan() {
		f := strings.Fields(sc.Text())
		if len(f) == 2 && strings.TrimPrefix(f[1], "*") == name && ValidSHA256(f[0]) {
			return strings.ToLower(f[0]), nil
		}
	}
	return "", fmt.Errorf("look up %s: %w", name, ErrNotListed)
}

// kernelOrgDir is the directory of a release under a kernel.org mirror base.
func kernelOrgDir(version string) (string, error) {
	major, _, ok := strings.Cut(version, ".")
	if !ok || major == "" || strings.Trim(major, "0123456789") != "" {
		return "", fmt.Errorf("parse kernel version %q: want MAJOR.MINOR[.PATCH]", version)
	}
	if strings.HasPrefix(version, "2.6") {
		return "v2.6", nil
	}
	return "v" + major + ".x", nil
}

// KernelOrgSource turns a kernel.org release into a pinned Source: it fetches
// sha256sums.asc from the mirrors, verifies its signature with v, and takes
// the tarball's sha256 from the signed text. If pin is set too, the two must
// agree. Nothing is written to the cache here.
func (f *Fetcher) KernelOrgSource(ctx context.Context, version string, mirrors []string, v Verifier, pin string) (Source, error) {
	dir, err := kernelOrgDir(version)
	if err != nil {
		return Source{}, err
	}
	if len(mirrors) == 0 {
		mirrors = DefaultKernelOrgMirrors
	}
	name := "linux-" + version + ".tar.xz"
	var urls []string
	for _, m := range mirrors {
		urls = append(urls, strings.TrimRight(m, "/")+"/"+dir+"/"+name)
	}
	var errs []error
	for _, m := range mirrors {
		u := strings.TrimRight(m, "/") + "/" + dir + "/sha256sums.asc"
		data, err := f.fetchSmall(ctx, u)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		signed, err := v.VerifyClearsigned(data)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		sum, err := LookupSHA256(signed, name)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		if pin != "" && !strings.EqualFold(pin, sum) {
			return Source{}, fmt.Errorf("resolve %s: %w: signed list says %s, spec pins %s", name, ErrChecksum, sum, pin)
		}
		return Source{Name: name, URLs: urls, SHA256: sum}, nil
	}
	return Source{}, fmt.Errorf("resolve %s: %w", name, errors.Join(errs...))
}

// fetchSmall downloads a small file into memory with the Fetcher's retries.
func (f *Fetcher) fetchSmall(ctx context.Context, url string) ([]byte, error) {
	client := f.client()
	rounds := f.Rounds
	if rounds <= 0 {
		rounds = 4
	}
	backoff := f.Backoff
	if backoff <= 0 {
		backoff = time.Second
	}
	var err error
	for round := 0; round < rounds; round++ {
		if round > 0 {
			select {
			case <-ctx.Done():
				return nil, ctx.Err()
			case <-time.After(backoff << (round - 1)):
			}
		}
		var req *grab.Request
		req, err = grab.NewRequest("", url)
		if err != nil {
			return nil, err
		}
		req.NoStore = true
		resp := client.Do(req.WithContext(ctx))
		if err = resp.Err(); err == nil {
			return resp.Bytes()
		}
		var sc grab.StatusCodeError
		if errors.As(err, &sc) {
			return nil, err
		}
	}
	return nil, err
}

// VerifyTarSign checks a kernel.org linux-X.Y.Z.tar.sign, a detached
// signature over the uncompressed tar, against the release signers' keys
// (Linus Torvalds, Greg Kroah-Hartman): the tarball is decompressed as a
// stream and never written out.
func VerifyTarSign(ctx context.Context, tarball, sign string, keyring openpgp.EntityList) (*openpgp.Entity, error) {
	sig, err := os.Open(sign)
	if err != nil {
		return nil, fmt.Errorf("verify tarball signature: %w", err)
	}
	defer sig.Close()
	f, err := os.Open(tarball)
	if err != nil {
		return nil, fmt.Errorf("verify tarball signature: %w", err)
	}
	defer f.Close()
	rc, err := Decompress(ctx, f, true)
	if err != nil {
		return nil, fmt.Errorf("verify tarball signature: %w", err)
	}
	signer, err := openpgp.CheckArmoredDetachedSignature(keyring, rc, sig, nil)
	if cerr := rc.Close(); err == nil && cerr != nil {
		return nil, fmt.Errorf("verify tarball signature: %w", cerr)
	}
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w: %v", filepath.Base(sign), ErrBadSignature, err)
	}
	return signer, nil
}
