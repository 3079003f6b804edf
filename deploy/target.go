package deploy

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"strconv"
	"strings"

	"github.com/kevinburke/ssh_config"

	"github.com/lvsforge/lvsforge/cluster"
)

// Target is everything needed to open an SSH connection to one host, after
// the spec and ~/.ssh/config have been merged.
type Target struct {
	// Name is the host's name in the spec; reports and errors use it.
	Name string `json:"name"`
	// Host is the address or DNS name that is dialled.
	Host string `json:"host"`
	Port int    `json:"port"`
	User string `json:"user"`
	// KeyFiles are private keys tried after the agent's keys.
	KeyFiles []string `json:"keyFiles,omitempty"`
	// Jump is the first hop when the host is only reachable through a jump host.
	Jump *Target `json:"jump,omitempty"`
}

// Addr is the host:port that is dialled and looked up in known_hosts.
func (t Target) Addr() string { return net.JoinHostPort(t.Host, strconv.Itoa(t.Port)) }

func (t Target) String() string {
	s := t.User + "@" + t.Addr()
	if t.Jump != nil {
		s += " via " + t.Jump.String()
	}
	return s
}

// SSHConfig answers ssh_config(5) questions for a host alias. A nil
// *SSHConfig answers nothing, so tests and CI are not influenced by the
// invoking user's ~/.ssh/config unless it is asked for.
type SSHConfig struct {
	cfg *ssh_config.Config
}

// LoadSSHConfig parses an ssh_config file. A missing file is an empty config,
// as it is for ssh(1).
func LoadSSHConfig(path string) (*SSHConfig, error) {
	f, err := os.Open(path)
	if errors.Is(err, os.ErrNotExist) {
		return &SSHConfig{}, nil
	}
	if err != nil {
		return nil, fmt.Errorf("open ssh config: %w", err)
	}
	defer f.Close()
	cfg, err := ssh_config.Decode(f)
	if err != nil {
		return nil, fmt.Errorf("parse ssh config %s: %w", path, err)
	}
	return &SSHConfig{cfg: cfg}, nil
}

// DefaultSSHConfigPath is ~/.ssh/config of the invoking user.
func DefaultSSHConfigPath() string { return userSSHFile("config") }

// userSSHFile is the file name in the invoking user's ~/.ssh, or "" when
// the user has no home directory.
func userSSHFile(name string) string {
	home, err := os.UserHomeDir()
	if err != nil {
		return ""
	}
	return filepath.Join(home, ".ssh", name)
}

func (c *SSHConfig) get(alias, key string) string {
	if c == nil || c.cfg == nil {
		return ""
	}
	v, err := c.cfg.Get(alias, key)
	if err != nil {
		return ""
	}
	return v
}

func (c *SSHConfig) getAll(alias, key string) []string {
	if c == nil || c.cfg == nil {
		return nil
	}
	v, err := c.cfg.GetAll(alias, key)
	if err != nil {
		return nil
	}
	return v
}

// ResolveTarget merges a spec host with ssh_config: a value set in the spec
// wins, then the config for the host's name, then the config for its
// address, then the defaults (root, port 22). sc may be nil.
func ResolveTarget(h cluster.Host, sc *SSHConfig) (Target, error) {
	return resolve(h, sc, true)
}

// resolve does ResolveTarget; followJump is false for the hops of a
// ProxyJump chain, whose order the chain itself gives (and a "Host *"
// ProxyJump would otherwise recurse forever).
func resolve(h cluster.Host, sc *SSHConfig, followJump bool) (Target, error) {
	addr := h.SSH.Address
	if addr == "" {
		addr = h.Address
	}
	if i := strings.IndexByte(addr, '/'); i >= 0 {
		addr = addr[:i] // the spec carries DIP/RIP with a prefix length
	}
	if addr == "" {
		addr = h.Name
	}
	aliases := []string{h.Name, addr}
	lookup := func(key string) string {
		for _, a := range aliases {
			if v := sc.get(a, key); v != "" {
				return v
			}
		}
		return ""
	}
	t := Target{Name: h.Name, Host: addr, User: h.SSH.User, Port: h.SSH.Port}
	if h.SSH.Address == "" {
		// HostName in the config for the spec's name redirects the connection,
		// as `ssh rs1` would.
		if hn := sc.get(h.Name, "HostName"); hn != "" && hn != h.Name {
			t.Host = hn
		}
	}
	if t.User == "" {
		t.User = lookup("User")
	}
	if t.User == "" {
		t.User = "root"
	}
	if t.Port == 0 {
		if p := lookup("Port"); p != "" {
			n, err := strconv.Atoi(p)
			if err != nil {
				return Target{}, fmt.Errorf("parse Port %q of host %s in ssh config: %w", p, h.Name, err)
			}
			t.Port = n
		}
	}
	if t.Port == 0 {
		t.Port = 22
	}
	if h.SSH.Key != "" {
		t.KeyFiles = []string{expandHome(h.SSH.Key)}
	} else {
		for _, a := range aliases {
			for _, f := range sc.getAll(a, "IdentityFile") {
				t.KeyFiles = appendUnique(t.KeyFiles, expandHome(f))
			}
		}
	}
	jump := h.SSH.Jump
	if jump == "" && followJump {
		jump = lookup("ProxyJump")
	}
	if jump != "" && !strings.EqualFold(jump, "none") {
		j, err := resolveJump(jump, sc, t.KeyFiles)
		if err != nil {
			return Target{}, fmt.Errorf("resolve jump host of %s: %w", h.Name, err)
		}
		t.Jump = j
	}
	return t, nil
}

// resolveJump parses a ProxyJump value: [user@]host[:port][,[user@]host[:port]...].
// The first element is dialled first, so it ends up at the end of the chain.
func resolveJump(spec string, sc *SSHConfig, keys []string) (*Target, error) {
	var prev *Target
	for _, hop := range strings.Split(spec, ",") {
		hop = strings.TrimSpace(hop)
		if hop == "" {
			return nil, fmt.Errorf("parse jump %q: empty hop", spec)
		}
		var user string
		if i := strings.LastIndexByte(hop, '@'); i >= 0 {
			user, hop = hop[:i], hop[i+1:]
		}
		host, port := hop, 0
		if h, p, err := net.SplitHostPort(hop); err == nil {
			n, err := strconv.Atoi(p)
			if err != nil {
				return nil, fmt.Errorf("parse jump %q: bad port %q", spec, p)
			}
			host, port = h, n
		}
		t, err := resolve(cluster.Host{Name: host, SSH: cluster.SSH{User: user, Port: port}}, sc, false)
		if err != nil {
			return nil, err
		}
		if len(t.KeyFiles) == 0 {
			t.KeyFiles = keys
		}
		t.Jump = prev
		prev = &t
	}
	return prev, nil
}

func expandHome(p string) string {
	if p == "~" || strings.HasPrefix(p, "~/") {
		if home, err := os.UserHomeDir(); err == nil {
			return filepath.Join(home, p[1:])
		}
	}
	return p
}

func appendUnique(s []string, v string) []string {
	for _, x := range s {
		if x == v {
			return s
		}
	}
	return append(s, v)
}
