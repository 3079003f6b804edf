package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/armor"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/internal/testenv"
)

func shaHex(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// writeSpec writes the example cluster with the given kernel source lines
// into a fresh directory and returns the spec path.
func writeSpec(t *testing.T, version string, source ...string) string {
	t.Helper()
	dir := t.TempDir()
	if err := cluster.EnsureAuthkey(filepath.Join(dir, "authkey")); err != nil {
		t.Fatal(err)
	}
	spec := filepath.Join(dir, "cluster.yaml")
	y := cluster.ExampleYAML(cluster.ExampleSource{KernelVersion: version, SourceLines: source})
	if err := os.WriteFile(spec, y, 0o644); err != nil {
		t.Fatal(err)
	}
	return spec
}

const ipvsadmTestTarball = "../../build/testdata/ipvsadm_1.31.orig.tar.gz"

// testSigner is a key standing in for kernel.org's autosigner, and a
// keyring file with its public half.
func testSigner(t *testing.T) (*openpgp.Entity, string) {
	t.Helper()
	key, err := openpgp.NewEntity("autosigner", "test", "a@example.invalid", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	var kr bytes.Buffer
	aw, _ := armor.Encode(&kr, openpgp.PublicKeyType, nil)
	key.Serialize(aw)
	aw.Close()
	keyring := filepath.Join(t.TempDir(), "kernel.org.asc")
	os.WriteFile(keyring, kr.Bytes(), 0o644)
	return key, keyring
}

// signedSums is a sha256sums.asc listing data as name, signed by key.
func signedSums(key *openpgp.Entity, data []byte, name string) []byte {
	var asc bytes.Buffer
	w, _ := clearsign.Encode(&asc, key.PrivateKey, nil)
	w.Write([]byte(shaHex(data) + "  " + name + "\n"))
	w.Close()
	return asc.Bytes()
}

func TestFetchCLIKernelOrg(t *testing.T) {
	key, keyring := testSigner(t)
	tarball := bytes.Repeat([]byte("linux source "), 100000)
	asc := signedSums(key, tarball, "linux-6.1.7.tar.xz")
	mux := http.NewServeMux()
	mux.HandleFunc("/pub/v6.x/sha256sums.asc", func(w http.ResponseWriter, r *http.Request) { w.Write(asc) })
	mux.HandleFunc("/pub/v6.x/linux-6.1.7.tar.xz", func(w http.ResponseWriter, r *http.Request) { w.Write(tarball) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	t.Setenv("XDG_CONFIG_HOME", t.TempDir()) // no default keyring
	spec := writeSpec(t, "6.1.7", "type: kernel.org", "mirrors: ["+srv.URL+"/pub]")
	cache := t.TempDir()
	args := []string{"fetch", "-f", spec, "--cache-dir", cache, "--ipvsadm-tarball", ipvsadmTestTarball}

	// No keyring: kernel.org cannot be verified.
	if code, _, errOut := run(t, args...); code != 1 || !strings.Contains(errOut, "bad or untrusted signature") {
		t.Fatalf("without keyring: exit %d, %s", code, errOut)
	}
	// The test key is not kernel.org's autosigner: refused by fingerprint.
	if code, _, errOut := run(t, append(args, "--keyring", keyring)...); code != 1 || !strings.Contains(errOut, "signed by") {
		t.Fatalf("wrong fingerprint: exit %d, %s", code, errOut)
	}
	code, out, errOut := run(t, append(args, "--keyring", keyring, "--signer-fingerprint", "any", "--json")...)
	if code != 0 {
		t.Fatalf("fetch: exit %d: %s", code, errOut)
	}
	var res struct {
		Files []struct{ Name, Path, SHA256 string }
	}
	if err := json.Unmarshal([]byte(out), &res); err != nil {
		t.Fatalf("--json output %q: %v", out, err)
	}
	if len(res.Files) != 2 || res.Files[0].SHA256 != shaHex(tarball) || res.Files[1].Name != "ipvsadm-1.31.tar.gz" {
		t.Fatalf("files = %+v", res.Files)
	}
	for _, f := range res.Files {
		if !strings.HasPrefix(f.Path, cache) {
			t.Errorf("%s outside the cache dir: %s", f.Name, f.Path)
		}
	}
	if !strings.Contains(errOut, "downloaded") {
		t.Errorf("no progress on stderr: %q", errOut)
	}
}

// TestFetchCLIErrors: what fetch cannot get is said once, on one line,
// naming the spec's URL or path (never a file of the cache), and what
// cannot succeed is not downloaded again.
func TestFetchCLIErrors(t *testing.T) {
	defer func(d time.Duration) { fetchBackoff = d }(fetchBackoff)
	fetchBackoff = time.Millisecond
	key, keyring := testSigner(t)
	tarball := bytes.Repeat([]byte("linux source "), 100000)
	var mu sync.Mutex
	hits := map[string]int{}
	files := map[string][]byte{
		"/bad.tar.xz":                    []byte("not the pinned bytes"),
		"/pub/v6.x/sha256sums.asc":       signedSums(key, tarball, "linux-6.1.7.tar.xz"),
		"/pub/v6.x/linux-6.1.7.tar.xz":   tarball,
		"/pub/v6.x/linux-6.1.7.tar.sign": []byte("-----BEGIN PGP SIGNATURE-----\n\nnot a signature\n-----END PGP SIGNATURE-----\n"),
	}
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		mu.Lock()
		hits[r.URL.Path]++
		mu.Unlock()
		if data, ok := files[r.URL.Path]; ok {
			w.Write(data)
			return
		}
		http.NotFound(w, r)
	}))
	defer srv.Close()
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close()
	local := filepath.Join(t.TempDir(), "linux.tar.xz")
	os.WriteFile(local, []byte("not the pinned bytes"), 0o644)
	pin := shaHex(tarball)

	cases := []struct {
		name   string
		source []string
		flags  []string
		want   string // the error line
		once   string // a path the server was asked for once
	}{
		{"tarball URL, other bytes", []string{"type: tarball", "url: " + srv.URL + "/bad.tar.xz", "sha256: " + pin}, nil,
			"lvsforge: fetch linux-6.1.7.tar.xz: " + srv.URL + "/bad.tar.xz: sha256 mismatch: got " + shaHex(files["/bad.tar.xz"]) + ", want " + pin, "/bad.tar.xz"},
		{"tarball path, other bytes", []string{"type: tarball", "path: " + local, "sha256: " + pin}, nil,
			"lvsforge: import " + local + ": sha256 mismatch: got " + shaHex(files["/bad.tar.xz"]) + ", want " + pin, ""},
		{"unreachable URL", []string{"type: tarball", "url: " + closed.URL + "/linux.tar.xz", "sha256: " + pin}, nil,
			"lvsforge: fetch linux-6.1.7.tar.xz: " + closed.URL + "/linux.tar.xz: 4 attempts failed, the last: dial tcp ", ""},
		{"bad .tar.sign", []string{"type: kernel.org", "mirrors: [" + srv.URL + "/pub]", "verifyTarSign: true"}, []string{"--keyring", keyring, "--signer-fingerprint", "any"},
			"lvsforge: verify linux-6.1.7.tar.sign: " + srv.URL + "/pub/v6.x/linux-6.1.7.tar.sign: bad or untrusted signature", "/pub/v6.x/linux-6.1.7.tar.sign"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			spec := writeSpec(t, "6.1.7", c.source...)
			args := append([]string{"fetch", "-f", spec, "--cache-dir", t.TempDir(), "--ipvsadm-tarball", ipvsadmTestTarball}, c.flags...)
			mu.Lock()
			clear(hits)
			mu.Unlock()
			code, _, errOut := run(t, args...)
			var said []string
			for _, l := range strings.Split(strings.TrimSpace(errOut), "\n") {
				if !strings.HasSuffix(l, " downloaded") {
					said = append(said, l)
				}
			}
			if code != 1 || len(said) != 1 || !strings.HasPrefix(said[0], c.want) || strings.Contains(errOut, ".part") {
				t.Errorf("exit %d, stderr:\n%s\nwant exit 1 and one line starting %q", code, errOut, c.want)
			}
			mu.Lock()
			defer mu.Unlock()
			if c.once != "" && hits[c.once] != 1 {
				t.Errorf("%s asked for %d times, want once", c.once, hits[c.once])
			}
		})
	}
}

func TestBuildIpvsadmCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	testenv.IpvsadmBuild(t)
	cache := t.TempDir()
	args := []string{"build", "ipvsadm", "--cache-dir", cache, "--ipvsadm-tarball", ipvsadmTestTarball, "--static"}
	code, out, errOut := run(t, args...)
	if code != 0 {
		t.Fatalf("build ipvsadm: exit %d: %s", code, errOut)
	}
	if !strings.Contains(out, "ipvsadm 1.31 static (built)") {
		t.Errorf("output %q", out)
	}
	code, out, errOut = run(t, append(args, "--json")...)
	if code != 0 || !strings.Contains(out, `"cached": true`) {
		t.Errorf("second build: exit %d %s %s", code, out, errOut)
	}
}

func TestBuildKernelBadRole(t *testing.T) {
	if code, _, errOut := run(t, "build", "kernel", "--role", "router"); code != 2 || !strings.Contains(errOut, "director or realserver") {
		t.Errorf("exit %d: %s", code, errOut)
	}
}
