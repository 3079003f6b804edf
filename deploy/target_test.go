package deploy_test

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/internal/testenv"
)

func writeSSHConfig(t *testing.T, text string) *deploy.SSHConfig {
	t.Helper()
	p := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(p, []byte(text), 0o600); err != nil {
		t.Fatal(err)
	}
	sc, err := deploy.LoadSSHConfig(p)
	if err != nil {
		t.Fatal(err)
	}
	return sc
}

func TestResolveTarget(t *testing.T) {
	sc := writeSSHConfig(t, `
Host rs1
  HostName rs1.example.net
  User admin
  Port 2222
  IdentityFile /keys/rs1
  ProxyJump ops@bastion:2200,inner
Host 192.168.7.12
  User viaaddr
Host inner
  HostName 10.0.0.5
Host *
  IdentityFile /keys/default
`)
	cases := []struct {
		host cluster.Host
		want string
	}{
		// ssh_config for the spec name, including a two-hop ProxyJump.
		{cluster.Host{Name: "rs1", Address: "192.168.7.11/24"},
			"admin@rs1.example.net:2222 via root@10.0.0.5:22 via ops@bastion:2200 keys [/keys/rs1 /keys/default]"},
		// Spec values win over the config.
		{cluster.Host{Name: "rs1", Address: "192.168.7.11/24", SSH: cluster.SSH{User: "u", Port: 22, Key: "/k", Address: "10.1.1.1", Jump: "none"}},
			"u@10.1.1.1:22 keys [/k]"},
		// Config looked up by address when the name has nothing; defaults.
		{cluster.Host{Name: "rs2", Address: "192.168.7.12/24"},
			"viaaddr@192.168.7.12:22 keys [/keys/default]"},
	}
	for _, c := range cases {
		got, err := deploy.ResolveTarget(c.host, sc)
		if err != nil {
			t.Fatal(err)
		}
		if s := fmt.Sprintf("%s keys %v", got, got.KeyFiles); s != c.want {
			t.Errorf("ResolveTarget(%+v)\n got %s\nwant %s", c.host, s, c.want)
		}
	}
	if _, err := deploy.ResolveTarget(cluster.Host{Name: "x", Address: "1.2.3.4", SSH: cluster.SSH{Jump: "a:notaport"}}, nil); err == nil {
		t.Error("a jump with a bad port was accepted")
	}
}

// TestProxyJump reaches h1 only through h0, with the jump configured the
// way users do it: in ssh_config.
func TestProxyJump(t *testing.T) {
	e := newEnv(t, 2)
	h0, h1 := e.c.Hosts[0], e.c.Hosts[1]
	if err := h1.SetHostname("web1"); err != nil {
		t.Fatal(err)
	}
	sc := writeSSHConfig(t, fmt.Sprintf("Host web1\n  HostName %s\n  IdentityFile %s\n  ProxyJump jumpbox\nHost jumpbox\n  HostName %s\n",
		h1.Addr, e.c.ClientKeyFile, h0.Addr))
	tg, err := deploy.ResolveTarget(cluster.Host{Name: "web1", Address: "192.168.7.11/24"}, sc)
	if err != nil {
		t.Fatal(err)
	}
	r := deploy.Push(context.Background(), []deploy.Host{{Target: tg, Files: files("v1"), Units: units}}, e.opts)
	if err := r.Err(); err != nil {
		t.Fatalf("push through a jump host: %v", err)
	}
	if got := readHost(t, h1, "/etc/ha.d/www.cf"); got != string(files("v1")[5].Data) {
		t.Errorf("file not on the target: %q", got)
	}
	log, _ := os.ReadFile(filepath.Join(h1.Dir, "sshd.log"))
	if !strings.Contains(string(log), "from "+h0.Addr+" ") {
		t.Errorf("target's sshd did not see the jump host's address:\n%s", log)
	}
}

// TestAgentAuth logs in with a key that only ssh-agent holds.
func TestAgentAuth(t *testing.T) {
	agentBin := testenv.LookPath(t, "ssh-agent", "openssh-client")
	addBin := testenv.LookPath(t, "ssh-add", "openssh-client")
	e := newEnv(t, 1)
	sock := filepath.Join(t.TempDir(), "agent.sock")
	agent := exec.Command(agentBin, "-D", "-a", sock)
	stdout, err := agent.StdoutPipe()
	if err != nil {
		t.Fatal(err)
	}
	if err := agent.Start(); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { agent.Process.Kill(); agent.Wait() })
	// ssh-agent prints its environment once the socket listens.
	if _, err := bufio.NewReader(stdout).ReadString('\n'); err != nil {
		t.Fatalf("ssh-agent did not start: %v", err)
	}
	add := exec.Command(addBin, e.c.ClientKeyFile)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	t.Setenv("SSH_AUTH_SOCK", sock)
	t.Setenv("HOME", t.TempDir()) // no ~/.ssh/id_* to fall back on
	o := e.opts
	o.Dial.NoAgent = false
	tg := e.target(e.c.Hosts[0])
	tg.KeyFiles = nil
	r := deploy.Push(context.Background(), []deploy.Host{{Target: tg, Files: files("v1"), Units: units}}, o)
	if err := r.Err(); err != nil {
		t.Fatalf("push with the agent's key: %v", err)
	}
}
