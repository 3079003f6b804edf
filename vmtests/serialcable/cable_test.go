package serialcable

import (
	"bufio"
	"net"
	"os"
	"testing"
	"time"
)

func newCable(t *testing.T) *Cable {
	t.Helper()
	dir, err := os.MkdirTemp("", "cable")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	c, err := New(dir, "hb")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := c.Close(); err != nil {
			t.Error(err)
		}
	})
	return c
}

type endpoint struct {
	conn  net.Conn
	lines chan string
}

func connect(t *testing.T, c *Cable, path string) *endpoint {
	t.Helper()
	conn, err := net.Dial("unix", path)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { conn.Close() })
	e := &endpoint{conn: conn, lines: make(chan string, 16)}
	go func() {
		defer close(e.lines)
		sc := bufio.NewScanner(conn)
		for sc.Scan() {
			e.lines <- sc.Text()
		}
	}()
	return e
}

// connected waits until both ends hold a VM, since a Dial returns before the
// cable's Accept has registered the connection.
func connected(t *testing.T, c *Cable) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for time.Now().Before(deadline) {
		c.mu.Lock()
		ok := c.ends[0].conn != nil && c.ends[1].conn != nil
		c.mu.Unlock()
		if ok {
			return
		}
		time.Sleep(5 * time.Millisecond)
	}
	t.Fatal("cable ends never connected")
}

func (e *endpoint) send(t *testing.T, s string) {
	t.Helper()
	if _, err := e.conn.Write([]byte(s + "\n")); err != nil {
		t.Fatal(err)
	}
}

func (e *endpoint) expect(t *testing.T, want string) {
	t.Helper()
	select {
	case got := <-e.lines:
		if got != want {
			t.Fatalf("got %q, want %q", got, want)
		}
	case <-time.After(10 * time.Second):
		t.Fatalf("no line within 10s, want %q", want)
	}
}

func TestCableCarriesCutsAndRestores(t *testing.T) {
	c := newCable(t)
	a, b := connect(t, c, c.EndA()), connect(t, c, c.EndB())
	connected(t, c)

	a.send(t, "ping from ha1")
	b.expect(t, "ping from ha1")
	b.send(t, "pong from ha2")
	a.expect(t, "pong from ha2")

	c.Cut()
	a.send(t, "lost")
	// Wait until the cable has taken the lost line in, then restore: the
	// next line b sees must be the one after.
	for {
		if fromA, _ := c.Bytes(); fromA >= int64(len("ping from ha1\nlost\n")) {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	c.Restore()
	a.send(t, "after restore")
	b.expect(t, "after restore")

	fromA, fromB := c.Bytes()
	if want := int64(len("ping from ha1\nlost\nafter restore\n")); fromA != want {
		t.Errorf("bytes from A = %d, want %d", fromA, want)
	}
	if want := int64(len("pong from ha2\n")); fromB != want {
		t.Errorf("bytes from B = %d, want %d", fromB, want)
	}
}

func TestCableSurvivesReconnect(t *testing.T) {
	c := newCable(t)
	a, b := connect(t, c, c.EndA()), connect(t, c, c.EndB())
	connected(t, c)
	c.mu.Lock()
	old := c.ends[0].conn
	c.mu.Unlock()
	a.conn.Close() // the VM on end A is powered off
	a2 := connect(t, c, c.EndA())
	// The new connection registers asynchronously; wait until it is the
	// end's connection before sending through it.
	for {
		c.mu.Lock()
		ok := c.ends[0].conn != nil && c.ends[0].conn != old
		c.mu.Unlock()
		if ok {
			break
		}
		time.Sleep(5 * time.Millisecond)
	}
	a2.send(t, "back")
	b.expect(t, "back")
	b.send(t, "welcome")
	a2.expect(t, "welcome")
}
