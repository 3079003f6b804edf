package build

import (
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
)

// The build transaction: a failed build leaves only its log, where the
// error points; a committed one appears whole, with its manifest, and is
// found as cached.
func TestStore(t *testing.T) {
	b := &Builder{Cache: emptyCache(t)}
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

// TestLockedStore: the lock is held while a store is open and released when
// it closes; a build another process committed while this one waited is
// returned as cached, without a store and without keeping the lock.
func TestLockedStore(t *testing.T) {
	b := &Builder{Cache: emptyCache(t)}
	key := strings.Repeat("cd", 32)
	lockPath := filepath.Join(t.TempDir(), "thing.lock")
	artifacts := func(dir string, m Manifest, cached bool) *Manifest {
		if !cached || m.Key != key || dir != filepath.Join(b.Cache.Dir, "artifacts", "thing", key) {
			t.Errorf("artifacts(%s, %+v, %v)", dir, m, cached)
		}
		return &m
	}
	held := func() bool {
		f, err := os.OpenFile(lockPath, os.O_RDWR, 0)
		if err != nil {
			t.Fatal(err)
		}
		defer f.Close()
		err = syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB)
		return err != nil
	}

	st, cached, err := lockedStore(b, lockPath, "thing", key, artifacts)
	if err != nil || st == nil || cached != nil {
		t.Fatalf("no build yet: store %v, cached %v, %v", st, cached, err)
	}
	if !held() {
		t.Error("the lock is free while the store is open")
	}
	if err := st.commit(Manifest{Kind: "thing", Key: key}); err != nil {
		t.Fatal(err)
	}
	st.close()
	if held() {
		t.Error("the lock is held after the store closed")
	}

	st, cached, err = lockedStore(b, lockPath, "thing", key, artifacts)
	if err != nil || st != nil || cached == nil || cached.Key != key {
		t.Fatalf("a committed build: store %v, cached %v, %v", st, cached, err)
	}
	if held() {
		t.Error("the lock is held after a cached answer")
	}
}

// emptyCache is an empty cache of the test's own.
func emptyCache(t *testing.T) *Cache {
	t.Helper()
	c, err := NewCache(t.TempDir())
	if err != nil {
		t.Fatal(err)
	}
	return c
}
