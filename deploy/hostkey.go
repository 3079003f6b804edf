package deploy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strings"
	"sync"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"
)

// HostKeyPolicy says what happens to a host whose key is not in known_hosts.
// A key that differs from the known one is refused under every policy.
type HostKeyPolicy string

// Host key policies, named after OpenSSH's StrictHostKeyChecking values.
const (
	// HostKeyStrict refuses unknown hosts, printing the line that trusts them.
	HostKeyStrict HostKeyPolicy = "strict"
	// HostKeyAcceptNew appends unknown hosts' keys to the known_hosts file.
	HostKeyAcceptNew HostKeyPolicy = "accept-new"
)

// ParseHostKeyPolicy validates a --host-key-policy value.
func ParseHostKeyPolicy(s string) (HostKeyPolicy, error) {
	switch HostKeyPolicy(s) {
	case HostKeyStrict, HostKeyAcceptNew:
		return HostKeyPolicy(s), nil
	case "yes":
		return HostKeyStrict, nil
	}
	return "", fmt.Errorf("parse host key policy %q: want %q or %q", s, HostKeyStrict, HostKeyAcceptNew)
}

// Sentinel errors for host key verification; HostKeyError wraps one of them.
var (
	ErrUnknownHost    = errors.New("unknown host key")
	ErrHostKeyChanged = errors.New("host key changed")
)

// HostKeyError is a refused host key, with what a user needs to decide
// whether to trust it.
type HostKeyError struct {
	Addr  string        // host:port as dialled
	Key   ssh.PublicKey // the key the server presented
	Known []knownhosts.KnownKey
	File  string // the known_hosts file accept-new would write
	Err   error  // ErrUnknownHost or ErrHostKeyChanged
}

func (e *HostKeyError) Unwrap() error { return e.Err }

func (e *HostKeyError) Error() string {
	got := e.Key.Type() + " " + ssh.FingerprintSHA256(e.Key)
	if errors.Is(e.Err, ErrHostKeyChanged) {
		var known []string
		for _, k := range e.Known {
			known = append(known, fmt.Sprintf("%s %s (%s:%d)", k.Key.Type(), ssh.FingerprintSHA256(k.Key), k.Filename, k.Line))
		}
		return fmt.Sprintf("host key for %s CHANGED: server offered %s, known_hosts has %s; refusing to connect "+
			"(if the change is expected, remove the old key with: ssh-keygen -R '%s' -f %s)",
			e.Addr, got, strings.Join(known, ", "), knownhosts.Normalize(e.Addr), e.Known[0].Filename)
	}
	line := knownhosts.Line([]string{knownhosts.Normalize(e.Addr)}, e.Key)
	return fmt.Sprintf("host key for %s is unknown: server offered %s; after checking the fingerprint, trust it with: "+
		"echo '%s' >> %s (or use --host-key-policy accept-new)", e.Addr, got, line, e.File)
}

// HostKeys checks server keys against known_hosts files. One value is shared
// by every connection of a push, so accept-new appends are serialised.
type HostKeys struct {
	Policy HostKeyPolicy
	// Files are read; the first one is where accept-new appends.
	Files []string

	mu       sync.Mutex
	accepted map[string][]ssh.PublicKey // keys appended during this run, by normalised address
}

// DefaultKnownHosts is ~/.ssh/known_hosts.
func DefaultKnownHosts() string { return userSSHFile("known_hosts") }

// db parses the files afresh, so keys another connection appended are seen.
// Files that do not exist yet are skipped: accept-new creates the first one.
func (hk *HostKeys) db() (ssh.HostKeyCallback, error) {
	var files []string
	for _, f := range hk.Files {
		if _, err := os.Stat(f); err == nil {
			files = append(files, f)
		} else if !errors.Is(err, os.ErrNotExist) {
			return nil, fmt.Errorf("stat known_hosts: %w", err)
		}
	}
	if len(files) == 0 {
		return func(string, net.Addr, ssh.PublicKey) error { return &knownhosts.KeyError{} }, nil
	}
	cb, err := knownhosts.New(files...)
	if err != nil {
		return nil, fmt.Errorf("read known_hosts: %w", err)
	}
	return cb, nil
}

// knownKeys lists the keys known for addr, so that the client asks the
// server for a key of that type: otherwise a server offering a different
// algorithm first would look like a changed key.
func (hk *HostKeys) knownKeys(addr string) ([]ssh.PublicKey, error) {
	hk.mu.Lock()
	defer hk.mu.Unlock()
	cb, err := hk.db()
	if err != nil {
		return nil, err
	}
	var keys []ssh.PublicKey
	// A key that cannot match makes knownhosts report every known key in Want.
	err = cb(addr, &net.TCPAddr{}, probeKey{})
	var ke *knownhosts.KeyError
	if errors.As(err, &ke) {
		for _, k := range ke.Want {
			keys = append(keys, k.Key)
		}
	}
	keys = append(keys, hk.accepted[knownhosts.Normalize(addr)]...)
	return keys, nil
}

// algorithms turns known keys into the HostKeyAlgorithms to request.
func algorithms(keys []ssh.PublicKey) []string {
	var algs []string
	for _, k := range keys {
		switch t := k.Type(); t {
		case ssh.KeyAlgoRSA:
			algs = appendUnique(algs, ssh.KeyAlgoRSASHA512)
			algs = appendUnique(algs, ssh.KeyAlgoRSASHA256)
		default:
			algs = appendUnique(algs, t)
		}
	}
	return algs
}

// Callback verifies the key of the server dialled as addr (host:port).
func (hk *HostKeys) Callback(addr string) ssh.HostKeyCallback {
	return func(_ string, remote net.Addr, key ssh.PublicKey) error {
		hk.mu.Lock()
		defer hk.mu.Unlock()
		norm := knownhosts.Normalize(addr)
		for _, k := range hk.accepted[norm] {
			if keysEqual(k, key) {
				return nil
			}
		}
		cb, err := hk.db()
		if err != nil {
			return err
		}
		err = cb(addr, remote, key)
		var ke *knownhosts.KeyError
		switch {
		case err == nil:
			return nil
		case errors.As(err, &ke) && len(ke.Want) > 0:
			return &HostKeyError{Addr: addr, Key: key, Known: ke.Want, File: hk.writeFile(), Err: ErrHostKeyChanged}
		case errors.As(err, &ke):
			if hk.Policy != HostKeyAcceptNew {
				return &HostKeyError{Addr: addr, Key: key, File: hk.writeFile(), Err: ErrUnknownHost}
			}
			if err := hk.appendKey(norm, key); err != nil {
				return err
			}
			return nil
		default:
			return fmt.Errorf("check host key of %s: %w", addr, err)
		}
	}
}

func (hk *HostKeys) writeFile() string {
	if len(hk.Files) == 0 {
		return DefaultKnownHosts()
	}
	return hk.Files[0]
}

func (hk *HostKeys) appendKey(norm string, key ssh.PublicKey) error {
	file := hk.writeFile()
	if err := os.MkdirAll(filepath.Dir(file), 0o700); err != nil {
		return fmt.Errorf("create known_hosts directory: %w", err)
	}
	f, err := os.OpenFile(file, os.O_WRONLY|os.O_APPEND|os.O_CREATE, 0o600)
	if err != nil {
		return fmt.Errorf("open known_hosts: %w", err)
	}
	_, err = fmt.Fprintln(f, knownhosts.Line([]string{norm}, key))
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("append to known_hosts: %w", err)
	}
	if hk.accepted == nil {
		hk.accepted = map[string][]ssh.PublicKey{}
	}
	hk.accepted[norm] = append(hk.accepted[norm], key)
	return nil
}

func keysEqual(a, b ssh.PublicKey) bool {
	return a.Type() == b.Type() && string(a.Marshal()) == string(b.Marshal())
}

// probeKey is a public key no known_hosts line can match.
type probeKey struct{}

func (probeKey) Type() string                        { return "lvsforge-probe" }
func (probeKey) Marshal() []byte                     { return []byte("lvsforge-probe") }
func (probeKey) Verify([]byte, *ssh.Signature) error { return errors.New("probe key") }
