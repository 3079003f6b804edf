package deploy

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"strings"
	"testing"
)

func sum(s string) string {
	h := sha256.Sum256([]byte(s))
	return hex.EncodeToString(h[:])
}

// TestParseFacts feeds the fact script's output format, as OpenSSH hosts
// produce it, through the parser.
func TestParseFacts(t *testing.T) {
	out := "U rs1 6.1.0-28-amd64\nI systemd\nG update-grub\nG grub-reboot\n" +
		"S 644 81a4 /etc/a b.conf\nS 755 41ed /etc/dir\n" +
		sum("A") + "  /etc/a b.conf\n" +
		"D /etc\nT /etc/.lvsforge-tmp-0a0b-x\n"
	f, err := parseFacts([]byte(out), []string{"/etc/a b.conf", "/etc/dir", "/etc/missing"})
	if err != nil {
		t.Fatal(err)
	}
	if f.Hostname != "rs1" || f.Kernel != "6.1.0-28-amd64" || f.Init != InitSystemd || !f.Boot["update-grub"] {
		t.Errorf("facts: %+v", f)
	}
	if got := f.Files["/etc/a b.conf"]; !got.Exists || got.Mode != 0o644 || got.SHA256 != sum("A") {
		t.Errorf("regular file: %+v", got)
	}
	if !f.Files["/etc/dir"].IsDir || f.Files["/etc/missing"].Exists {
		t.Errorf("dir/missing: %+v", f.Files)
	}
	if len(f.StaleTemps) != 1 || !f.Dirs["/etc"] {
		t.Errorf("temps %v dirs %v", f.StaleTemps, f.Dirs)
	}
	if _, err := parseFacts([]byte("garbage\n"), nil); err == nil {
		t.Error("garbage accepted")
	}
}

func TestBuildPlan(t *testing.T) {
	ld := "virtual=10.0.0.1:80\n\treal=10.0.0.2:80 gate 1\n"
	h := &Host{
		Target: Target{Name: "d1"},
		Files: []File{
			{Path: "/etc/ha.d/ldirectord.cf", Data: []byte(ld + "\tscheduler=wrr\n"), Units: []string{"ldirectord"}},
			{Path: "/etc/ha.d/authkeys", Data: []byte("auth 1\n1 sha1 s3cret\n"), Mode: 0o644, Secret: true, Units: []string{"heartbeat"}},
			{Path: "/etc/ha.d/ha.cf", Data: []byte("same"), Units: []string{"heartbeat"}},
		},
		Units: []Unit{
			{Name: "heartbeat", Restart: [][]string{{"/etc/init.d/heartbeat", "restart"}}},
			{Name: "ldirectord", Restart: [][]string{{"ldirectord", "restart"}}, Reload: [][]string{{"ldirectord", "reload"}}},
		},
		Commands: [][]string{{"sysctl", "--system"}},
	}
	facts := &Facts{Init: InitSysV, Dirs: map[string]bool{"/etc/ha.d": true}, Files: map[string]RemoteFile{
		"/etc/ha.d/ldirectord.cf": {Exists: true, Mode: 0o644, SHA256: sum(ld)},
		"/etc/ha.d/authkeys":      {Exists: true, Mode: 0o644, SHA256: sum("auth 1\n1 sha1 s3cret\n")},
		"/etc/ha.d/ha.cf":         {Exists: true, Mode: 0o644, SHA256: sum("same")},
	}}
	old := func(string) ([]byte, error) { return []byte(ld), nil }
	p, err := buildPlan(h, facts, true, old)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, op := range p.Ops {
		got = append(got, op.String())
	}
	want := []string{
		fmt.Sprintf("write /etc/ha.d/ldirectord.cf mode 0644 size %d sha256 %.12s (changed, backup)", len(ld)+15, sum(ld+"\tscheduler=wrr\n")),
		// A secret lands 0600 whatever its Mode says; same content, so only a chmod.
		"chmod 0600 /etc/ha.d/authkeys (was 0644)",
		// A failure from here on is retried by the next push.
		"record pending commands, unit heartbeat, unit ldirectord in /var/lib/lvsforge/pending",
		"run sysctl --system",
		"restart heartbeat: /etc/init.d/heartbeat restart",
		// Same virtual services: a reload is enough.
		"reload ldirectord: ldirectord reload",
		"clear /var/lib/lvsforge/pending",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}
	if strings.Contains(strings.Join(got, ""), "s3cret") {
		t.Error("secret in the plan")
	}

	// A virtual service removed: restart.
	h.Files[0].Data = []byte("virtual=10.0.0.9:80\n")
	p, _ = buildPlan(h, facts, true, old)
	if last := p.Ops[len(p.Ops)-2]; last.Kind != OpRestart || last.Unit != "ldirectord" {
		t.Errorf("after removing a virtual: %v", last)
	}

	// Nothing changed: no commands, no restarts.
	h.Files = h.Files[2:]
	if p, _ = buildPlan(h, facts, true, old); p.Mutates() || len(p.Unchanged) != 1 {
		t.Errorf("no-op plan: %v", p.Ops)
	}

	// A restart that failed last time is redone; a kernel install pending
	// from a push with --kernel stays pending through one without.
	facts.Pending = map[string]bool{"unit heartbeat": true, "kernel": true}
	p, _ = buildPlan(h, facts, true, old)
	got = nil
	for _, op := range p.Ops {
		got = append(got, op.String())
	}
	want = []string{
		"record pending unit heartbeat, kernel in /var/lib/lvsforge/pending",
		"restart heartbeat: /etc/init.d/heartbeat restart",
		"record pending kernel in /var/lib/lvsforge/pending",
	}
	if strings.Join(got, "\n") != strings.Join(want, "\n") {
		t.Errorf("pending plan:\n%s\nwant:\n%s", strings.Join(got, "\n"), strings.Join(want, "\n"))
	}

	for _, bad := range []string{"etc/x", "/etc/../x", "/etc/x\n", `/etc/a\b`, "/"} {
		h.Files = []File{{Path: bad}}
		if _, err := buildPlan(h, &Facts{}, true, old); !errors.Is(err, ErrBadPath) {
			t.Errorf("path %q: %v, want ErrBadPath", bad, err)
		}
	}
	h.Files = []File{{Path: "/x", Units: []string{"nosuch"}}}
	if _, err := buildPlan(h, &Facts{Files: map[string]RemoteFile{"/x": {}}}, true, old); err == nil {
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
		if got := shellQuote(in); got != want {
			t.Errorf("shellQuote(%q) = %s, want %s", in, got, want)
		}
	}
}

// TestKernelOpsLegacy checks the GRUB legacy plan, which the test machine
// (with update-grub installed) cannot exercise for real.
func TestKernelOpsLegacy(t *testing.T) {
	k := &Kernel{Release: "2.6.32-lvs", Image: &Artifact{}, ActivateOnce: true}
	f := &Facts{Kernel: "2.6.18", Boot: map[string]bool{"legacy": true}}
	install, activate, err := kernelOps(k, f, func(string) bool { return true })
	if err != nil {
		t.Fatal(err)
	}
	if len(install) != 1 || !strings.Contains(shellJoin(install[0].Argv), `grep -q "^title 2\.6\.32-lvs (lvsforge" /boot/grub/grub.conf`) {
		t.Errorf("install: %v", install)
	}
	if len(activate) != 1 || !strings.Contains(shellJoin(activate[0].Argv), "savedefault --default=%s --once") {
		t.Errorf("activate: %v", activate)
	}
	k.MakeDefault, k.ActivateOnce = true, false
	if _, _, err := kernelOps(k, f, func(string) bool { return false }); !errors.Is(err, ErrNotRunning) {
		t.Errorf("confirm on a host running another kernel: %v", err)
	}
	if _, _, err := kernelOps(&Kernel{Release: "6.1; reboot", Image: &Artifact{}}, f, func(string) bool { return true }); err == nil {
		t.Error("a release with shell metacharacters was accepted")
	}
	if _, _, err := kernelOps(&Kernel{Release: "6.1", Image: &Artifact{}}, &Facts{}, func(string) bool { return true }); err == nil {
		t.Error("a host without GRUB was accepted")
	}
}
