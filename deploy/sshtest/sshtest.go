// Package sshtest starts real OpenSSH sshd "hosts" for tests and benchmarks:
// each host is a network namespace on a private bridge (10.213.X.0/24, X
// picked at random) running /usr/sbin/sshd -D inside its own mount
// namespace, where /etc, /var and /usr/local are overlays of the machine's
// and /boot and /lib/modules are empty directories of the test. Host keys are generated per
// cluster. Everything is torn down by t.Cleanup, also when the test fails.
// It needs root; testenv skips without it locally and fails in CI.
package sshtest

import (
	"bufio"
	"crypto/ed25519"
	"crypto/rand"
	"crypto/sha256"
	"encoding/hex"
	"encoding/pem"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"math/big"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/knownhosts"

	"github.com/lvsforge/lvsforge/internal/testenv"
)

// Cluster is a set of sshd hosts sharing one bridge.
type Cluster struct {
	Hosts []*Host
	// Dir holds keys, known_hosts and every host's private directories.
	Dir string
	// ClientKeyFile is an unencrypted ed25519 key every host accepts for root.
	ClientKeyFile string
	// KnownHostsFile lists every host's key.
	KnownHostsFile string

	bridge string
	prefix string
	lock   *os.File // holds the subnet; see pickSubnet
	// cgroup holds every host's sshd and sessions (cgroup v2), for CPUTime;
	// "" when the machine has no writable cgroup v2 hierarchy.
	cgroup string
}

// Host is one sshd in its own network and mount namespaces.
type Host struct {
	Name    string
	NetNS   string
	Addr    string // IPv4 address sshd listens on, port 22
	HostKey ssh.PublicKey
	Dir     string

	mu       sync.Mutex
	hostname string // uname -n, Name unless SetHostname changed it
	cmd      *exec.Cmd
	done     chan struct{}
	log      *os.File
	cgroup   string
}

// Start creates n hosts named h0..h(n-1). It skips the test (fails in CI)
// without root or sshd.
func Start(t testing.TB, n int) *Cluster {
	t.Helper()
	testenv.Root(t)
	sshd := testenv.LookPath(t, "sshd", "openssh-server")
	testenv.LookPath(t, "ip", "iproute2")
	testenv.LookPath(t, "unshare", "util-linux")
	// Exec goes into the hosts' namespaces with it.
	testenv.LookPath(t, "nsenter", "util-linux")
	if _, err := os.Stat("/usr/lib/openssh/sftp-server"); err != nil {
		testenv.Missing(t, "/usr/lib/openssh/sftp-server", "apt-get install -y openssh-sftp-server")
	}
	c := &Cluster{Dir: t.TempDir()}
	t.Cleanup(c.Close)
	if err := c.start(sshd, n); err != nil {
		t.Fatalf("start sshd hosts: %v", err)
	}
	return c
}

// New starts n hosts outside a test (the benchmark); the caller must Close
// the cluster. dir holds keys and the hosts' directories.
func New(dir string, n int) (*Cluster, error) {
	if err := os.MkdirAll(dir, 0o700); err != nil {
		return nil, fmt.Errorf("create cluster directory: %w", err)
	}
	for _, tool := range []string{"ip", "unshare", "nsenter", "/usr/sbin/sshd", "/usr/lib/openssh/sftp-server"} {
		if _, err := exec.LookPath(tool); err != nil {
			return nil, fmt.Errorf("start sshd hosts: %w (Debian: apt-get install -y iproute2 util-linux openssh-server)", err)
		}
	}
	c := &Cluster{Dir: dir}
	if err := c.start("/usr/sbin/sshd", n); err != nil {
		c.Close()
		return nil, err
	}
	return c, nil
}

func run(args ...string) error {
	out, err := exec.Command(args[0], args[1:]...).CombinedOutput()
	if err != nil {
		return fmt.Errorf("run %s: %w: %s", strings.Join(args, " "), err, strings.TrimSpace(string(out)))
	}
	return nil
}

// pickSubnet chooses a 10.213.X.0/24 that no interface of this machine uses
// and no other cluster holds: the flock on /run/lock/lvsforge-sshtest-X is
// kept until Close, so test binaries running in parallel never share a subnet.
func (c *Cluster) pickSubnet() (int, error) {
	used := map[int]bool{}
	addrs, err := net.InterfaceAddrs()
	if err != nil {
		return 0, fmt.Errorf("list addresses: %w", err)
	}
	for _, a := range addrs {
		if ipn, ok := a.(*net.IPNet); ok {
			if ip4 := ipn.IP.To4(); ip4 != nil && ip4[0] == 10 && ip4[1] == 213 {
				used[int(ip4[2])] = true
			}
		}
	}
	lockDir := "/run/lock"
	if _, err := os.Stat(lockDir); err != nil {
		lockDir = os.TempDir()
	}
	for range 200 {
		x, err := rand.Int(rand.Reader, big.NewInt(250))
		if err != nil {
			return 0, err
		}
		s := int(x.Int64()) + 2
		if used[s] {
			continue
		}
		f, err := os.OpenFile(filepath.Join(lockDir, fmt.Sprintf("lvsforge-sshtest-%d", s)), os.O_RDWR|os.O_CREATE, 0o600)
		if err != nil {
			return 0, fmt.Errorf("lock subnet: %w", err)
		}
		if err := syscall.Flock(int(f.Fd()), syscall.LOCK_EX|syscall.LOCK_NB); err != nil {
			f.Close()
			continue
		}
		c.lock = f
		return s, nil
	}
	return 0, errors.New("pick subnet: no free 10.213.X.0/24")
}

func (c *Cluster) start(sshd string, n int) error {
	if n < 1 || n > 240 {
		return fmt.Errorf("start %d hosts: one /24 holds 1 to 240", n)
	}
	subnet, err := c.pickSubnet()
	if err != nil {
		return err
	}
	var rnd [3]byte
	rand.Read(rnd[:])
	c.prefix = "lvf" + hex.EncodeToString(rnd[:])
	c.bridge = c.prefix + "br"
	c.cgroup = newCgroup(c.prefix)
	if err := run("ip", "link", "add", c.bridge, "type", "bridge"); err != nil {
		return err
	}
	if err := run("ip", "addr", "add", fmt.Sprintf("10.213.%d.1/24", subnet), "dev", c.bridge); err != nil {
		return err
	}
	if err := run("ip", "link", "set", c.bridge, "up"); err != nil {
		return err
	}
	// Client key.
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate client key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, "lvsforge-test")
	if err != nil {
		return fmt.Errorf("marshal client key: %w", err)
	}
	c.ClientKeyFile = filepath.Join(c.Dir, "id_ed25519")
	if err := os.WriteFile(c.ClientKeyFile, pem.EncodeToMemory(block), 0o600); err != nil {
		return fmt.Errorf("write client key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return fmt.Errorf("load client key: %w", err)
	}
	authorized := filepath.Join(c.Dir, "authorized_keys")
	if err := os.WriteFile(authorized, ssh.MarshalAuthorizedKey(signer.PublicKey()), 0o600); err != nil {
		return fmt.Errorf("write authorized_keys: %w", err)
	}
	var known strings.Builder
	for i := 0; i < n; i++ {
		h := &Host{
			Name:  fmt.Sprintf("h%d", i),
			NetNS: fmt.Sprintf("%s-%d", c.prefix, i),
			Addr:  fmt.Sprintf("10.213.%d.%d", subnet, 10+i),
			Dir:   filepath.Join(c.Dir, fmt.Sprintf("h%d", i)),

			cgroup: c.cgroup,
		}
		c.Hosts = append(c.Hosts, h)
		if err := c.setupHost(h, i, authorized); err != nil {
			return err
		}
		known.WriteString(knownhosts.Line([]string{knownhosts.Normalize(h.Addr + ":22")}, h.HostKey) + "\n")
	}
	c.KnownHostsFile = filepath.Join(c.Dir, "known_hosts")
	if err := os.WriteFile(c.KnownHostsFile, []byte(known.String()), 0o600); err != nil {
		return fmt.Errorf("write known_hosts: %w", err)
	}
	// Start the daemons in parallel: each waits for its own "listening" line.
	errs := make([]error, n)
	var wg sync.WaitGroup
	for i, h := range c.Hosts {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = h.Start(sshd)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

func (c *Cluster) setupHost(h *Host, i int, authorized string) error {
	for _, d := range []string{"etc-upper", "etc-work", "var-upper", "var-work", "local-upper", "local-work", "boot", "modules"} {
		if err := os.MkdirAll(filepath.Join(h.Dir, d), 0o755); err != nil {
			return fmt.Errorf("create host dir: %w", err)
		}
	}
	_, priv, err := ed25519.GenerateKey(rand.Reader)
	if err != nil {
		return fmt.Errorf("generate host key: %w", err)
	}
	block, err := ssh.MarshalPrivateKey(priv, h.Name)
	if err != nil {
		return fmt.Errorf("marshal host key: %w", err)
	}
	if err := os.WriteFile(filepath.Join(h.Dir, "ssh_host_ed25519_key"), pem.EncodeToMemory(block), 0o600); err != nil {
		return fmt.Errorf("write host key: %w", err)
	}
	signer, err := ssh.NewSignerFromKey(priv)
	if err != nil {
		return fmt.Errorf("load host key: %w", err)
	}
	h.HostKey = signer.PublicKey()
	cfg := fmt.Sprintf(`ListenAddress %s:22
HostKey %s/ssh_host_ed25519_key
PidFile none
UsePAM no
PermitRootLogin prohibit-password
PasswordAuthentication no
KbdInteractiveAuthentication no
AuthorizedKeysFile %s
StrictModes no
MaxStartups 200
MaxSessions 100
Subsystem sftp /usr/lib/openssh/sftp-server
LogLevel INFO
`, h.Addr, h.Dir, authorized)
	if err := os.WriteFile(filepath.Join(h.Dir, "sshd_config"), []byte(cfg), 0o600); err != nil {
		return fmt.Errorf("write sshd_config: %w", err)
	}
	// The boot script runs inside the host's mount namespace: private /etc,
	// /var and /usr/local (overlays, so sshd still finds passwd and its own
	// files, and a test can put a tool first in PATH),
	// empty /boot and /lib/modules, a private /run for sshd's privsep dir.
	script := fmt.Sprintf(`set -e
mount -t overlay overlay -o lowerdir=/etc,upperdir=%[1]s/etc-upper,workdir=%[1]s/etc-work /etc
mount -t overlay overlay -o lowerdir=/var,upperdir=%[1]s/var-upper,workdir=%[1]s/var-work /var
mount -t overlay overlay -o lowerdir=/usr/local,upperdir=%[1]s/local-upper,workdir=%[1]s/local-work /usr/local
mount --bind %[1]s/boot /boot
mount --bind %[1]s/modules /lib/modules
mount -t tmpfs -o mode=0755 tmpfs /run
mkdir -m 0755 /run/sshd
echo %[2]s > /etc/hostname
# root's login shell becomes /bin/sh: bash would source the machine's
# /root/.bashrc (pyenv and the like) for every command a test runs.
awk -F: -v OFS=: '$1 == "root" { $7 = "/bin/sh" } 1' /etc/passwd > /run/passwd
cat /run/passwd > /etc/passwd
exec "$1" -D -e -f %[1]s/sshd_config
`, h.Dir, h.Name)
	if err := os.WriteFile(filepath.Join(h.Dir, "boot.sh"), []byte(script), 0o755); err != nil {
		return fmt.Errorf("write boot script: %w", err)
	}
	for _, d := range []string{"/boot", "/lib/modules"} {
		if err := os.MkdirAll(d, 0o755); err != nil {
			return fmt.Errorf("create mount point %s: %w", d, err)
		}
	}
	veth := fmt.Sprintf("%sh%d", c.prefix, i)
	steps := [][]string{
		{"ip", "netns", "add", h.NetNS},
		{"ip", "link", "add", veth, "type", "veth", "peer", "name", "eth0", "netns", h.NetNS},
		{"ip", "link", "set", veth, "master", c.bridge},
		{"ip", "link", "set", veth, "up"},
		{"ip", "-n", h.NetNS, "addr", "add", h.Addr + "/24", "dev", "eth0"},
		{"ip", "-n", h.NetNS, "link", "set", "eth0", "up"},
		{"ip", "-n", h.NetNS, "link", "set", "lo", "up"},
	}
	for _, s := range steps {
		if err := run(s...); err != nil {
			return err
		}
	}
	return nil
}

// Start (re)starts the host's sshd and returns once it listens.
func (h *Host) Start(sshd string) error {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd != nil {
		return fmt.Errorf("start sshd on %s: already running", h.Name)
	}
	log, err := os.OpenFile(filepath.Join(h.Dir, "sshd.log"), os.O_WRONLY|os.O_CREATE|os.O_APPEND, 0o644)
	if err != nil {
		return fmt.Errorf("open sshd log: %w", err)
	}
	// The hostname is per host too (uname -n), hence the UTS namespace.
	hostname := h.hostname
	if hostname == "" {
		hostname = h.Name
	}
	cmd := exec.Command("ip", "netns", "exec", h.NetNS, "unshare", "--mount", "--uts", "--propagation", "private",
		"sh", "-c", `hostname "$1"; shift; exec sh "$@"`, "sh", hostname, filepath.Join(h.Dir, "boot.sh"), sshd)
	stderr, err := cmd.StderrPipe()
	if err != nil {
		log.Close()
		return fmt.Errorf("pipe sshd stderr: %w", err)
	}
	cmd.Stdout = log
	if err := cmd.Start(); err != nil {
		log.Close()
		return fmt.Errorf("start sshd on %s: %w", h.Name, err)
	}
	h.cmd, h.log, h.done = cmd, log, make(chan struct{})
	if h.cgroup != "" {
		// Every session sshd forks from now on is accounted there.
		os.WriteFile(filepath.Join(h.cgroup, "cgroup.procs"), []byte(strconv.Itoa(cmd.Process.Pid)), 0o644)
	}
	listening := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(stderr)
		once := sync.Once{}
		for sc.Scan() {
			fmt.Fprintln(log, sc.Text())
			if strings.HasPrefix(sc.Text(), "Server listening on") {
				once.Do(func() { close(listening) })
			}
		}
		cmd.Wait()
		close(h.done)
	}()
	select {
	case <-listening:
		return nil
	case <-h.done:
		b, _ := os.ReadFile(filepath.Join(h.Dir, "sshd.log"))
		h.cmd = nil
		return fmt.Errorf("start sshd on %s: exited: %s", h.Name, b)
	}
}

// SetHostname gives the running host another uname -n (the name a spec
// calls it: push refuses a host whose uname -n is not its name in the
// spec); a restart keeps it.
func (h *Host) SetHostname(name string) error {
	if _, err := h.Exec("hostname", name); err != nil {
		return err
	}
	h.mu.Lock()
	h.hostname = name
	h.mu.Unlock()
	return nil
}

// Stop kills the host's sshd and every session it forked.
func (h *Host) Stop() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil {
		return
	}
	h.killChildren()
	h.cmd.Process.Kill()
	<-h.done
	h.log.Close()
	h.cmd = nil
}

// KillSessions kills the per-connection sshd processes, as a dropped network
// would: the listener stays, so the next connection works.
func (h *Host) KillSessions() {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd != nil {
		h.killChildren()
	}
}

// killChildren kills the descendants of the listener (by pid, found in /proc).
func (h *Host) killChildren() {
	for _, pid := range descendants(h.cmd.Process.Pid) {
		syscall.Kill(pid, syscall.SIGKILL)
	}
}

func descendants(root int) []int {
	children := map[int][]int{}
	ents, _ := os.ReadDir("/proc")
	for _, e := range ents {
		pid, err := strconv.Atoi(e.Name())
		if err != nil {
			continue
		}
		b, err := os.ReadFile("/proc/" + e.Name() + "/stat")
		if err != nil {
			continue
		}
		// The command name may contain spaces; fields resume after ')'.
		s := string(b)
		f := strings.Fields(s[strings.LastIndexByte(s, ')')+1:])
		if len(f) < 2 {
			continue
		}
		ppid, _ := strconv.Atoi(f[1])
		children[ppid] = append(children[ppid], pid)
	}
	var out []int
	var walk func(int)
	walk = func(p int) {
		for _, c := range children[p] {
			out = append(out, c)
			walk(c)
		}
	}
	walk(root)
	return out
}

// Path is p as the host sees it, reachable from the test through the sshd
// process's root in /proc. It is only valid while the host runs.
func (h *Host) Path(p string) string {
	h.mu.Lock()
	defer h.mu.Unlock()
	if h.cmd == nil {
		panic("sshtest: Path of a stopped host")
	}
	return fmt.Sprintf("/proc/%d/root%s", h.cmd.Process.Pid, p)
}

// Exec runs a command inside the host's namespaces and returns its output.
func (h *Host) Exec(args ...string) ([]byte, error) {
	return h.ExecInput(nil, args...)
}

// ExecInput is Exec with stdin.
func (h *Host) ExecInput(stdin io.Reader, args ...string) ([]byte, error) {
	h.mu.Lock()
	pid := h.cmd.Process.Pid
	h.mu.Unlock()
	full := append([]string{"-t", strconv.Itoa(pid), "-m", "-n", "-u", "--"}, args...)
	cmd := exec.Command("nsenter", full...)
	cmd.Stdin = stdin
	out, err := cmd.CombinedOutput()
	if err != nil {
		return out, fmt.Errorf("run %s on %s: %w: %s", strings.Join(args, " "), h.Name, err, out)
	}
	return out, nil
}

// State hashes everything a push can have changed on the host: the overlay
// upper directories of /etc and /var (every write lands there, and the
// machine's own /etc may change under a long test) and /boot and /lib/modules.
func (h *Host) State() (map[string]string, error) {
	all := map[string]string{}
	for _, d := range []string{"etc-upper", "var-upper", "local-upper", "boot", "modules"} {
		t, err := HashTree(filepath.Join(h.Dir, d))
		if err != nil {
			return nil, err
		}
		for k, v := range t {
			all[d+k] = v
		}
	}
	return all, nil
}

// HashTree maps every file, symlink and directory under root to its sha256
// (or target) and mode, for before/after comparisons.
func HashTree(root string) (map[string]string, error) {
	tree := map[string]string{}
	err := filepath.WalkDir(root, func(p string, d fs.DirEntry, err error) error {
		if err != nil {
			return err
		}
		info, err := d.Info()
		if err != nil {
			return err
		}
		rel := strings.TrimPrefix(p, root)
		switch {
		case d.Type()&fs.ModeSymlink != 0:
			l, err := os.Readlink(p)
			if err != nil {
				return err
			}
			tree[rel] = "link " + l
		case d.Type().IsRegular():
			f, err := os.Open(p)
			if err != nil {
				return err
			}
			hs := sha256.New()
			_, err = io.Copy(hs, f)
			f.Close()
			if err != nil {
				return err
			}
			tree[rel] = fmt.Sprintf("%x %v", hs.Sum(nil), info.Mode())
		case d.IsDir():
			tree[rel+"/"] = info.Mode().String()
		default:
			tree[rel] = info.Mode().String()
		}
		return nil
	})
	if err != nil {
		return nil, fmt.Errorf("hash %s: %w", root, err)
	}
	return tree, nil
}

// newCgroup creates a cgroup v2 group for a cluster's processes, or
// returns "" where there is none to write to.
func newCgroup(name string) string {
	b, err := os.ReadFile("/proc/self/mounts")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		f := strings.Fields(line)
		if len(f) > 2 && f[2] == "cgroup2" {
			d := filepath.Join(f[1], "lvsforge-sshtest-"+name)
			if os.Mkdir(d, 0o755) == nil {
				return d
			}
			return ""
		}
	}
	return ""
}

// ErrNoCgroup means the machine has no cgroup v2 hierarchy to account
// the hosts' CPU time in.
var ErrNoCgroup = errors.New("no writable cgroup v2 hierarchy")

// CPUTime is the CPU time (user + system) every host's sshd and every
// process it started have used so far: the server side of a push, for the
// benchmark. Unlike a parent's rusage it also counts processes their parent
// did not wait for.
func (c *Cluster) CPUTime() (time.Duration, error) {
	if c.cgroup == "" {
		return 0, ErrNoCgroup
	}
	b, err := os.ReadFile(filepath.Join(c.cgroup, "cpu.stat"))
	if err != nil {
		return 0, fmt.Errorf("read hosts' CPU time: %w", err)
	}
	for _, line := range strings.Split(string(b), "\n") {
		if v, ok := strings.CutPrefix(line, "usage_usec "); ok {
			us, err := strconv.ParseInt(v, 10, 64)
			if err != nil {
				return 0, fmt.Errorf("read hosts' CPU time: %w", err)
			}
			return time.Duration(us) * time.Microsecond, nil
		}
	}
	return 0, fmt.Errorf("read hosts' CPU time: no usage_usec in %s", filepath.Join(c.cgroup, "cpu.stat"))
}

// Close stops every host and removes the namespaces and the bridge.
func (c *Cluster) Close() {
	for _, h := range c.Hosts {
		h.Stop()
		if h.NetNS != "" {
			run("ip", "netns", "del", h.NetNS)
		}
	}
	if c.bridge != "" {
		run("ip", "link", "del", c.bridge)
	}
	if c.cgroup != "" {
		// Empty once the hosts' last processes have exited.
		for i := 0; i < 50 && os.Remove(c.cgroup) != nil; i++ {
			time.Sleep(20 * time.Millisecond)
		}
	}
	if c.lock != nil {
		c.lock.Close()
	}
}
