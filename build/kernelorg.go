package build

import (
	"bufio"
	"bytes"
	"context"
	_ "embed"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
)

// KernelOrgAutosignerFingerprint is the primary-key fingerprint of the
// "Kernel.org checksum autosigner <autosigner@kernel.org>" key that signs
// every sha256sums.asc. lvsforge ships the key (keys/, from kernel.org's own
// pgpkeys repository) and refuses the shipped copy unless its fingerprint
// is this one.
const KernelOrgAutosignerFingerprint = "B8868C80BA62A1FFFAF5FDA9632D3A06589DA6B1"

//go:embed keys/kernel.org-autosigner.asc
var autosignerKey []byte

// The release signers: Greg Kroah-Hartman signs the stable releases
// (6.1.192), Linus Torvalds the mainline ones (6.1). Both keys come from
// kernel.org's pgpkeys repository (keys/38DBBDC86092693E.asc and
// keys/79BE3E4300411886.asc) and are refused unless their fingerprints are
// these.
const (
	GregKHFingerprint   = "647F28654894E3BD457199BE38DBBDC86092693E"
	TorvaldsFingerprint = "ABAF11C65A2970B130ABE3C479BE3E4300411886"
)

var (
	//go:embed keys/gregkh.asc
	gregkhKey []byte
	//go:embed keys/torvalds.asc
	torvaldsKey []byte
)

// shippedKey parses one key lvsforge ships and checks that it is the one
// with fingerprint fp: a key replaced in the source tree is refused.
func shippedKey(data []byte, fp, what string) (openpgp.EntityList, error) {
	el, err := openpgp.ReadArmoredKeyRing(bytes.NewReader(data))
	if err != nil {
		return nil, fmt.Errorf("read the shipped %s key: %w", what, err)
	}
	if len(el) != 1 || !strings.EqualFold(hex.EncodeToString(el[0].PrimaryKey.Fingerprint), fp) {
		return nil, fmt.Errorf("read the shipped %s key: it is not %s", what, fp)
	}
	return el, nil
}

// ShippedKeyring is the kernel.org autosigner key lvsforge ships, checked
// against KernelOrgAutosignerFingerprint.
func ShippedKeyring() (openpgp.EntityList, error) {
	return shippedKey(autosignerKey, KernelOrgAutosignerFingerprint, "kernel.org")
}

// ReleaseSignersKeyring is the release signers' keys lvsforge ships, which
// a linux-VERSION.tar.sign must verify against; each is checked against
// its fingerprint.
func ReleaseSignersKeyring() (openpgp.EntityList, error) {
	greg, err := shippedKey(gregkhKey, GregKHFingerprint, "Greg Kroah-Hartman")
	if err != nil {
		return nil, err
	}
	linus, err := shippedKey(torvaldsKey, TorvaldsFingerprint, "Linus Torvalds")
	if err != nil {
		return nil, err
	}
	return append(greg, linus...), nil
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
// agree. A verified sha256sums.asc is kept in the cache
// (kernel.org/vN.x/sha256sums.asc) and, when it lists the release, used
// again without the network: it is verified with v on every use, so the
// cached copy is trusted no more than a downloaded one.
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
	resolve := func(data []byte) (string, error) {
		signed, err := v.VerifyClearsigned(data)
		if err != nil {
			return "", err
		}
		return LookupSHA256(signed, name)
	}
	checkPin := func(sum string) (Source, error) {
		if pin != "" && !strings.EqualFold(pin, sum) {
			return Source{}, fmt.Errorf("resolve %s: %w: signed list says %s, spec pins %s", name, ErrChecksum, sum, pin)
		}
		return Source{Name: name, URLs: urls, SHA256: sum, Kind: KindKernel}, nil
	}
	cached := filepath.Join(f.Cache.Dir, "kernel.org", dir, "sha256sums.asc")
	if data, err := os.ReadFile(cached); err == nil {
		if sum, err := resolve(data); err == nil {
			return checkPin(sum)
		}
	}
	var errs []error
	for _, m := range mirrors {
		u := strings.TrimRight(m, "/") + "/" + dir + "/sha256sums.asc"
		data, err := f.fetchSmall(ctx, u)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		sum, err := resolve(data)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", u, err))
			continue
		}
		if err := f.Cache.writeFile(cached, data); err != nil {
			return Source{}, fmt.Errorf("resolve %s: %w", name, err)
		}
		return checkPin(sum)
	}
	return Source{}, fmt.Errorf("resolve %s: %w", name, errors.Join(errs...))
}

// fetchSmall downloads a signature or checksum list into memory with the
// Fetcher's retries: a connection failure, a stall or a 5xx answer is tried
// again after the backoff; any other failure is final. The error says how
// many attempts were made, once.
func (f *Fetcher) fetchSmall(ctx context.Context, url string) ([]byte, error) {
	rounds, backoff := f.rounds()
	var err error
	for round := 0; round < rounds; round++ {
		if pause(ctx, backoff, round) {
			return nil, ctx.Err()
		}
		var buf bytes.Buffer
		if _, _, _, err = f.get(ctx, url, KindSignature, 0, &buf, nil, func(bool, int64, int64, int64) {}); err == nil {
			return buf.Bytes(), nil
		}
		if ctx.Err() != nil || !retryable(err) {
			return nil, attemptsError(round+1, err)
		}
	}
	return nil, attemptsError(rounds, err)
}

// verifyKernelOrgTarSign checks linux-VERSION.tar.sign, from the cache or
// the mirrors, over the uncompressed tarball (sha256 sum) and returns the
// signer. Decompressing a kernel takes seconds, so a signature that
// verified is remembered, per tarball and keyring, in the cache: an
// unchanged build does not pay for it again and needs no network.
func (f *Fetcher) verifyKernelOrgTarSign(ctx context.Context, version string, mirrors []string, tarball, sum string, keyring openpgp.EntityList) (string, error) {
	dir, err := kernelOrgDir(version)
	if err != nil {
		return "", err
	}
	if len(mirrors) == 0 {
		mirrors = DefaultKernelOrgMirrors
	}
	name := "linux-" + version + ".tar.sign"
	var fps []string
	for _, e := range keyring {
		fps = append(fps, fmt.Sprintf("%X", e.PrimaryKey.Fingerprint))
	}
	sort.Strings(fps)
	marker := filepath.Join(f.Cache.Dir, "kernel.org", "verified", strings.ToLower(sum)+"-"+hashJSON(fps)[:16])
	if who, err := os.ReadFile(marker); err == nil {
		return string(who), nil
	}
	cached := filepath.Join(f.Cache.Dir, "kernel.org", dir, name)
	// Each signature with where it came from, for the error.
	type sig struct {
		from string
		data []byte
	}
	var sigs []sig
	var errs []error
	if data, err := os.ReadFile(cached); err == nil {
		sigs = append(sigs, sig{cached, data})
	} else {
		for _, m := range mirrors {
			u := strings.TrimRight(m, "/") + "/" + dir + "/" + name
			data, err := f.fetchSmall(ctx, u)
			if err != nil {
				errs = append(errs, fmt.Errorf("%s: %w", u, err))
				continue
			}
			sigs = append(sigs, sig{u, data})
			break
		}
	}
	for _, sig := range sigs {
		signer, err := verifyTarSign(ctx, tarball, bytes.NewReader(sig.data), keyring)
		if err != nil {
			errs = append(errs, fmt.Errorf("%s: %w", sig.from, err))
			continue
		}
		who := fmt.Sprintf("%X", signer.PrimaryKey.Fingerprint)
		for id := range signer.Identities {
			who += " " + id
			break
		}
		if err := f.Cache.writeFile(cached, sig.data); err != nil {
			return "", fmt.Errorf("verify %s: %w", name, err)
		}
		if err := f.Cache.writeFile(marker, []byte(who)); err != nil {
			return "", fmt.Errorf("verify %s: %w", name, err)
		}
		return who, nil
	}
	return "", fmt.Errorf("verify %s: %w", name, errors.Join(errs...))
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
	signer, err := verifyTarSign(ctx, tarball, sig, keyring)
	if err != nil {
		return nil, fmt.Errorf("verify %s: %w", filepath.Base(sign), err)
	}
	return signer, nil
}

func verifyTarSign(ctx context.Context, tarball string, sig io.Reader, keyring openpgp.EntityList) (*openpgp.Entity, error) {
	f, err := os.Open(tarball)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	rc, err := Decompress(ctx, f, true)
	if err != nil {
		return nil, err
	}
	signer, err := openpgp.CheckArmoredDetachedSignature(keyring, rc, sig, nil)
	if cerr := rc.Close(); err == nil && cerr != nil {
		return nil, cerr
	}
	if err != nil {
		return nil, fmt.Errorf("%w: %v", ErrBadSignature, err)
	}
	return signer, nil
}
