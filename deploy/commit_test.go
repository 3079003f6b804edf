package deploy_test

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/install"

	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/deploy/sshtest"
)

// hangingSync is put first in a test host's PATH as sync: while
// /etc/lvsforge-test-hang exists, a sync of directories (the one after the
// renames) says so in /var/log/lvsforge-test-hung and waits for
// /var/log/lvsforge-test-release, so that a test can cut a push off in
// the middle of its commit.
const hangingSync = `#!/bin/sh
for a; do
	if [ -d "$a" ] && [ -e /etc/lvsforge-test-hang ]; then
		echo hung >> /var/log/lvsforge-test-hung
		while [ ! -e /var/log/lvsforge-test-release ]; do sleep 0.05; done
		echo synced >> /var/log/lvsforge-test-hung
		break
	fi
done
PATH=/usr/bin:/bin
exec sync "$@"
`

func installHangingSync(t *testing.T, h *sshtest.Host) {
	t.Helper()
	if _, err := h.ExecInput(strings.NewReader(hangingSync), "sh", "-c", "mkdir -p /usr/local/bin && cat > /usr/local/bin/sync && chmod 0755 /usr/local/bin/sync"); err != nil {
		t.Fatal(err)
	}
}

// waitFor polls the host's file p until it exists.
func waitFor(t *testing.T, h *sshtest.Host, p string) {
	t.Helper()
	deadline := time.Now().Add(30 * time.Second)
	for {
		if _, err := os.Stat(h.Path(p)); err == nil {
			return
		}
		if time.Now().After(deadline) {
			t.Fatalf("%s never appeared on %s", p, h.Name)
		}
		time.Sleep(20 * time.Millisecond)
	}
}

// TestInterruptedCommitRestarts: a push cut off after its files were
// renamed into place but before the daemons restarted (the connection
// dropped, or Ctrl-C, during the sync of the renames) leaves its restarts
// recorded; the next push, which finds every file already matching, runs
// them. Ctrl-C does not cut the commit itself: the sync it was waiting for
// completes first.
func TestInterruptedCommitRestarts(t *testing.T) {
	for _, how := range []string{"kill", "cancel"} {
		t.Run(how, func(t *testing.T) {
			e := newEnv(t, 1)
			h := e.c.Hosts[0]
			installHangingSync(t, h)
			mustPush(t, e.hosts(files("v1")), e.opts)
			before := readHost(t, h, "/var/log/lvsforge-test-daemons")

			if _, err := h.Exec("touch", "/etc/lvsforge-test-hang"); err != nil {
				t.Fatal(err)
			}
			v2 := files("v2")
			v2[2].Data = append([]byte("# v2\n"), v2[2].Data...) // ha.cf: heartbeat restarts
			ctx, cancel := context.WithCancel(context.Background())
			defer cancel()
			done := make(chan *deploy.Report, 1)
			go func() { done <- deploy.Push(ctx, e.hosts(v2), e.opts) }()
			waitFor(t, h, "/var/log/lvsforge-test-hung")
			if how == "kill" {
				h.KillSessions()
			} else {
				cancel()
				time.Sleep(300 * time.Millisecond)
			}
			if _, err := h.Exec("sh", "-c", "touch /var/log/lvsforge-test-release && rm /etc/lvsforge-test-hang"); err != nil {
				t.Fatal(err)
			}
			r := <-done
			if r.Err() == nil {
				t.Fatal("the interrupted push succeeded")
			}
			t.Logf("interrupted push: %v", r.Err())
			if how == "cancel" {
				if !errors.Is(r.Err(), context.Canceled) {
					t.Errorf("cancelled push: %v, want context.Canceled", r.Err())
				}
				if got := readHost(t, h, "/var/log/lvsforge-test-hung"); got != "hung\nsynced\n" {
					t.Errorf("Ctrl-C cut the sync of the renames: %q", got)
				}
			}
			for _, f := range v2 {
				if got := readHost(t, h, f.Path); got != string(f.Data) {
					t.Errorf("%s not renamed into place: %q", f.Path, got)
				}
			}
			if got := readHost(t, h, "/var/log/lvsforge-test-daemons"); got != before {
				t.Fatalf("daemons touched by the interrupted push: %q", got)
			}

			r = mustPush(t, e.hosts(v2), e.opts)
			if hr := r.Hosts[0]; len(hr.Changed) != 0 || hr.BytesSent != 0 {
				t.Errorf("next push transferred %v (%d bytes)", hr.Changed, hr.BytesSent)
			}
			if got := readHost(t, h, "/var/log/lvsforge-test-daemons"); got != before+"heartbeat enable\nheartbeat restart\nldirectord restart\n" {
				t.Errorf("the next push did not run the restarts: %q after %q", got, before)
			}
			if r := mustPush(t, e.hosts(v2), e.opts); len(r.Hosts[0].Plan) != 0 {
				t.Errorf("third push is not a no-op: %q", r.Hosts[0].Plan)
			}
		})
	}
}

func owner(t *testing.T, h *sshtest.Host, p string) [2]uint32 {
	t.Helper()
	st, err := os.Stat(h.Path(p))
	if err != nil {
		t.Fatal(err)
	}
	sys := st.Sys().(*syscall.Stat_t)
	return [2]uint32{sys.Uid, sys.Gid}
}

// TestOwner: files are root's unless they say otherwise, whoever owned
// the file before; an owner changed on the host is put back by the next
// push (a chown, nothing transferred), and the push after that is a no-op.
func TestOwner(t *testing.T) {
	e := newEnv(t, 1)
	h := e.c.Hosts[0]
	if _, err := h.Exec("sh", "-c", "mkdir -p /etc/ha.d && echo old > /etc/ha.d/ha.cf && chown 65534:65534 /etc/ha.d/ha.cf"); err != nil {
		t.Fatal(err)
	}
	fs := []install.File{
		{Path: "/etc/ha.d/ha.cf", Data: []byte("node a\n")},
		{Path: "/etc/ha.d/owned", Data: []byte("daemon's\n"), UID: 1, GID: 2},
	}
	mustPush(t, e.hosts(fs), e.opts)
	if o := owner(t, h, "/etc/ha.d/ha.cf"); o != [2]uint32{0, 0} {
		t.Errorf("replaced file owned by %v, want root", o)
	}
	if o := owner(t, h, "/etc/ha.d/owned"); o != [2]uint32{1, 2} {
		t.Errorf("file owned by %v, want 1:2", o)
	}
	if _, err := h.Exec("chown", "65534:65534", "/etc/ha.d/ha.cf"); err != nil {
		t.Fatal(err)
	}
	r := mustPush(t, e.hosts(fs), e.opts)
	if hr := r.Hosts[0]; len(hr.Changed) != 1 || hr.BytesSent != 0 || len(hr.Plan) != 1 || hr.Plan[0] != "chown 0:0 /etc/ha.d/ha.cf (was 65534:65534)" {
		t.Errorf("push after a chown on the host: changed %v, sent %d, plan %q", hr.Changed, hr.BytesSent, hr.Plan)
	}
	if o := owner(t, h, "/etc/ha.d/ha.cf"); o != [2]uint32{0, 0} {
		t.Errorf("owner not restored: %v", o)
	}
	if r := mustPush(t, e.hosts(fs), e.opts); len(r.Hosts[0].Plan) != 0 {
		t.Errorf("no-op push: %q", r.Hosts[0].Plan)
	}
}

// TestInitMismatch: a host whose init system is not the spec's is not
// touched, and the error says what the host runs and what to set.
func TestInitMismatch(t *testing.T) {
	e := newEnv(t, 2)
	hosts := e.hosts(files("v1"))
	hosts[0].Init = cluster.InitSystemd
	hosts[1].Init = cluster.InitSysV
	r := deploy.Push(context.Background(), hosts, e.opts)
	err := r.Hosts[0].Err()
	if !errors.Is(err, deploy.ErrInitMismatch) || !strings.Contains(err.Error(), "runs sysv") || !strings.Contains(err.Error(), "set `init: sysv` on host h0") {
		t.Fatalf("push to a sysv host specified as systemd: %v", err)
	}
	if r.Hosts[1].Err() != nil {
		t.Errorf("the matching host failed: %v", r.Hosts[1].Err())
	}
	if _, err := os.Stat(e.c.Hosts[0].Path("/etc/ha.d/ha.cf")); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("the mismatched host was written to: %v", err)
	}
}

// TestHostnameMismatch: a host whose uname -n is not its name in the spec
// (heartbeat's node, keepalived's router_id) is not touched, also in a
// dry-run; the error names both and the fix. A fully qualified name works
// when the spec uses it too.
func TestHostnameMismatch(t *testing.T) {
	e := newEnv(t, 1)
	h := e.c.Hosts[0]
	for _, c := range []struct {
		uname, spec string
		dryRun      bool
		fix         string // "" when the push must succeed
	}{
		{"web7", "h0", false, `set the host's name in the spec to "web7"`},
		{"web7", "h0", true, `set the host's name in the spec to "web7"`},
		{"lvs1.example.com", "lvs1", false, `set the host's name in the spec to "lvs1.example.com" (a fully qualified name is fine), or rename the host to "lvs1"`},
		{"lvs1.example.com", "lvs1.example.com", false, ""},
	} {
		if err := h.SetHostname(c.uname); err != nil {
			t.Fatal(err)
		}
		hosts := e.hosts(files("v1"))
		hosts[0].Target.Name = c.spec
		o := e.opts
		o.DryRun = c.dryRun
		e.out.Reset()
		r := deploy.Push(context.Background(), hosts, o)
		err := r.Hosts[0].Err()
		if c.fix == "" {
			if err != nil {
				t.Errorf("uname -n %s, spec %s: %v", c.uname, c.spec, err)
			}
			continue
		}
		if !errors.Is(err, deploy.ErrHostnameMismatch) || !strings.Contains(err.Error(), fmt.Sprintf("uname -n is %q, the spec names it %q", c.uname, c.spec)) || !strings.Contains(err.Error(), c.fix) {
			t.Errorf("uname -n %s, spec %s: %v; want ErrHostnameMismatch saying %q", c.uname, c.spec, err, c.fix)
		}
		if _, err := os.Stat(h.Path("/etc/ha.d/ha.cf")); !errors.Is(err, os.ErrNotExist) {
			t.Fatalf("uname -n %s, spec %s: the host was written to: %v", c.uname, c.spec, err)
		}
		// The output (plans, then the summary) says it once, and that
		// nothing changed.
		r.WriteTable(e.out)
		if n := strings.Count(e.out.String(), err.Error()); n != 1 || (!c.dryRun && !strings.Contains(e.out.String(), "nothing changed on the host")) {
			t.Errorf("uname -n %s, spec %s: the error appears %d times in:\n%s", c.uname, c.spec, n, e.out)
		}
	}
}

// TestLocate: a file with Locate replaces the host's own copy of that
// command wherever PATH finds it, or goes to its Path on a host without one.
func TestLocate(t *testing.T) {
	e := newEnv(t, 2)
	if _, err := e.c.Hosts[0].Exec("sh", "-c", "printf '#!/bin/sh\\necho distro\\n' > /usr/local/sbin/lvsforge-test-tool && chmod 0755 /usr/local/sbin/lvsforge-test-tool"); err != nil {
		t.Fatal(err)
	}
	tool := install.File{Path: "/usr/local/bin/lvsforge-test-tool", Locate: "lvsforge-test-tool", Mode: 0o755, Data: []byte("#!/bin/sh\necho lvsforge\n")}
	r := mustPush(t, e.hosts([]install.File{tool}), e.opts)
	if got := readHost(t, e.c.Hosts[0], "/usr/local/sbin/lvsforge-test-tool"); got != string(tool.Data) || r.Hosts[0].Changed[0] != "/usr/local/sbin/lvsforge-test-tool" {
		t.Errorf("h0: the host's own copy was not replaced: %q, changed %v", got, r.Hosts[0].Changed)
	}
	if _, err := os.Stat(e.c.Hosts[0].Path(tool.Path)); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("h0: a second copy was installed at %s", tool.Path)
	}
	if got := readHost(t, e.c.Hosts[1], tool.Path); got != string(tool.Data) {
		t.Errorf("h1: not installed at the fallback path: %q", got)
	}
	if r := mustPush(t, e.hosts([]install.File{tool}), e.opts); len(r.Hosts[0].Plan)+len(r.Hosts[1].Plan) != 0 {
		t.Errorf("no-op push: %q %q", r.Hosts[0].Plan, r.Hosts[1].Plan)
	}
}

// blockingReader stops half-way until release is closed.
type blockingReader struct {
	r       io.Reader
	n, at   int64
	reached chan struct{}
	release chan struct{}
}

func (b *blockingReader) Read(p []byte) (int, error) {
	if b.n >= b.at && b.reached != nil {
		close(b.reached)
		b.reached = nil
		<-b.release
	}
	n, err := b.r.Read(p)
	b.n += int64(n)
	return n, err
}

// TestConcurrentPushesLock: a second push to a host waits for the first
// instead of taking its half-uploaded temporary for a dead push's and
// deleting it; both succeed.
func TestConcurrentPushesLock(t *testing.T) {
	e := newEnv(t, 1)
	h := e.c.Hosts[0]
	p := filepath.Join(t.TempDir(), "big")
	if err := os.WriteFile(p, make([]byte, 8<<20), 0o644); err != nil {
		t.Fatal(err)
	}
	a, err := install.OpenArtifact(p)
	if err != nil {
		t.Fatal(err)
	}
	reached, release := make(chan struct{}), make(chan struct{})
	wrapArtifact(a, func(f io.Reader) io.Reader {
		return &blockingReader{r: f, at: a.Size / 2, reached: reached, release: release}
	})
	first := make(chan *deploy.Report, 1)
	go func() {
		first <- deploy.Push(context.Background(), e.hosts([]install.File{{Path: "/boot/vmlinuz-first", Artifact: a}}), e.opts)
	}()
	<-reached
	temps, _ := filepath.Glob(h.Path("/boot/.lvsforge-tmp-*"))
	if len(temps) != 1 {
		t.Fatalf("the first push's temporary: %v", temps)
	}
	second := make(chan *deploy.Report, 1)
	go func() {
		second <- deploy.Push(context.Background(), e.hosts([]install.File{{Path: "/boot/config-second", Data: []byte("x\n")}}), e.opts)
	}()
	select {
	case r := <-second:
		t.Fatalf("the second push did not wait for the first: %v, plan %q", r.Err(), r.Hosts[0].Plan)
	case <-time.After(time.Second):
	}
	if _, err := os.Stat(temps[0]); err != nil {
		t.Errorf("the first push's temporary was removed: %v", err)
	}
	close(release)
	if r := <-first; r.Err() != nil {
		t.Errorf("first push: %v", r.Err())
	}
	r := <-second
	if r.Err() != nil {
		t.Errorf("second push: %v", r.Err())
	}
	for _, op := range r.Hosts[0].Plan {
		if strings.HasPrefix(op, "remove stale temp") {
			t.Errorf("the second push removed a temporary: %s", op)
		}
	}
	if _, err := os.Stat(h.Path("/boot/vmlinuz-first")); err != nil {
		t.Errorf("first push's file: %v", err)
	}
}
