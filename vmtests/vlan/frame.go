package vlan

import (
	"encoding/binary"
	"fmt"
	"net"
	"net/netip"
	"time"
)

// EtherType values the queries decode.
const (
	EtherTypeIPv4 = 0x0800
	EtherTypeARP  = 0x0806
	EtherTypeIPv6 = 0x86dd
)

// ARP operations.
const (
	ARPRequest = 1
	ARPReply   = 2
)

// IP protocol numbers the queries decode.
const (
	ProtoICMP   = 1
	ProtoTCP    = 6
	ProtoUDP    = 17
	ProtoICMPv6 = 58
)

// ICMPv6 types of neighbour discovery (RFC 4861), IPv6's ARP.
const (
	NDPSolicitation  = 135
	NDPAdvertisement = 136
)

// ICMP types of an echo exchange.
const (
	ICMPEchoReply   = 0
	ICMPEchoRequest = 8
)

// Frame is one Ethernet frame as it entered the switch.
type Frame struct {
	// Seq numbers frames in arrival order from 0; Mark and FramesSince use it
	// to split a run into phases (before and after a link cut).
	Seq  int
	Time time.Time
	// Port is the name of the port the frame came in on.
	Port string
	Data []byte
	// Dropped is set when the ingress port's link was down, or the frame
	// was multicast while the switch drops multicast: the frame never
	// crossed the switch and is not in the pcap.
	Dropped bool
}

// Dst returns the destination MAC address, or nil for a runt frame.
func (f Frame) Dst() net.HardwareAddr {
	if len(f.Data) < 14 {
		return nil
	}
	return net.HardwareAddr(f.Data[0:6])
}

// Src returns the source MAC address, or nil for a runt frame.
func (f Frame) Src() net.HardwareAddr {
	if len(f.Data) < 14 {
		return nil
	}
	return net.HardwareAddr(f.Data[6:12])
}

// EtherType returns the frame's EtherType, 0 for a runt frame.
func (f Frame) EtherType() uint16 {
	if len(f.Data) < 14 {
		return 0
	}
	return binary.BigEndian.Uint16(f.Data[12:14])
}

// ARP is a decoded IPv4-over-Ethernet ARP packet.
type ARP struct {
	Op        uint16
	SenderMAC net.HardwareAddr
	SenderIP  netip.Addr
	TargetMAC net.HardwareAddr
	TargetIP  netip.Addr
}

// Gratuitous reports whether the packet announces its sender's own address
// (sender and target IP equal), the way a director taking over a VIP does.
func (a ARP) Gratuitous() bool { return a.SenderIP == a.TargetIP }

func (a ARP) String() string {
	op := fmt.Sprintf("op %d", a.Op)
	switch a.Op {
	case ARPRequest:
		op = "who-has"
	case ARPReply:
		op = "is-at"
	}
	return fmt.Sprintf("arp %s %s (%s) -> %s (%s)", op, a.SenderIP, a.SenderMAC, a.TargetIP, a.TargetMAC)
}

// ARP decodes the frame as an IPv4 ARP packet.
func (f Frame) ARP() (ARP, bool) {
	if f.EtherType() != EtherTypeARP || len(f.Data) < 14+28 {
		return ARP{}, false
	}
	p := f.Data[14:]
	// Only Ethernet hardware (1) with IPv4 protocol addresses is meaningful on this LAN.
	if binary.BigEndian.Uint16(p[0:2]) != 1 || binary.BigEndian.Uint16(p[2:4]) != EtherTypeIPv4 || p[4] != 6 || p[5] != 4 {
		return ARP{}, false
	}
	return ARP{
		Op:        binary.BigEndian.Uint16(p[6:8]),
		SenderMAC: net.HardwareAddr(p[8:14]),
		SenderIP:  netip.AddrFrom4([4]byte(p[14:18])),
		TargetMAC: net.HardwareAddr(p[18:24]),
		TargetIP:  netip.AddrFrom4([4]byte(p[24:28])),
	}, true
}

// IPv4 is the part of an IPv4 packet the queries need.
type IPv4 struct {
	Src, Dst netip.Addr
	Protocol uint8
	Payload  []byte
}

// IPv4 decodes the frame as an IPv4 packet.
func (f Frame) IPv4() (IPv4, bool) {
	if f.EtherType() != EtherTypeIPv4 || len(f.Data) < 14+20 {
		return IPv4{}, false
	}
	p := f.Data[14:]
	ihl := int(p[0]&0x0f) * 4
	if p[0]>>4 != 4 || ihl < 20 || len(p) < ihl {
		return IPv4{}, false
	}
	// The total length field, not the frame length, bounds the payload: short
	// frames may carry Ethernet padding after the packet.
	end := int(binary.BigEndian.Uint16(p[2:4]))
	if end < ihl || end > len(p) {
		end = len(p)
	}
	return IPv4{
		Src:      netip.AddrFrom4([4]byte(p[12:16])),
		Dst:      netip.AddrFrom4([4]byte(p[16:20])),
		Protocol: p[9],
		Payload:  p[ihl:end],
	}, true
}

// ICMP is a decoded ICMP message header.
type ICMP struct {
	Src, Dst   netip.Addr
	Type, Code uint8
}

// ICMP decodes the frame as an ICMP message inside IPv4.
func (f Frame) ICMP() (ICMP, bool) {
	ip, ok := f.IPv4()
	if !ok || ip.Protocol != ProtoICMP || len(ip.Payload) < 4 {
		return ICMP{}, false
	}
	return ICMP{Src: ip.Src, Dst: ip.Dst, Type: ip.Payload[0], Code: ip.Payload[1]}, true
}

// IPv6 is the part of an IPv6 packet the queries need.
type IPv6 struct {
	Src, Dst netip.Addr
	// NextHeader is the fixed header's: the queries read packets without
	// extension headers (neighbour discovery has none).
	NextHeader uint8
	Payload    []byte
}

// IPv6 decodes the frame as an IPv6 packet.
func (f Frame) IPv6() (IPv6, bool) {
	if f.EtherType() != EtherTypeIPv6 || len(f.Data) < 14+40 {
		return IPv6{}, false
	}
	p := f.Data[14:]
	if p[0]>>4 != 6 {
		return IPv6{}, false
	}
	// The payload length field bounds the payload, as IPv4's total length.
	end := 40 + int(binary.BigEndian.Uint16(p[4:6]))
	if end > len(p) {
		end = len(p)
	}
	return IPv6{
		Src:        netip.AddrFrom16([16]byte(p[8:24])),
		Dst:        netip.AddrFrom16([16]byte(p[24:40])),
		NextHeader: p[6],
		Payload:    p[40:end],
	}, true
}

// NDP is a decoded neighbour solicitation or advertisement.
type NDP struct {
	Type     uint8 // NDPSolicitation or NDPAdvertisement
	Src, Dst netip.Addr
	// Target is the address asked about or answered for.
	Target netip.Addr
	// An advertisement's flags: Solicited is set on an answer to a
	// solicitation and clear on an announcement (a takeover's
	// unsolicited advertisement); Override replaces a cached entry.
	Router, Solicited, Override bool
	// LinkAddr is the link-layer address option: the sender's on a
	// solicitation, the target's on an advertisement; nil without one.
	LinkAddr net.HardwareAddr
}

func (n NDP) String() string {
	if n.Type == NDPSolicitation {
		return fmt.Sprintf("ndp who-has %s from %s (%s)", n.Target, n.Src, n.LinkAddr)
	}
	flags := ""
	for _, f := range []struct {
		on bool
		c  string
	}{{n.Router, "R"}, {n.Solicited, "S"}, {n.Override, "O"}} {
		if f.on {
			flags += f.c
		}
	}
	return fmt.Sprintf("ndp %s is-at %s [%s] -> %s", n.Target, n.LinkAddr, flags, n.Dst)
}

// NDP decodes the frame as a neighbour solicitation or advertisement.
func (f Frame) NDP() (NDP, bool) {
	ip, ok := f.IPv6()
	if !ok || ip.NextHeader != ProtoICMPv6 || len(ip.Payload) < 24 {
		return NDP{}, false
	}
	p := ip.Payload
	n := NDP{Type: p[0], Src: ip.Src, Dst: ip.Dst, Target: netip.AddrFrom16([16]byte(p[8:24]))}
	if n.Type != NDPSolicitation && n.Type != NDPAdvertisement {
		return NDP{}, false
	}
	if n.Type == NDPAdvertisement {
		n.Router, n.Solicited, n.Override = p[4]&0x80 != 0, p[4]&0x40 != 0, p[4]&0x20 != 0
	}
	// Options: type, length in units of 8 bytes, value. Source (1) and
	// target (2) link-layer addresses carry a MAC.
	for o := p[24:]; len(o) >= 8 && o[1] != 0 && len(o) >= int(o[1])*8; o = o[int(o[1])*8:] {
		if o[0] == 1 || o[0] == 2 {
			n.LinkAddr = net.HardwareAddr(o[2:8])
		}
	}
	return n, true
}

// Neighbour is address resolution in either family: an ARP request or
// reply, a neighbour solicitation or advertisement.
type Neighbour struct {
	// Answer is set on an ARP reply or an advertisement; a question is an
	// ARP request or a solicitation.
	Answer bool
	// IP is the address asked about or answered for.
	IP netip.Addr
	// MAC is the link address an answer gives for IP: ARP's sender's, an
	// advertisement's target link-layer option or else the frame's source.
	MAC net.HardwareAddr
	// Announce marks a holder telling everyone unasked, as a director
	// that took a VIP over does: a gratuitous ARP (request or reply) or an
	// advertisement without the solicited flag.
	Announce bool
}

// Neighbour decodes the frame as address resolution of either family.
func (f Frame) Neighbour() (Neighbour, bool) {
	if a, ok := f.ARP(); ok {
		n := Neighbour{Answer: a.Op == ARPReply, IP: a.TargetIP, Announce: a.Gratuitous()}
		if n.Answer || n.Announce {
			n.IP, n.MAC = a.SenderIP, a.SenderMAC
		}
		return n, true
	}
	nd, ok := f.NDP()
	if !ok {
		return Neighbour{}, false
	}
	n := Neighbour{Answer: nd.Type == NDPAdvertisement, IP: nd.Target}
	if n.Answer {
		n.MAC, n.Announce = nd.LinkAddr, !nd.Solicited
		if n.MAC == nil {
			n.MAC = f.Src()
		}
	}
	return n, true
}

func (f Frame) String() string {
	s := fmt.Sprintf("#%d %s %s > %s", f.Seq, f.Port, f.Src(), f.Dst())
	if a, ok := f.ARP(); ok {
		s += " " + a.String()
	} else if n, ok := f.NDP(); ok {
		s += " " + n.String()
	} else if ic, ok := f.ICMP(); ok {
		s += fmt.Sprintf(" icmp %s > %s type %d", ic.Src, ic.Dst, ic.Type)
	} else if ip, ok := f.IPv4(); ok {
		s += fmt.Sprintf(" ip %s > %s proto %d", ip.Src, ip.Dst, ip.Protocol)
	} else {
		s += fmt.Sprintf(" ethertype %#04x len %d", f.EtherType(), len(f.Data))
	}
	if f.Dropped {
		s += " (dropped: link down)"
	}
	return s
}
