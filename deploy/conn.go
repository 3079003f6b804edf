package deploy

import (
	"bytes"
	"context"
	"errors"
	"fmt"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/pkg/sftp"
	"golang.org/x/crypto/ssh"
	"golang.org/x/crypto/ssh/agent"
)

// DialOptions configure how connections are opened and kept alive.
type DialOptions struct {
	HostKeys *HostKeys
	// ConnectTimeout bounds the TCP connect plus the SSH handshake of each hop.
	ConnectTimeout time.Duration
	// CommandTimeout bounds every remote command.
	CommandTimeout time.Duration
	// KeepAlive is the interval of keepalive@openssh.com requests; a
	// connection that misses three answers in a row is closed so that a push
	// to a vanished host fails instead of hanging.
	KeepAlive time.Duration
	// NoAgent ignores SSH_AUTH_SOCK (tests use it to be independent of the
	// invoking user's agent).
	NoAgent bool
}

func (o DialOptions) withDefaults() DialOptions {
	if o.ConnectTimeout == 0 {
		o.ConnectTimeout = 15 * time.Second
	}
	if o.CommandTimeout == 0 {
		o.CommandTimeout = 10 * time.Minute
	}
	if o.KeepAlive == 0 {
		o.KeepAlive = 15 * time.Second
	}
	return o
}

// Conn is the one SSH connection to a host, reused for every command and for
// one SFTP session.
type Conn struct {
	Target Target
	opts   DialOptions
	client *ssh.Client
	hops   []*ssh.Client // jump connections, closed after client

	sftpMu sync.Mutex
	sftp   *sftp.Client

	done      chan struct{}
	closeOnce sync.Once
}

// Dial connects to t, through its jump hosts if it has any.
func Dial(ctx context.Context, t Target, o DialOptions) (*Conn, error) {
	o = o.withDefaults()
	if o.HostKeys == nil {
		return nil, errors.New("dial: no host key checker configured")
	}
	auth, err := authMethods(t.KeyFiles, o.NoAgent)
	if err != nil {
		return nil, err
	}
	defer auth.close()
	c := &Conn{Target: t, opts: o, done: make(chan struct{})}
	client, hops, err := dialChain(ctx, t, o, auth)
	if err != nil {
		return nil, err
	}
	c.client, c.hops = client, hops
	go c.keepAlive()
	return c, nil
}

// dialChain opens the jump hops first, then t over the last hop.
func dialChain(ctx context.Context, t Target, o DialOptions, auth *keyAuth) (*ssh.Client, []*ssh.Client, error) {
	var hops []*ssh.Client
	var via *ssh.Client
	if t.Jump != nil {
		jc, jhops, err := dialChain(ctx, *t.Jump, o, auth)
		if err != nil {
			return nil, nil, fmt.Errorf("connect jump host %s: %w", t.Jump.Addr(), err)
		}
		hops = append(jhops, jc)
		via = jc
	}
	closeHops := func() {
		for i := len(hops) - 1; i >= 0; i-- {
			hops[i].Close()
		}
	}
	dctx, cancel := context.WithTimeout(ctx, o.ConnectTimeout)
	defer cancel()
	var nc net.Conn
	var err error
	if via != nil {
		nc, err = via.DialContext(dctx, "tcp", t.Addr())
	} else {
		var d net.Dialer
		nc, err = d.DialContext(dctx, "tcp", t.Addr())
	}
	if err != nil {
		closeHops()
		return nil, nil, fmt.Errorf("connect %s: %w", t.Addr(), err)
	}
	known, err := o.HostKeys.knownKeys(t.Addr())
	if err != nil {
		nc.Close()
		closeHops()
		return nil, nil, err
	}
	cfg := &ssh.ClientConfig{
		User:              t.User,
		Auth:              auth.methods,
		HostKeyCallback:   o.HostKeys.Callback(t.Addr()),
		HostKeyAlgorithms: algorithms(known),
		Timeout:           o.ConnectTimeout,
	}
	// The handshake has no context of its own: a deadline bounds it and a
	// cancelled context closes the socket under it.
	if dl, ok := dctx.Deadline(); ok {
		nc.SetDeadline(dl)
	}
	stop := context.AfterFunc(dctx, func() { nc.Close() })
	sc, chans, reqs, err := ssh.NewClientConn(nc, t.Addr(), cfg)
	if !stop() && err == nil {
		err = dctx.Err()
		sc.Close()
	}
	if err != nil {
		nc.Close()
		closeHops()
		if cerr := ctx.Err(); cerr != nil {
			return nil, nil, fmt.Errorf("connect %s: %w", t.Addr(), cerr)
		}
		// x/crypto/ssh has no type for it; its message has been this one for years.
		if strings.Contains(err.Error(), "unable to authenticate") {
			return nil, nil, fmt.Errorf("connect %s: log in as %q: %w: the host accepted none of the keys offered: %s; "+
				"add one of them to %[2]s's ~/.ssh/authorized_keys on the host, or set the user and key in the spec (hosts[].ssh.user, ssh.key) or ~/.ssh/config (User, IdentityFile) (%[5]v)",
				t.Addr(), t.User, ErrAuth, strings.Join(auth.tried, "; "), err)
		}
		return nil, nil, fmt.Errorf("connect %s: %w", t.Addr(), err)
	}
	nc.SetDeadline(time.Time{})
	return ssh.NewClient(sc, chans, reqs), hops, nil
}

// ErrAuth means a host accepted none of the keys offered.
var ErrAuth = errors.New("authentication failed")

// keyAuth is what a connection offers to log in: the agent's keys first,
// then the key files, like ssh(1). tried describes each source, for the
// error a host that accepts none of them gets.
type keyAuth struct {
	methods []ssh.AuthMethod
	tried   []string
	close   func()
}

// describeKey is a key as ssh-keygen -l shows it.
func describeKey(k ssh.PublicKey, comment string) string {
	d := k.Type() + " " + ssh.FingerprintSHA256(k)
	if comment != "" {
		d += " " + strconv.Quote(comment)
	}
	return d
}

// authMethods loads the agent's keys (unless noAgent) and the key files:
// keyFiles, or ~/.ssh/id_{ed25519,ecdsa,rsa} where they exist.
func authMethods(keyFiles []string, noAgent bool) (*keyAuth, error) {
	a := &keyAuth{close: func() {}}
	var signers []ssh.Signer
	switch sock := os.Getenv("SSH_AUTH_SOCK"); {
	case noAgent:
		a.tried = append(a.tried, "agent not used")
	case sock == "":
		a.tried = append(a.tried, "no agent (SSH_AUTH_SOCK is not set)")
	default:
		ac, err := net.Dial("unix", sock)
		if err != nil {
			a.tried = append(a.tried, fmt.Sprintf("agent %q: %v", sock, err))
			break
		}
		a.close = func() { ac.Close() }
		ag := agent.NewClient(ac)
		keys, err := ag.List()
		if err == nil {
			var s []ssh.Signer
			if s, err = ag.Signers(); err == nil {
				signers = append(signers, s...)
			}
		}
		if err != nil {
			a.tried = append(a.tried, fmt.Sprintf("agent %q: %v", sock, err))
			break
		}
		desc := make([]string, len(keys))
		for i, k := range keys {
			desc[i] = describeKey(k, k.Comment)
		}
		if len(keys) == 0 {
			desc = []string{"no keys"}
		}
		a.tried = append(a.tried, fmt.Sprintf("agent %q (%s)", sock, strings.Join(desc, ", ")))
	}
	files := keyFiles
	explicit := len(files) > 0
	if !explicit {
		home, _ := os.UserHomeDir()
		for _, n := range []string{"id_ed25519", "id_ecdsa", "id_rsa"} {
			files = append(files, home+"/.ssh/"+n)
		}
	}
	var keyErrs []error
	found := 0
	for _, f := range files {
		b, err := os.ReadFile(f)
		if errors.Is(err, os.ErrNotExist) && !explicit {
			continue
		}
		found++
		if err != nil {
			keyErrs = append(keyErrs, fmt.Errorf("read key: %w", err))
			a.tried = append(a.tried, fmt.Sprintf("%q (not read: %v)", f, err))
			continue
		}
		s, err := ssh.ParsePrivateKey(b)
		if err != nil {
			// A passphrase-protected key is only usable through the agent.
			keyErrs = append(keyErrs, fmt.Errorf("parse key %s: %w", f, err))
			a.tried = append(a.tried, fmt.Sprintf("%q (not used: %v; a passphrase-protected key works through the agent)", f, err))
			continue
		}
		signers = append(signers, s)
		a.tried = append(a.tried, fmt.Sprintf("%q (%s)", f, describeKey(s.PublicKey(), "")))
	}
	if found == 0 {
		a.tried = append(a.tried, "no ~/.ssh/id_ed25519, id_ecdsa or id_rsa")
	}
	if len(signers) == 0 {
		a.close()
		if len(keyErrs) > 0 {
			return nil, fmt.Errorf("load ssh keys: %w", errors.Join(keyErrs...))
		}
		return nil, errors.New("load ssh keys: no agent (SSH_AUTH_SOCK) and no key file")
	}
	a.methods = []ssh.AuthMethod{ssh.PublicKeys(signers...)}
	return a, nil
}

func (c *Conn) keepAlive() {
	tick := time.NewTicker(c.opts.KeepAlive)
	defer tick.Stop()
	missed := 0
	for {
		select {
		case <-c.done:
			return
		case <-tick.C:
		}
		reply := make(chan error, 1)
		go func() {
			_, _, err := c.client.SendRequest("keepalive@openssh.com", true, nil)
			reply <- err
		}()
		select {
		case <-c.done:
			return
		case err := <-reply:
			if err != nil {
				c.Close()
				return
			}
			missed = 0
		case <-tick.C:
			missed++
			if missed >= 3 {
				c.Close()
				return
			}
		}
	}
}

// Close closes the SFTP session, the connection and its jump hops.
func (c *Conn) Close() error {
	var err error
	c.closeOnce.Do(func() {
		close(c.done)
		c.sftpMu.Lock()
		if c.sftp != nil {
			c.sftp.Close()
		}
		c.sftpMu.Unlock()
		err = c.client.Close()
		for i := len(c.hops) - 1; i >= 0; i-- {
			c.hops[i].Close()
		}
	})
	return err
}

// SFTP returns the connection's one SFTP session, opening it on first use.
func (c *Conn) SFTP() (*sftp.Client, error) {
	c.sftpMu.Lock()
	defer c.sftpMu.Unlock()
	if c.sftp != nil {
		return c.sftp, nil
	}
	s, err := sftp.NewClient(c.client,
		sftp.UseConcurrentWrites(true),
		// 512 KiB in flight per file: enough to fill a LAN, and well
		// inside the 2 MiB window of OpenSSH's session channel. With the
		// whole window in flight (64 requests) sshd buffers megabytes for
		// sftp-server and spends three times the CPU of the upload
		// itself growing and copying them (perf on the benchmark's hosts:
		// memmove and page faults in sshd): 230 ms of host CPU per 12 MiB
		// instead of 70, and twice the wall time, at 20 hosts.
		sftp.MaxConcurrentRequestsPerFile(16),
	)
	if err != nil {
		return nil, fmt.Errorf("start sftp on %s: %w", c.Target.Name, err)
	}
	c.sftp = s
	return s, nil
}

// CommandError is a remote command that ran and exited non-zero.
type CommandError struct {
	Cmd    string
	Status int
	Stderr string
}

func (e *CommandError) Error() string {
	msg := fmt.Sprintf("remote command %q exited %d", e.Cmd, e.Status)
	if e.Stderr != "" {
		msg += ": " + string(bytes.TrimSpace([]byte(e.Stderr)))
	}
	return msg
}

// output runs a shell command line and returns its stdout. It is used for
// fact gathering and, from apply only, for mutations.
func (c *Conn) output(ctx context.Context, cmd string) ([]byte, error) {
	if err := ctx.Err(); err != nil {
		// Not started at all: a command that would finish before the
		// cancellation is noticed must not run either.
		return nil, fmt.Errorf("run %q on %s: %w", cmd, c.Target.Name, err)
	}
	ctx, cancel := context.WithTimeout(ctx, c.opts.CommandTimeout)
	defer cancel()
	s, err := c.client.NewSession()
	if err != nil {
		return nil, fmt.Errorf("open session on %s: %w", c.Target.Name, err)
	}
	defer s.Close()
	var stdout, stderr bytes.Buffer
	s.Stdout, s.Stderr = &stdout, &stderr
	if err := s.Start(cmd); err != nil {
		return nil, fmt.Errorf("start %q on %s: %w", cmd, c.Target.Name, err)
	}
	waited := make(chan error, 1)
	go func() { waited <- s.Wait() }()
	select {
	case err = <-waited:
	case <-ctx.Done():
		// OpenSSH before 7.9 ignores signal requests; closing the channel
		// hangs up the remote command either way.
		s.Signal(ssh.SIGKILL)
		s.Close()
		return nil, fmt.Errorf("run %q on %s: %w", cmd, c.Target.Name, ctx.Err())
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return stdout.Bytes(), &CommandError{Cmd: cmd, Status: ee.ExitStatus(), Stderr: stderr.String()}
	}
	if err != nil {
		return nil, fmt.Errorf("run %q on %s: %w", cmd, c.Target.Name, err)
	}
	return stdout.Bytes(), nil
}
