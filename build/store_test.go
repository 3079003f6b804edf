package build

import (
	"os"
	"path/filepath"
	"strings"
	"testing"
)

// The build transaction: a failed build leaves only its log, where the
// error points; a committed one appears whole, with its manifest, and is
// found as cached.
func TestStore(t *testing.T) {
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	b := &Builder{Cache: c}
	key := strings.Repeat("ab", 32)

	st, err := b.beginStore("thing", key)
	if err != nil {
		t.Fatal(err)
	}
	st.Log.WriteString("make: *** failed\n")
	st.close()
	if _, err := os.Stat(st.Tmp); !os.IsNotExist(err) {
		t.Errorf("the failed build's directory is still there: %v", err)
	}
	if log, err := os.ReadFile(st.LogPath); err != nil || string(log) != "make: *** failed\n" {
		t.Errorf("the failed build's log: %q, %v", log, err)
	}
	if _, _, ok := b.cachedArtifacts("thing", key); ok {
		t.Fatal("a failed build is cached")
	}

	st, err = b.beginStore("thing", key)
	if err != nil {
		t.Fatal(err)
	}
	if err := os.WriteFile(filepath.Join(st.Tmp, "out"), []byte("x"), 0o644); err != nil {
		t.Fatal(err)
	}
	if err := st.commit(Manifest{Kind: "thing", Key: key}); err != nil {
		t.Fatal(err)
	}
	st.close()
	dir, m, ok := b.cachedArtifacts("thing", key)
	if !ok || m.Key != key || dir != st.Dir {
		t.Fatalf("the committed build is not cached: %s %+v %v", dir, m, ok)
	}
	for _, f := range []string{"out", "build.log", "manifest.json"} {
		if _, err := os.Stat(filepath.Join(dir, f)); err != nil {
			t.Errorf("committed build lacks %s: %v", f, err)
		}
	}
}
