package deploy

import (
	"bufio"
	"bytes"
	"context"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io"
	"maps"
	"os"
	"path"
	"slices"
	"sort"
	"strings"
	"sync"
	"sync/atomic"
)

// writesPerHost bounds the files uploaded at once to one host.
const writesPerHost = 8

// ErrHashMismatch means the bytes that landed on the host are not the bytes
// that were meant to: the temporary file is removed and nothing is renamed.
var ErrHashMismatch = errors.New("sha256 mismatch")

// applyEnv is what apply needs besides the connection and the plan.
type applyEnv struct {
	backupDir string
	keep      int    // backups kept per file
	stamp     string // backup name of this run
	// uploadSlot bounds concurrent large uploads across hosts; it returns
	// the release function.
	uploadSlot func(ctx context.Context, size int64) (func(), error)
	sent       *atomic.Int64
}

// apply is the only code that changes a host. It performs p.Ops in order:
// stale temps removed, directories made, every write staged as a temporary
// file and verified by its remote sha256, the old versions backed up, all
// temporaries renamed into place, modes fixed, then commands and daemon
// restarts. On error it returns the temporaries that may still exist so the
// caller can remove them, over a new connection if this one died.
func apply(ctx context.Context, c *Conn, p *Plan, env applyEnv) (leftover []string, err error) {
	s, err := c.SFTP()
	if err != nil {
		return nil, err
	}
	type staged struct {
		op  Op
		tmp string
	}
	var stage []staged
	defer func() {
		if err == nil {
			return
		}
		for _, st := range stage {
			if rerr := s.Remove(st.tmp); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				leftover = append(leftover, st.tmp)
			}
		}
	}()
	for _, op := range p.Ops {
		switch op.Kind {
		case OpRemoveTemp:
			if err := s.Remove(op.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("remove stale temp %s: %w", op.Path, err)
			}
		case OpMkdir:
			if err := s.MkdirAll(op.Path); err != nil {
				return nil, fmt.Errorf("create directory %s: %w", op.Path, err)
			}
		}
	}
	// Writes go several at a time over the one SFTP session: a host far
	// away then costs a few round trips for all its small files, not a few per file.
	var mu sync.Mutex
	var werrs []error
	sem := make(chan struct{}, writesPerHost)
	var wg sync.WaitGroup
	for _, op := range p.Ops {
		if op.Kind != OpWrite {
			continue
		}
		sem <- struct{}{}
		wg.Add(1)
		go func() {
			defer func() { <-sem; wg.Done() }()
			err := writeTemp(ctx, c, op, env, func(tmp string) {
				mu.Lock()
				stage = append(stage, staged{op, tmp})
				mu.Unlock()
			})
			if err != nil {
				mu.Lock()
				werrs = append(werrs, err)
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	if len(werrs) > 0 {
		return nil, errors.Join(werrs...)
	}
	// Renames happen in plan order whatever order the uploads finished in.
	order := map[string]int{}
	for i, op := range p.Ops {
		order[op.Path] = i
	}
	sort.Slice(stage, func(i, j int) bool { return order[stage[i].op.Path] < order[stage[j].op.Path] })
	if len(stage) > 0 {
		var tmps, sums []string
		for _, st := range stage {
			tmps = append(tmps, st.tmp)
			sums = append(sums, st.op.File.sha256())
		}
		if err := verifyRemote(ctx, c, tmps, sums); err != nil {
			return nil, err
		}
		if err := backup(ctx, c, p.Ops, env); err != nil {
			return nil, err
		}
		dirs := map[string]bool{}
		for _, st := range stage {
			dirs[path.Dir(st.op.Path)] = true
		}
		_, posix := s.HasExtension("posix-rename@openssh.com")
		for len(stage) > 0 {
			st := stage[0]
			if posix {
				err = s.PosixRename(st.tmp, st.op.Path)
			} else {
				// rename(2) through the shell: still atomic, for servers
				// without the OpenSSH extension.
				_, err = c.output(ctx, "mv -f -- "+shellQuote(st.tmp)+" "+shellQuote(st.op.Path))
			}
			if err != nil {
				return nil, fmt.Errorf("rename %s into place: %w", st.op.Path, err)
			}
			stage = stage[1:]
		}
		// And the renames themselves, before anything is restarted: the
		// directories that hold them (fsync of each, not a sync of every
		// file system, which waits for every other writer's data too).
		cmd := "sync --"
		for _, d := range slices.Sorted(maps.Keys(dirs)) {
			cmd += " " + shellQuote(d)
		}
		if _, err := c.output(ctx, cmd); err != nil {
			return nil, fmt.Errorf("sync renames: %w", err)
		}
	}
	for _, op := range p.Ops {
		switch op.Kind {
		case OpChmod:
			if err := s.Chmod(op.Path, op.Mode); err != nil {
				return nil, fmt.Errorf("chmod %s: %w", op.Path, err)
			}
		case OpMarkPending:
			if err := s.MkdirAll(path.Dir(op.Path)); err != nil {
				return nil, fmt.Errorf("create directory %s: %w", path.Dir(op.Path), err)
			}
			f, err := s.Create(op.Path)
			if err != nil {
				return nil, fmt.Errorf("record pending steps: %w", err)
			}
			_, err = f.Write([]byte(strings.Join(op.Argv, "\n") + "\n"))
			if cerr := f.Close(); err == nil {
				err = cerr
			}
			if err != nil {
				return nil, fmt.Errorf("record pending steps: %w", err)
			}
		case OpClearPending:
			if err := s.Remove(op.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, fmt.Errorf("clear pending steps: %w", err)
			}
		case OpRun, OpEnable, OpRestart, OpReload:
			if _, err := c.output(ctx, shellJoin(op.Argv)); err != nil {
				return nil, fmt.Errorf("%s on %s: %w", op.Kind, c.Target.Name, err)
			}
		}
	}
	return nil, nil
}

// writeTemp stages one file: a fresh temporary in the destination directory
// (O_EXCL, so nothing else's file is reused), its final mode set before any
// byte arrives (a secret is never readable by others, not even half
// written), then the content streamed while hashed. created is called as soon
// as the temporary exists so that a failure removes it.
func writeTemp(ctx context.Context, c *Conn, op Op, env applyEnv, created func(string)) error {
	s, err := c.SFTP()
	if err != nil {
		return err
	}
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return fmt.Errorf("generate temp name: %w", err)
	}
	tmp := path.Join(path.Dir(op.Path), tempPrefix+hex.EncodeToString(rnd[:])+"-"+path.Base(op.Path))
	if len(path.Base(tmp)) > 255 {
		tmp = path.Join(path.Dir(op.Path), tempPrefix+hex.EncodeToString(rnd[:]))
	}
	release, err := env.uploadSlot(ctx, op.File.size())
	if err != nil {
		return fmt.Errorf("wait for upload slot: %w", err)
	}
	defer release()
	f, err := s.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return fmt.Errorf("create temp for %s: %w", op.Path, err)
	}
	created(tmp)
	if err := f.Chmod(op.Mode); err != nil {
		f.Close()
		return fmt.Errorf("chmod temp for %s: %w", op.Path, err)
	}
	src, err := op.File.open()
	if err != nil {
		f.Close()
		return fmt.Errorf("open content of %s: %w", op.Path, err)
	}
	defer src.Close()
	h := sha256.New()
	n, err := f.ReadFromWithConcurrency(io.TeeReader(ctxReader{ctx, src}, h), 0)
	env.sent.Add(n)
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("upload %s: %w", op.Path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != op.File.sha256() {
		// The local artifact changed between hashing and streaming.
		return fmt.Errorf("upload %s: local content changed: %w", op.Path, ErrHashMismatch)
	}
	return nil
}

// verifyRemote flushes every staged temporary to disk and hashes it, with
// one remote command. The flush comes before the renames: ext4 may
// otherwise commit a rename before the data, and a host that loses power
// then boots with an empty file where the new one should be (seen in the
// VM tests: an empty keepalived.conf after a power-off soon after a push).
func verifyRemote(ctx context.Context, c *Conn, tmps, sums []string) error {
	// sync with files fsyncs each (coreutils >= 8.24, busybox); an older
	// sync ignores them and syncs everything, which is slower, not wrong.
	var files string
	for _, t := range tmps {
		files += " " + shellQuote(t)
	}
	cmd := "sync --" + files + " && sha256sum --" + files
	out, err := c.output(ctx, cmd)
	if err != nil {
		return fmt.Errorf("verify uploads: %w", err)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if sum, name, ok := strings.Cut(sc.Text(), "  "); ok {
			got[name] = sum
		}
	}
	for i, t := range tmps {
		if got[t] != sums[i] {
			return fmt.Errorf("verify upload %s: %w", t, ErrHashMismatch)
		}
	}
	return nil
}

// backup copies every file about to be replaced into
// BACKUPDIR/<path>/<stamp> and keeps only the newest env.keep of each, in one
// remote command. Copies, not hard links: the backup directory may be on
// another filesystem, and a link left in /etc/grub.d or /etc/cron.d would be
// read as configuration.
func backup(ctx context.Context, c *Conn, ops []Op, env applyEnv) error {
	var b strings.Builder
	for _, op := range ops {
		if op.Kind != OpWrite || !op.Backup {
			continue
		}
		if b.Len() == 0 {
			fmt.Fprintf(&b, "umask 077 && mkdir -p %s", shellQuote(env.backupDir))
		}
		d := shellQuote(env.backupDir + op.Path)
		fmt.Fprintf(&b, " && mkdir -p %s && cp -p -- %s %s/%s && (ls -1 %s | sort -r | tail -n +%d | while read -r n; do rm -f -- %s/\"$n\"; done)",
			d, shellQuote(op.Path), d, env.stamp, d, env.keep+1, d)
	}
	if b.Len() == 0 {
		return nil
	}
	if _, err := c.output(ctx, b.String()); err != nil {
		return fmt.Errorf("back up replaced files: %w", err)
	}
	return nil
}

// removeTemps deletes temporaries a failed apply left behind.
func removeTemps(c *Conn, tmps []string) error {
	s, err := c.SFTP()
	if err != nil {
		return err
	}
	var errs []error
	for _, t := range tmps {
		if err := s.Remove(t); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove temp %s: %w", t, err))
		}
	}
	return errors.Join(errs...)
}

// ctxReader stops a stream when the push is cancelled.
type ctxReader struct {
	ctx context.Context
	r   io.Reader
}

func (r ctxReader) Read(p []byte) (int, error) {
	if err := r.ctx.Err(); err != nil {
		return 0, err
	}
	return r.r.Read(p)
}
