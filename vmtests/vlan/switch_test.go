package vlan

import (
	"bytes"
	"context"
	"encoding/binary"
	"io"
	"net"
	"net/netip"
	"os"
	"path/filepath"
	"testing"
	"time"
)

// client is a stand-in for a QEMU stream netdev: a unix socket speaking
// 4-byte big-endian length-prefixed frames.
type client struct {
	t   *testing.T
	c   net.Conn
	got chan []byte
}

func dial(t *testing.T, path string) *client {
	t.Helper()
	c, err := net.Dial("unix", path)
	if err != nil {
		t.Fatalf("dial %s: %v", path, err)
	}
	cl := &client{t: t, c: c, got: make(chan []byte, 64)}
	go func() {
		defer close(cl.got)
		var hdr [4]byte
		for {
			if _, err := io.ReadFull(c, hdr[:]); err != nil {
				return
			}
			buf := make([]byte, binary.BigEndian.Uint32(hdr[:]))
			if _, err := io.ReadFull(c, buf); err != nil {
				return
			}
			cl.got <- buf
		}
	}()
	t.Cleanup(func() { c.Close() })
	return cl
}

func (c *client) send(frame []byte) {
	c.t.Helper()
	var hdr [4]byte
	binary.BigEndian.PutUint32(hdr[:], uint32(len(frame)))
	if _, err := c.c.Write(append(hdr[:], frame...)); err != nil {
		c.t.Fatalf("send frame: %v", err)
	}
}

// recv returns the next frame delivered to the client. The timeout only keeps
// a broken switch from hanging the test.
func (c *client) recv() []byte {
	c.t.Helper()
	select {
	case f, ok := <-c.got:
		if !ok {
			c.t.Fatal("connection closed while waiting for a frame")
		}
		return f
	case <-time.After(10 * time.Second):
		c.t.Fatal("no frame delivered within 10s")
	}
	return nil
}

// nextIs checks the next frame delivered to the client. Tests use it with a
// marker frame to prove that nothing else reached the client before: the
// switch forwards frames in order, so no timed "nothing arrived" wait is needed.
func (c *client) nextIs(t *testing.T, want []byte) {
	t.Helper()
	if got := c.recv(); !bytes.Equal(got, want) {
		t.Fatalf("got frame %x, want %x", got, want)
	}
}

var (
	macA  = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0xa}
	macB  = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0xb}
	macC  = net.HardwareAddr{0x52, 0x54, 0, 0, 0, 0xc}
	bcast = net.HardwareAddr{0xff, 0xff, 0xff, 0xff, 0xff, 0xff}
	ipA   = netip.MustParseAddr("192.168.7.9")
	ipB   = netip.MustParseAddr("192.168.7.10")
	vip   = netip.MustParseAddr("192.168.7.110")
)

func eth(dst, src net.HardwareAddr, etherType uint16, payload []byte) []byte {
	f := append(append(append([]byte{}, dst...), src...), byte(etherType>>8), byte(etherType))
	return append(f, payload...)
}

func arp(op uint16, sha net.HardwareAddr, spa netip.Addr, tha net.HardwareAddr, tpa netip.Addr) []byte {
	p := []byte{0, 1, 8, 0, 6, 4, byte(op >> 8), byte(op)}
	p = append(p, sha...)
	p = append(p, spa.AsSlice()...)
	p = append(p, tha...)
	p = append(p, tpa.AsSlice()...)
	dst := tha
	if op == ARPRequest {
		dst = bcast
	}
	return eth(dst, sha, EtherTypeARP, p)
}

func icmpEcho(dst, src net.HardwareAddr, from, to netip.Addr, typ byte) []byte {
	ip := make([]byte, 20+8)
	ip[0] = 0x45
	binary.BigEndian.PutUint16(ip[2:], uint16(len(ip)))
	ip[8] = 64
	ip[9] = ProtoICMP
	copy(ip[12:], from.AsSlice())
	copy(ip[16:], to.AsSlice())
	ip[20] = typ
	return eth(dst, src, EtherTypeIPv4, ip)
}

func newSwitch(t *testing.T, opts ...Option) *Switch {
	t.Helper()
	dir, err := os.MkdirTemp("", "vlan")
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { os.RemoveAll(dir) })
	s, err := New(dir, opts...)
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := s.Close(); err != nil {
			t.Errorf("close switch: %v", err)
		}
	})
	return s
}

func addPort(t *testing.T, s *Switch, name string) *client {
	t.Helper()
	path, err := s.AddPort(name)
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, path)
	// The switch attaches a connection asynchronously; wait until it shows
	// as connected so the first frame cannot race the accept.
	waitConnected(t, s, name)
	return c
}

func waitConnected(t *testing.T, s *Switch, name string) {
	t.Helper()
	if err := s.WaitConnected(ctxT(t), name); err != nil {
		t.Fatal(err)
	}
}

// waitPort waits until port name's status satisfies ok.
func waitPort(t *testing.T, s *Switch, name string, ok func(PortStatus) bool) {
	t.Helper()
	deadline := time.Now().Add(10 * time.Second)
	for {
		for _, p := range s.Ports() {
			if p.Name == name && ok(p) {
				return
			}
		}
		if time.Now().After(deadline) {
			t.Fatalf("port %s: not in the wanted state within 10 s: %+v", name, s.Ports())
		}
		time.Sleep(5 * time.Millisecond)
	}
}

func TestFloodLearnAndUnicast(t *testing.T) {
	s := newSwitch(t)
	a, b, c := addPort(t, s, "a"), addPort(t, s, "b"), addPort(t, s, "c")

	req := arp(ARPRequest, macA, ipA, make(net.HardwareAddr, 6), ipB)
	a.send(req)
	b.nextIs(t, req) // broadcast reaches everyone but the sender
	c.nextIs(t, req)

	rep := arp(ARPReply, macB, ipB, macA, ipA)
	b.send(rep)
	a.nextIs(t, rep) // macA was learnt on port a: unicast, not flooded

	echo := icmpEcho(macB, macA, ipA, ipB, ICMPEchoRequest)
	a.send(echo)
	b.nextIs(t, echo)

	// c must have received nothing since the broadcast: the next frame it
	// sees is this marker broadcast.
	marker := arp(ARPRequest, macB, ipB, make(net.HardwareAddr, 6), vip)
	b.send(marker)
	c.nextIs(t, marker)
	a.nextIs(t, marker)

	if got := s.Repliers(0, ipB); len(got) != 1 || got[0].String() != macB.String() {
		t.Errorf("Repliers(%s) = %v, want [%s]", ipB, got, macB)
	}
	reqs, reps := s.ICMPEchoes(0, ipA, ipB)
	if len(reqs) != 1 || len(reps) != 0 {
		t.Errorf("ICMPEchoes = %d requests %d replies, want 1 and 0", len(reqs), len(reps))
	}
	for _, p := range s.Ports() {
		if p.Name == "a" && (len(p.MACs) != 1 || p.MACs[0].String() != macA.String()) {
			t.Errorf("port a learnt %v, want [%s]", p.MACs, macA)
		}
	}
}

func TestUnknownUnicastIsFlooded(t *testing.T) {
	s := newSwitch(t)
	a, b, c := addPort(t, s, "a"), addPort(t, s, "b"), addPort(t, s, "c")
	f := icmpEcho(macC, macA, ipA, vip, ICMPEchoRequest)
	a.send(f)
	b.nextIs(t, f)
	c.nextIs(t, f)
}

func TestLinkDownDropsBothWays(t *testing.T) {
	s := newSwitch(t)
	a, b := addPort(t, s, "a"), addPort(t, s, "b")
	c := addPort(t, s, "c")

	// Teach the switch where macB lives.
	hello := arp(ARPRequest, macB, ipB, make(net.HardwareAddr, 6), ipA)
	b.send(hello)
	a.nextIs(t, hello)
	c.nextIs(t, hello)

	if err := s.LinkDown("b"); err != nil {
		t.Fatal(err)
	}
	mark := s.Mark()
	toB := icmpEcho(macB, macA, ipA, ipB, ICMPEchoRequest)
	a.send(toB) // macB was forgotten with the link: flooded, but not to b
	c.nextIs(t, toB)
	fromB := icmpEcho(macA, macB, ipB, ipA, ICMPEchoReply)
	b.send(fromB) // dropped at ingress

	// Wait until the switch has recorded b's frame, then prove a got nothing.
	if _, err := s.Wait(ctxT(t), mark, func(f Frame) bool { return f.Port == "b" }); err != nil {
		t.Fatal(err)
	}
	marker := arp(ARPRequest, macC, vip, make(net.HardwareAddr, 6), vip)
	c.send(marker)
	a.nextIs(t, marker)

	fs := s.FramesSince(mark)
	var dropped int
	for _, f := range fs {
		if f.Dropped {
			dropped++
			if f.Port != "b" {
				t.Errorf("frame from %s marked dropped", f.Port)
			}
		}
	}
	if dropped != 1 {
		t.Errorf("%d dropped frames, want 1: %v", dropped, fs)
	}

	if err := s.LinkUp("b"); err != nil {
		t.Fatal(err)
	}
	a.send(toB)
	b.nextIs(t, toB) // b's queue got nothing while down: the first frame is this one

	if err := s.LinkDown("nope"); err == nil {
		t.Error("LinkDown of an unknown port succeeded")
	}
}

// TestMulticastFilter: with multicast off, a frame to a multicast group
// (VRRP's 01:00:5e:00:00:12) reaches no port and is recorded dropped,
// while broadcast and unicast still cross; on again, it floods.
func TestMulticastFilter(t *testing.T) {
	s := newSwitch(t)
	a, b := addPort(t, s, "a"), addPort(t, s, "b")
	vrrp := icmpEcho(net.HardwareAddr{0x01, 0x00, 0x5e, 0x00, 0x00, 0x12}, macA, ipA, netip.MustParseAddr("224.0.0.18"), ICMPEchoRequest)
	s.SetMulticast(false)
	mark := s.Mark()
	a.send(vrrp)
	if _, err := s.Wait(ctxT(t), mark, func(f Frame) bool { return f.Port == "a" }); err != nil {
		t.Fatal(err)
	}
	req := arp(ARPRequest, macA, ipA, make(net.HardwareAddr, 6), ipB)
	a.send(req)
	b.nextIs(t, req) // the multicast frame never reached b: the broadcast is next
	rep := arp(ARPReply, macB, ipB, macA, ipA)
	b.send(rep)
	a.nextIs(t, rep)
	if fs := s.FramesSince(mark); len(fs) != 3 || !fs[0].Dropped || fs[1].Dropped || fs[2].Dropped {
		t.Errorf("frames since the filter: %+v, want the multicast one alone dropped", fs)
	}
	s.SetMulticast(true)
	a.send(vrrp)
	b.nextIs(t, vrrp)
}

func TestReconnectReplacesConnection(t *testing.T) {
	s := newSwitch(t)
	a := addPort(t, s, "a")
	path, err := s.AddPort("b")
	if err != nil {
		t.Fatal(err)
	}
	b1 := dial(t, path)
	waitConnected(t, s, "b")
	b1.send(arp(ARPRequest, macB, ipB, make(net.HardwareAddr, 6), ipA))
	a.recv()
	// The VM behind b is powered off and started again: a new connection on
	// the same socket must carry its traffic.
	b1.c.Close()
	for {
		if _, ok := <-b1.got; !ok {
			break
		}
	}
	// Until the switch has seen the old connection end, it still counts as
	// connected: wait for that, or WaitConnected below proves nothing.
	waitPort(t, s, "b", func(p PortStatus) bool { return !p.Connected })
	b2 := dial(t, path)
	waitConnected(t, s, "b")
	f := icmpEcho(macB, macA, ipA, ipB, ICMPEchoRequest)
	a.send(f)
	b2.nextIs(t, f)
}

func TestGratuitousARPAndPcap(t *testing.T) {
	dir := t.TempDir()
	pcapPath := filepath.Join(dir, "lan.pcap")
	s := newSwitch(t, WithPcap(pcapPath))
	a, b := addPort(t, s, "linuxha1"), addPort(t, s, "rs1")

	garp := arp(ARPRequest, macA, vip, make(net.HardwareAddr, 6), vip)
	a.send(garp)
	b.nextIs(t, garp)
	notGarp := arp(ARPRequest, macB, ipB, make(net.HardwareAddr, 6), vip)
	b.send(notGarp)
	a.nextIs(t, notGarp)

	g := s.Announcements(0, vip)
	if len(g) != 1 || g[0].Port != "linuxha1" {
		t.Fatalf("Announcements = %v, want one from linuxha1", g)
	}
	if err := s.Close(); err != nil {
		t.Fatal(err)
	}
	fh, err := os.Open(pcapPath)
	if err != nil {
		t.Fatal(err)
	}
	defer fh.Close()
	pkts, err := ReadPcap(fh)
	if err != nil {
		t.Fatal(err)
	}
	if len(pkts) != 2 || !bytes.Equal(pkts[0].Data, garp) || !bytes.Equal(pkts[1].Data, notGarp) {
		t.Fatalf("pcap holds %d packets, want the 2 frames sent", len(pkts))
	}
}

func TestSharedSocketNamesPorts(t *testing.T) {
	s := newSwitch(t)
	path, err := s.Listen()
	if err != nil {
		t.Fatal(err)
	}
	a := dial(t, path)
	waitConnected(t, s, "port1")
	b := dial(t, path)
	waitConnected(t, s, "port2")
	f := arp(ARPRequest, macA, ipA, make(net.HardwareAddr, 6), ipB)
	a.send(f)
	b.nextIs(t, f)
	if err := s.LinkDown("port2"); err != nil {
		t.Fatal(err)
	}
}

func TestBadFramingDropsConnection(t *testing.T) {
	s := newSwitch(t)
	path, err := s.AddPort("a")
	if err != nil {
		t.Fatal(err)
	}
	c := dial(t, path)
	waitConnected(t, s, "a")
	if _, err := c.c.Write([]byte{0xff, 0xff, 0xff, 0xff}); err != nil {
		t.Fatal(err)
	}
	for range c.got {
	}
}

func TestAddPortRejectsLongPath(t *testing.T) {
	s, err := New("/tmp/" + string(bytes.Repeat([]byte("d"), 120)))
	if err != nil {
		t.Fatal(err)
	}
	defer s.Close()
	if _, err := s.AddPort("a"); err == nil {
		t.Fatal("AddPort accepted a socket path longer than sun_path")
	}
}

func ctxT(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

// ndp is an Ethernet frame holding a neighbour solicitation (from src for
// target) or advertisement (flags: its R, S and O bits) with a link-layer
// address option for mac.
func ndp(typ byte, mac net.HardwareAddr, src, dst, target netip.Addr, flags byte) []byte {
	p := make([]byte, 40+24+8)
	p[0] = 0x60
	binary.BigEndian.PutUint16(p[4:], uint16(len(p)-40))
	p[6], p[7] = ProtoICMPv6, 255
	copy(p[8:], src.AsSlice())
	copy(p[24:], dst.AsSlice())
	m := p[40:]
	m[0], m[4] = typ, flags
	copy(m[8:], target.AsSlice())
	m[24], m[25] = 1, 1 // source link-layer address
	if typ == NDPAdvertisement {
		m[24] = 2 // target link-layer address
	}
	copy(m[26:], mac)
	// The solicited-node or all-nodes multicast MAC: the test reads, it
	// does not route.
	return eth(net.HardwareAddr{0x33, 0x33, 0, 0, 0, 1}, mac, EtherTypeIPv6, p)
}

func TestNeighbourDiscovery(t *testing.T) {
	s := newSwitch(t)
	a, b := addPort(t, s, "linuxha1"), addPort(t, s, "client")
	vip6 := netip.MustParseAddr("2001:db8:7::110")
	client6, dir6 := netip.MustParseAddr("2001:db8:7::fe"), netip.MustParseAddr("2001:db8:7::9")
	allNodes := netip.MustParseAddr("ff02::1")

	ns := ndp(NDPSolicitation, macB, client6, netip.MustParseAddr("ff02::1:ff00:110"), vip6, 0)
	b.send(ns)
	a.nextIs(t, ns)
	na := ndp(NDPAdvertisement, macA, vip6, client6, vip6, 0x40|0x20)
	a.send(na)
	b.nextIs(t, na)
	una := ndp(NDPAdvertisement, macA, dir6, allNodes, vip6, 0x20)
	a.send(una)
	b.nextIs(t, una)

	frames := s.Frames()
	q, ok := frames[0].Neighbour()
	if !ok || q.Answer || q.Announce || q.IP != vip6 {
		t.Errorf("solicitation decodes as %+v, want a question for %s", q, vip6)
	}
	if n, ok := frames[1].NDP(); !ok || !n.Solicited || !n.Override || n.Router || n.Target != vip6 || n.LinkAddr.String() != macA.String() {
		t.Errorf("advertisement decodes as %s, want a solicited override for %s at %s", n, vip6, macA)
	}
	if got := s.Repliers(0, vip6); len(got) != 1 || got[0].String() != macA.String() {
		t.Errorf("Repliers(%s) = %v, want [%s]", vip6, got, macA)
	}
	if got := s.Announcements(0, vip6); len(got) != 1 || got[0].Seq != frames[2].Seq {
		t.Errorf("Announcements(%s) = %v, want the unsolicited advertisement", vip6, got)
	}
	if got := s.Repliers(0, dir6); len(got) != 0 {
		t.Errorf("Repliers(%s) = %v, want none: no advertisement was for it", dir6, got)
	}
}
