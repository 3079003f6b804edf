package roles

import (
	"encoding/json"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"strings"
	"testing"
)

// TestWriteTreeReplacesOnlyItsOwnRender: an existing output directory is
// replaced only when it is empty or provably an earlier render: a manifest
// lvsforge wrote that lists everything there, unchanged. Anything else is
// refused, naming the first thing that is not lvsforge's, and left exactly
// as it was.
func TestWriteTreeReplacesOnlyItsOwnRender(t *testing.T) {
	s := loadVariant(t, "seed")
	hosts, err := Render(s)
	if err != nil {
		t.Fatal(err)
	}
	earlier := func(t *testing.T, out string) {
		if err := WriteTree(out, "earlier", hosts); err != nil {
			t.Fatal(err)
		}
	}
	write := func(rel, data string) func(*testing.T, string) {
		return func(t *testing.T, out string) {
			os.MkdirAll(filepath.Dir(filepath.Join(out, rel)), 0o755)
			if err := os.WriteFile(filepath.Join(out, rel), []byte(data), 0o644); err != nil {
				t.Fatal(err)
			}
		}
	}
	editManifest := func(edit func(m map[string]any)) func(*testing.T, string) {
		return func(t *testing.T, out string) {
			b, _ := os.ReadFile(filepath.Join(out, ManifestName))
			var m map[string]any
			if err := json.Unmarshal(b, &m); err != nil {
				t.Fatal(err)
			}
			edit(m)
			b, _ = json.Marshal(m)
			os.WriteFile(filepath.Join(out, ManifestName), b, 0o644)
		}
	}
	for _, tc := range []struct {
		name    string
		prepare []func(*testing.T, string)
		refused string // "" when out is replaced
	}{
		{"missing", nil, ""},
		{"empty", []func(*testing.T, string){func(t *testing.T, out string) { os.Mkdir(out, 0o755) }}, ""},
		{"an earlier render", []func(*testing.T, string){earlier}, ""},
		{"a file added to a render", []func(*testing.T, string){earlier, write("rs1/etc/notes.txt", "mine")},
			"rs1/etc/notes.txt is not part of the earlier render"},
		{"a directory added to a render", []func(*testing.T, string){earlier, func(t *testing.T, out string) { os.Mkdir(filepath.Join(out, "keep"), 0o755) }},
			"/keep is not part of the earlier render"},
		{"a rendered file changed", []func(*testing.T, string){earlier, write("rs1/usr/local/sbin/lvs-realserver", "#!/bin/sh\n# my fix\n")},
			"rs1/usr/local/sbin/lvs-realserver was changed since lvsforge rendered it"},
		{"a file that is merely named MANIFEST.json", []func(*testing.T, string){write(ManifestName, `{"hosts": []}`), write("precious.txt", "mine")},
			`MANIFEST.json is not lvsforge's manifest: format "", want "lvsforge.dev/render-manifest/v1"`},
		{"a render by an older lvsforge", []func(*testing.T, string){earlier, editManifest(func(m map[string]any) { delete(m, "format") })},
			"MANIFEST.json has no format: a render by an older lvsforge, or not lvsforge's at all; remove the directory yourself"},
		{"a manifest that is not JSON", []func(*testing.T, string){write(ManifestName, "# my list\n")}, "MANIFEST.json is not lvsforge's manifest: invalid character"},
		{"a manifest with a field lvsforge never writes", []func(*testing.T, string){earlier, editManifest(func(m map[string]any) { m["owner"] = "me" })},
			`MANIFEST.json is not lvsforge's manifest: json: unknown field "owner"`},
		{"a manifest naming a host outside the tree", []func(*testing.T, string){earlier, editManifest(func(m map[string]any) {
			m["hosts"].([]any)[0].(map[string]any)["name"] = ".."
		})}, `MANIFEST.json is not lvsforge's manifest: host ".."`},
		{"a file", []func(*testing.T, string){func(t *testing.T, out string) { os.WriteFile(out, []byte("mine"), 0o644) }}, "is not a directory"},
	} {
		t.Run(tc.name, func(t *testing.T) {
			out := filepath.Join(t.TempDir(), "out")
			for _, p := range tc.prepare {
				p(t, out)
			}
			before := snapshot(t, out)
			err := WriteTree(out, s.Metadata.Name, hosts)
			if tc.refused == "" {
				if err != nil {
					t.Fatal(err)
				}
				if m, _ := readManifestFile(t, out); m.Cluster != s.Metadata.Name || m.Format != ManifestFormat {
					t.Errorf("manifest %+v", m)
				}
				return
			}
			if err == nil || !strings.Contains(err.Error(), tc.refused) || !strings.Contains(err.Error(), "refusing to replace") {
				t.Fatalf("error %v, want %q", err, tc.refused)
			}
			if after := snapshot(t, out); !reflect.DeepEqual(before, after) {
				t.Error("a refused output directory was changed")
			}
			if entries, _ := os.ReadDir(filepath.Dir(out)); len(entries) != 1 {
				t.Errorf("a refused render left %v behind", entries)
			}
		})
	}
}

// TestWriteTreeIntoSymlink: an output directory given as a symlink is
// rendered into (the directory it points to is what an earlier render is
// checked in and replaced); the link itself is never replaced, and a link
// to a directory that is not a render is refused like that directory.
func TestWriteTreeIntoSymlink(t *testing.T) {
	s := loadVariant(t, "seed")
	hosts, err := Render(s)
	if err != nil {
		t.Fatal(err)
	}
	parent := t.TempDir()
	target := filepath.Join(parent, "renders", "seed")
	os.MkdirAll(filepath.Dir(target), 0o755)
	if err := WriteTree(target, "earlier", hosts); err != nil {
		t.Fatal(err)
	}
	link := filepath.Join(parent, "out")
	if err := os.Symlink(filepath.Join("renders", "seed"), link); err != nil {
		t.Fatal(err)
	}
	if err := WriteTree(link, s.Metadata.Name, hosts); err != nil {
		t.Fatal(err)
	}
	if st, err := os.Lstat(link); err != nil || st.Mode()&fs.ModeSymlink == 0 {
		t.Fatalf("the symlink was replaced: %v %v", st, err)
	}
	if m, _ := readManifestFile(t, target); m.Cluster != s.Metadata.Name {
		t.Errorf("the render did not go into the link's directory: %+v", m)
	}

	mine := filepath.Join(parent, "mine")
	os.Mkdir(mine, 0o755)
	os.WriteFile(filepath.Join(mine, "precious.txt"), []byte("mine"), 0o644)
	os.Remove(link)
	os.Symlink(mine, link)
	if err := WriteTree(link, s.Metadata.Name, hosts); err == nil || !strings.Contains(err.Error(), "refusing to replace it") {
		t.Errorf("a link to a directory that is not a render: %v", err)
	}
	if b, _ := os.ReadFile(filepath.Join(mine, "precious.txt")); string(b) != "mine" {
		t.Error("the link's directory was changed")
	}
	os.Remove(link)
	os.Symlink(filepath.Join(parent, "nowhere"), link)
	if err := WriteTree(link, s.Metadata.Name, hosts); err == nil || !strings.Contains(err.Error(), "is a symlink that does not resolve") {
		t.Errorf("a dangling link: %v", err)
	}
}

// readManifestFile reads the manifest WriteTree left in out, decoded and
// as the bytes it wrote.
func readManifestFile(t *testing.T, out string) (Manifest, []byte) {
	t.Helper()
	b, err := os.ReadFile(filepath.Join(out, ManifestName))
	if err != nil {
		t.Fatal(err)
	}
	var m Manifest
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	return m, b
}

// snapshot is every file and directory under root (or root itself), with
// its mode and content.
func snapshot(t *testing.T, root string) map[string]string {
	t.Helper()
	snap := map[string]string{}
	filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return nil
		}
		info, _ := d.Info()
		b, _ := os.ReadFile(p)
		snap[p] = info.Mode().String() + " " + string(b)
		return nil
	})
	return snap
}
