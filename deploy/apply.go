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
	"os"
	"path"
	"strings"
	"sync"
	"sync/atomic"
	"time"

	"github.com/lvsforge/lvsforge/install"
	"github.com/lvsforge/lvsforge/internal/shell"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"

	"github.com/lvsforge/lvsforge/internal/syncbuf"
)

// writesPerHost bounds the files uploaded at once to one host.
const writesPerHost = 8

// commitTimeout bounds the commit (pending record, renames, their sync,
// owner and mode changes), which Ctrl-C does not interrupt: cut half-way it
// would leave some files new and some old.
const commitTimeout = 2 * time.Minute

// lockFile is flock(1)ed by every push for as long as it works on the host.
const lockFile = install.StateDir + "/lock"

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
	largeFile  int64
	sent       *atomic.Int64
}

// hostShell is one remote shell kept for a whole push: it holds the host's
// push lock (lockFile, flock(1)ed on a descriptor the shell keeps open,
// after waiting for a push that holds it), then runs the fact script, the
// checks of the uploads and the sync of the renames, one line each, with
// no new session (a channel, a fork of the login shell, three round trips)
// for any of them. Closing its stdin, or the connection dropping, ends it
// and releases the lock. A host without flock is worked on unlocked.
type hostShell struct {
	c      *Conn
	mu     sync.Mutex
	sess   *ssh.Session
	stdin  io.WriteCloser
	out    *bufio.Reader
	stderr syncbuf.Buffer
	broken error
}

// shellDone ends each command's output, with its exit status.
const shellDone = "\x1elvsforge-done"

// openShell starts the push's shell; the lock is taken before the first
// command runs.
func openShell(c *Conn) (*hostShell, error) {
	s, err := c.client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("open session on %s: %w", c.Target.Name, err)
	}
	h := &hostShell{c: c, sess: s}
	if h.stdin, err = s.StdinPipe(); err == nil {
		var out io.Reader
		if out, err = s.StdoutPipe(); err == nil {
			h.out = bufio.NewReader(out)
		}
	}
	if err != nil {
		s.Close()
		return nil, fmt.Errorf("open shell on %s: %w", c.Target.Name, err)
	}
	s.Stderr = &h.stderr
	// Commands read nothing from stdin: it carries the next command.
	cmd := fmt.Sprintf(`mkdir -p %s || exit 1; exec 9>>%s || exit 1; if command -v flock >/dev/null 2>&1; then flock 9 || exit 1; fi; `+
		`while IFS= read -r l; do eval "$l" </dev/null; printf '\n%s %%d\n' "$?"; done`, path.Dir(lockFile), lockFile, shellDone)
	if err := s.Start(cmd); err != nil {
		s.Close()
		return nil, fmt.Errorf("start shell on %s: %w", c.Target.Name, err)
	}
	return h, nil
}

// Run runs one command line and returns its stdout, as Conn.output does.
func (h *hostShell) Run(ctx context.Context, cmd string) ([]byte, error) {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.broken != nil {
		return nil, h.broken
	}
	if err := ctx.Err(); err != nil {
		return nil, fmt.Errorf("run %q on %s: %w", cmd, h.c.Target.Name, err)
	}
	if strings.ContainsAny(cmd, "\n\r") {
		return nil, fmt.Errorf("run %q on %s: a command line holds a newline", cmd, h.c.Target.Name)
	}
	_, errStart := h.stderr.Since(0)
	type result struct {
		out    []byte
		status int
		err    error
	}
	got := make(chan result, 1)
	go func() {
		var b bytes.Buffer
		for {
			line, err := h.out.ReadBytes('\n')
			if rest, ok := bytes.CutPrefix(line, []byte(shellDone+" ")); ok && err == nil {
				var st int
				fmt.Sscan(string(rest), &st)
				got <- result{bytes.TrimSuffix(b.Bytes(), []byte("\n")), st, nil}
				return
			}
			b.Write(line)
			if err != nil {
				got <- result{err: err}
				return
			}
		}
	}()
	if _, err := io.WriteString(h.stdin, cmd+"\n"); err != nil {
		h.broken = fmt.Errorf("run %q on %s: shell gone: %w", cmd, h.c.Target.Name, err)
		h.sess.Close()
		return nil, h.broken
	}
	timeout := time.NewTimer(h.c.opts.CommandTimeout)
	defer timeout.Stop()
	select {
	case r := <-got:
		if r.err != nil {
			// The shell ended: its preamble (lock) failed, or the
			// connection dropped.
			werr := h.sess.Wait()
			stderr, _ := h.stderr.Since(errStart)
			var ee *ssh.ExitError
			if errors.As(werr, &ee) {
				h.broken = &CommandError{Cmd: cmd, Status: ee.ExitStatus(), Stderr: stderr}
			} else {
				h.broken = fmt.Errorf("run %q on %s: %w", cmd, h.c.Target.Name, errors.Join(werr, r.err))
			}
			return nil, h.broken
		}
		if r.status != 0 {
			stderr, _ := h.stderr.Since(errStart)
			return r.out, &CommandError{Cmd: cmd, Status: r.status, Stderr: stderr}
		}
		return r.out, nil
	case <-ctx.Done():
		h.broken = fmt.Errorf("run %q on %s: %w", cmd, h.c.Target.Name, ctx.Err())
	case <-timeout.C:
		h.broken = fmt.Errorf("run %q on %s: %w", cmd, h.c.Target.Name, context.DeadlineExceeded)
	}
	// The command may still run: hang up on it.
	h.sess.Signal(ssh.SIGKILL)
	h.sess.Close()
	return nil, h.broken
}

// Close ends the shell, which releases the lock.
func (h *hostShell) Close() {
	h.stdin.Close()
	waited := make(chan struct{})
	go func() { h.sess.Wait(); close(waited) }()
	select {
	case <-waited:
	case <-time.After(5 * time.Second):
	}
	h.sess.Close()
}

// apply is the only code that changes a host. It performs p.Ops in order:
// stale temps removed, directories made, every write staged as a temporary
// file, fsynced and verified by its remote sha256 as soon as it landed, the
// old versions backed up, the pending steps recorded, all temporaries
// renamed into place, their directories synced, owners and modes fixed,
// then commands and daemon restarts. Ctrl-C stops it before the commit
// (the pending record, renames, sync, chown and chmod) or after it, never
// inside. On error it returns the temporaries that may still exist so the
// caller can remove them, over a new connection if this one died, and the
// index in p.Ops of the op that failed: the ops before it ran (the uploads
// excepted: that failure is the first write's).
func apply(ctx context.Context, c *Conn, sh *hostShell, p *Plan, env applyEnv) (leftover []string, failed int, err error) {
	s, err := c.SFTP()
	if err != nil {
		return nil, 0, err
	}
	var mu sync.Mutex
	tmps := map[string]string{} // target path -> its temporary, until renamed
	defer func() {
		if err == nil {
			return
		}
		for _, tmp := range tmps {
			if rerr := s.Remove(tmp); rerr != nil && !errors.Is(rerr, os.ErrNotExist) {
				leftover = append(leftover, tmp)
			}
		}
	}()
	firstWrite := -1
	for i, op := range p.Ops {
		switch op.Kind {
		case OpRemoveTemp:
			if err := s.Remove(op.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, i, fmt.Errorf("remove stale temp %s: %w", op.Path, err)
			}
		case OpMkdir:
			if err := s.MkdirAll(op.Path); err != nil {
				return nil, i, fmt.Errorf("create directory %s: %w", op.Path, err)
			}
		case OpWrite:
			if firstWrite < 0 {
				firstWrite = i
			}
		}
	}
	// Writes go several at a time over the one SFTP session: a host far
	// away then costs a few round trips for all its small files, not a few
	// per file. Each is checked on the host as soon as it has landed, while
	// the others are still uploading.
	v := newVerifier(ctx, sh)
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
			tmp, synced, err := writeTemp(ctx, c, op, env, func(tmp string) {
				mu.Lock()
				tmps[op.Path] = tmp
				mu.Unlock()
			})
			if err == nil {
				v.add(landed{tmp: tmp, sum: op.File.SHA256(), synced: synced, large: op.File.Size() >= env.largeFile})
				return
			}
			mu.Lock()
			werrs = append(werrs, err)
			mu.Unlock()
		}()
	}
	wg.Wait()
	if verr := v.wait(); verr != nil {
		werrs = append(werrs, verr)
	}
	if len(werrs) > 0 {
		return nil, firstWrite, errors.Join(werrs...)
	}
	var commit context.Context
	for i, op := range p.Ops {
		switch op.Kind {
		case OpRemoveTemp, OpMkdir, OpWrite, OpVerify:
			// Done above.
			continue
		case OpMarkPending, OpRename, OpSync, OpChmod, OpChown:
			if commit == nil {
				if err := ctx.Err(); err != nil {
					return nil, i, fmt.Errorf("commit on %s: %w", c.Target.Name, err)
				}
				cctx, cancel := context.WithTimeout(context.WithoutCancel(ctx), commitTimeout)
				defer cancel()
				// SFTP requests take no context: a commit that outlives its
				// timeout is cut by closing the connection.
				defer context.AfterFunc(cctx, func() {
					if cctx.Err() == context.DeadlineExceeded {
						c.Close()
					}
				})()
				commit = cctx
			}
		}
		opCtx := ctx
		if commit != nil {
			opCtx = commit
		}
		switch op.Kind {
		case OpBackup:
			if err := backup(ctx, c, op, env); err != nil {
				return nil, i, err
			}
		case OpMarkPending:
			if err := writePending(opCtx, c, op.Argv); err != nil {
				return nil, i, err
			}
		case OpRename:
			tmp := tmps[op.Path]
			if err := rename(opCtx, c, tmp, op.Path); err != nil {
				return nil, i, fmt.Errorf("rename %s into place: %w", op.Path, err)
			}
			mu.Lock()
			delete(tmps, op.Path)
			mu.Unlock()
		case OpSync:
			// The renames themselves, before anything is restarted: the
			// directories that hold them (fsync of each, not a sync of every
			// file system, which waits for every other writer's data too).
			if _, err := sh.Run(opCtx, "sync -- "+shell.Join(op.Paths)); err != nil {
				return nil, i, fmt.Errorf("sync renames: %w", err)
			}
		case OpChown:
			if err := s.Chown(op.Path, op.UID, op.GID); err != nil {
				return nil, i, fmt.Errorf("chown %s: %w", op.Path, err)
			}
		case OpChmod:
			if err := s.Chmod(op.Path, op.Mode); err != nil {
				return nil, i, fmt.Errorf("chmod %s: %w", op.Path, err)
			}
		case OpClearPending:
			if err := s.Remove(op.Path); err != nil && !errors.Is(err, os.ErrNotExist) {
				return nil, i, fmt.Errorf("clear pending steps: %w", err)
			}
		case OpRun, OpEnable, OpRestart, OpReload:
			// The commit is over: Ctrl-C stops the commands, and the
			// pending record has the next push redo them.
			commit = nil
			if _, err := c.output(ctx, shell.Join(op.Argv)); err != nil {
				return nil, i, fmt.Errorf("%s: %w", op.Step, err)
			}
		default:
			return nil, i, fmt.Errorf("apply %s: unknown op %q", c.Target.Name, op.Kind)
		}
	}
	return nil, len(p.Ops), nil
}

// tempName is a fresh temporary's name beside target.
func tempName(target string) (string, error) {
	var rnd [6]byte
	if _, err := rand.Read(rnd[:]); err != nil {
		return "", fmt.Errorf("generate temp name: %w", err)
	}
	tmp := path.Join(path.Dir(target), tempPrefix+hex.EncodeToString(rnd[:])+"-"+path.Base(target))
	if len(path.Base(tmp)) > 255 {
		tmp = path.Join(path.Dir(target), tempPrefix+hex.EncodeToString(rnd[:]))
	}
	return tmp, nil
}

// rename moves tmp to target atomically: posix-rename@openssh.com, or
// rename(2) through the shell on servers without the extension.
func rename(ctx context.Context, c *Conn, tmp, target string) error {
	s, err := c.SFTP()
	if err != nil {
		return err
	}
	if _, posix := s.HasExtension("posix-rename@openssh.com"); posix {
		return s.PosixRename(tmp, target)
	}
	_, err = c.output(ctx, "mv -f -- "+shell.Quote(tmp)+" "+shell.Quote(target))
	return err
}

// hasFsync reports whether the server fsyncs an open file on request.
func hasFsync(s *sftp.Client) bool {
	v, ok := s.HasExtension("fsync@openssh.com")
	return ok && v == "1"
}

// writeTemp stages one file: a fresh temporary in the destination directory
// (O_EXCL, so nothing else's file is reused), its owner and final mode set
// before any byte arrives (a secret is never readable by others, not even
// half written), then the content streamed while hashed and, where the
// server can, fsynced before it is closed (synced). created is called as
// soon as the temporary exists so that a failure removes it.
func writeTemp(ctx context.Context, c *Conn, op Op, env applyEnv, created func(string)) (tmp string, synced bool, err error) {
	s, err := c.SFTP()
	if err != nil {
		return "", false, err
	}
	if tmp, err = tempName(op.Path); err != nil {
		return "", false, err
	}
	release, err := env.uploadSlot(ctx, op.File.Size())
	if err != nil {
		return "", false, fmt.Errorf("wait for upload slot: %w", err)
	}
	defer release()
	f, err := s.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return "", false, fmt.Errorf("create temp for %s: %w", op.Path, err)
	}
	created(tmp)
	// Owner first: chown clears set-id bits that chmod sets.
	if err := f.Chown(op.UID, op.GID); err != nil {
		f.Close()
		return "", false, fmt.Errorf("chown temp for %s: %w", op.Path, err)
	}
	if err := f.Chmod(op.Mode); err != nil {
		f.Close()
		return "", false, fmt.Errorf("chmod temp for %s: %w", op.Path, err)
	}
	src, err := op.File.Open()
	if err != nil {
		f.Close()
		return "", false, fmt.Errorf("open content of %s: %w", op.Path, err)
	}
	defer src.Close()
	h := sha256.New()
	n, err := f.ReadFromWithConcurrency(io.TeeReader(ctxReader{ctx, src}, h), 0)
	env.sent.Add(n)
	if err == nil && op.File.Size() >= env.largeFile && hasFsync(s) {
		// A large file is fsynced by the SFTP server as soon as it has
		// landed; small ones are synced with their check, by another
		// process, so that their journal commits do not hold up the
		// large file's writes in the single-threaded server.
		//
		// Flushed before the rename: ext4 may otherwise commit a rename
		// before the data, and a host that loses power then boots with an
		// empty file where the new one should be (seen in the VM tests:
		// an empty keepalived.conf after a power-off soon after a push).
		err = f.Sync()
		synced = err == nil
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return "", false, fmt.Errorf("upload %s: %w", op.Path, err)
	}
	if got := hex.EncodeToString(h.Sum(nil)); got != op.File.SHA256() {
		// The local artifact changed between hashing and streaming.
		return "", false, fmt.Errorf("upload %s: local content changed: %w", op.Path, ErrHashMismatch)
	}
	return tmp, synced, nil
}

// verifier checks uploads on the host as they land: one remote command
// (sha256sum, after a sync of the files the server could not fsync) for
// every batch that landed while the previous one was being checked, so the
// small files are verified while a large one is still uploading and only
// the last file's check follows the last byte.
type verifier struct {
	ctx  context.Context
	sh   *hostShell
	mu   sync.Mutex
	cond *sync.Cond
	// queue holds landed, unchecked uploads; closed is set by wait.
	queue  []landed
	closed bool
	errs   []error
	done   chan struct{}
}

type landed struct {
	tmp, sum      string
	synced, large bool
}

func newVerifier(ctx context.Context, sh *hostShell) *verifier {
	v := &verifier{ctx: ctx, sh: sh, done: make(chan struct{})}
	v.cond = sync.NewCond(&v.mu)
	go v.loop()
	return v
}

func (v *verifier) add(l landed) {
	v.mu.Lock()
	v.queue = append(v.queue, l)
	v.mu.Unlock()
	v.cond.Signal()
}

// wait returns once every upload added is checked.
func (v *verifier) wait() error {
	v.mu.Lock()
	v.closed = true
	v.mu.Unlock()
	v.cond.Signal()
	<-v.done
	return errors.Join(v.errs...)
}

func (v *verifier) loop() {
	defer close(v.done)
	for {
		v.mu.Lock()
		for len(v.queue) == 0 && !v.closed {
			v.cond.Wait()
		}
		batch := v.queue
		v.queue = nil
		closed := v.closed
		v.mu.Unlock()
		if len(batch) > 0 {
			if err := verifyRemote(v.ctx, v.sh, batch); err != nil {
				v.errs = append(v.errs, err)
			}
		}
		if closed && len(batch) == 0 {
			return
		}
	}
}

// verifyRemote hashes a batch of staged temporaries with one remote
// command, first flushing to disk those the server did not fsync (sync
// with files fsyncs each: coreutils >= 8.24, busybox; an older sync
// ignores them and syncs everything, which is slower, not wrong).
func verifyRemote(ctx context.Context, sh *hostShell, batch []landed) error {
	var small, large, unsynced []string
	for _, l := range batch {
		if l.large {
			large = append(large, shell.Quote(l.tmp))
		} else {
			small = append(small, shell.Quote(l.tmp))
		}
		if !l.synced {
			unsynced = append(unsynced, shell.Quote(l.tmp))
		}
	}
	cmd := hashScript(small, large, true)
	if len(unsynced) > 0 {
		cmd = "sync -- " + strings.Join(unsynced, " ") + " && " + cmd
	}
	out, err := sh.Run(ctx, cmd)
	if err != nil {
		return fmt.Errorf("verify uploads: %w", err)
	}
	got := map[string]string{}
	sc := bufio.NewScanner(bytes.NewReader(out))
	for sc.Scan() {
		if sum, name, ok := sumLine(sc.Text()); ok {
			got[name] = sum
		}
	}
	for _, l := range batch {
		if got[l.tmp] != l.sum {
			return fmt.Errorf("verify upload %s: %w", l.tmp, ErrHashMismatch)
		}
	}
	return nil
}

// writePending records the steps of a push that are not done yet
// (pendingFile), atomically: a temporary beside it, fsynced, renamed over
// it. It is written before the first rename of the push and its directory
// is synced with theirs.
func writePending(ctx context.Context, c *Conn, steps []string) error {
	s, err := c.SFTP()
	if err != nil {
		return err
	}
	if err := s.MkdirAll(path.Dir(pendingFile)); err != nil {
		return fmt.Errorf("record pending steps: %w", err)
	}
	tmp, err := tempName(pendingFile)
	if err != nil {
		return err
	}
	f, err := s.OpenFile(tmp, os.O_WRONLY|os.O_CREATE|os.O_EXCL)
	if err != nil {
		return fmt.Errorf("record pending steps: %w", err)
	}
	_, err = f.Write([]byte(strings.Join(steps, "\n") + "\n"))
	if err == nil && hasFsync(s) {
		err = f.Sync()
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err == nil {
		err = rename(ctx, c, tmp, pendingFile)
	}
	if err != nil {
		s.Remove(tmp)
		return fmt.Errorf("record pending steps: %w", err)
	}
	return nil
}

// backup copies every file about to be replaced into
// BACKUPDIR/<path>/<stamp> and keeps only the newest env.keep of each, in one
// remote command. Copies, not hard links: the backup directory may be on
// another filesystem, and a link left in /etc/grub.d or /etc/cron.d would be
// read as configuration.
func backup(ctx context.Context, c *Conn, op Op, env applyEnv) error {
	var b strings.Builder
	fmt.Fprintf(&b, "umask 077 && mkdir -p %s", shell.Quote(env.backupDir))
	for _, p := range op.Paths {
		d := shell.Quote(env.backupDir + p)
		fmt.Fprintf(&b, " && mkdir -p %s && cp -p -- %s %s/%s && (ls -1 %s | sort -r | tail -n +%d | while read -r n; do rm -f -- %s/\"$n\"; done)",
			d, shell.Quote(p), d, env.stamp, d, env.keep+1, d)
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
