package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/install"
	"github.com/lvsforge/lvsforge/internal/shell"

	"github.com/lvsforge/lvsforge/cluster"
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestParseFacts feeds the fact script's output format, as OpenSSH hosts
// produce it, through the parser.
func TestParseFacts(t *testing.T) {
	out := "U rs1 6.1.0-28-amd64\nI systemd\nG update-grub\nG grub-reboot\n" +
		"S 644 81a4 0 0 /etc/a b.conf\nS 755 41ed 0 0 /etc/dir\nL ipvsadm /sbin/ipvsadm\nS 755 81ed 0 0 /sbin/ipvsadm\nK 6.1.192-lvs\n" +
		sum("A") + "  /etc/a b.conf\n" + sum("K") + " */boot/vmlinuz-x\n" + // sha256sum, openssl dgst -r
		"S 644 81a4 0 0 /boot/vmlinuz-x\n" +
		"D /etc\nT /etc/.lvsforge-tmp-0a0b-x\n"
	f, err := parseFacts([]byte(out), []string{"/etc/a b.conf", "/etc/dir", "/etc/missing", "/boot/vmlinuz-x"})
	if err != nil {
		t.Fatal(err)
	}
	if f.Hostname != "rs1" || f.Kernel != "6.1.0-28-amd64" || f.Init != cluster.InitSystemd || !f.Boot["update-grub"] {
		t.Errorf("facts: %+v", f)
	}
	if got := f.Files["/etc/a b.conf"]; !got.Exists || got.Mode != 0o644 || got.SHA256 != sum("A") {
		t.Errorf("regular file: %+v", got)
	}
	if got := f.Files["/boot/vmlinuz-x"]; got.SHA256 != sum("K") {
		t.Errorf("openssl-hashed file: %+v", got)
	}
	if !f.Files["/etc/dir"].IsDir || f.Files["/etc/missing"].Exists {
		t.Errorf("dir/missing: %+v", f.Files)
	}
	if len(f.StaleTemps) != 1 || !f.Dirs["/etc"] {
		t.Errorf("temps %v dirs %v", f.StaleTemps, f.Dirs)
	}
	if f.Located["ipvsadm"] != "/sbin/ipvsadm" || !f.Files["/sbin/ipvsadm"].Exists || fmt.Sprint(f.Releases) != "[6.1.192-lvs]" {
		t.Errorf("located %v releases %v files %v", f.Located, f.Releases, f.Files)
	}
	if _, err := parseFacts([]byte("garbage\n"), nil); err == nil {
		t.Error("garbage accepted")
	}
}

func TestBuildPlan(t *testing.T) {
	ld := "virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate 1\n"
	h := &Host{
		Target: Target{Name: "d1"},
		Files: []install.File{
			{Path: "/etc/ha.d/ldirectord.cf", Data: []byte(ld + "\tscheduler=wrr\n"), Units: []string{"ldirectord"}},
			{Path: "/etc/ha.d/authkeys", Data: []byte("auth 1\n1 sha1 s3cret\n"), Mode: 0o644, Secret: true, Units: []string{"heartbeat"}},
			{Path: "/etc/ha.d/ha.cf", Data: []byte("same"), Units: []string{"heartbeat"}},
		},
		Units: []install.Unit{
			{Name: "heartbeat", Restart: [][]string{{"/etc/init.d/heartbeat", "restart"}}},
			{Name: "ldirectord", Restart: [][]string{{"ldirectord", "restart"}}, Reload: [][]string{{"ldirectord", "reload"}}, Fingerprint: "-t 10.0.0.1:80"},
		},
		Commands: [][]string{{"sysctl", "--system"}},
	}
	h = h.pushed()
	facts := &Facts{Init: cluster.InitSysV, Dirs: map[string]bool{"/etc/ha.d": true}, Files: map[string]RemoteFile{
		"/etc/ha.d/ldirectord.cf":            {Exists: true, Mode: 0o644, SHA256: sum(ld)},
		"/etc/ha.d/authkeys":                 {Exists: true, Mode: 0o644, SHA256: sum("auth 1\n1 sha1 s3cret\n")},
		"/etc/ha.d/ha.cf":                    {Exists: true, Mode: 0o644, SHA256: sum("same")},
		"/var/lib/lvsforge/units/ldirectord": {Exists: true, Mode: 0o644, SHA256: sum("-t 10.0.0.1:80\n")},
	}}
	p, err := buildPlan(h, facts, true, "/var/backups/lvsforge")
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, op := range p.Ops {
		got = append(got, op.String())
	}
	want := []string{
		fmt.Sprintf("write /etc/ha.d/ldirectord.cf mode 0644 size %d sha256 %.12s (changed, backup)", len(ld)+15, sum(ld+"\tscheduler=wrr\n")),
		"verify 1 uploads on the host: fsync each, compare its sha256",
		"back up /etc/ha.d/ldirectord.cf to /var/backups/lvsforge",
		// A push cut off from here on is finished by the next one.
		"record pending commands, unit heartbeat, unit ldirectord in /var/lib/lvsforge/pending",
		"rename temp into /etc/ha.d/ldirectord.cf",
		"sync /etc/ha.d /var/lib/lvsforge",
		// A secret lands 0600 whatever its Mode says; same content, so only a chmod.
		"chmod 0600 /etc/ha.d/authkeys (was 0644)",
		"run sysctl --system",
		"restart heartbeat: /etc/init.d/heartbeat restart",
		// Same virtual services (fingerprint): a reload is enough.
		"reload ldirectord: ldirectord reload",
		"clear /var/lib/lvsforge/pending",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(strings.Join(got, ""), "s3cret") {
		t.Error("secret in the plan")
	}

	// Nothing changed: no commands, no restarts.
	h.Files = []install.File{h.Files[2], h.Files[3]}
	if p, _ = buildPlan(h, facts, true, "/var/backups/lvsforge"); p.Mutates() || len(p.Unchanged) != 2 {
		t.Errorf("no-op plan: %v", p.Ops)
	}

	// A restart that failed last time is redone, and the plan says why; a
	// kernel install pending from a push with --kernel stays pending
	// through one without.
	facts.Pending = map[string]bool{"unit heartbeat": true, "kernel": true}
	p, _ = buildPlan(h, facts, true, "/var/backups/lvsforge")
	got = nil
	for _, op := range p.Ops {
		got = append(got, op.String())
	}
	want = []string{
		"record pending unit heartbeat, kernel in /var/lib/lvsforge/pending",
		"restart heartbeat (left over from a failed push): /etc/init.d/heartbeat restart",
		"record pending kernel in /var/lib/lvsforge/pending",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("pending plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	for _, bad := range []string{"etc/x", "/etc/../x", "/etc/x\n", `/etc/a\b`, "/"} {
		h.Files = []install.File{{Path: bad}}
		if _, err := buildPlan(h, &Facts{}, true, "/var/backups/lvsforge"); !errors.Is(err, ErrBadPath) {
			t.Errorf("path %q: %v, want ErrBadPath", bad, err)
		}
	}
	h.Files = []install.File{{Path: "/x", Units: []string{"nosuch"}}}
	if _, err := buildPlan(h, &Facts{Files: map[string]RemoteFile{"/x": {}}}, true, "/var/backups/lvsforge"); err == nil {
		t.Error("a file naming an undefined unit was accepted")
	}
}

func TestShellQuote(t *testing.T) {
	for in, want := range map[string]string{
		"plain/path-1.2": "plain/path-1.2",
		"a b":            "'a b'",
		"it's":           `'it'\''s'`,
		"":               "''",
		"$(reboot)":      "'$(reboot)'",
	} {
		if got := shell.Quote(in); got != want {
			t.Errorf("shell.Quote(%q) = %s, want %s", in, got, want)
		}
	}
}

const legacyStanza = "# /etc/lvsforge/grub-legacy.conf: GRUB legacy stanza\n# boot it once with: grub --batch\n" +
	"title 6.1.192+lvs (lvsforge director)\n\troot (hd0,0)\n\tkernel /boot/vmlinuz-6.1.192+lvs ro root=/dev/sda1 panic=10\n"

// TestRenderLegacyConf: lvsforge's block in grub.conf is added once,
// replaced (not duplicated) when its stanza changes, keeps the kernels
// lvsforge installed earlier in their order, takes over the stanzas an
// older lvsforge appended without markers, and leaves the rest alone. The
// release has a "+", which a basic regular expression would have read as
// an operator.
func TestRenderLegacyConf(t *testing.T) {
	base := "default saved\ntimeout 5\n\ntitle CentOS (2.6.18)\n\troot (hd0,0)\n\tkernel /vmlinuz-2.6.18 ro\n"
	conf, idx, err := renderLegacyConf([]byte(base), []byte(legacyStanza), "6.1.192+lvs", nil)
	if err != nil {
		t.Fatal(err)
	}
	want := base + "\n" + legacyBegin + ": a stanza per kernel lvsforge push --kernel installed; rewritten on every push, edit the spec instead\n" +
		"title 6.1.192+lvs (lvsforge director)\n\troot (hd0,0)\n\tkernel /boot/vmlinuz-6.1.192+lvs ro root=/dev/sda1 panic=10\n" + legacyEnd + "\n"
	if string(conf) != want || idx != 1 {
		t.Errorf("first render (entry %d):\n%s\nwant entry 1:\n%s", idx, conf, want)
	}
	if again, _, _ := renderLegacyConf(conf, []byte(legacyStanza), "6.1.192+lvs", []string{"6.1.192+lvs"}); string(again) != string(conf) {
		t.Errorf("re-render changed the file:\n%s", again)
	}
	// A changed panic value replaces the stanza.
	changed, _, _ := renderLegacyConf(conf, []byte(strings.ReplaceAll(legacyStanza, "panic=10", "panic=30")), "6.1.192+lvs", nil)
	if strings.Count(string(changed), "title 6.1.192+lvs") != 1 || !strings.Contains(string(changed), "panic=30") || strings.Contains(string(changed), "panic=10") {
		t.Errorf("changed stanza:\n%s", changed)
	}
	// A newer kernel is appended in the block; the older one keeps its
	// place (the saved default is an index) and gets the new stanza too.
	next := strings.ReplaceAll(legacyStanza, "6.1.192+lvs", "6.1.193+lvs")
	two, idx, err := renderLegacyConf(changed, []byte(next), "6.1.193+lvs", []string{"6.1.192+lvs", "6.1.193+lvs"})
	if err != nil {
		t.Fatal(err)
	}
	if i, j := strings.Index(string(two), "title 6.1.192+lvs"), strings.Index(string(two), "title 6.1.193+lvs"); i < 0 || j < i || idx != 2 || strings.Contains(string(two), "panic=30") {
		t.Errorf("two kernels (entry %d):\n%s", idx, two)
	}
	if n := legacyIndex(two, "6.1.192+lvs"); n != 1 {
		t.Errorf("legacyIndex of the older kernel = %d, want 1", n)
	}
	// What an older lvsforge appended ("\n" + the stanza without comments)
	// is taken into the block, in place.
	old := base + "\ntitle 6.1.192+lvs (lvsforge director)\n\troot (hd0,0)\n\tkernel /boot/vmlinuz-6.1.192+lvs ro root=/dev/sda1 panic=5\n\ntitle Other\n\tkernel /x\n"
	mig, idx, err := renderLegacyConf([]byte(old), []byte(legacyStanza), "6.1.192+lvs", nil)
	if err != nil {
		t.Fatal(err)
	}
	if strings.Count(string(mig), "title 6.1.192+lvs") != 1 || strings.Contains(string(mig), "panic=5") || idx != 1 ||
		!strings.HasSuffix(string(mig), legacyEnd+"\n\ntitle Other\n\tkernel /x\n") {
		t.Errorf("migrated (entry %d):\n%s", idx, mig)
	}
	if _, _, err := renderLegacyConf([]byte(legacyBegin+"\ntitle x\n"), []byte(legacyStanza), "6.1.192+lvs", nil); err == nil {
		t.Error("a block without its end marker was accepted")
	}
	if _, _, err := renderLegacyConf([]byte(base), []byte(legacyStanza), "6.1.193", nil); err == nil {
		t.Error("a stanza for another release was accepted")
	}
	if !legacyDefaultSaved([]byte("timeout 5\n default=saved\n")) || legacyDefaultSaved([]byte("default 0\n# default saved\n")) {
		t.Error("legacyDefaultSaved")
	}
	for _, c := range []struct{ def, saved, dflt, next string }{
		{"saved", "1:2", "B", "C"}, {"saved", "2", "C", ""}, {"saved", "", "", ""}, {"1", "", "B", ""}, {"", "", "A", ""},
	} {
		d, n := legacyStatus(c.def, []string{"A", "B", "C"}, c.saved)
		if d != c.dflt || n != c.next {
			t.Errorf("legacyStatus(%q, %q) = %q, %q; want %q, %q", c.def, c.saved, d, n, c.dflt, c.next)
		}
	}
}

// TestKernelOpsLegacy checks the GRUB legacy plan: grub.conf is one of the
// push's writes, the one-time activation names the entry by the index it
// has in the new file, and confirm needs `default saved`.
func TestKernelOpsLegacy(t *testing.T) {
	k := &Kernel{Release: "6.1.192+lvs", Image: &install.Artifact{SHA256: sum("img")}, ActivateOnce: true}
	base := "default 0\ntitle CentOS (2.6.18)\n\tkernel /vmlinuz-2.6.18 ro\n"
	f := &Facts{Kernel: "2.6.18", Boot: map[string]bool{"legacy": true, "grub-set-default": true, "grub-editenv": true, "update-grub": true}, GrubLegacyConf: []byte(base),
		Dirs: map[string]bool{"/boot/grub": true, "/etc/lvsforge": true, "/boot": true, modulesDir: true},
		Files: map[string]RemoteFile{
			grubLegacyConf:   {Exists: true, Mode: 0o600, SHA256: sum(base)},
			grubLegacyStanza: {},
		}}
	h := &Host{Target: Target{Name: "d1"}, Kernel: k, Files: []install.File{{Path: grubLegacyStanza, Data: []byte(legacyStanza)}}}
	for _, kf := range k.files() {
		h.Files = append(h.Files, kf)
		f.Files[kf.Path] = RemoteFile{}
	}
	p, err := buildPlan(h, f, true, "/b")
	if err != nil {
		t.Fatal(err)
	}
	plan := planText(p)
	if !strings.Contains(plan, "write /boot/grub/grub.conf mode 0600") || !strings.Contains(plan, "back up /boot/grub/grub.conf to /b") ||
		!strings.Contains(plan, "rename temp into /boot/grub/grub.conf") {
		t.Errorf("grub.conf is not written through the write path:\n%s", plan)
	}
	last := p.Ops[len(p.Ops)-1]
	if cmd := strings.Join(last.Argv, " "); !strings.Contains(cmd, "savedefault --default=1 --once") || !strings.Contains(cmd, "grep -qF -- 'title 6.1.192+lvs (lvsforge'") ||
		strings.Contains(cmd, "grub-reboot") || strings.Contains(cmd, "update-grub") || strings.Contains(cmd, `\+`) {
		t.Errorf("activation: %s", cmd)
	}
	if strings.Contains(plan, "update-grub") || strings.Contains(plan, "grub-set-default") {
		t.Errorf("GRUB 2 tools used on a GRUB legacy host:\n%s", plan)
	}

	conf, _, _ := renderLegacyConf([]byte(base), []byte(legacyStanza), k.Release, nil)
	confirm := &Kernel{Release: k.Release, MakeDefault: true}
	f.Kernel = k.Release
	if _, _, err := kernelOps(confirm, f, func(string) bool { return false }, nil, conf); err == nil || !strings.Contains(err.Error(), "default saved") {
		t.Errorf("confirm without `default saved`: %v", err)
	}
	saved := []byte(strings.Replace(string(conf), "default 0", "default saved", 1))
	_, act, err := kernelOps(confirm, f, func(string) bool { return false }, nil, saved)
	if err != nil || len(act) != 1 || !strings.Contains(strings.Join(act[0].Argv, " "), "savedefault --default=1\\nquit") {
		t.Errorf("confirm: %v %v", act, err)
	}
	f.Kernel = "2.6.18"
	if _, _, err := kernelOps(confirm, f, func(string) bool { return false }, nil, saved); !errors.Is(err, ErrNotRunning) {
		t.Errorf("confirm on a host running another kernel: %v", err)
	}
	if _, _, err := kernelOps(&Kernel{Release: "6.1; reboot", Image: &install.Artifact{}}, f, func(string) bool { return true }, nil, nil); err == nil {
		t.Error("a release with shell metacharacters was accepted")
	}
	if _, _, err := kernelOps(&Kernel{Release: "6.1", Image: &install.Artifact{}}, &Facts{}, func(string) bool { return true }, nil, nil); err == nil {
		t.Error("a host without GRUB was accepted")
	}
}

// TestPlanOwnerInit: an owner that differs is a planned change (content
// equal: a chown alone), and a host whose init system is not the spec's
// fails its plan, naming both and the fix.
func TestPlanOwnerInit(t *testing.T) {
	h := &Host{Target: Target{Name: "rs1"}, Init: cluster.InitSystemd, Files: []install.File{
		{Path: "/etc/a", Data: []byte("a")},
		{Path: "/etc/b", Data: []byte("b"), UID: 0, GID: 7},
	}}
	facts := &Facts{Init: cluster.InitSystemd, Dirs: map[string]bool{"/etc": true}, Files: map[string]RemoteFile{
		"/etc/a": {Exists: true, Mode: 0o644, UID: 1000, GID: 1000, SHA256: sum("a")},
		"/etc/b": {Exists: true, Mode: 0o644, UID: 0, GID: 7, SHA256: sum("old")},
	}}
	p, err := buildPlan(h, facts, false, "/b")
	if err != nil {
		t.Fatal(err)
	}
	plan := planText(p)
	if !strings.Contains(plan, "chown 0:0 /etc/a (was 1000:1000)") || !strings.Contains(plan, "write /etc/b mode 0644 owner 0:7 size 1") ||
		fmt.Sprint(p.Changed()) != "[/etc/b /etc/a]" {
		t.Errorf("plan:\n%s\nchanged %v", plan, p.Changed())
	}
	for _, op := range p.Ops {
		if op.Kind == OpWrite && (op.UID != 0 || op.GID != 7) {
			t.Errorf("write of /etc/b owned %d:%d", op.UID, op.GID)
		}
	}

	facts.Init = cluster.InitSysV
	_, err = buildPlan(h, facts, false, "/b")
	if !errors.Is(err, ErrInitMismatch) || !strings.Contains(err.Error(), "runs sysv") || !strings.Contains(err.Error(), "init: systemd") || !strings.Contains(err.Error(), "set `init: sysv` on host rs1") {
		t.Errorf("init mismatch: %v", err)
	}
	h.Init = ""
	if _, err := buildPlan(h, facts, false, "/b"); err != nil {
		t.Errorf("no init in the host: %v", err)
	}
}

// TestPlanInitSystems: what the spec's init system makes of a host's
// units on each init system the host may run. SysV scripts on a systemd
// host are enabled by the host's own tools and run through systemctl; a
// spec saying systemd on a sysvinit host stays refused.
func TestPlanInitSystems(t *testing.T) {
	dir := t.TempDir()
	if err := cluster.EnsureAuthkey(filepath.Join(dir, "authkey")); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		host, spec, os, hostInit string
		want                     []string // "" for ErrInitMismatch
	}{
		{"rs1", cluster.InitSysV, cluster.OSDebian, cluster.InitSystemd, []string{
			"enable lvs-realserver: update-rc.d lvs-realserver defaults",
			"enable lvs-realserver: systemctl daemon-reload",
			"restart lvs-realserver: systemctl restart lvs-realserver.service"}},
		{"rs1", cluster.InitSysV, cluster.OSRedHat, cluster.InitSystemd, []string{
			"enable lvs-realserver: chkconfig --add lvs-realserver",
			"enable lvs-realserver: chkconfig lvs-realserver on",
			"enable lvs-realserver: systemctl daemon-reload",
			"restart lvs-realserver: systemctl restart lvs-realserver.service"}},
		{"linuxha1", cluster.InitSysV, cluster.OSDebian, cluster.InitSystemd, []string{
			"enable lvs-director: systemctl daemon-reload",
			"restart lvs-director: systemctl reload-or-restart lvs-director.service",
			"enable heartbeat: update-rc.d heartbeat defaults",
			"restart heartbeat: systemctl restart heartbeat.service",
			"restart ldirectord: systemctl restart ldirectord.service"}},
		{"rs1", cluster.InitSysV, cluster.OSDebian, cluster.InitSysV, []string{
			"enable lvs-realserver: update-rc.d lvs-realserver defaults",
			"restart lvs-realserver: /etc/init.d/lvs-realserver restart"}},
		{"rs1", cluster.InitSystemd, cluster.OSDebian, cluster.InitSystemd, []string{
			"restart lvs-realserver: systemctl restart lvs-realserver.service"}},
		{"rs1", cluster.InitSystemd, cluster.OSDebian, cluster.InitSysV, nil},
	} {
		name := fmt.Sprintf("%s %s (%s) on %s", c.host, c.spec, c.os, c.hostInit)
		spec, err := cluster.Example(cluster.KernelOrgSource(), dir)
		if err != nil {
			t.Fatal(err)
		}
		sh := spec.Host(c.host)
		sh.Init, sh.OS = c.spec, c.os
		hosts, err := FromSpec(spec, []*cluster.Host{sh}, nil)
		if err != nil {
			t.Fatal(err)
		}
		facts := &Facts{Init: c.hostInit, Files: map[string]RemoteFile{}, Dirs: map[string]bool{}}
		for _, f := range hosts[0].Files {
			facts.Files[f.Path] = RemoteFile{}
		}
		p, err := buildPlan(&hosts[0], facts, false, "/b")
		if c.want == nil {
			if !errors.Is(err, ErrInitMismatch) {
				t.Errorf("%s: %v, want ErrInitMismatch", name, err)
			}
			continue
		}
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		plan := planText(p)
		for _, w := range c.want {
			if !strings.Contains(plan, w) {
				t.Errorf("%s: plan lacks %q:\n%s", name, w, plan)
			}
		}
		for _, op := range p.Ops {
			if c.hostInit == cluster.InitSystemd && (op.Kind == OpRestart || op.Kind == OpReload) && strings.HasPrefix(op.Argv[0], "/etc/init.d/") {
				t.Errorf("%s: an init script run outside systemd: %s", name, op)
			}
		}
	}
}

// TestReloadOrRestart: a unit that can reload reloads a changed file,
// unless its fingerprint (what its reload cannot apply, as roles says)
// differs from the one last applied on the host, or a file of it is new;
// a fingerprint that alone changed restarts nothing. deploy reads no
// daemon's configuration to decide.
func TestReloadOrRestart(t *testing.T) {
	conf, fp := "config v1", "virtual services v1"
	for _, c := range []struct {
		name          string
		conf, fp      string
		confExists    bool
		fpOnHost      string // "" when the host has none
		noReload      bool
		pending, want string
	}{
		{name: "config changed, same fingerprint", conf: "config v2", fp: fp, confExists: true, fpOnHost: fp, want: "reload"},
		{name: "config and fingerprint changed", conf: "config v2", fp: "virtual services v2", confExists: true, fpOnHost: fp, want: "restart"},
		{name: "no fingerprint kept on the host yet", conf: "config v2", fp: fp, confExists: true, want: "restart"},
		{name: "new config file", conf: conf, fp: fp, fpOnHost: fp, want: "restart"},
		{name: "only the fingerprint changed", conf: conf, fp: "virtual services v2", confExists: true, fpOnHost: fp, want: ""},
		{name: "unit without reload", conf: "config v2", fp: fp, confExists: true, fpOnHost: fp, noReload: true, want: "restart"},
		{name: "left over from a failed push", conf: conf, fp: fp, confExists: true, fpOnHost: fp, pending: "unit d", want: "restart"},
	} {
		u := install.Unit{Name: "d", Restart: [][]string{{"restart-d"}}, Reload: [][]string{{"reload-d"}}, Fingerprint: c.fp}
		if c.noReload {
			u.Reload = nil
		}
		h := (&Host{Target: Target{Name: "d1"}, Units: []install.Unit{u}, Files: []install.File{{Path: "/etc/d.conf", Data: []byte(c.conf), Units: []string{"d"}}}}).pushed()
		facts := &Facts{Dirs: map[string]bool{"/etc": true, "/var/lib/lvsforge/units": true}, Pending: map[string]bool{}, Files: map[string]RemoteFile{
			"/etc/d.conf":               {Exists: c.confExists, Mode: 0o644, SHA256: sum(conf)},
			"/var/lib/lvsforge/units/d": {Exists: c.fpOnHost != "", Mode: 0o644, SHA256: sum(c.fpOnHost + "\n")},
		}}
		if c.pending != "" {
			facts.Pending[c.pending] = true
		}
		p, err := buildPlan(h, facts, false, "/b")
		if err != nil {
			t.Fatal(err)
		}
		got := ""
		for _, op := range p.Ops {
			if op.Kind == OpRestart || op.Kind == OpReload {
				got = string(op.Kind)
			}
		}
		if got != c.want {
			t.Errorf("%s: %q, want %q:\n%s", c.name, got, c.want, planText(p))
		}
	}
}

// planText is a plan's ops, one per line, as dry-run prints them.
func planText(p *Plan) string {
	var lines []string
	for _, op := range p.Ops {
		lines = append(lines, op.String())
	}
	return strings.Join(lines, "\n")
}

// TestSteps: a push's report says, step by step, what ran, what failed
// and what did not run; the pending record's update only when it failed.
func TestSteps(t *testing.T) {
	h := &Host{
		Target: Target{Name: "d1"},
		Files: []install.File{
			{Path: "/etc/ha.d/ha.cf", Data: []byte("node d1\n"), Units: []string{"heartbeat"}},
			{Path: "/etc/ha.d/ldirectord.cf", Data: []byte("virtual=10.0.0.1:80\n"), Units: []string{"ldirectord"}},
		},
		Units: []install.Unit{
			{Name: "heartbeat", Enable: [][]string{{"update-rc.d", "heartbeat", "defaults"}}, Restart: [][]string{{"/etc/init.d/heartbeat", "restart"}}},
			{Name: "ldirectord", Restart: [][]string{{"/etc/init.d/ldirectord", "restart"}}},
		},
	}
	facts := &Facts{Dirs: map[string]bool{"/etc/ha.d": true}, Files: map[string]RemoteFile{"/etc/ha.d/ha.cf": {}, "/etc/ha.d/ldirectord.cf": {}}}
	p, err := buildPlan(h, facts, false, "/b")
	if err != nil {
		t.Fatal(err)
	}
	at := func(kind OpKind, unit string) int {
		for i, op := range p.Ops {
			if op.Kind == kind && op.Unit == unit {
				return i
			}
		}
		t.Fatalf("no %s %s in the plan:\n%s", kind, unit, planText(p))
		return 0
	}
	const all = "files uploaded: %s; files in place: %s; heartbeat enable: %s; heartbeat restart: %s; ldirectord restart: %s"
	for _, c := range []struct {
		failed int
		want   string
	}{
		{len(p.Ops), fmt.Sprintf(all, "yes", "yes", "yes", "yes", "yes")},
		{at(OpWrite, ""), fmt.Sprintf(all, "FAILED", "not run", "not run", "not run", "not run")},
		{at(OpRename, ""), fmt.Sprintf(all, "yes", "FAILED", "not run", "not run", "not run")},
		{at(OpRestart, "heartbeat"), fmt.Sprintf(all, "yes", "yes", "yes", "FAILED", "not run")},
		{at(OpClearPending, ""), fmt.Sprintf(all, "yes", "yes", "yes", "yes", "yes") + "; pending record: FAILED"},
	} {
		r := &HostReport{Steps: steps(p.Ops, c.failed)}
		if got := r.stepsText(); got != c.want {
			t.Errorf("failed at op %d (%s):\n got %s\nwant %s", c.failed, p.Ops[min(c.failed, len(p.Ops)-1)], got, c.want)
		}
	}
	if got := (&HostReport{}).stepsText(); got != "nothing changed on the host" {
		t.Errorf("no steps: %s", got)
	}

	// A retry of a restart an earlier push left: no file step.
	for _, f := range h.Files {
		facts.Files[f.Path] = RemoteFile{Exists: true, Mode: 0o644, SHA256: f.SHA256()}
	}
	facts.Pending = map[string]bool{"unit heartbeat": true}
	if p, err = buildPlan(h, facts, false, "/b"); err != nil {
		t.Fatal(err)
	}
	for failed, want := range map[int]string{
		len(p.Ops): "heartbeat enable: yes; heartbeat restart: yes",
		0:          "pending record: FAILED; heartbeat enable: not run; heartbeat restart: not run",
	} {
		if got := (&HostReport{Steps: steps(p.Ops, failed)}).stepsText(); got != want {
			t.Errorf("retry failed at op %d:\n got %s\nwant %s\n%s", failed, got, want, planText(p))
		}
	}
}
