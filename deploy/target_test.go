package deploy_test

import (
	"context"
	"crypto/ed25519"
	"crypto/rand"
	"encoding/pem"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"golang.org/x/crypto/ssh"

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

// startAgent runs an ssh-agent holding keyFile and returns its socket.
func startAgent(t *testing.T, keyFile string) string {
	t.Helper()
	agentBin := testenv.LookPath(t, "ssh-agent", "openssh-client")
	addBin := testenv.LookPath(t, "ssh-add", "openssh-client")
	sock := filepath.Join(t.TempDir(), "agent.sock")
	stdout := testenv.Start(t, exec.Command(agentBin, "-D", "-a", sock))
	// ssh-agent prints its environment once the socket listens.
	if _, err := stdout.ReadString('\n'); err != nil {
		t.Fatalf("ssh-agent did not start: %v", err)
	}
	add := exec.Command(addBin, keyFile)
	add.Env = append(os.Environ(), "SSH_AUTH_SOCK="+sock)
	if out, err := add.CombinedOutput(); err != nil {
		t.Fatalf("ssh-add: %v: %s", err, out)
	}
	return sock
}

// TestAgentAuth logs in with a key that only ssh-agent holds.
func TestAgentAuth(t *testing.T) {
	e := newEnv(t, 1)
	t.Setenv("SSH_AUTH_SOCK", startAgent(t, e.c.ClientKeyFile))
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

// TestAuthFailure: a host that accepts none of the keys gets an error
// naming the user and every key offered, from the agent and from files.
func TestAuthFailure(t *testing.T) {
	e := newEnv(t, 1)
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "")
	if err != nil {
		t.Fatal(err)
	}
	stranger := filepath.Join(t.TempDir(), "id_stranger")
	if err := os.WriteFile(stranger, pem.EncodeToMemory(block), 0o600); err != nil {
		t.Fatal(err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		t.Fatal(err)
	}
	fp := "ssh-ed25519 " + ssh.FingerprintSHA256(signer.PublicKey())
	sock := startAgent(t, stranger)
	t.Setenv("HOME", t.TempDir())
	for _, c := range []struct {
		name  string
		agent string
		keys  []string
		want  []string
	}{
		{"key file", "", []string{stranger}, []string{"no agent (SSH_AUTH_SOCK is not set)", fmt.Sprintf("%q (%s)", stranger, fp)}},
		{"agent", sock, nil, []string{fmt.Sprintf("agent %q (%s %q)", sock, fp, stranger), "no ~/.ssh/id_ed25519, id_ecdsa or id_rsa"}},
	} {
		t.Setenv("SSH_AUTH_SOCK", c.agent)
		o := e.opts
		o.Dial.NoAgent = false
		tg := e.target(e.c.Hosts[0])
		tg.KeyFiles = c.keys
		r := deploy.Push(context.Background(), []deploy.Host{{Target: tg, Files: files("v1")}}, o)
		err := r.Hosts[0].Err()
		if !errors.Is(err, deploy.ErrAuth) {
			t.Fatalf("%s: %v, want ErrAuth", c.name, err)
		}
		t.Logf("%s: %v", c.name, err)
		for _, w := range append(c.want, `log in as "root"`, "authorized_keys") {
			if !strings.Contains(err.Error(), w) {
				t.Errorf("%s: the error does not say %q: %v", c.name, w, err)
			}
		}
	}
}
