package main

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

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

func TestFetchCLIKernelOrg(t *testing.T) {
	key, err := openpgp.NewEntity("autosigner", "test", "a@example.invalid", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	tarball := bytes.Repeat([]byte("linux source "), 100000)
	var asc bytes.Buffer
	w, _ := clearsign.Encode(&asc, key.PrivateKey, nil)
	w.Write([]byte(shaHex(tarball) + "  linux-6.1.7.tar.xz\n"))
	w.Close()
	mux := http.NewServeMux()
	mux.HandleFunc("/pub/v6.x/sha256sums.asc", func(w http.ResponseWriter, r *http.Request) { w.Write(asc.Bytes()) })
	mux.HandleFunc("/pub/v6.x/linux-6.1.7.tar.xz", func(w http.ResponseWriter, r *http.Request) { w.Write(tarball) })
	srv := httptest.NewServer(mux)
	defer srv.Close()

	var kr bytes.Buffer
	aw, _ := armor.Encode(&kr, openpgp.PublicKeyType, nil)
	key.Serialize(aw)
	aw.Close()
	keyring := filepath.Join(t.TempDir(), "kernel.org.asc")
	os.WriteFile(keyring, kr.Bytes(), 0o644)

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

func TestBuildIpvsadmCLI(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	testenv.LookPath(t, "gcc", "build-essential")
	testenv.LookPath(t, "pkg-config", "pkg-config")
	for _, pc := range []string{"libnl-genl-3.0", "popt"} {
		if exec.Command("pkg-config", "--exists", pc).Run() != nil {
			testenv.Missing(t, pc, "apt-get install -y libnl-3-dev libnl-genl-3-dev libpopt-dev")
		}
	}
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
