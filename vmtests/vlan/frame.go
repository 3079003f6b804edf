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
)

// ARP operations.
const (
	ARPRequest = 1
	ARPReply   = 2
)

// IP protocol numbers the queries decode.
const (
	ProtoICMP = 1
	ProtoTCP  = 6
	ProtoUDP  = 17
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

func (f Frame) String() string {
	s := fmt.Sprintf("#%d %s %s > %s", f.Seq, f.Port, f.Src(), f.Dst())
	if a, ok := f.ARP(); ok {
		s += " " + a.String()
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
