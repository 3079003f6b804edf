package build

import (
	"archive/tar"
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/ulikunitz/xz"

	"github.com/lvsforge/lvsforge/internal/testenv"
)

type entry struct {
	name, link string
	typ        byte
	mode       int64
	body       string
}

func makeTar(t testing.TB, entries []entry) []byte {
	t.Helper()
	var buf bytes.Buffer
	tw := tar.NewWriter(&buf)
	for _, e := range entries {
		h := &tar.Header{Name: e.name, Linkname: e.link, Typeflag: e.typ, Mode: e.mode, Size: int64(len(e.body)), ModTime: time.Unix(1700000000, 0)}
		if e.typ != tar.TypeReg {
			h.Size = 0
		}
		if err := tw.WriteHeader(h); err != nil {
			t.Fatal(err)
		}
		if e.typ == tar.TypeReg {
			tw.Write([]byte(e.body))
		}
	}
	if err := tw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func compress(t testing.TB, format string, data []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	switch format {
	case FormatPlain:
		return data
	case FormatGzip:
		w := gzip.NewWriter(&buf)
		w.Write(data)
		w.Close()
	case FormatXZ:
		w, err := xz.NewWriter(&buf)
		if err != nil {
			t.Fatal(err)
		}
		w.Write(data)
		w.Close()
	case FormatBzip2:
		// Go has no bzip2 writer; the real tool makes the test archive.
		bz := testenv.LookPath(t, "bzip2", "bzip2")
		cmd := exec.Command(bz, "-c")
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	}
	return buf.Bytes()
}

// treeDigest describes a directory tree: every path with its type, mode,
// link target and content hash, so two extractions can be compared.
func treeDigest(t testing.TB, root string) string {
	t.Helper()
	var lines []string
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		rel, _ := filepath.Rel(root, p)
		info, err := d.Info()
		if err != nil {
			return err
		}
		line := fmt.Sprintf("%s %v", rel, info.Mode())
		switch {
		case info.Mode()&fs.ModeSymlink != 0:
			l, _ := os.Readlink(p)
			line += " -> " + l
		case info.Mode().IsRegular():
			data, err := os.ReadFile(p)
			if err != nil {
				return err
			}
			line += fmt.Sprintf(" %x", sha256.Sum256(data))
		}
		lines = append(lines, line)
		return nil
	})
	if err != nil {
		t.Fatal(err)
	}
	sort.Strings(lines)
	return strings.Join(lines, "\n")
}

var goodEntries = []entry{
	{name: "linux-1.0/", typ: tar.TypeDir, mode: 0o755},
	{name: "linux-1.0/Makefile", typ: tar.TypeReg, mode: 0o644, body: "all:\n"},
	{name: "linux-1.0/scripts/config", typ: tar.TypeReg, mode: 0o755, body: "#!/bin/sh\n"},
	{name: "linux-1.0/secret", typ: tar.TypeReg, mode: 0o600, body: "x"},
	{name: "linux-1.0/include/dt-bindings", typ: tar.TypeSymlink, link: "../scripts"},
	{name: "linux-1.0/hard", typ: tar.TypeLink, link: "linux-1.0/Makefile"},
	// Group and other write never survive extraction.
	{name: "linux-1.0/shared/", typ: tar.TypeDir, mode: 0o777},
	{name: "linux-1.0/shared/open", typ: tar.TypeReg, mode: 0o666, body: "w"},
	{name: "linux-1.0/shared/run", typ: tar.TypeReg, mode: 0o775, body: "#!/bin/sh\n"},
}

func TestExtractFormatsAndModes(t *testing.T) {
	raw := makeTar(t, goodEntries)
	var want string
	for _, format := range []string{FormatPlain, FormatGzip, FormatBzip2, FormatXZ} {
		for _, sys := range []bool{false, true} {
			t.Run(fmt.Sprintf("%s/systemxz=%v", format, sys), func(t *testing.T) {
				dir := t.TempDir()
				arc := filepath.Join(dir, "a")
				os.WriteFile(arc, compress(t, format, raw), 0o644)
				dest := filepath.Join(dir, "tree")
				if err := Extract(context.Background(), arc, dest, ExtractOptions{SystemXZ: sys}); err != nil {
					t.Fatal(err)
				}
				top := SingleTopDir(dest)
				if filepath.Base(top) != "linux-1.0" {
					t.Errorf("SingleTopDir = %s", top)
				}
				modes := map[string]os.FileMode{"scripts/config": 0o755, "secret": 0o600, "Makefile": 0o644,
					"shared": 0o755, "shared/open": 0o644, "shared/run": 0o755}
				for name, mode := range modes {
					st, err := os.Stat(filepath.Join(top, name))
					if err != nil || st.Mode().Perm() != mode {
						t.Errorf("%s: mode %v (err %v), want %v", name, st.Mode().Perm(), err, mode)
					} else if !st.ModTime().Equal(time.Unix(1700000000, 0)) {
						t.Errorf("%s: mtime %v, want the archive's %v", name, st.ModTime(), time.Unix(1700000000, 0))
					}
				}
				d := treeDigest(t, dest)
				if want == "" {
					want = d
				} else if d != want {
					t.Errorf("tree differs from the plain extraction:\n%s\nwant\n%s", d, want)
				}
			})
		}
	}
}

func TestExtractRejectsEscapes(t *testing.T) {
	cases := map[string][]entry{
		"dotdot":            {{name: "a/../../evil", typ: tar.TypeReg, mode: 0o644, body: "x"}},
		"absolute":          {{name: "/tmp/evil", typ: tar.TypeReg, mode: 0o644, body: "x"}},
		"symlink out":       {{name: "a/link", typ: tar.TypeSymlink, link: "../../etc"}},
		"symlink absolute":  {{name: "link", typ: tar.TypeSymlink, link: "/etc"}},
		"hardlink out":      {{name: "h", typ: tar.TypeLink, link: "../etc/passwd"}},
		"write via symlink": {{name: "d", typ: tar.TypeDir, mode: 0o755}, {name: "l", typ: tar.TypeSymlink, link: "d"}, {name: "l/f", typ: tar.TypeReg, mode: 0o644, body: "x"}},
		"symlink chain":     {{name: "a", typ: tar.TypeSymlink, link: "."}, {name: "b", typ: tar.TypeSymlink, link: "a/.."}},
		"hardlink via link": {{name: "a", typ: tar.TypeSymlink, link: "."}, {name: "b", typ: tar.TypeSymlink, link: "a/.."}, {name: "h", typ: tar.TypeLink, link: "b/evil"}},
		"device":            {{name: "null", typ: tar.TypeChar, mode: 0o666}},
		// c/.. is the parent of the tree; x need not exist for a later
		// write through a to land there.
		"dangling link through a link":       {{name: "c", typ: tar.TypeSymlink, link: "."}, {name: "a", typ: tar.TypeSymlink, link: "c/../x"}},
		"dangling link through a later link": {{name: "a", typ: tar.TypeSymlink, link: "c/../x"}, {name: "c", typ: tar.TypeSymlink, link: "."}},
		"link through links in a subdirectory": {{name: "d/e/", typ: tar.TypeDir, mode: 0o755}, {name: "d/up", typ: tar.TypeSymlink, link: "e/../.."},
			{name: "d/e/out", typ: tar.TypeSymlink, link: "../up/../evil"}},
		"symlink loop":                     {{name: "a", typ: tar.TypeSymlink, link: "b"}, {name: "b", typ: tar.TypeSymlink, link: "a/x"}},
		"file through a link and back":     {{name: "d/", typ: tar.TypeDir, mode: 0o755}, {name: "l", typ: tar.TypeSymlink, link: "d"}, {name: "l/../f", typ: tar.TypeReg, mode: 0o644, body: "x"}},
		"hardlink through a link and back": {{name: "f", typ: tar.TypeReg, mode: 0o644, body: "x"}, {name: "l", typ: tar.TypeSymlink, link: "."}, {name: "h", typ: tar.TypeLink, link: "l/../f"}},
		"hardlink to a symlink":            {{name: "d/s", typ: tar.TypeSymlink, link: "../f"}, {name: "h", typ: tar.TypeLink, link: "d/s"}},
		"directory over a symlink":         {{name: "l", typ: tar.TypeSymlink, link: "."}, {name: "l/", typ: tar.TypeDir, mode: 0o755}},
		"file over a symlink":              {{name: "l", typ: tar.TypeSymlink, link: "x"}, {name: "l", typ: tar.TypeReg, mode: 0o644, body: "x"}},
	}
	for name, entries := range cases {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			arc := filepath.Join(dir, "evil.tar.gz")
			os.WriteFile(arc, compress(t, FormatGzip, makeTar(t, entries)), 0o644)
			dest := filepath.Join(dir, "sub", "tree")
			err := Extract(context.Background(), arc, dest, ExtractOptions{})
			if !errors.Is(err, ErrUnsafePath) {
				t.Fatalf("err = %v, want ErrUnsafePath", err)
			}
			if _, err := os.Lstat(dest); err == nil {
				t.Error("destination exists after a refused archive")
			}
			left, _ := os.ReadDir(filepath.Join(dir, "sub"))
			if len(left) != 0 {
				t.Errorf("temporary extraction left behind: %v", left)
			}
			if _, err := os.Lstat(filepath.Join(dir, "evil")); err == nil {
				t.Error("file written outside the tree")
			}
		})
	}
}

// TestExtractLinksResolvedInside: symlinks are judged by where they
// resolve, through the archive's other symlinks, not by their text: these
// all stay inside, dangling or not, and are extracted as they are.
func TestExtractLinksResolvedInside(t *testing.T) {
	entries := []entry{
		{name: "a/b/", typ: tar.TypeDir, mode: 0o755},
		{name: "a/b/f", typ: tar.TypeReg, mode: 0o644, body: "f"},
		{name: "c", typ: tar.TypeSymlink, link: "a/b"},
		// c/.. is a, not the tree's parent: ".." follows the link.
		{name: "up", typ: tar.TypeSymlink, link: "c/../../a"},
		{name: "later", typ: tar.TypeSymlink, link: "z/../b/f"},
		{name: "z", typ: tar.TypeSymlink, link: "a/b"},
		{name: "dangling", typ: tar.TypeSymlink, link: "c/../x"},
		{name: "a/self", typ: tar.TypeSymlink, link: "."},
		{name: "h", typ: tar.TypeLink, link: "a/b/f"},
	}
	dir := t.TempDir()
	arc := filepath.Join(dir, "ok.tar")
	os.WriteFile(arc, makeTar(t, entries), 0o644)
	dest := filepath.Join(dir, "tree")
	if err := Extract(context.Background(), arc, dest, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	for name, want := range map[string]string{"up/b/f": "f", "later": "f", "a/self/b/f": "f", "h": "f"} {
		if got, err := os.ReadFile(filepath.Join(dest, name)); err != nil || string(got) != want {
			t.Errorf("%s: %q, %v; want %q", name, got, err, want)
		}
	}
	if l, err := os.Readlink(filepath.Join(dest, "dangling")); err != nil || l != "c/../x" {
		t.Errorf("dangling: %q, %v", l, err)
	}
}

func TestExtractTruncatedArchive(t *testing.T) {
	dir := t.TempDir()
	data := compress(t, FormatXZ, makeTar(t, goodEntries))
	arc := filepath.Join(dir, "cut.tar.xz")
	os.WriteFile(arc, data[:len(data)/2], 0o644)
	for _, sys := range []bool{false, true} {
		dest := filepath.Join(dir, fmt.Sprint("tree", sys))
		if err := Extract(context.Background(), arc, dest, ExtractOptions{SystemXZ: sys}); err == nil {
			t.Errorf("systemxz=%v: truncated archive extracted without error", sys)
		}
		if _, err := os.Lstat(dest); err == nil {
			t.Errorf("systemxz=%v: partial tree left at destination", sys)
		}
	}
}

const debianKernelTarball = "/usr/src/linux-source-6.1.tar.xz"

// needKernelTarball skips the test, or fails it in CI, unless Debian's
// kernel tarball is installed.
func needKernelTarball(t *testing.T) {
	t.Helper()
	if _, err := os.Stat(debianKernelTarball); err != nil {
		testenv.Missing(t, debianKernelTarball, "apt-get install -y linux-source-6.1")
	}
}

// TestExtractKernelSystemXZIdentical extracts the real kernel tarball through
// both decoders and compares the trees.
func TestExtractKernelSystemXZIdentical(t *testing.T) {
	if testing.Short() {
		t.Skip("short")
	}
	needKernelTarball(t)
	testenv.LookPath(t, "xz", "xz-utils")
	dir := t.TempDir()
	a, b := filepath.Join(dir, "go"), filepath.Join(dir, "sys")
	if err := Extract(context.Background(), debianKernelTarball, a, ExtractOptions{}); err != nil {
		t.Fatal(err)
	}
	if err := Extract(context.Background(), debianKernelTarball, b, ExtractOptions{SystemXZ: true}); err != nil {
		t.Fatal(err)
	}
	if treeDigest(t, a) != treeDigest(t, b) {
		t.Fatal("pure-Go and system-xz extractions differ")
	}
}

// BenchmarkExtractKernel measures Extract on Debian's kernel tarball, with
// the system xz and with the pure-Go decoder, beside the peer it must keep
// up with, `xz -dc | tar -x`, in the same run:
//
//	go test -run '^$' -bench ExtractKernel -benchtime 3x ./build
//
// Each run starts with the previous tree removed and the page cache's dirty
// data written back (outside the timer): otherwise a later run pays for the
// writeback of the earlier ones' 1.3 GB trees.
func BenchmarkExtractKernel(b *testing.B) {
	if _, err := os.Stat(debianKernelTarball); err != nil {
		b.Skip("no " + debianKernelTarball)
	}
	run := func(b *testing.B, extract func(dest string) error) {
		dest := filepath.Join(b.TempDir(), "t")
		for i := 0; i < b.N; i++ {
			b.StopTimer()
			if err := os.RemoveAll(dest); err != nil {
				b.Fatal(err)
			}
			syscall.Sync()
			b.StartTimer()
			if err := extract(dest); err != nil {
				b.Fatal(err)
			}
		}
	}
	b.Run("peer=xz|tar", func(b *testing.B) {
		run(b, func(dest string) error {
			if err := os.Mkdir(dest, 0o755); err != nil {
				return err
			}
			if out, err := exec.Command("sh", "-c", "xz -dc "+debianKernelTarball+" | tar -x -C "+dest).CombinedOutput(); err != nil {
				return fmt.Errorf("%v: %s", err, out)
			}
			return nil
		})
	})
	for _, sys := range []bool{true, false} {
		b.Run(fmt.Sprintf("systemxz=%v", sys), func(b *testing.B) {
			run(b, func(dest string) error {
				return Extract(context.Background(), debianKernelTarball, dest, ExtractOptions{SystemXZ: sys})
			})
		})
	}
}

// TestExtractProgress: through either decoder, Extract's reports give the
// compressed archive's size, never go back, and end at the whole size.
func TestExtractProgress(t *testing.T) {
	defer func(d time.Duration) { progressEvery = d }(progressEvery)
	progressEvery = time.Millisecond
	// Incompressible bodies, so the archive is as big as the tree.
	rng := rand.New(rand.NewPCG(1, 2))
	var entries []entry
	for i := range 6 {
		body := make([]byte, 1<<20)
		for j := range body {
			body[j] = byte(rng.Uint32())
		}
		entries = append(entries, entry{name: fmt.Sprintf("t/f%02d", i), typ: tar.TypeReg, mode: 0o644, body: string(body)})
	}
	raw := makeTar(t, entries)
	formats := map[string][]byte{"gzip": compress(t, FormatGzip, raw)}
	if xzPath, err := exec.LookPath("xz"); err == nil {
		cmd := exec.Command(xzPath, "-0", "-c")
		cmd.Stdin = bytes.NewReader(raw)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		formats["system xz"] = out
	}
	for name, data := range formats {
		t.Run(name, func(t *testing.T) {
			dir := t.TempDir()
			arc := filepath.Join(dir, "a")
			os.WriteFile(arc, data, 0o644)
			var reads []int64
			var sizes []int64
			var mu sync.Mutex
			err := Extract(context.Background(), arc, filepath.Join(dir, "tree"), ExtractOptions{SystemXZ: true, Progress: func(read, size int64) {
				mu.Lock()
				reads, sizes = append(reads, read), append(sizes, size)
				mu.Unlock()
			}})
			if err != nil {
				t.Fatal(err)
			}
			n := len(reads)
			if n < 1 {
				t.Fatal("no progress report, want at least the one at the end")
			}
			for i := range reads {
				if sizes[i] != int64(len(data)) {
					t.Fatalf("report %d: size %d, want the archive's %d", i, sizes[i], len(data))
				}
				if i > 0 && reads[i] < reads[i-1] {
					t.Errorf("report %d went back: %d after %d", i, reads[i], reads[i-1])
				}
			}
			if reads[n-1] != int64(len(data)) {
				t.Errorf("last report %d, want %d", reads[n-1], len(data))
			}
			// Reports during the extraction depend on the scheduler; what
			// they report is TestReportOffset's.
		})
	}
}

// TestReportOffset: each tick reports the descriptor's offset as it is
// then (what a system xz reading the same descriptor has consumed), never
// going back and never past the size; stop ends the reports.
func TestReportOffset(t *testing.T) {
	f, err := os.Create(filepath.Join(t.TempDir(), "a"))
	if err != nil {
		t.Fatal(err)
	}
	defer f.Close()
	if _, err := f.Write(make([]byte, 1000)); err != nil {
		t.Fatal(err)
	}
	got := make(chan [2]int64)
	ticks := make(chan time.Time)
	stop := reportOffset(f, 1000, func(read, size int64) { got <- [2]int64{read, size} }, ticks)
	for _, step := range []struct{ seek, want int64 }{{100, 100}, {600, 600}, {300, 600}, {5000, 1000}} {
		if _, err := f.Seek(step.seek, io.SeekStart); err != nil {
			t.Fatal(err)
		}
		ticks <- time.Now()
		if r := <-got; r != [2]int64{step.want, 1000} {
			t.Errorf("offset %d: reported %v, want [%d 1000]", step.seek, r, step.want)
		}
	}
	stop()
	stop()
	select {
	case ticks <- time.Now():
		t.Error("a tick after stop was taken")
	case <-time.After(50 * time.Millisecond):
	}
}

// kernelLikeTar is a plain tar shaped like a kernel tree, in miniature:
// files of a few KiB in directories four deep, and a few in-tree symlinks
// (as arch/*/boot/dts has), so that the per-entry cost of extraction shows.
func kernelLikeTar(b *testing.B, files int) []byte {
	rng := rand.New(rand.NewPCG(3, 4))
	entries := []entry{{name: "linux/", typ: tar.TypeDir, mode: 0o755}}
	dirs := map[string]bool{}
	for i := range files {
		dir := fmt.Sprintf("linux/d%d/s%d/t%d", i%7, i%53, i%211)
		for d := dir; d != "linux" && !dirs[d]; d = filepath.Dir(d) {
			dirs[d] = true
			entries = append(entries, entry{name: d + "/", typ: tar.TypeDir, mode: 0o755})
		}
		body := make([]byte, 512+rng.IntN(8192))
		for j := range body {
			body[j] = byte('a' + rng.IntN(26))
		}
		entries = append(entries, entry{name: fmt.Sprintf("%s/f%d.c", dir, i), typ: tar.TypeReg, mode: 0o644, body: string(body)})
		if i%500 == 0 {
			entries = append(entries, entry{name: fmt.Sprintf("%s/l%d", dir, i), typ: tar.TypeSymlink, link: fmt.Sprintf("../../../d%d/s%d/t%d", (i+1)%7, (i+1)%53, (i+1)%211)})
		}
	}
	return makeTar(b, entries)
}

// BenchmarkExtractTree measures Extract's own per-entry work on a
// synthetic tree (20,000 files, uncompressed, so no decoder in the way); run
// it with TMPDIR=/dev/shm to leave the disk out too:
//
//	TMPDIR=/dev/shm go test -run '^$' -bench ExtractTree -count 5 ./build
func BenchmarkExtractTree(b *testing.B) {
	dir := b.TempDir()
	arc := filepath.Join(dir, "tree.tar")
	if err := os.WriteFile(arc, kernelLikeTar(b, 20000), 0o644); err != nil {
		b.Fatal(err)
	}
	dest := filepath.Join(dir, "t")
	for b.Loop() {
		b.StopTimer()
		if err := os.RemoveAll(dest); err != nil {
			b.Fatal(err)
		}
		b.StartTimer()
		if err := Extract(context.Background(), arc, dest, ExtractOptions{}); err != nil {
			b.Fatal(err)
		}
	}
}
