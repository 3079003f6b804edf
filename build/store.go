package build

import (
	"encoding/json"
	"fmt"
	"os"
	"path/filepath"
	"syscall"
)

// store is one build of an artifact into the cache, the transaction every
// artifact (a kernel, ipvsadm) goes through: its directory,
// artifacts/KIND/KEY, appears only when complete, with its manifest.json;
// until then the build works in a temporary directory beside it and writes
// its log there; a failed build leaves nothing but its log, kept as
// logs/KIND-KEY.log where the error message points.
type store struct {
	kind, key string
	// Dir is where the finished artifacts are; Tmp where they are built.
	Dir, Tmp string
	// Log is the build log; LogPath where it is kept if the build fails.
	Log     *os.File
	LogPath string
	logs    string
	done    bool
	// unlock releases the lock that serialises identical builds, when the
	// store took it (lockedStore).
	unlock func()
}

// cachedArtifacts returns the manifest of the finished build of kind with
// key, if there is one.
func (b *Builder) cachedArtifacts(kind, key string) (string, Manifest, bool) {
	dir := filepath.Join(b.Cache.Dir, "artifacts", kind, key)
	m, ok := loadManifest(dir)
	return dir, m, ok
}

// lockedStore takes the lock at lockPath that serialises identical builds
// of kind with key, then looks in the cache again: another process may have
// finished the build while this one waited for the lock. If it did, it
// returns that build's artifacts and no store; otherwise the store, which
// holds the lock until it is closed.
func lockedStore[A any](b *Builder, lockPath, kind, key string, artifacts func(dir string, m Manifest, cached bool) A) (st *store, cached A, err error) {
	unlock, err := lock(lockPath)
	if err != nil {
		return nil, cached, fmt.Errorf("lock build: %w", err)
	}
	if dir, m, ok := b.cachedArtifacts(kind, key); ok {
		unlock()
		return nil, artifacts(dir, m, true), nil
	}
	if st, err = b.beginStore(kind, key); err != nil {
		unlock()
		return nil, cached, err
	}
	st.unlock = unlock
	return st, cached, nil
}

// beginStore opens the build of kind with key. The caller holds the lock
// that serialises identical builds, and has checked the cache after taking
// it; it must call close, and commit on success.
func (b *Builder) beginStore(kind, key string) (*store, error) {
	s := &store{kind: kind, key: key, Dir: filepath.Join(b.Cache.Dir, "artifacts", kind, key), logs: filepath.Join(b.Cache.Dir, "logs")}
	s.LogPath = filepath.Join(s.logs, kind+"-"+key[:16]+".log")
	if err := os.MkdirAll(filepath.Dir(s.Dir), 0o755); err != nil {
		return nil, fmt.Errorf("build %s: %w", kind, err)
	}
	tmp, err := os.MkdirTemp(filepath.Dir(s.Dir), ".build-"+key[:16]+"-")
	if err != nil {
		return nil, fmt.Errorf("build %s: %w", kind, err)
	}
	s.Tmp = tmp
	if s.Log, err = os.Create(filepath.Join(tmp, "build.log")); err != nil {
		os.RemoveAll(tmp)
		return nil, fmt.Errorf("build %s: %w", kind, err)
	}
	return s, nil
}

// close ends the build: after a commit nothing is left to do; otherwise
// the log is kept where the user can read it and the rest removed.
func (s *store) close() {
	if s.unlock != nil {
		defer s.unlock()
	}
	s.Log.Close()
	if s.done {
		return
	}
	os.MkdirAll(s.logs, 0o755)
	os.Rename(filepath.Join(s.Tmp, "build.log"), s.LogPath)
	os.RemoveAll(s.Tmp)
}

// commit writes the manifest and moves the artifacts into place.
func (s *store) commit(m Manifest) error {
	data, err := json.MarshalIndent(m, "", "  ")
	if err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	if err := os.WriteFile(filepath.Join(s.Tmp, "manifest.json"), append(data, '\n'), 0o644); err != nil {
		return fmt.Errorf("write manifest: %w", err)
	}
	s.Log.Close()
	if err := os.Chmod(s.Tmp, 0o755); err != nil {
		return fmt.Errorf("store %s artifacts: %w", s.kind, err)
	}
	if err := os.Rename(s.Tmp, s.Dir); err != nil {
		return fmt.Errorf("store %s artifacts: %w", s.kind, err)
	}
	s.done = true
	return nil
}

// lock takes an exclusive flock on path, so two lvsforge processes do not
// build the same thing at once.
func lock(path string) (func(), error) {
	f, err := os.OpenFile(path, os.O_RDWR|os.O_CREATE, 0o644)
	if err != nil {
		return nil, err
	}
	if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX); err != nil {
		f.Close()
		return nil, err
	}
	return func() { syscall.Flock(int(f.Fd()), syscall.LOCK_UN); f.Close() }, nil
}

func loadManifest(dir string) (Manifest, bool) {
	var m Manifest
	data, err := os.ReadFile(filepath.Join(dir, "manifest.json"))
	if err != nil || json.Unmarshal(data, &m) != nil || m.Key == "" {
		return m, false
	}
	return m, true
}
