// Package vlan is the cluster LAN of the VM tests: an Ethernet switch in Go
// that QEMU guests join through `-netdev stream` unix sockets. Owning the
// switch, instead of a host bridge, means the tests need no root or tap
// devices, can cut any VM's cable, and can ask afterwards exactly which
// frames crossed (which MACs answered ARP for the VIP, the gratuitous ARPs of
// a takeover), with a pcap of the whole run for humans.
package vlan

import (
	"bufio"
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"sort"
	"sync"
	"time"
)

// MaxFrame bounds a frame's length: QEMU's stream backend sends whole
// Ethernet frames, and anything longer than a jumbo frame means the peer is
// not speaking the length-prefixed protocol.
const MaxFrame = 65536

// outQueue is how many frames may wait for a slow port before the switch
// drops them, as a real switch drops on a full egress buffer instead of
// stalling every other port.
const outQueue = 512

// maxSocketPath is the room in sockaddr_un.sun_path, NUL included.
const maxSocketPath = 108

// ErrNoPort is returned for a port name the switch does not know.
var ErrNoPort = errors.New("no such port")

// Switch is a learning Ethernet switch with one unix socket per named port.
type Switch struct {
	dir string

	mu       sync.Mutex
	changed  chan struct{} // closed and replaced whenever a frame is recorded
	ports    map[string]*port
	order    []string
	macs     map[[6]byte]*port
	frames   []Frame
	pcapFile *os.File
	pcap     *pcapWriter
	pcapErr  error
	closed   bool
	anon     int
	// noMulticast drops multicast frames at ingress (SetMulticast).
	noMulticast bool

	wg sync.WaitGroup
}

type port struct {
	name string
	path string
	ln   net.Listener
	up   bool
	conn *conn // current connection; a rebooted VM reconnects and replaces it
	// counters, for PortStatus
	rx, tx, drops int
}

type conn struct {
	c    net.Conn
	out  chan []byte
	once sync.Once
}

func (c *conn) close() {
	c.once.Do(func() {
		close(c.out)
		c.c.Close()
	})
}

// Option configures a Switch.
type Option func(*Switch) error

// WithPcap writes every frame that crosses the switch to a libpcap file at path.
func WithPcap(path string) Option {
	return func(s *Switch) error {
		f, err := os.Create(path)
		if err != nil {
			return fmt.Errorf("create pcap: %w", err)
		}
		w, err := newPcapWriter(f)
		if err != nil {
			f.Close()
			return err
		}
		s.pcapFile, s.pcap = f, w
		return nil
	}
}

// New returns a switch that keeps its port sockets in dir. The directory
// path must be short: a unix socket path has room for 107 bytes.
func New(dir string, opts ...Option) (*Switch, error) {
	s := &Switch{
		dir:     dir,
		changed: make(chan struct{}),
		ports:   map[string]*port{},
		macs:    map[[6]byte]*port{},
	}
	for _, o := range opts {
		if err := o(s); err != nil {
			s.Close()
			return nil, err
		}
	}
	return s, nil
}

// AddPort creates a port named name (a host name makes the pcap and errors
// readable) and returns the socket path a VM connects to with
// `-netdev stream,server=off,addr.type=unix,addr.path=PATH`. The port starts
// with its link up.
func (s *Switch) AddPort(name string) (string, error) {
	if name == "" || filepath.Base(name) != name {
		return "", fmt.Errorf("add port %q: name must be a plain file name", name)
	}
	path := filepath.Join(s.dir, name+".sock")
	if len(path) >= maxSocketPath {
		return "", fmt.Errorf("add port %q: socket path %s is longer than %d bytes; use a shorter directory", name, path, maxSocketPath-1)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return "", fmt.Errorf("add port %q: switch closed", name)
	}
	if _, ok := s.ports[name]; ok {
		return "", fmt.Errorf("add port %q: already exists", name)
	}
	os.Remove(path) // a stale socket from a killed run would make Listen fail
	ln, err := net.Listen("unix", path)
	if err != nil {
		return "", fmt.Errorf("add port %q: %w", name, err)
	}
	p := &port{name: name, path: path, ln: ln, up: true}
	s.ports[name] = p
	s.order = append(s.order, name)
	s.wg.Add(1)
	go s.accept(p)
	return path, nil
}

// Listen opens a shared socket on which every connection becomes a new port,
// named port1, port2, ... in accept order; for callers that do not care
// which VM sits on which port.
func (s *Switch) Listen() (string, error) {
	path := filepath.Join(s.dir, "switch.sock")
	if len(path) >= maxSocketPath {
		return "", fmt.Errorf("listen on switch socket: path %s is longer than %d bytes", path, maxSocketPath-1)
	}
	os.Remove(path)
	ln, err := net.Listen("unix", path)
	if err != nil {
		return "", fmt.Errorf("listen on switch socket: %w", err)
	}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		ln.Close()
		return "", errors.New("listen on switch socket: switch closed")
	}
	// The shared listener is held as a pseudo-port so Close shuts it down.
	s.ports[""] = &port{path: path, ln: ln}
	s.mu.Unlock()
	s.wg.Add(1)
	go func() {
		defer s.wg.Done()
		for {
			c, err := ln.Accept()
			if err != nil {
				return
			}
			s.mu.Lock()
			if s.closed {
				s.mu.Unlock()
				c.Close()
				return
			}
			s.anon++
			name := fmt.Sprintf("port%d", s.anon)
			p := &port{name: name, path: path, up: true}
			s.ports[name] = p
			s.order = append(s.order, name)
			s.mu.Unlock()
			s.attach(p, c)
		}
	}()
	return path, nil
}

func (s *Switch) accept(p *port) {
	defer s.wg.Done()
	for {
		c, err := p.ln.Accept()
		if err != nil {
			return
		}
		s.attach(p, c)
	}
}

// attach makes c the port's connection, replacing a previous one: a VM that
// was powered off and started again must get its cable back.
func (s *Switch) attach(p *port, c net.Conn) {
	nc := &conn{c: c, out: make(chan []byte, outQueue)}
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		c.Close()
		return
	}
	old := p.conn
	p.conn = nc
	s.forgetLocked(p)
	s.mu.Unlock()
	if old != nil {
		old.close()
	}
	s.wg.Add(2)
	go s.write(nc)
	go s.read(p, nc)
}

func (s *Switch) write(c *conn) {
	defer s.wg.Done()
	w := bufio.NewWriter(c.c)
	var hdr [4]byte
	for f := range c.out {
		binary.BigEndian.PutUint32(hdr[:], uint32(len(f)))
		w.Write(hdr[:])
		w.Write(f)
		// Flush only when nothing else is queued: batches bursts without
		// holding back the last frame.
		if len(c.out) == 0 {
			if err := w.Flush(); err != nil {
				c.c.Close() // the reader sees the error and detaches the port
				for range c.out {
				}
				return
			}
		}
	}
}

func (s *Switch) read(p *port, c *conn) {
	defer s.wg.Done()
	defer func() {
		s.mu.Lock()
		if p.conn == c {
			p.conn = nil
			s.forgetLocked(p)
		}
		s.mu.Unlock()
		c.close()
	}()
	r := bufio.NewReader(c.c)
	var hdr [4]byte
	for {
		if _, err := io.ReadFull(r, hdr[:]); err != nil {
			return
		}
		n := binary.BigEndian.Uint32(hdr[:])
		if n == 0 || n > MaxFrame {
			return // not QEMU's framing; drop the connection rather than resync on garbage
		}
		buf := make([]byte, n)
		if _, err := io.ReadFull(r, buf); err != nil {
			return
		}
		s.forward(p, buf)
	}
}

// forgetLocked drops the MAC table entries that point at p, so frames for a
// VM that went away are flooded (and reach it where it reconnects) instead of
// vanishing into a dead port.
func (s *Switch) forgetLocked(p *port) {
	for m, q := range s.macs {
		if q == p {
			delete(s.macs, m)
		}
	}
}

func (s *Switch) forward(in *port, data []byte) {
	s.mu.Lock()
	defer s.mu.Unlock()
	if s.closed {
		return
	}
	f := Frame{Seq: len(s.frames), Time: time.Now(), Port: in.name, Data: data, Dropped: !in.up || (s.noMulticast && isMulticast(data))}
	s.frames = append(s.frames, f)
	close(s.changed)
	s.changed = make(chan struct{})
	in.rx++
	if f.Dropped {
		in.drops++
		return
	}
	if s.pcap != nil && s.pcapErr == nil {
		s.pcapErr = s.pcap.writePacket(f.Time, data)
	}
	if len(data) < 14 {
		return
	}
	var src, dst [6]byte
	copy(dst[:], data[0:6])
	copy(src[:], data[6:12])
	if src[0]&1 == 0 {
		s.macs[src] = in
	}
	if dst[0]&1 == 0 {
		if out, ok := s.macs[dst]; ok {
			if out != in {
				s.sendLocked(out, data)
			}
			return
		}
	}
	// Broadcast, multicast or unknown unicast: flood in port order so the
	// behaviour does not depend on map iteration.
	for _, name := range s.order {
		if out := s.ports[name]; out != in {
			s.sendLocked(out, data)
		}
	}
}

func (s *Switch) sendLocked(out *port, data []byte) {
	if !out.up || out.conn == nil {
		return
	}
	select {
	case out.conn.out <- data:
		out.tx++
	default:
		out.drops++
	}
}

// SetMulticast lets multicast frames through (on, a plain switch's way)
// or drops them at ingress (off), as the networks that filter multicast do:
// VRRP's adverts to 224.0.0.18 then reach no one, while broadcast (ARP) and
// unicast still cross. IPv6's neighbour discovery is multicast too: an
// IPv6 LAN stops working. A dropped frame is recorded as Dropped.
func (s *Switch) SetMulticast(on bool) {
	s.mu.Lock()
	defer s.mu.Unlock()
	s.noMulticast = !on
}

// isMulticast reports whether an Ethernet frame is to a multicast group:
// the group bit of the destination set, broadcast excepted.
func isMulticast(data []byte) bool {
	if len(data) < 6 || data[0]&1 == 0 {
		return false
	}
	for _, b := range data[:6] {
		if b != 0xff {
			return true
		}
	}
	return false
}

// SetLink takes a port's link up or down. A down link is a pulled cable: the
// switch drops what the VM sends and sends it nothing. The guest's NIC still
// reports carrier; use the QEMU driver's SetLink to change that too.
func (s *Switch) SetLink(name string, up bool) error {
	s.mu.Lock()
	defer s.mu.Unlock()
	p, ok := s.ports[name]
	if !ok || name == "" {
		return fmt.Errorf("set link of %q: %w", name, ErrNoPort)
	}
	p.up = up
	if !up {
		// A switch flushes the MAC entries of a port that lost its link.
		s.forgetLocked(p)
	}
	return nil
}

// LinkDown pulls the cable of port name.
func (s *Switch) LinkDown(name string) error { return s.SetLink(name, false) }

// LinkUp plugs the cable of port name back in.
func (s *Switch) LinkUp(name string) error { return s.SetLink(name, true) }

// PortStatus describes one port.
type PortStatus struct {
	Name      string
	Socket    string
	Up        bool // link state set by SetLink
	Connected bool // a VM holds the socket
	// RxFrames counts frames received from the VM, TxFrames frames sent to
	// it, Drops frames lost to a down link or a full queue.
	RxFrames, TxFrames, Drops int
	MACs                      []net.HardwareAddr // learnt on this port
}

// Ports lists the ports in creation order.
func (s *Switch) Ports() []PortStatus {
	s.mu.Lock()
	defer s.mu.Unlock()
	var st []PortStatus
	for _, name := range s.order {
		p := s.ports[name]
		ps := PortStatus{Name: p.name, Socket: p.path, Up: p.up, Connected: p.conn != nil, RxFrames: p.rx, TxFrames: p.tx, Drops: p.drops}
		for m, q := range s.macs {
			if q == p {
				ps.MACs = append(ps.MACs, net.HardwareAddr(append([]byte(nil), m[:]...)))
			}
		}
		sort.Slice(ps.MACs, func(i, j int) bool { return ps.MACs[i].String() < ps.MACs[j].String() })
		st = append(st, ps)
	}
	return st
}

// WaitConnected blocks until a VM holds port name's socket. QEMU connects
// its stream netdev in the background after start-up, so a test waits for
// this before it counts on the cable.
func (s *Switch) WaitConnected(ctx context.Context, name string) error {
	for {
		s.mu.Lock()
		p, ok := s.ports[name]
		connected := ok && p.conn != nil
		closed := s.closed
		s.mu.Unlock()
		// An unknown name is waited for too: ports of the shared socket
		// only exist once their VM has connected.
		switch {
		case connected && name != "":
			return nil
		case closed:
			return fmt.Errorf("wait for port %q: switch closed", name)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("wait for a VM on port %q: %w", name, ctx.Err())
		case <-time.After(10 * time.Millisecond):
		}
	}
}

// Mark returns the sequence number the next frame will get; pass it to
// FramesSince or Wait to look only at what happens from now on.
func (s *Switch) Mark() int {
	s.mu.Lock()
	defer s.mu.Unlock()
	return len(s.frames)
}

// Frames returns every frame seen so far, dropped ones included.
func (s *Switch) Frames() []Frame { return s.FramesSince(0) }

// FramesSince returns the frames with Seq >= mark.
func (s *Switch) FramesSince(mark int) []Frame {
	s.mu.Lock()
	defer s.mu.Unlock()
	if mark < 0 || mark > len(s.frames) {
		mark = len(s.frames)
	}
	return append([]Frame(nil), s.frames[mark:]...)
}

// Wait blocks until a frame with Seq >= mark satisfies match, and returns it.
// Frames already recorded count, so there is no race between starting
// traffic and starting to wait.
func (s *Switch) Wait(ctx context.Context, mark int, match func(Frame) bool) (Frame, error) {
	next := mark
	for {
		s.mu.Lock()
		frames := s.frames
		changed := s.changed
		closed := s.closed
		s.mu.Unlock()
		for ; next < len(frames); next++ {
			if match(frames[next]) {
				return frames[next], nil
			}
		}
		if closed {
			return Frame{}, errors.New("wait for frame: switch closed")
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return Frame{}, fmt.Errorf("wait for frame: %w", ctx.Err())
		}
	}
}

// Repliers returns the distinct MACs that answered for ip (ARP replies
// for an IPv4 address, neighbour advertisements for an IPv6 one) and
// crossed the switch since mark: on an LVS-DR LAN only the active
// director's, and after a takeover its successor's, may ever answer for
// the VIP.
func (s *Switch) Repliers(mark int, ip netip.Addr) []net.HardwareAddr {
	seen := map[string]bool{}
	var macs []net.HardwareAddr
	for _, f := range s.FramesSince(mark) {
		n, ok := f.Neighbour()
		if !ok || f.Dropped || !n.Answer || n.IP != ip {
			continue
		}
		if !seen[n.MAC.String()] {
			seen[n.MAC.String()] = true
			macs = append(macs, n.MAC)
		}
	}
	return macs
}

// Announcements returns the frames that announced ip unasked since mark
// (gratuitous ARPs; unsolicited neighbour advertisements), as heartbeat's
// lvs-vip and keepalived send on takeover.
func (s *Switch) Announcements(mark int, ip netip.Addr) []Frame {
	var out []Frame
	for _, f := range s.FramesSince(mark) {
		if n, ok := f.Neighbour(); ok && !f.Dropped && n.Announce && n.IP == ip {
			out = append(out, f)
		}
	}
	return out
}

// ICMPEchoes returns the echo requests and replies between a and b (either
// direction) since mark that crossed the switch.
func (s *Switch) ICMPEchoes(mark int, a, b netip.Addr) (requests, replies []Frame) {
	for _, f := range s.FramesSince(mark) {
		ic, ok := f.ICMP()
		if !ok || f.Dropped {
			continue
		}
		if !(ic.Src == a && ic.Dst == b || ic.Src == b && ic.Dst == a) {
			continue
		}
		switch ic.Type {
		case ICMPEchoRequest:
			requests = append(requests, f)
		case ICMPEchoReply:
			replies = append(replies, f)
		}
	}
	return requests, replies
}

// Close disconnects every port, removes the sockets and finishes the pcap.
// It returns the first error the pcap writer hit, so a test learns that its
// capture is incomplete.
func (s *Switch) Close() error {
	s.mu.Lock()
	if s.closed {
		s.mu.Unlock()
		return nil
	}
	s.closed = true
	close(s.changed)
	var conns []*conn
	for _, p := range s.ports {
		if p.ln != nil {
			p.ln.Close()
			os.Remove(p.path)
		}
		if p.conn != nil {
			conns = append(conns, p.conn)
		}
	}
	s.mu.Unlock()
	for _, c := range conns {
		c.close()
	}
	s.wg.Wait()
	var err error
	if s.pcapFile != nil {
		err = s.pcapErr
		if cerr := s.pcapFile.Close(); err == nil && cerr != nil {
			err = fmt.Errorf("close pcap: %w", cerr)
		}
	}
	return err
}
