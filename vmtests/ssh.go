package vmtests

import (
	"context"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	"golang.org/x/crypto/ssh"

	"github.com/lvsforge/lvsforge/internal/syncbuf"
)

// ExecError is a command that ran on a VM and failed.
type ExecError struct {
	Host   string
	Cmd    string
	Status int
	Output string
}

func (e *ExecError) Error() string {
	return fmt.Sprintf("%s: %q exited %d: %s", e.Host, e.Cmd, e.Status, lastLines(e.Output, 15))
}

// Exec runs a shell command line on a host VM over SSH (the harness's own
// connection, checked against the image's host key) and returns its
// combined output. A non-zero exit is an *ExecError.
func (c *Cluster) Exec(ctx context.Context, host, cmd string) (string, error) {
	n := c.node(host)
	if n == nil {
		return "", fmt.Errorf("exec on %s: no such VM", host)
	}
	client, err := c.sshClient(ctx, n)
	if err != nil {
		return "", err
	}
	sess, err := client.NewSession()
	if err != nil {
		// The connection may have died with a reboot; one new connection.
		n.mu.Lock()
		if n.ssh == client {
			n.ssh.Close()
			n.ssh = nil
		}
		n.mu.Unlock()
		if client, err = c.sshClient(ctx, n); err != nil {
			return "", err
		}
		if sess, err = client.NewSession(); err != nil {
			return "", fmt.Errorf("exec on %s: %w", host, err)
		}
	}
	defer sess.Close()
	// One writer for both streams, serialised and without ReadFrom: two
	// io.Copy calls into one bytes.Buffer race and lose the output.
	var out syncbuf.Buffer
	sess.Stdout, sess.Stderr = &out, &out
	done := make(chan error, 1)
	go func() { done <- sess.Run(cmd) }()
	select {
	case err = <-done:
	case <-ctx.Done():
		sess.Signal(ssh.SIGKILL)
		sess.Close()
		return out.String(), fmt.Errorf("exec %q on %s: %w", cmd, host, ctx.Err())
	}
	var ee *ssh.ExitError
	if errors.As(err, &ee) {
		return out.String(), &ExecError{Host: host, Cmd: cmd, Status: ee.ExitStatus(), Output: out.String()}
	}
	if err != nil {
		return out.String(), fmt.Errorf("exec %q on %s: %w", cmd, host, err)
	}
	return out.String(), nil
}

// sshTimeout bounds the TCP connect and SSH handshake of one dial. Hosts are
// dialled once their console says sshd runs, so a slow handshake is a
// loaded guest, not a missing one: sshd re-executes itself for each
// connection and signs with the host key on an emulated CPU that the other
// VMs share, and a dial that gives up too soon only starts the same
// handshake again.
const sshTimeout = time.Minute

// sshClient returns the node's connection, dialling (again) if needed;
// sshd may still be starting, so dialling is retried until ctx ends.
func (c *Cluster) sshClient(ctx context.Context, n *Node) (*ssh.Client, error) {
	n.mu.Lock()
	defer n.mu.Unlock()
	if n.ssh != nil {
		return n.ssh, nil
	}
	cfg := &ssh.ClientConfig{
		User:            "root",
		Auth:            []ssh.AuthMethod{ssh.PublicKeys(c.signer)},
		HostKeyCallback: ssh.FixedHostKey(c.hostKey),
		// The image has keys of every type; ask for the one we know.
		HostKeyAlgorithms: []string{c.hostKey.Type()},
		Timeout:           sshTimeout,
	}
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(n.SSHPort))
	for {
		client, err := ssh.Dial("tcp", addr, cfg)
		if err == nil {
			n.ssh = client
			return client, nil
		}
		select {
		case <-ctx.Done():
			return nil, fmt.Errorf("ssh to %s (%s): %w (last error: %v)", n.Name, addr, ctx.Err(), err)
		case <-n.VM.Done():
			return nil, fmt.Errorf("ssh to %s: the VM has stopped", n.Name)
		case <-time.After(500 * time.Millisecond):
		}
	}
}
