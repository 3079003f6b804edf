package deploy_test

import (
	"bytes"
	"context"
	"encoding/base64"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/install"

	"golang.org/x/crypto/ssh"

	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/deploy/sshtest"
)

// fakeInit is installed as /etc/init.d/heartbeat and /etc/init.d/ldirectord
// on the test hosts: it records each restart or reload, so the tests see
// which daemons a push touched.
const fakeInit = "#!/bin/sh\necho \"$(basename \"$0\") $1\" >> /var/log/lvsforge-test-daemons\n"

const authkeysSecret = "auth 1\n1 sha1 TOP-SECRET-VALUE-0123456789\n"

// files is a director-like set of files: scripts, a secret, configs whose
// daemons restart or reload.
func files(version string) []install.File {
	return []install.File{
		{Path: "/etc/init.d/heartbeat", Mode: 0o755, Data: []byte(fakeInit)},
		{Path: "/etc/init.d/ldirectord", Mode: 0o755, Data: []byte(fakeInit)},
		{Path: "/etc/ha.d/ha.cf", Data: []byte("keepalive 2\ndeadtime 30\nbcast eth1\nauto_failback on\nnode linuxha1\nnode linuxha2\n"), Units: []string{"heartbeat"}},
		{Path: "/etc/ha.d/haresources", Data: []byte("linuxha1 IPaddr::192.168.7.110/24/192.168.7.255 ipvsadm ldirectord::www\n"), Units: []string{"heartbeat"}},
		{Path: "/etc/ha.d/authkeys", Mode: 0o600, Data: []byte(authkeysSecret), Secret: true, Units: []string{"heartbeat"}},
		{Path: "/etc/ha.d/www.cf", Data: []byte("virtual=192.168.7.110:80\n\treal=192.168.7.11:80 gate 1\n\tscheduler=rr\n# " + version + "\n"), Units: []string{"ldirectord"}},
		{Path: "/etc/sysctl.d/90-lvsforge.conf", Data: []byte("net.ipv4.conf.all.arp_ignore = 1\nnet.ipv4.conf.all.arp_announce = 2\n")},
		{Path: "/etc/lvsforge/new/dir/marker", Data: []byte("created with its directories\n")},
	}
}

type env struct {
	c    *sshtest.Cluster
	opts deploy.Options
	out  *bytes.Buffer
}

func newEnv(t *testing.T, n int) *env {
	c := sshtest.Start(t, n)
	out := &bytes.Buffer{}
	return &env{c: c, out: out, opts: deploy.Options{
		Dial: deploy.DialOptions{
			HostKeys: &deploy.HostKeys{Policy: deploy.HostKeyStrict, Files: []string{c.KnownHostsFile}},
			NoAgent:  true,
		},
		Out: out,
	}}
}

func (e *env) target(h *sshtest.Host) deploy.Target {
	return deploy.Target{Name: h.Name, Host: h.Addr, Port: 22, User: "root", KeyFiles: []string{e.c.ClientKeyFile}}
}

// units are the test hosts' daemons: the fake init scripts record what
// happened to them.
var units = []install.Unit{
	{Name: "heartbeat",
		Enable:  [][]string{{"sh", "-c", "echo 'heartbeat enable' >> /var/log/lvsforge-test-daemons"}},
		Restart: [][]string{{"/etc/init.d/heartbeat", "restart"}}},
	{Name: "ldirectord",
		Restart: [][]string{{"/etc/init.d/ldirectord", "restart"}},
		Reload:  [][]string{{"/etc/init.d/ldirectord", "reload"}},
		// What roles gives ldirectord: its virtual services, which its
		// reload cannot change.
		Fingerprint: "virtual services: 192.168.7.110:80"},
}

// withVirtuals is units with ldirectord's fingerprint for another set of
// virtual services.
func withVirtuals(fp string) []install.Unit {
	u := slices.Clone(units)
	u[1].Fingerprint = "virtual services: " + fp
	return u
}

func (e *env) hosts(fs []install.File, cmds ...[]string) []deploy.Host {
	var hs []deploy.Host
	for _, h := range e.c.Hosts {
		hs = append(hs, deploy.Host{Target: e.target(h), Files: fs, Units: units, Commands: cmds})
	}
	return hs
}

func mustPush(t *testing.T, hosts []deploy.Host, o deploy.Options) *deploy.Report {
	t.Helper()
	r := deploy.Push(context.Background(), hosts, o)
	if err := r.Err(); err != nil {
		t.Fatalf("push: %v", err)
	}
	return r
}

func readHost(t *testing.T, h *sshtest.Host, p string) string {
	t.Helper()
	b, err := os.ReadFile(h.Path(p))
	if err != nil {
		t.Fatalf("read %s on %s: %v", p, h.Name, err)
	}
	return string(b)
}

var postCmd = []string{"sh", "-c", "echo post-install >> /var/log/lvsforge-test-commands"}

func TestPushConverges(t *testing.T) {
	e := newEnv(t, 3)
	fs := files("v1")

	// First push: everything is new.
	r := mustPush(t, e.hosts(fs, postCmd), e.opts)
	for _, hr := range r.Hosts {
		// Every file, and ldirectord's fingerprint.
		if len(hr.Changed) != len(fs)+1 || hr.Unchanged != 0 {
			t.Errorf("%s: first push changed %d, unchanged %d; want %d, 0", hr.Host, len(hr.Changed), hr.Unchanged, len(fs)+1)
		}
		if hr.Init != cluster.InitSysV {
			t.Errorf("%s: init = %q, want sysv", hr.Host, hr.Init)
		}
	}
	for _, h := range e.c.Hosts {
		for _, f := range fs {
			if got := readHost(t, h, f.Path); got != string(f.Data) {
				t.Errorf("%s:%s = %q, want %q", h.Name, f.Path, got, f.Data)
			}
			st, err := os.Stat(h.Path(f.Path))
			if err != nil {
				t.Fatal(err)
			}
			want := f.Mode
			if want == 0 {
				want = 0o644
			}
			if st.Mode().Perm() != want {
				t.Errorf("%s:%s mode %v, want %v", h.Name, f.Path, st.Mode().Perm(), want)
			}
		}
		if got := readHost(t, h, "/var/log/lvsforge-test-daemons"); got != "heartbeat enable\nheartbeat restart\nldirectord restart\n" {
			t.Errorf("%s: daemons after first push = %q", h.Name, got)
		}
		if got := readHost(t, h, "/var/log/lvsforge-test-commands"); got != "post-install\n" {
			t.Errorf("%s: commands after first push = %q", h.Name, got)
		}
		if got := readHost(t, h, "/etc/hostname"); got != h.Name+"\n" {
			t.Errorf("hosts do not have their own /etc: %q", got)
		}
	}

	// Re-push with nothing changed: zero files, zero commands, zero bytes.
	r = mustPush(t, e.hosts(fs, postCmd), e.opts)
	for _, hr := range r.Hosts {
		if len(hr.Changed) != 0 || hr.Unchanged != len(fs)+1 || len(hr.Commands) != 0 || hr.BytesSent != 0 {
			t.Errorf("%s: no-op re-push changed %v, unchanged %d, commands %v, sent %d", hr.Host, hr.Changed, hr.Unchanged, hr.Commands, hr.BytesSent)
		}
	}

	// One changed file: exactly one transfer, only its daemon reloaded, the
	// old version kept as a backup.
	fs2 := files("v2")
	r = mustPush(t, e.hosts(fs2, postCmd), e.opts)
	for _, hr := range r.Hosts {
		if len(hr.Changed) != 1 || hr.Changed[0] != "/etc/ha.d/www.cf" {
			t.Errorf("%s: changed %v, want [/etc/ha.d/www.cf]", hr.Host, hr.Changed)
		}
		if int(hr.BytesSent) != len(fs2[5].Data) {
			t.Errorf("%s: sent %d bytes, want %d", hr.Host, hr.BytesSent, len(fs2[5].Data))
		}
	}
	for _, h := range e.c.Hosts {
		if got := readHost(t, h, "/var/log/lvsforge-test-daemons"); got != "heartbeat enable\nheartbeat restart\nldirectord restart\nldirectord reload\n" {
			t.Errorf("%s: daemons after one change = %q, want only an ldirectord reload", h.Name, got)
		}
		backups, err := filepath.Glob(h.Path(deploy.DefaultBackupDir + "/etc/ha.d/www.cf/*"))
		if err != nil || len(backups) != 1 {
			t.Fatalf("%s: backups of www.cf = %v, %v; want one", h.Name, backups, err)
		}
		if b, _ := os.ReadFile(backups[0]); string(b) != string(files("v1")[5].Data) {
			t.Errorf("%s: backup holds %q, want the v1 content", h.Name, b)
		}
	}

	// A virtual service added: ldirectord must restart, a reload would not
	// pick it up.
	fs3 := files("v2")
	fs3[5].Data = append(fs3[5].Data, "virtual=192.168.7.110:23\n\treal=192.168.7.11:23 gate 1\n"...)
	hs := e.hosts(fs3)
	for i := range hs {
		hs[i].Units = withVirtuals("192.168.7.110:80 192.168.7.110:23")
	}
	mustPush(t, hs, e.opts)
	if got := readHost(t, e.c.Hosts[0], "/var/log/lvsforge-test-daemons"); !strings.HasSuffix(got, "ldirectord reload\nldirectord restart\n") {
		t.Errorf("daemons after a virtual service was added = %q, want a restart", got)
	}

	// Backups are pruned to the retention count.
	o := e.opts
	o.Backups = 2
	for _, v := range []string{"v3", "v4", "v5"} {
		mustPush(t, e.hosts(files(v)), o)
	}
	h0 := e.c.Hosts[0]
	backups, _ := filepath.Glob(h0.Path(deploy.DefaultBackupDir + "/etc/ha.d/www.cf/*"))
	if len(backups) != 2 {
		t.Errorf("backups kept with retention 2: %d", len(backups))
	}

	// Secrets: 0600 whatever the file says, never in the output or JSON.
	leak := append([]install.File(nil), files("v6")...)
	leak[4].Mode = 0o644
	leak[4].Data = []byte(strings.Replace(authkeysSecret, "TOP", "NEW", 1))
	o.Diff, o.DryRun = true, true
	e.out.Reset()
	r = mustPush(t, e.hosts(leak), o)
	var js bytes.Buffer
	r.WriteJSON(&js)
	r.WriteTable(&js)
	for _, s := range []string{e.out.String(), js.String()} {
		if strings.Contains(s, "SECRET") {
			t.Errorf("secret leaked into output:\n%s", s)
		}
	}
	if !strings.Contains(e.out.String(), "write /etc/ha.d/authkeys mode 0600 secret (changed, backup)") {
		t.Errorf("dry-run output lacks the secret's write:\n%s", e.out.String())
	}
	if !strings.Contains(e.out.String(), "+# v6") || !strings.Contains(e.out.String(), "-# v5") {
		t.Errorf("diff output lacks the www.cf change:\n%s", e.out.String())
	}
	o.DryRun = false
	mustPush(t, e.hosts(leak), o)
	for _, h := range e.c.Hosts {
		st, err := os.Stat(h.Path("/etc/ha.d/authkeys"))
		if err != nil || st.Mode().Perm() != 0o600 {
			t.Errorf("%s: authkeys mode %v, %v; want 0600", h.Name, st.Mode().Perm(), err)
		}
	}
}

func TestDryRunChangesNothing(t *testing.T) {
	e := newEnv(t, 3)
	// Hosts start in three states: empty, fully pushed, one file stale.
	mustPush(t, e.hosts(files("v1"))[1:], e.opts)
	mustPush(t, e.hosts(files("v0"))[2:], e.opts)
	before := map[string]map[string]string{}
	for _, h := range e.c.Hosts {
		s, err := h.State()
		if err != nil {
			t.Fatal(err)
		}
		before[h.Name] = s
	}
	o := e.opts
	o.DryRun, o.Diff = true, true
	r := mustPush(t, e.hosts(files("v1"), postCmd), o)
	for _, h := range e.c.Hosts {
		after, err := h.State()
		if err != nil {
			t.Fatal(err)
		}
		if fmt.Sprint(after) != fmt.Sprint(before[h.Name]) {
			t.Errorf("%s changed during a dry-run:\nbefore %v\nafter  %v", h.Name, before[h.Name], after)
		}
	}
	plans := map[string][]string{}
	for _, hr := range r.Hosts {
		if hr.Result != deploy.ResultPlanned || hr.Kernel == "" {
			t.Errorf("%s: result %q kernel %q", hr.Host, hr.Result, hr.Kernel)
		}
		plans[hr.Host] = hr.Plan
	}
	// The stale host's plan lists every step a real run takes, the
	// verification, backup, renames and sync included.
	var steps []string
	for _, op := range plans["h2"] {
		steps = append(steps, strings.SplitN(op, " ", 2)[0])
	}
	if len(plans["h0"]) == 0 || len(plans["h1"]) != 0 || strings.Join(steps, " ") != "write verify back record rename sync run reload clear" {
		t.Errorf("plans: %q", plans)
	}
	// The dry-run's plan is what the real run does.
	o.DryRun, o.Diff = false, false
	real := mustPush(t, e.hosts(files("v1"), postCmd), o)
	for _, hr := range real.Hosts {
		if fmt.Sprint(hr.Plan) != fmt.Sprint(plans[hr.Host]) {
			t.Errorf("%s: real run did %q, dry-run said %q", hr.Host, hr.Plan, plans[hr.Host])
		}
	}
	t.Logf("dry-run output:\n%s", e.out.String())
}

func TestHostKeys(t *testing.T) {
	e := newEnv(t, 2)
	empty := filepath.Join(e.c.Dir, "known_hosts.empty")
	o := e.opts
	o.Dial.HostKeys = &deploy.HostKeys{Policy: deploy.HostKeyStrict, Files: []string{empty}}
	r := deploy.Push(context.Background(), e.hosts(files("v1")), o)
	for _, hr := range r.Hosts {
		if !errors.Is(hr.Err(), deploy.ErrUnknownHost) {
			t.Fatalf("%s: strict push to an unknown host: %v, want ErrUnknownHost", hr.Host, hr.Err())
		}
		if !strings.Contains(hr.Error, "SHA256:") || !strings.Contains(hr.Error, "echo '") {
			t.Errorf("refusal does not show the fingerprint and the trust command: %s", hr.Error)
		}
	}
	if _, err := os.Stat(empty); !errors.Is(err, os.ErrNotExist) {
		t.Errorf("strict policy wrote known_hosts: %v", err)
	}

	o.Dial.HostKeys = &deploy.HostKeys{Policy: deploy.HostKeyAcceptNew, Files: []string{empty}}
	mustPush(t, e.hosts(files("v1")), o)
	// What accept-new wrote is now trusted under the strict policy.
	o.Dial.HostKeys = &deploy.HostKeys{Policy: deploy.HostKeyStrict, Files: []string{empty}}
	mustPush(t, e.hosts(files("v1")), o)

	// A changed key is refused under every policy, naming both keys.
	other := sshtest.Start(t, 1).Hosts[0].HostKey
	b, err := os.ReadFile(e.c.KnownHostsFile)
	if err != nil {
		t.Fatal(err)
	}
	h0 := e.c.Hosts[0]
	lines := strings.Replace(string(b), strings.TrimSpace(string(marshal(h0.HostKey))), strings.TrimSpace(string(marshal(other))), 1)
	changed := filepath.Join(e.c.Dir, "known_hosts.changed")
	os.WriteFile(changed, []byte(lines), 0o600)
	for _, p := range []deploy.HostKeyPolicy{deploy.HostKeyStrict, deploy.HostKeyAcceptNew} {
		o.Dial.HostKeys = &deploy.HostKeys{Policy: p, Files: []string{changed}}
		r := deploy.Push(context.Background(), e.hosts(files("v1")), o)
		if err := r.Hosts[0].Err(); !errors.Is(err, deploy.ErrHostKeyChanged) {
			t.Fatalf("%s: changed key: %v, want ErrHostKeyChanged", p, err)
		}
		msg := r.Hosts[0].Error
		if !strings.Contains(msg, sshFP(h0.HostKey)) || !strings.Contains(msg, sshFP(other)) {
			t.Errorf("changed-key error lacks a fingerprint: %s", msg)
		}
		if r.Hosts[1].Err() != nil {
			t.Errorf("%s: the other host failed: %v", p, r.Hosts[1].Err())
		}
	}
	after, _ := os.ReadFile(changed)
	if string(after) != lines {
		t.Errorf("accept-new modified known_hosts for a changed key")
	}
}

func TestOneHostDown(t *testing.T) {
	e := newEnv(t, 4)
	e.c.Hosts[2].Stop()
	r := deploy.Push(context.Background(), e.hosts(files("v1")), e.opts)
	err := r.Err()
	if err == nil || !strings.Contains(err.Error(), "h2") || fmt.Sprint(r.Failed()) != "[h2]" {
		t.Fatalf("push with h2 down: failed %v, err %v", r.Failed(), err)
	}
	for _, hr := range r.Hosts {
		if hr.Host != "h2" && (hr.Result != deploy.ResultOK || len(hr.Changed) != len(files("v1"))+1) { // and the fingerprint
			t.Errorf("%s: %s, changed %d", hr.Host, hr.Result, len(hr.Changed))
		}
	}
	var tbl bytes.Buffer
	r.WriteTable(&tbl)
	if !strings.Contains(tbl.String(), "failed") {
		t.Errorf("table does not show the failure:\n%s", tbl.String())
	}
	t.Logf("summary:\n%s", tbl.String())
}

// killingReader kills the host's SSH sessions once half of the content has
// been read, i.e. in the middle of the upload.
type killingReader struct {
	r    io.Reader
	n    int64
	at   int64
	kill func()
}

func (k *killingReader) Read(p []byte) (int, error) {
	n, err := k.r.Read(p)
	k.n += int64(n)
	if k.kill != nil && k.n >= k.at {
		k.kill()
		k.kill = nil
	}
	return n, err
}

func TestKilledUploadLeavesOldFile(t *testing.T) {
	e := newEnv(t, 1)
	h := e.c.Hosts[0]
	dir := t.TempDir()
	write := func(name string, fill byte) *install.Artifact {
		p := filepath.Join(dir, name)
		if err := os.WriteFile(p, bytes.Repeat([]byte{fill}, 24<<20), 0o644); err != nil {
			t.Fatal(err)
		}
		a, err := install.OpenArtifact(p)
		if err != nil {
			t.Fatal(err)
		}
		return a
	}
	oldA, newA := write("old", 'o'), write("new", 'n')
	const target = "/boot/vmlinuz-test"
	mustPush(t, e.hosts([]install.File{{Path: target, Artifact: oldA}}), e.opts)

	killed := *newA
	wrapArtifact(&killed, func(r io.Reader) io.Reader { return &killingReader{r: r, at: newA.Size / 2, kill: h.KillSessions} })
	r := deploy.Push(context.Background(), e.hosts([]install.File{{Path: target, Artifact: &killed}}), e.opts)
	if r.Err() == nil {
		t.Fatal("push survived its connection being killed")
	}
	t.Logf("killed push: %v", r.Err())
	if got, _ := install.OpenArtifact(h.Path(target)); got == nil || got.SHA256 != oldA.SHA256 {
		t.Errorf("the old file was not left in place")
	}
	temps, _ := filepath.Glob(h.Path("/boot/.lvsforge-tmp-*"))
	if len(temps) != 0 {
		t.Errorf("temporary files left: %v", temps)
	}
	mustPush(t, e.hosts([]install.File{{Path: target, Artifact: newA}}), e.opts)
	if got, _ := install.OpenArtifact(h.Path(target)); got == nil || got.SHA256 != newA.SHA256 {
		t.Errorf("the next push did not converge")
	}
}

func marshal(k interface{ Marshal() []byte }) []byte {
	return []byte(base64.StdEncoding.EncodeToString(k.Marshal()))
}

func sshFP(k ssh.PublicKey) string { return ssh.FingerprintSHA256(k) }

// TestCancelDuringUpload is Ctrl-C in the middle of a large upload: the
// push stops, the old file stays, the temporary is removed over the still
// open connection.
func TestCancelDuringUpload(t *testing.T) {
	e := newEnv(t, 1)
	h := e.c.Hosts[0]
	old := []install.File{{Path: "/boot/initrd.img-test", Data: []byte("old initrd\n")}}
	mustPush(t, e.hosts(old), e.opts)

	p := filepath.Join(t.TempDir(), "big")
	os.WriteFile(p, bytes.Repeat([]byte("x"), 16<<20), 0o644)
	a, err := install.OpenArtifact(p)
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	defer cancel()
	wrapArtifact(a, func(f io.Reader) io.Reader { return &killingReader{r: f, at: a.Size / 2, kill: cancel} })
	r := deploy.Push(ctx, e.hosts([]install.File{{Path: old[0].Path, Artifact: a}}), e.opts)
	if err := r.Err(); !errors.Is(err, context.Canceled) {
		t.Fatalf("cancelled push: %v, want context.Canceled", err)
	}
	if got := readHost(t, h, old[0].Path); got != string(old[0].Data) {
		t.Errorf("old file replaced by a cancelled push: %.40q", got)
	}
	if temps, _ := filepath.Glob(h.Path("/boot/.lvsforge-tmp-*")); len(temps) != 0 {
		t.Errorf("temporary files left: %v", temps)
	}
}

// TestFailedRestartIsRetried: files land, a daemon's restart fails: the
// output says which steps ran and which did not, with the error once; the
// next push, with nothing left to transfer, still restarts both daemons
// (and says why), and the one after that has nothing to do.
func TestFailedRestartIsRetried(t *testing.T) {
	e := newEnv(t, 1)
	h := e.c.Hosts[0]
	if _, err := h.Exec("touch", "/etc/lvsforge-test-fail"); err != nil {
		t.Fatal(err)
	}
	u := []install.Unit{
		{Name: "heartbeat", Restart: [][]string{{"sh", "-c", "[ ! -e /etc/lvsforge-test-fail ] && echo heartbeat restarted >> /var/log/lvsforge-test-daemons"}}},
		{Name: "ldirectord", Restart: [][]string{{"sh", "-c", "echo ldirectord restarted >> /var/log/lvsforge-test-daemons"}}},
	}
	fs := []install.File{
		{Path: "/etc/ha.d/ha.cf", Data: []byte("node a\n"), Units: []string{"heartbeat"}},
		{Path: "/etc/ha.d/ldirectord.cf", Data: []byte("virtual=10.0.0.1:80\n"), Units: []string{"ldirectord"}},
	}
	host := []deploy.Host{{Target: e.target(h), Files: fs, Units: u}}
	for _, dryRun := range []bool{true, false} {
		e.out.Reset()
		o := e.opts
		o.DryRun = dryRun
		r := deploy.Push(context.Background(), host, o)
		if dryRun {
			if err := r.Err(); err != nil {
				t.Fatal(err)
			}
			continue
		}
		hr := r.Hosts[0]
		if hr.Err() == nil {
			t.Fatal("push with a failing restart succeeded")
		}
		var out bytes.Buffer
		out.Write(e.out.Bytes())
		r.WriteTable(&out)
		t.Logf("output of the failed push:\n%s", out.String())
		if n := strings.Count(out.String(), hr.Err().Error()); n != 1 {
			t.Errorf("the error is printed %d times, want once", n)
		}
		if want := "files uploaded: yes; files in place: yes; heartbeat restart: FAILED; ldirectord restart: not run"; !strings.Contains(out.String(), want) {
			t.Errorf("output does not say %q", want)
		}
	}
	if _, err := h.Exec("rm", "/etc/lvsforge-test-fail"); err != nil {
		t.Fatal(err)
	}
	r := mustPush(t, host, e.opts)
	hr := r.Hosts[0]
	if len(hr.Changed) != 0 || len(hr.Commands) != 2 {
		t.Errorf("retry push: changed %v, commands %v; want only the restarts", hr.Changed, hr.Commands)
	}
	for _, d := range []string{"heartbeat", "ldirectord"} {
		if want := "restart " + d + " (left over from a failed push): sh -c"; !strings.Contains(strings.Join(hr.Plan, "\n"), want) {
			t.Errorf("retry plan lacks %q:\n%s", want, strings.Join(hr.Plan, "\n"))
		}
	}
	if got := readHost(t, h, "/var/log/lvsforge-test-daemons"); got != "heartbeat restarted\nldirectord restarted\n" {
		t.Errorf("daemon log %q", got)
	}
	if r := mustPush(t, host, e.opts); len(r.Hosts[0].Plan) != 0 {
		t.Errorf("third push is not a no-op: %q", r.Hosts[0].Plan)
	}
}

// TestStaleTempAndHashMismatch: a temporary a dead push left is removed
// by the next one; content that does not match its announced hash is never
// renamed into place and leaves no temporary.
func TestStaleTempAndHashMismatch(t *testing.T) {
	e := newEnv(t, 1)
	h := e.c.Hosts[0]
	if _, err := h.Exec("sh", "-c", "mkdir -p /etc/ha.d && echo partial > /etc/ha.d/.lvsforge-tmp-dead00000000-ha.cf"); err != nil {
		t.Fatal(err)
	}
	fs := []install.File{{Path: "/etc/ha.d/ha.cf", Data: []byte("node a\n")}}
	r := mustPush(t, e.hosts(fs), e.opts)
	if p := r.Hosts[0].Plan; len(p) == 0 || !strings.HasPrefix(p[0], "remove stale temp /etc/ha.d/.lvsforge-tmp-dead") {
		t.Errorf("plan does not remove the stale temp: %q", p)
	}
	if temps, _ := filepath.Glob(h.Path("/etc/ha.d/.lvsforge-tmp-*")); len(temps) != 0 {
		t.Errorf("temps left: %v", temps)
	}

	liar := &install.Artifact{Name: "liar", Size: 5, SHA256: strings.Repeat("0", 64),
		Open: func() (io.ReadCloser, error) { return io.NopCloser(strings.NewReader("other")), nil }}
	r = deploy.Push(context.Background(), e.hosts([]install.File{{Path: "/etc/ha.d/ha.cf", Artifact: liar}}), e.opts)
	if err := r.Err(); !errors.Is(err, deploy.ErrHashMismatch) {
		t.Fatalf("push of mismatching content: %v, want ErrHashMismatch", err)
	}
	if got := readHost(t, h, "/etc/ha.d/ha.cf"); got != "node a\n" {
		t.Errorf("file replaced by mismatching content: %q", got)
	}
	if temps, _ := filepath.Glob(h.Path("/etc/ha.d/.lvsforge-tmp-*")); len(temps) != 0 {
		t.Errorf("temps left: %v", temps)
	}
}

// wrapArtifact makes every read of a's data go through wrap.
func wrapArtifact(a *install.Artifact, wrap func(io.Reader) io.Reader) {
	open := a.Open
	a.Open = func() (io.ReadCloser, error) {
		f, err := open()
		if err != nil {
			return nil, err
		}
		return struct {
			io.Reader
			io.Closer
		}{wrap(f), f}, nil
	}
}
