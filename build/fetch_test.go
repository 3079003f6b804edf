package build

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ProtonMail/go-crypto/openpgp"
	"github.com/ProtonMail/go-crypto/openpgp/clearsign"
	"github.com/ProtonMail/go-crypto/openpgp/packet"
	"github.com/lvsforge/lvsforge/internal/testenv"
)

// testKey makes a fresh signing key; RSA keeps it like kernel.org's.
func testKey(t testing.TB, name string) *openpgp.Entity {
	t.Helper()
	e, err := openpgp.NewEntity(name, "test", name+"@example.invalid", &packet.Config{Algorithm: packet.PubKeyAlgoEdDSA})
	if err != nil {
		t.Fatal(err)
	}
	return e
}

func clearsignText(t testing.TB, key *openpgp.Entity, text string) []byte {
	t.Helper()
	var buf bytes.Buffer
	w, err := clearsign.Encode(&buf, key.PrivateKey, nil)
	if err != nil {
		t.Fatal(err)
	}
	if _, err := w.Write([]byte(text)); err != nil {
		t.Fatal(err)
	}
	if err := w.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func sha(b []byte) string { s := sha256.Sum256(b); return hex.EncodeToString(s[:]) }

// mirror is a loopback HTTP server with files under paths and knobs to break it.
type mirror struct {
	mu      sync.Mutex
	files   map[string][]byte
	cutOnce map[string]bool // serve half the body then drop the connection, once
	// stallOnce serves half the body, then sends nothing more and keeps
	// the connection open until the client gives up, once.
	stallOnce map[string]bool
	// fail5xx answers 503 this many times before serving the file.
	fail5xx map[string]int
	// cutAlways cuts every answer half-way, as cutOnce does once.
	cutAlways map[string]bool
	// status answers with this HTTP status instead of the file.
	status map[string]int
	// announce sends this Content-Length, then what it has, then hangs up.
	announce map[string]int64
	// noLength sends the file without a Content-Length (chunked).
	noLength map[string]bool
	// ignoreRange answers a resume with the whole file (200), though it
	// says it accepts ranges.
	ignoreRange map[string]bool
	ranges      []string            // Range headers seen on GET
	rangeOf     map[string][]string // the same, by path
	hits        map[string]int
	srv         *httptest.Server
}

func newMirror(t *testing.T) *mirror {
	m := &mirror{files: map[string][]byte{}, cutOnce: map[string]bool{}, stallOnce: map[string]bool{},
		fail5xx: map[string]int{}, rangeOf: map[string][]string{}, hits: map[string]int{},
		cutAlways: map[string]bool{}, status: map[string]int{}, announce: map[string]int64{},
		noLength: map[string]bool{}, ignoreRange: map[string]bool{}}
	m.srv = httptest.NewServer(http.HandlerFunc(m.serve))
	t.Cleanup(m.srv.Close)
	return m
}

// requests is how many GETs of p the mirror answered.
func (m *mirror) requests(p string) int {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.hits[p]
}

func (m *mirror) serve(w http.ResponseWriter, r *http.Request) {
	m.mu.Lock()
	data, ok := m.files[r.URL.Path]
	cut := (m.cutOnce[r.URL.Path] || m.cutAlways[r.URL.Path]) && r.Method == http.MethodGet
	if cut {
		delete(m.cutOnce, r.URL.Path)
	}
	status, announce, noLength, ignoreRange := m.status[r.URL.Path], m.announce[r.URL.Path], m.noLength[r.URL.Path], m.ignoreRange[r.URL.Path]
	stall := m.stallOnce[r.URL.Path] && r.Method == http.MethodGet
	if stall {
		delete(m.stallOnce, r.URL.Path)
	}
	unavailable := m.fail5xx[r.URL.Path] > 0
	if unavailable {
		m.fail5xx[r.URL.Path]--
	}
	if r.Method == http.MethodGet {
		m.hits[r.URL.Path]++
		if rg := r.Header.Get("Range"); rg != "" {
			m.ranges = append(m.ranges, rg)
			m.rangeOf[r.URL.Path] = append(m.rangeOf[r.URL.Path], rg)
		}
	}
	m.mu.Unlock()
	if unavailable {
		http.Error(w, "try later", http.StatusServiceUnavailable)
		return
	}
	if status != 0 {
		http.Error(w, "no", status)
		return
	}
	if !ok {
		http.NotFound(w, r)
		return
	}
	if stall {
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data[:len(data)/2])
		w.(http.Flusher).Flush()
		<-r.Context().Done() // silent until the client hangs up
		return
	}
	if cut {
		// Half of what was asked for (the rest of the file on a resume).
		start := 0
		if rg := r.Header.Get("Range"); rg != "" {
			fmt.Sscanf(rg, "bytes=%d-", &start)
			w.Header().Set("Content-Range", fmt.Sprintf("bytes %d-%d/%d", start, len(data)-1, len(data)))
		}
		rest := data[start:]
		w.Header().Set("Content-Length", fmt.Sprint(len(rest)))
		if start > 0 {
			w.WriteHeader(http.StatusPartialContent)
		} else {
			w.WriteHeader(http.StatusOK)
		}
		w.Write(rest[:len(rest)/2])
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler) // the server drops the connection mid-body
	}
	switch {
	case announce != 0:
		w.Header().Set("Content-Length", fmt.Sprint(announce))
		w.WriteHeader(http.StatusOK)
		w.Write(data)
		w.(http.Flusher).Flush()
		panic(http.ErrAbortHandler)
	case noLength:
		w.WriteHeader(http.StatusOK)
		w.(http.Flusher).Flush() // headers out before any length is known
		w.Write(data)
		return
	case ignoreRange:
		w.Header().Set("Accept-Ranges", "bytes")
		w.Header().Set("Content-Length", fmt.Sprint(len(data)))
		w.WriteHeader(http.StatusOK)
		w.Write(data)
		return
	}
	http.ServeContent(w, r, filepath.Base(r.URL.Path), time.Unix(0, 0), bytes.NewReader(data))
}

func (m *mirror) url(p string) string { return m.srv.URL + p }

func newTestFetcher(t *testing.T) *Fetcher {
	c := emptyCache(t)
	return &Fetcher{Cache: c, Backoff: 10 * time.Millisecond, Rounds: 3}
}

// blobs lists what entered the verified store.
func blobs(t *testing.T, c *Cache) []string {
	t.Helper()
	ents, err := os.ReadDir(filepath.Join(c.Dir, "blobs", "sha256"))
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range ents {
		names = append(names, e.Name())
	}
	return names
}

func payload(n int) []byte {
	b := make([]byte, n)
	for i := range b {
		b[i] = byte(i*7 + i/251)
	}
	return b
}

func TestKernelOrgVerifiedFetch(t *testing.T) {
	key := testKey(t, "autosigner")
	tarball := payload(3 << 20)
	sums := fmt.Sprintf("%s  linux-6.1.99.tar.gz\n%s  linux-6.1.100.tar.xz\n", sha([]byte("x")), sha(tarball))

	m1, m2 := newMirror(t), newMirror(t)
	// The first mirror has neither file: the fetch must fall back to the second.
	m2.files["/pub/v6.x/sha256sums.asc"] = clearsignText(t, key, sums)
	m2.files["/pub/v6.x/linux-6.1.100.tar.xz"] = tarball

	f := newTestFetcher(t)
	var mu sync.Mutex
	var last Progress
	f.Progress = func(p Progress) { mu.Lock(); last = p; mu.Unlock() }
	v := Verifier{Keyring: openpgp.EntityList{key}, RequireFingerprint: fmt.Sprintf("%X", key.PrimaryKey.Fingerprint)}
	src, err := f.KernelOrgSource(context.Background(), "6.1.100", []string{m1.url("/pub"), m2.url("/pub")}, v, "")
	if err != nil {
		t.Fatal(err)
	}
	if src.SHA256 != sha(tarball) {
		t.Fatalf("sha256 from signed list = %s, want %s", src.SHA256, sha(tarball))
	}
	paths, err := f.Fetch(context.Background(), src)
	if err != nil {
		t.Fatal(err)
	}
	got, err := os.ReadFile(paths[0])
	if err != nil || !bytes.Equal(got, tarball) {
		t.Fatalf("cached file differs from the served one (err %v)", err)
	}
	if !last.Done || last.Err != nil || last.Bytes != int64(len(tarball)) {
		t.Errorf("last progress = %+v, want done with %d bytes", last, len(tarball))
	}
	// Already cached: no second download.
	before := m2.hits["/pub/v6.x/linux-6.1.100.tar.xz"]
	if _, err := f.Fetch(context.Background(), src); err != nil {
		t.Fatal(err)
	}
	if after := m2.hits["/pub/v6.x/linux-6.1.100.tar.xz"]; after != before {
		t.Errorf("cached source downloaded again (%d -> %d GETs)", before, after)
	}
	// A spec pin that disagrees with the signed list is refused.
	if _, err := f.KernelOrgSource(context.Background(), "6.1.100", []string{m2.url("/pub")}, v, sha([]byte("other"))); !errors.Is(err, ErrChecksum) {
		t.Errorf("conflicting pin: err = %v, want ErrChecksum", err)
	}
}

func TestKernelOrgBadSignature(t *testing.T) {
	good, evil := testKey(t, "autosigner"), testKey(t, "mallory")
	tarball := payload(1 << 16)
	sums := fmt.Sprintf("%s  linux-6.1.100.tar.xz\n", sha(tarball))
	signed := clearsignText(t, good, sums)
	tampered := bytes.Replace(signed, []byte(sha(tarball)), []byte(sha([]byte("evil"))), 1)

	cases := map[string][]byte{
		"signed by an unknown key":   clearsignText(t, evil, sums),
		"text changed after signing": tampered,
		"not signed at all":          []byte(sums),
	}
	for name, asc := range cases {
		t.Run(name, func(t *testing.T) {
			m := newMirror(t)
			m.files["/v6.x/sha256sums.asc"] = asc
			m.files["/v6.x/linux-6.1.100.tar.xz"] = tarball
			f := newTestFetcher(t)
			_, err := f.KernelOrgSource(context.Background(), "6.1.100", []string{m.url("")}, Verifier{Keyring: openpgp.EntityList{good}}, "")
			if !errors.Is(err, ErrBadSignature) {
				t.Fatalf("err = %v, want ErrBadSignature", err)
			}
			// Said once, naming the list's URL; not asked for again.
			u := m.url("/v6.x/sha256sums.asc")
			if msg := err.Error(); strings.Count(msg, u) != 1 || strings.Contains(msg, "\n") || m.requests("/v6.x/sha256sums.asc") != 1 {
				t.Errorf("error %q after %d GETs, want one line naming %s after 1", msg, m.requests("/v6.x/sha256sums.asc"), u)
			}
			if b := blobs(t, f.Cache); len(b) != 0 {
				t.Errorf("cache holds %v after a bad signature", b)
			}
		})
	}
	// A good signature by a key that is in the keyring but is not the pinned fingerprint.
	m := newMirror(t)
	m.files["/v6.x/sha256sums.asc"] = clearsignText(t, evil, sums)
	f := newTestFetcher(t)
	v := Verifier{Keyring: openpgp.EntityList{good, evil}, RequireFingerprint: fmt.Sprintf("%X", good.PrimaryKey.Fingerprint)}
	if _, err := f.KernelOrgSource(context.Background(), "6.1.100", []string{m.url("")}, v, ""); !errors.Is(err, ErrBadSignature) {
		t.Errorf("wrong signer accepted: err = %v", err)
	}
}

func TestFetchCorruptedByte(t *testing.T) {
	data := payload(1 << 20)
	bad := bytes.Clone(data)
	bad[len(bad)/3] ^= 0x01
	m := newMirror(t)
	m.files["/f.tar.xz"] = bad
	f := newTestFetcher(t)
	_, err := f.Fetch(context.Background(), Source{Name: "f.tar.xz", URLs: []string{m.url("/f.tar.xz")}, SHA256: sha(data)})
	if !errors.Is(err, ErrChecksum) {
		t.Fatalf("err = %v, want ErrChecksum", err)
	}
	if b := blobs(t, f.Cache); len(b) != 0 {
		t.Errorf("corrupted file entered the cache: %v", b)
	}
	parts, _ := filepath.Glob(filepath.Join(f.Cache.Dir, "downloads", "*.part"))
	if len(parts) != 0 {
		t.Errorf("corrupted partial kept for resume: %v", parts)
	}
	// The same source from a good second mirror succeeds: corruption on one
	// mirror is not fatal.
	m2 := newMirror(t)
	m2.files["/f.tar.xz"] = data
	p, err := f.Fetch(context.Background(), Source{Name: "f.tar.xz", URLs: []string{m.url("/f.tar.xz"), m2.url("/f.tar.xz")}, SHA256: sha(data)})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p[0]); !bytes.Equal(got, data) {
		t.Fatal("cached bytes differ")
	}
}

func TestFetch404FallsBackAndSeveralAtOnce(t *testing.T) {
	m1, m2 := newMirror(t), newMirror(t)
	var srcs []Source
	for i := range 5 {
		data := payload(100_000 + i)
		name := fmt.Sprintf("/p%d.patch", i)
		m2.files[name] = data
		srcs = append(srcs, Source{Name: name[1:], URLs: []string{m1.url(name), m2.url(name)}, SHA256: sha(data)})
	}
	// The same file twice (a patch shared by two sets) is fetched once.
	srcs = append(srcs, srcs[0])
	f := newTestFetcher(t)
	f.Parallel = 3
	paths, err := f.Fetch(context.Background(), srcs...)
	if err != nil {
		t.Fatal(err)
	}
	if paths[5] != paths[0] || m2.hits["/p0.patch"] != 1 {
		t.Errorf("duplicate source: paths %s %s, %d GETs", paths[0], paths[5], m2.hits["/p0.patch"])
	}
	for i, p := range paths {
		if got, _ := FileSHA256(p); got != srcs[i].SHA256 {
			t.Errorf("%s: cached sha %s, want %s", srcs[i].Name, got, srcs[i].SHA256)
		}
	}
	for path, n := range m1.hits {
		if n != 1 {
			t.Errorf("404 mirror asked %d times for %s; a 404 should drop it", n, path)
		}
	}
	// Every mirror 404: a clear error naming the file.
	_, err = f.Fetch(context.Background(), Source{Name: "gone.tar", URLs: []string{m1.url("/gone.tar")}, SHA256: sha([]byte("gone"))})
	if err == nil || !strings.Contains(err.Error(), "gone.tar") || !strings.Contains(err.Error(), "404") {
		t.Errorf("err = %v, want a 404 naming gone.tar", err)
	}
}

func TestImportNeedsPin(t *testing.T) {
	c := emptyCache(t)
	p := filepath.Join(t.TempDir(), "local.tar.xz")
	data := payload(5000)
	os.WriteFile(p, data, 0o644)
	if _, err := c.Import(p, "", KindPatch); err == nil {
		t.Error("unpinned local file accepted")
	}
	if _, err := c.Import(p, sha([]byte("nope")), KindPatch); !errors.Is(err, ErrChecksum) || !strings.HasPrefix(err.Error(), "import "+p+": sha256 mismatch") {
		t.Errorf("wrong pin: err = %v, want ErrChecksum naming %s", err, p)
	}
	if b := blobs(t, c); len(b) != 0 {
		t.Errorf("cache holds %v", b)
	}
	got, err := c.Import(p, sha(data), KindPatch)
	if err != nil || got != c.BlobPath(sha(data)) {
		t.Fatalf("Import = %q, %v", got, err)
	}
}

// TestImportSizeCap: a local file over its kind's cap is refused before it
// is read, one that grows past it (here an endless device) once the cap is
// read; nothing is left in the cache.
func TestImportSizeCap(t *testing.T) {
	c := emptyCache(t)
	cases := []struct {
		kind Kind
		path string // "": a sparse file one byte over the cap
		cap  string
	}{
		{KindKernel, "", "4 GiB"},
		{KindPatch, "", "256 MiB"},
		{KindIpvsadm, "", "16 MiB"},
		{KindSignature, "", "16 MiB"},
		{KindIpvsadm, "/dev/zero", "16 MiB"},
	}
	for _, tc := range cases {
		name := string(tc.kind) + ", sparse"
		if tc.path != "" {
			name = string(tc.kind) + ", " + tc.path
		}
		t.Run(name, func(t *testing.T) {
			p := tc.path
			if p == "" {
				p = filepath.Join(t.TempDir(), "big")
				if err := os.WriteFile(p, nil, 0o644); err != nil {
					t.Fatal(err)
				}
				if err := os.Truncate(p, tc.kind.MaxSize()+1); err != nil {
					t.Fatal(err)
				}
			}
			_, err := c.Import(p, sha([]byte("x")), tc.kind)
			if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "import "+p+": ") || !strings.Contains(err.Error(), tc.cap) {
				t.Errorf("err = %v, want ErrTooLarge naming %s and the %s cap", err, p, tc.cap)
			}
			if left, _ := os.ReadDir(filepath.Join(c.Dir, "tmp")); len(left) != 0 || len(blobs(t, c)) != 0 {
				t.Errorf("left in the cache: tmp %v, blobs %v", left, blobs(t, c))
			}
		})
	}
}

func TestVerifyTarSign(t *testing.T) {
	signer, other := testKey(t, "gregkh"), testKey(t, "mallory")
	raw := makeTar(t, goodEntries)
	dir := t.TempDir()
	tarball := filepath.Join(dir, "linux.tar.xz")
	os.WriteFile(tarball, compress(t, FormatXZ, raw), 0o644)
	sign := func(key *openpgp.Entity, data []byte) string {
		var buf bytes.Buffer
		if err := openpgp.ArmoredDetachSign(&buf, key, bytes.NewReader(data), nil); err != nil {
			t.Fatal(err)
		}
		p := filepath.Join(dir, fmt.Sprintf("sig-%d", buf.Len()))
		os.WriteFile(p, buf.Bytes(), 0o644)
		return p
	}
	// The signature covers the uncompressed tar, as kernel.org's does.
	if _, err := VerifyTarSign(context.Background(), tarball, sign(signer, raw), openpgp.EntityList{signer}); err != nil {
		t.Fatalf("good signature: %v", err)
	}
	if _, err := VerifyTarSign(context.Background(), tarball, sign(other, raw), openpgp.EntityList{signer}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("unknown signer: err = %v", err)
	}
	tampered := bytes.Clone(raw)
	tampered[600] ^= 1
	if _, err := VerifyTarSign(context.Background(), tarball, sign(signer, tampered), openpgp.EntityList{signer}); !errors.Is(err, ErrBadSignature) {
		t.Errorf("signature over other bytes: err = %v", err)
	}
}

// TestShippedAutosignerKey: the key lvsforge ships is kernel.org's checksum
// autosigner (its fingerprint, a hash of the key, is the published one), it
// can sign, and it is what NewVerifier uses when no keyring is given.
func TestShippedAutosignerKey(t *testing.T) {
	el, err := ShippedKeyring()
	if err != nil {
		t.Fatal(err)
	}
	e := el[0]
	if _, ok := e.Identities["Kernel.org checksum autosigner <autosigner@kernel.org>"]; !ok {
		t.Errorf("identities %v", e.Identities)
	}
	if keys := el.KeysByIdUsage(e.PrimaryKey.KeyId, packet.KeyFlagSign); len(keys) != 1 {
		t.Errorf("the shipped key is not usable for signatures: %d keys", len(keys))
	}
	t.Setenv("XDG_CONFIG_HOME", t.TempDir())
	v, err := NewVerifier("", KernelOrgAutosignerFingerprint)
	if err != nil || len(v.Keyring) != 1 || v.Keyring[0].PrimaryKey.KeyId != e.PrimaryKey.KeyId {
		t.Errorf("NewVerifier without a keyring: %v, %v", v.Keyring, err)
	}
}

// failedAttempts collects f's reports of failed attempts; the returned
// function gives those so far.
func failedAttempts(f *Fetcher) func() []Progress {
	var mu sync.Mutex
	var got []Progress
	f.Progress = func(p Progress) {
		if p.Done && p.Err != nil {
			mu.Lock()
			got = append(got, p)
			mu.Unlock()
		}
	}
	return func() []Progress {
		mu.Lock()
		defer mu.Unlock()
		return slices.Clone(got)
	}
}

// TestFetchResumesInterrupted: a mirror sends half the file and then drops
// the connection (cut), or sends nothing more and keeps it open (stalled:
// the attempt is abandoned after the idle timeout, as ErrStalled). Either
// way one attempt fails and the next resumes where the data stopped: one
// Range request from the half, not a restart.
func TestFetchResumesInterrupted(t *testing.T) {
	for _, c := range []struct {
		name    string
		size    int
		setup   func(m *mirror, f *Fetcher)
		stalled bool // the failed attempt is ErrStalled
	}{
		{"cut", 4 << 20, func(m *mirror, f *Fetcher) { m.cutOnce["/f"] = true }, false},
		{"stalled", 2 << 20, func(m *mirror, f *Fetcher) {
			m.stallOnce["/f"] = true
			// Long enough that a loaded machine never stalls the healthy retry.
			f.IdleTimeout = 2 * time.Second
		}, true},
	} {
		t.Run(c.name, func(t *testing.T) {
			data := payload(c.size)
			m := newMirror(t)
			m.files["/f"] = data
			f := newTestFetcher(t)
			c.setup(m, f)
			failures := failedAttempts(f)
			// Without the idle timeout a stalled attempt never ends; the
			// deadline turns that hang into a failure.
			ctx, cancel := context.WithTimeout(context.Background(), 15*time.Second)
			defer cancel()
			p, err := f.Fetch(ctx, Source{Name: "f.tar.xz", URLs: []string{m.url("/f")}, SHA256: sha(data)})
			if err != nil {
				t.Fatal(err)
			}
			if got, _ := os.ReadFile(p[0]); !bytes.Equal(got, data) {
				t.Fatal("cached file differs")
			}
			if fails := failures(); len(fails) != 1 || errors.Is(fails[0].Err, ErrStalled) != c.stalled {
				t.Errorf("failed attempts %v, want one (ErrStalled: %v)", fails, c.stalled)
			}
			if want := fmt.Sprintf("bytes=%d-", len(data)/2); len(m.ranges) != 1 || m.ranges[0] != want {
				t.Errorf("Range requests %q, want one %q: the retry must resume, not restart", m.ranges, want)
			}
		})
	}
}

// TestFetchSmallRetries5xx: sha256sums.asc answered by 503 twice is
// fetched on the third try; a 404 is not retried.
func TestFetchSmallRetries5xx(t *testing.T) {
	key := testKey(t, "autosigner")
	tarball := payload(1000)
	m := newMirror(t)
	m.files["/v6.x/sha256sums.asc"] = clearsignText(t, key, sha(tarball)+"  linux-6.1.5.tar.xz\n")
	m.fail5xx["/v6.x/sha256sums.asc"] = 2
	f := newTestFetcher(t)
	src, err := f.KernelOrgSource(context.Background(), "6.1.5", []string{m.url("")}, Verifier{Keyring: openpgp.EntityList{key}}, "")
	if err != nil {
		t.Fatal(err)
	}
	if src.SHA256 != sha(tarball) || m.requests("/v6.x/sha256sums.asc") != 3 {
		t.Errorf("sha %s after %d requests, want %s after 3", src.SHA256, m.requests("/v6.x/sha256sums.asc"), sha(tarball))
	}
	if _, err := f.fetchSmall(context.Background(), m.url("/missing")); err == nil || m.requests("/missing") != 1 {
		t.Errorf("404: err %v after %d requests, want an error after 1", err, m.requests("/missing"))
	}
	// Always 503: Rounds attempts, said once with their count.
	m.fail5xx["/v7.x/sha256sums.asc"] = 100
	_, err = f.fetchSmall(context.Background(), m.url("/v7.x/sha256sums.asc"))
	if want := "3 attempts failed, the last: server answered 503 Service Unavailable"; err == nil || err.Error() != want || m.requests("/v7.x/sha256sums.asc") != 3 {
		t.Errorf("503s: err %v after %d requests, want %q after 3", err, m.requests("/v7.x/sha256sums.asc"), want)
	}
	// Endless, with no length: cut at the cap of a checksum list, not retried.
	m.files["/v8.x/sha256sums.asc"] = payload(int(MaxSignature) + 1)
	m.noLength["/v8.x/sha256sums.asc"] = true
	if _, err := f.fetchSmall(context.Background(), m.url("/v8.x/sha256sums.asc")); !errors.Is(err, ErrTooLarge) || m.requests("/v8.x/sha256sums.asc") != 1 {
		t.Errorf("too long: err %v after %d requests, want ErrTooLarge after 1", err, m.requests("/v8.x/sha256sums.asc"))
	}
}

// parts lists the partial downloads left in the cache.
func parts(t *testing.T, c *Cache) []string {
	t.Helper()
	p, err := filepath.Glob(filepath.Join(c.Dir, "downloads", "*.part"))
	if err != nil {
		t.Fatal(err)
	}
	return p
}

// TestFetchSizeLimits: a download stops at the length its server
// announced, or at its kind's cap when there is none, and never grows past
// either; a length announced over the cap is refused before any byte.
func TestFetchSizeLimits(t *testing.T) {
	data := payload(1 << 20)
	cases := []struct {
		name  string
		setup func(m *mirror)
		// gets is how many GETs it takes; ok, whether the file arrives.
		gets int
		ok   bool
	}{
		{"announced over the cap", func(m *mirror) { m.announce["/f"] = MaxIpvsadm + 1 }, 1, false},
		{"no length, over the cap", func(m *mirror) { m.files["/f"] = payload(int(MaxIpvsadm) + 1); m.noLength["/f"] = true }, 1, false},
		{"no length, within the cap", func(m *mirror) { m.noLength["/f"] = true }, 1, true},
		// The second answer is the whole file: it replaces the first
		// half instead of being appended to it.
		{"resume answered with the whole file", func(m *mirror) { m.cutOnce["/f"] = true; m.ignoreRange["/f"] = true }, 2, true},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMirror(t)
			m.files["/f"] = data
			c.setup(m)
			f := newTestFetcher(t)
			p, err := f.Fetch(context.Background(), Source{Name: "ipvsadm.tar.gz", URLs: []string{m.url("/f")}, SHA256: sha(data), Kind: KindIpvsadm})
			if c.ok {
				if err != nil {
					t.Fatal(err)
				}
				if got, _ := os.ReadFile(p[0]); !bytes.Equal(got, data) {
					t.Error("cached bytes differ")
				}
			} else if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), "16 MiB") {
				t.Errorf("err = %v, want ErrTooLarge naming the 16 MiB cap", err)
			}
			if n := m.requests("/f"); n != c.gets {
				t.Errorf("%d GETs, want %d", n, c.gets)
			}
			if p := parts(t, f.Cache); len(p) != 0 {
				t.Errorf("partial downloads left: %v", p)
			}
		})
	}
}

// understate is a transport that announces half of each body it passes
// on: over HTTP/1.1 or 2, Go's own transport never lets a body run past its
// Content-Length, but a Fetcher's Client may be any.
type understate struct{ http.RoundTripper }

func (u understate) RoundTrip(r *http.Request) (*http.Response, error) {
	resp, err := u.RoundTripper.RoundTrip(r)
	if err == nil && resp.ContentLength > 0 {
		resp.ContentLength /= 2
	}
	return resp, err
}

// TestFetchBodyLongerThanAnnounced: bytes past the announced length are an
// error, even when they are the pinned file, and are not kept.
func TestFetchBodyLongerThanAnnounced(t *testing.T) {
	data := payload(1 << 20)
	m := newMirror(t)
	m.files["/f"] = data
	f := newTestFetcher(t)
	f.Client = &http.Client{Transport: understate{http.DefaultTransport}}
	_, err := f.Fetch(context.Background(), Source{Name: "f", URLs: []string{m.url("/f")}, SHA256: sha(data)})
	if !errors.Is(err, ErrTooLarge) || !strings.Contains(err.Error(), fmt.Sprintf("more than the %d bytes it announced", len(data)/2)) {
		t.Errorf("err = %v, want ErrTooLarge: more than the %d bytes announced", err, len(data)/2)
	}
	if m.requests("/f") != 1 || len(blobs(t, f.Cache)) != 0 || len(parts(t, f.Cache)) != 0 {
		t.Errorf("%d GETs, blobs %v, parts %v; want 1 GET and nothing kept", m.requests("/f"), blobs(t, f.Cache), parts(t, f.Cache))
	}
}

// TestFetchLeavesNoPart: a fetch that gives up, or that is cancelled,
// removes its partial download; the resumes happen between its attempts.
func TestFetchLeavesNoPart(t *testing.T) {
	data := payload(2 << 20)
	cases := []struct {
		name    string
		setup   func(m *mirror, f *Fetcher, cancel context.CancelFunc)
		resumes int
	}{
		// Each attempt resumes and gets half the rest: 7/8 of the file
		// after three.
		{"cut on every attempt", func(m *mirror, f *Fetcher, _ context.CancelFunc) { m.cutAlways["/f"] = true }, 2},
		{"cancelled mid-body", func(m *mirror, f *Fetcher, cancel context.CancelFunc) {
			m.stallOnce["/f"] = true
			f.Progress = func(p Progress) {
				if p.Bytes > 0 {
					cancel()
				}
			}
		}, 0},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMirror(t)
			m.files["/f"] = data
			f := newTestFetcher(t)
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			c.setup(m, f, cancel)
			if _, err := f.Fetch(ctx, Source{Name: "f", URLs: []string{m.url("/f")}, SHA256: sha(data)}); err == nil {
				t.Fatal("fetch succeeded")
			}
			if p := parts(t, f.Cache); len(p) != 0 {
				t.Errorf("partial downloads left: %v", p)
			}
			if r := m.rangeOf["/f"]; len(r) != c.resumes {
				t.Errorf("resumed with %q, want %d resumes", r, c.resumes)
			}
		})
	}
}

// TestFetchDiskFull: with the cache's downloads on a full file system
// (a 1 MiB tmpfs, mounted in a mount namespace of a child process, so
// nothing outside it sees the mount), the fetch fails at once, says the
// disk is full, and leaves no partial file.
func TestFetchDiskFull(t *testing.T) {
	if dir := os.Getenv("LVSFORGE_TEST_DISKFULL"); dir != "" {
		diskFullChild(t, dir)
		return
	}
	testenv.Root(t)
	data := payload(3 << 20)
	m := newMirror(t)
	m.files["/big.tar.xz"] = data
	cmd := exec.Command(os.Args[0], "-test.run=^TestFetchDiskFull$", "-test.v")
	cmd.Env = append(os.Environ(), "LVSFORGE_TEST_DISKFULL="+t.TempDir(),
		"LVSFORGE_TEST_DISKFULL_URL="+m.url("/big.tar.xz"), "LVSFORGE_TEST_DISKFULL_SHA="+sha(data))
	cmd.SysProcAttr = &syscall.SysProcAttr{Unshareflags: syscall.CLONE_NEWNS}
	out, err := cmd.CombinedOutput()
	if err != nil || !strings.Contains(string(out), "--- PASS: TestFetchDiskFull") {
		t.Fatalf("child: %v\n%s", err, out)
	}
	if n := m.requests("/big.tar.xz"); n != 1 {
		t.Errorf("%d GETs, want 1: a full disk is not retried", n)
	}
}

func diskFullChild(t *testing.T, dir string) {
	c, err := NewCache(dir)
	if err != nil {
		t.Fatal(err)
	}
	downloads := filepath.Join(dir, "downloads")
	if err := syscall.Mount("tmpfs", downloads, "tmpfs", 0, "size=1m"); err != nil {
		t.Fatalf("mount a 1 MiB tmpfs: %v", err)
	}
	f := &Fetcher{Cache: c, Backoff: 10 * time.Millisecond, Rounds: 3}
	url := os.Getenv("LVSFORGE_TEST_DISKFULL_URL")
	_, err = f.Fetch(context.Background(), Source{Name: "big.tar.xz", URLs: []string{url}, SHA256: os.Getenv("LVSFORGE_TEST_DISKFULL_SHA")})
	if !errors.Is(err, syscall.ENOSPC) {
		t.Fatalf("err = %v, want ENOSPC", err)
	}
	t.Log(err)
	if p := parts(t, c); len(p) != 0 {
		t.Errorf("partial downloads left on the full disk: %v", p)
	}
}

// TestFetchGivesUpOnce: what cannot succeed is not asked again, what may
// is asked Rounds times, and either way the error is one line naming the
// URL once, with the count of attempts when there were several. Progress
// marks every failed attempt but the last as retried.
func TestFetchGivesUpOnce(t *testing.T) {
	data := payload(1 << 20)
	bad := bytes.Clone(data)
	bad[100] ^= 1
	closed := httptest.NewServer(http.NotFoundHandler())
	closed.Close() // a port nothing listens on
	cases := []struct {
		name  string
		setup func(m *mirror) string // the URL
		gets  int
		want  string // in the error
	}{
		{"sha256 mismatch", func(m *mirror) string { m.files["/f"] = bad; return m.url("/f") }, 1, "sha256 mismatch: got " + sha(bad) + ", want " + sha(data)},
		{"forbidden", func(m *mirror) string { m.status["/f"] = http.StatusForbidden; return m.url("/f") }, 1, "server answered 403 Forbidden"},
		{"not found", func(m *mirror) string { m.status["/f"] = http.StatusNotFound; return m.url("/f") }, 1, "server answered 404 Not Found"},
		{"server error", func(m *mirror) string { m.fail5xx["/f"] = 100; return m.url("/f") }, 3, "3 attempts failed, the last: server answered 503 Service Unavailable"},
		{"connection refused", func(m *mirror) string { return closed.URL + "/f" }, 0, "3 attempts failed, the last: dial tcp"},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			m := newMirror(t)
			m.files["/f"] = data
			u := c.setup(m)
			f := newTestFetcher(t)
			failures := failedAttempts(f)
			_, err := f.Fetch(context.Background(), Source{Name: "f.tar.xz", URLs: []string{u}, SHA256: sha(data)})
			if err == nil {
				t.Fatal("fetch succeeded")
			}
			msg := err.Error()
			if !strings.HasPrefix(msg, "fetch f.tar.xz: "+u+": ") || !strings.Contains(msg, c.want) || strings.Count(msg, u) != 1 ||
				strings.Contains(msg, "\n") || strings.Contains(msg, ".part") {
				t.Errorf("error %q, want one line: fetch f.tar.xz: %s: ...%s...", msg, u, c.want)
			}
			if n := m.requests("/f"); n != c.gets {
				t.Errorf("%d GETs, want %d", n, c.gets)
			}
			attempts := max(c.gets, 1)
			if c.gets == 0 {
				attempts = 3
			}
			want := make([]bool, attempts)
			for i := range attempts - 1 {
				want[i] = true
			}
			var retried []bool
			for _, p := range failures() {
				retried = append(retried, p.Retrying)
			}
			if fmt.Sprint(retried) != fmt.Sprint(want) {
				t.Errorf("failed attempts marked retrying: %v, want %v", retried, want)
			}
		})
	}
}

// TestFetchMismatchAfterResume: bytes that fail the check after a resume
// may be the first attempt's, not the mirror's: the mirror is asked once
// more, from the start, and is dropped only if that fails too.
func TestFetchMismatchAfterResume(t *testing.T) {
	data := payload(2 << 20)
	m := newMirror(t)
	m.files["/f"] = data
	f := newTestFetcher(t)
	// An earlier attempt's bytes that are not the file's start.
	part := filepath.Join(f.Cache.Dir, "downloads", sha(data)+".part")
	if err := os.WriteFile(part, []byte("not the start of the file"), 0o644); err != nil {
		t.Fatal(err)
	}
	p, err := f.Fetch(context.Background(), Source{Name: "f", URLs: []string{m.url("/f")}, SHA256: sha(data)})
	if err != nil {
		t.Fatal(err)
	}
	if got, _ := os.ReadFile(p[0]); !bytes.Equal(got, data) {
		t.Error("cached bytes differ")
	}
	// The resumed attempt fails the check, the next one starts over.
	if r := m.rangeOf["/f"]; len(r) != 1 || m.requests("/f") != 2 {
		t.Errorf("ranges %q in %d GETs, want one resume then a GET from the start", r, m.requests("/f"))
	}
}
