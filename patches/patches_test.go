package patches

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/sha256"
	"errors"
	"fmt"
	"io/fs"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"testing"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/internal/testenv"
	"github.com/ulikunitz/xz"
)

func write(t *testing.T, root string, files map[string]string) {
	t.Helper()
	for name, body := range files {
		p := filepath.Join(root, name)
		os.MkdirAll(filepath.Dir(p), 0o755)
		if err := os.WriteFile(p, []byte(body), 0o644); err != nil {
			t.Fatal(err)
		}
	}
}

func lines(prefix string, n int) string {
	var b strings.Builder
	for i := 1; i <= n; i++ {
		fmt.Fprintf(&b, "%s line %d\n", prefix, i)
	}
	return b.String()
}

// makePatch writes a unified diff turning files "before" into "after" with the real diff tool.
func makePatch(t *testing.T, before, after map[string]string) []byte {
	t.Helper()
	diff := testenv.LookPath(t, "diff", "diffutils")
	dir := t.TempDir()
	write(t, filepath.Join(dir, "a"), before)
	write(t, filepath.Join(dir, "b"), after)
	os.MkdirAll(filepath.Join(dir, "a"), 0o755)
	cmd := exec.Command(diff, "-Naur", "a", "b")
	cmd.Dir = dir
	out, err := cmd.Output()
	if err != nil && cmd.ProcessState.ExitCode() != 1 {
		t.Fatal(err)
	}
	return out
}

func digest(t *testing.T, root string) string {
	t.Helper()
	var out []string
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			t.Fatal(err)
		}
		rel, _ := filepath.Rel(root, p)
		if d.IsDir() {
			out = append(out, rel+"/")
			return nil
		}
		data, _ := os.ReadFile(p)
		out = append(out, fmt.Sprintf("%s %x", rel, sha256.Sum256(data)))
		return nil
	})
	sort.Strings(out)
	return strings.Join(out, "\n")
}

func compressed(t *testing.T, format string, data []byte) []byte {
	var buf bytes.Buffer
	switch format {
	case "gz":
		w := gzip.NewWriter(&buf)
		w.Write(data)
		w.Close()
	case "xz":
		w, _ := xz.NewWriter(&buf)
		w.Write(data)
		w.Close()
	case "bz2":
		cmd := exec.Command(testenv.LookPath(t, "bzip2", "bzip2"), "-c")
		cmd.Stdin = bytes.NewReader(data)
		out, err := cmd.Output()
		if err != nil {
			t.Fatal(err)
		}
		return out
	default:
		return data
	}
	return buf.Bytes()
}

type fixture struct {
	tree     string
	series   []Patch
	pristine string
}

// newFixture makes a tree and a three-patch series; the second patch is
// broken when bad is set (its context matches nothing in net/ipvs.c).
func newFixture(t *testing.T, bad bool, formats [3]string) fixture {
	testenv.LookPath(t, "patch", "patch")
	tree := t.TempDir()
	orig := map[string]string{
		"net/ipvs.c":      lines("ipvs", 40),
		"net/arp.c":       lines("arp", 40),
		"Documentation/x": "doc\n",
	}
	write(t, tree, orig)

	// 1: edits arp.c and adds a file in a new directory.
	p1 := makePatch(t, map[string]string{"net/arp.c": orig["net/arp.c"]},
		map[string]string{"net/arp.c": strings.Replace(orig["net/arp.c"], "arp line 5\n", "arp line 5 hidden\n", 1), "net/hidden/hidden.c": "int hidden;\n"})
	// 2: edits ipvs.c in two places.
	after2 := strings.Replace(orig["net/ipvs.c"], "ipvs line 3\n", "ipvs line 3 changed\n", 1)
	after2 = strings.Replace(after2, "ipvs line 30\n", "ipvs line 30 changed\n", 1)
	p2 := makePatch(t, map[string]string{"net/ipvs.c": orig["net/ipvs.c"]}, map[string]string{"net/ipvs.c": after2})
	if bad {
		// Hunk 2's context no longer matches the tree.
		p2 = bytes.Replace(p2, []byte(" ipvs line 28\n ipvs line 29\n"), []byte(" ipvs line 28 elsewhere\n ipvs line 29 elsewhere\n"), 1)
		p2 = bytes.Replace(p2, []byte(" ipvs line 31\n ipvs line 32\n"), []byte(" ipvs line 31 elsewhere\n ipvs line 32 elsewhere\n"), 1)
	}
	// 3: edits Documentation/x.
	p3 := makePatch(t, map[string]string{"Documentation/x": "doc\n"}, map[string]string{"Documentation/x": "doc\nmore\n"})

	pdir := t.TempDir()
	var series []Patch
	for i, p := range [][]byte{p1, p2, p3} {
		name := fmt.Sprintf("%d.patch", i+1)
		if formats[i] != "" {
			name += "." + formats[i]
		}
		path := filepath.Join(pdir, name)
		os.WriteFile(path, compressed(t, formats[i], p), 0o644)
		series = append(series, Patch{Name: "set/" + name, Path: path, Strip: 1})
	}
	return fixture{tree: tree, series: series, pristine: digest(t, tree)}
}

func TestApplySeriesAndRecogniseApplied(t *testing.T) {
	f := newFixture(t, false, [3]string{"gz", "xz", "bz2"})
	res, err := Apply(context.Background(), f.tree, f.series)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 3 || len(res.AlreadyApplied) != 0 {
		t.Fatalf("result = %+v, want 3 applied", res)
	}
	if b, _ := os.ReadFile(filepath.Join(f.tree, "net/hidden/hidden.c")); string(b) != "int hidden;\n" {
		t.Error("new file not created")
	}
	patched := digest(t, f.tree)
	if strings.Contains(patched, ".orig") || strings.Contains(patched, ".rej") {
		t.Errorf("backup or reject files left:\n%s", patched)
	}
	res, err = Apply(context.Background(), f.tree, f.series)
	if err != nil {
		t.Fatal(err)
	}
	if len(res.Applied) != 0 || len(res.AlreadyApplied) != 3 {
		t.Fatalf("second Apply = %+v, want all 3 recognised as applied", res)
	}
	if digest(t, f.tree) != patched {
		t.Error("re-applying changed the tree")
	}
}

func TestApplyFailureRestoresTree(t *testing.T) {
	f := newFixture(t, true, [3]string{"", "", ""})
	_, err := Apply(context.Background(), f.tree, f.series)
	var pe *Error
	if !errors.As(err, &pe) {
		t.Fatalf("err = %v, want *patches.Error", err)
	}
	if pe.Patch != "set/2.patch" || pe.File != "net/ipvs.c" || pe.Hunk != 2 || pe.RollbackErr != nil {
		t.Errorf("error = %+v, want patch set/2.patch file net/ipvs.c hunk 2", pe)
	}
	for _, want := range []string{"set/2.patch", "net/ipvs.c", "hunk #2"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("message %q does not name %q", err, want)
		}
	}
	if got := digest(t, f.tree); got != f.pristine {
		t.Errorf("tree not pristine after a failed series:\n%s\nwant\n%s", got, f.pristine)
	}
}

// TestApplyHalfAppliedPatchRestored: patch 2 passes its dry run, then the
// real run fails after changing the tree (as a full disk would leave it).
// patch -R cannot undo that; the tree must still be byte-identical to what
// it was before patch 1, mtimes included, with no file or directory left
// by patch 1.
func TestApplyHalfAppliedPatchRestored(t *testing.T) {
	f := newFixture(t, false, [3]string{"", "", ""})
	mtimes := func() map[string]time.Time {
		m := map[string]time.Time{}
		filepath.WalkDir(f.tree, func(p string, d fs.DirEntry, err error) error {
			if err == nil && !d.IsDir() {
				st, _ := os.Lstat(p)
				m[p] = st.ModTime()
			}
			return nil
		})
		return m
	}
	old := time.Unix(1600000000, 0)
	for _, name := range []string{"net/ipvs.c", "net/arp.c", "Documentation/x"} {
		os.Chtimes(filepath.Join(f.tree, name), old, old)
	}
	before := mtimes()
	real, err := exec.LookPath("patch")
	if err != nil {
		t.Fatal(err)
	}
	// A patch(1) that, on the real run of the patch touching net/ipvs.c,
	// applies it, damages the file further and fails.
	bin := t.TempDir()
	script := `#!/bin/sh
dir= file= dry=
prev=
for a in "$@"; do
	case "$prev" in -d) dir=$a ;; -i) file=$a ;; esac
	case "$a" in --dry-run) dry=1 ;; esac
	prev=$a
done
if [ -z "$dry" ] && grep -q 'net/ipvs.c' "$file"; then
	` + real + ` "$@" >/dev/null
	echo 'half written' >>"$dir/net/ipvs.c"
	echo "patch: **** write error : No space left on device"
	exit 2
fi
exec ` + real + ` "$@"
`
	if err := os.WriteFile(filepath.Join(bin, "patch"), []byte(script), 0o755); err != nil {
		t.Fatal(err)
	}
	t.Setenv("PATH", bin+string(os.PathListSeparator)+os.Getenv("PATH"))
	res, err := Apply(context.Background(), f.tree, f.series)
	if err == nil || !strings.Contains(err.Error(), "apply patch set/2.patch after a clean dry run") {
		t.Fatalf("err = %v, want patch 2 failing after its dry run", err)
	}
	if len(res.Applied) != 0 {
		t.Errorf("result claims %v applied", res.Applied)
	}
	if got := digest(t, f.tree); got != f.pristine {
		t.Errorf("tree not restored after a half-applied patch:\n%s\nwant\n%s", got, f.pristine)
	}
	after := mtimes()
	for p, m := range before {
		if !after[p].Equal(m) {
			t.Errorf("%s: mtime %v, want %v", p, after[p], m)
		}
	}
}

func TestApplyMissingFile(t *testing.T) {
	f := newFixture(t, false, [3]string{"", "", ""})
	os.Remove(filepath.Join(f.tree, "Documentation/x"))
	f.pristine = digest(t, f.tree)
	_, err := Apply(context.Background(), f.tree, f.series)
	var pe *Error
	if !errors.As(err, &pe) || pe.Patch != "set/3.patch" || !strings.Contains(pe.File, "Documentation/x") {
		t.Fatalf("err = %#v, want set/3.patch naming Documentation/x", err)
	}
	if got := digest(t, f.tree); got != f.pristine {
		t.Errorf("tree not restored:\n%s\nwant\n%s", got, f.pristine)
	}
}

func TestResolve(t *testing.T) {
	sum := strings.Repeat("ab", 32)
	zero := 0
	sets := []cluster.PatchSet{
		{Name: "ipvs", Patches: []cluster.PatchEntry{{File: "p/1.patch", SHA256: sum}, {URL: "https://example.invalid/2.patch.gz", SHA256: sum, Strip: &zero}}},
		{Name: "bad", Patches: []cluster.PatchEntry{{File: "x.patch"}}},
	}
	got, err := Resolve(sets, []string{"ipvs"}, "", "/spec")
	if err != nil {
		t.Fatal(err)
	}
	want := []Entry{
		{Name: "ipvs/1.patch", Set: "ipvs", File: "/spec/p/1.patch", SHA256: sum, Strip: 1},
		{Name: "ipvs/2.patch.gz", Set: "ipvs", URL: "https://example.invalid/2.patch.gz", SHA256: sum, Strip: 0},
	}
	if fmt.Sprint(got) != fmt.Sprint(want) {
		t.Errorf("Resolve = %+v\nwant %+v", got, want)
	}
	if _, err := Resolve(sets, []string{"nope"}, "", "/"); !errors.Is(err, ErrUnknownSet) {
		t.Errorf("unknown set: err = %v", err)
	}
	if _, err := Resolve(sets, []string{"bad"}, "", "/"); err == nil || !strings.Contains(err.Error(), "sha256") {
		t.Errorf("unpinned patch: err = %v", err)
	}
}

// TestResolveRoles: an entry with roles goes only into those roles'
// series; one without goes into every role's; a role name that is not one
// is refused, naming the entry.
func TestResolveRoles(t *testing.T) {
	sum := strings.Repeat("cd", 32)
	sets := []cluster.PatchSet{{Name: "lvs", Patches: []cluster.PatchEntry{
		{File: "both.patch", SHA256: sum},
		{File: "director.patch", SHA256: sum, Roles: []string{cluster.RoleDirector}},
		{File: "rs.patch", SHA256: sum, Roles: []string{cluster.RoleRealServer}},
		{File: "explicit-both.patch", SHA256: sum, Roles: []string{cluster.RoleRealServer, cluster.RoleDirector}},
	}}}
	names := func(es []Entry) string {
		var n []string
		for _, e := range es {
			n = append(n, e.Name)
		}
		return strings.Join(n, " ")
	}
	for role, want := range map[string]string{
		cluster.RoleDirector:   "lvs/both.patch lvs/director.patch lvs/explicit-both.patch",
		cluster.RoleRealServer: "lvs/both.patch lvs/rs.patch lvs/explicit-both.patch",
		"":                     "lvs/both.patch lvs/director.patch lvs/rs.patch lvs/explicit-both.patch",
	} {
		got, err := Resolve(sets, []string{"lvs"}, role, "/spec")
		if err != nil {
			t.Fatal(err)
		}
		if names(got) != want {
			t.Errorf("role %q: series %q, want %q", role, names(got), want)
		}
	}
	sets[0].Patches[1].Roles = []string{"router"}
	_, err := Resolve(sets, []string{"lvs"}, cluster.RoleDirector, "/spec")
	if err == nil || !strings.Contains(err.Error(), `entry 2: roles[0]: unknown role "router"`) {
		t.Errorf("unknown role: err = %v", err)
	}
}
