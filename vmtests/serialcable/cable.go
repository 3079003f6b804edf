// Package serialcable is the null-modem cable between two VMs' serial ports,
// the seed's second heartbeat medium. Each end is a unix socket that a QEMU
// chardev connects to (`-chardev socket,path=END,reconnect=1`); the cable
// copies bytes from one end to the other. A Go cable in the middle, rather
// than one QEMU listening for the other, lets a VM be powered off and come
// back without its peer losing the line, and lets a test cut the cable.
package serialcable

import (
	"errors"
	"fmt"
	"net"
	"os"
	"path/filepath"
	"sync"
)

// Cable joins two serial ports, end A and end B.
type Cable struct {
	mu     sync.Mutex
	ends   [2]*end
	cut    bool
	closed bool
	wg     sync.WaitGroup
}

type end struct {
	path  string
	ln    net.Listener
	conn  net.Conn
	bytes int64 // bytes received from this end's VM
}

// New creates a cable whose two socket ends are dir/name-a.sock and
// dir/name-b.sock.
func New(dir, name string) (*Cable, error) {
	c := &Cable{}
	for i, suffix := range []string{"a", "b"} {
		path := filepath.Join(dir, name+"-"+suffix+".sock")
		if len(path) >= 108 {
			c.Close()
			return nil, fmt.Errorf("create serial cable %s: socket path %s is longer than 107 bytes", name, path)
		}
		os.Remove(path) // stale socket of a killed run
		ln, err := net.Listen("unix", path)
		if err != nil {
			c.Close()
			return nil, fmt.Errorf("create serial cable %s: %w", name, err)
		}
		c.ends[i] = &end{path: path, ln: ln}
	}
	for i := range c.ends {
		c.wg.Add(1)
		go c.accept(i)
	}
	return c, nil
}

// EndA returns the socket path of the first end.
func (c *Cable) EndA() string { return c.ends[0].path }

// EndB returns the socket path of the second end.
func (c *Cable) EndB() string { return c.ends[1].path }

func (c *Cable) accept(i int) {
	defer c.wg.Done()
	e := c.ends[i]
	for {
		conn, err := e.ln.Accept()
		if err != nil {
			return
		}
		c.mu.Lock()
		if c.closed {
			c.mu.Unlock()
			conn.Close()
			return
		}
		// A restarted VM reconnects: its new connection is the line now.
		old := e.conn
		e.conn = conn
		c.mu.Unlock()
		if old != nil {
			old.Close()
		}
		c.wg.Add(1)
		go c.copy(i, conn)
	}
}

func (c *Cable) copy(i int, conn net.Conn) {
	defer c.wg.Done()
	defer func() {
		c.mu.Lock()
		if c.ends[i].conn == conn {
			c.ends[i].conn = nil
		}
		c.mu.Unlock()
		conn.Close()
	}()
	buf := make([]byte, 4096)
	for {
		n, err := conn.Read(buf)
		if n > 0 {
			c.mu.Lock()
			c.ends[i].bytes += int64(n)
			peer := c.ends[1-i].conn
			cut := c.cut
			c.mu.Unlock()
			// Bytes sent into a cut cable, or to a port with no VM, are lost,
			// as on a real line.
			if peer != nil && !cut {
				peer.Write(buf[:n])
			}
		}
		if err != nil {
			return
		}
	}
}

// Cut disconnects the line: both VMs keep their sockets but nothing passes.
func (c *Cable) Cut() { c.setCut(true) }

// Restore reconnects the line after Cut.
func (c *Cable) Restore() { c.setCut(false) }

func (c *Cable) setCut(cut bool) {
	c.mu.Lock()
	c.cut = cut
	c.mu.Unlock()
}

// Bytes returns how many bytes each end's VM has sent into the cable, for
// tests that check the heartbeat really talks over the serial line.
func (c *Cable) Bytes() (fromA, fromB int64) {
	c.mu.Lock()
	defer c.mu.Unlock()
	return c.ends[0].bytes, c.ends[1].bytes
}

// Close disconnects both ends and removes the sockets.
func (c *Cable) Close() error {
	c.mu.Lock()
	if c.closed {
		c.mu.Unlock()
		return nil
	}
	c.closed = true
	var errs []error
	for _, e := range c.ends {
		if e == nil {
			continue
		}
		e.ln.Close()
		if err := os.Remove(e.path); err != nil && !errors.Is(err, os.ErrNotExist) {
			errs = append(errs, fmt.Errorf("remove serial cable socket: %w", err))
		}
		if e.conn != nil {
			e.conn.Close()
		}
	}
	c.mu.Unlock()
	c.wg.Wait()
	return errors.Join(errs...)
}
