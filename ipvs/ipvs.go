// Package ipvs is the model of an IPVS table: the virtual services a
// director holds, keyed as the kernel keys them (address family, protocol,
// address and port, or a firewall mark), each with its scheduler, flags and
// persistence, and its real servers with their forwarding method and
// weight. Build derives the wanted table from a validated spec, the one
// place where "who serves what, with which weight" is decided; the ipvsadm
// rules (Rules), ldirectord.cf and keepalived.conf (package roles) encode
// it; a director's live `ipvsadm -S -n` or `ipvsadm -L -n` parses into it
// (ParseRules, ParseList); Diff says how a live table differs from the
// wanted one. Beside the table, a Table holds what else a director's
// IPVS is told: connection timeouts, connection sync, the net.ipv4.vs
// sysctls. Addresses are netip.Addr: IPv4 and IPv6 alike.
package ipvs

import (
	"fmt"
	"net/netip"
	"slices"
	"strconv"
	"strings"
)

// Protocol is a virtual service's transport protocol.
type Protocol string

// Protocols IPVS balances; a firewall-mark service has none of its own.
const (
	TCP  Protocol = "tcp"
	UDP  Protocol = "udp"
	SCTP Protocol = "sctp"
)

// flag is ipvsadm's switch for the protocol.
func (p Protocol) flag() string {
	switch p {
	case UDP:
		return "-u"
	case SCTP:
		return "--sctp-service"
	}
	return "-t"
}

// Key identifies a virtual service as the kernel does: a protocol, address
// and port, or a firewall mark and an address family.
type Key struct {
	// Mark is a firewall-mark service's mark; Proto, Addr and Port are then unset.
	Mark uint32
	// V6 is a firewall-mark service's address family; the others have Addr's.
	V6    bool
	Proto Protocol
	Addr  netip.Addr
	Port  uint16
}

// Is6 reports whether the service is an IPv6 one.
func (k Key) Is6() bool {
	if k.Mark != 0 {
		return k.V6
	}
	return k.Addr.Is6()
}

// Rule is the key as ipvsadm's rules write it: "-t 192.0.2.1:80",
// "-u [2001:db8::1]:53", "-f 7" or "-f 7 -6".
func (k Key) Rule() string {
	if k.Mark != 0 {
		if k.V6 {
			return fmt.Sprintf("-f %d -6", k.Mark)
		}
		return fmt.Sprintf("-f %d", k.Mark)
	}
	return k.Proto.flag() + " " + netip.AddrPortFrom(k.Addr, k.Port).String()
}

// String is the key for people: "tcp 192.0.2.1:80" or "fwmark 7".
func (k Key) String() string {
	if k.Mark != 0 {
		if k.V6 {
			return fmt.Sprintf("fwmark %d (IPv6)", k.Mark)
		}
		return fmt.Sprintf("fwmark %d", k.Mark)
	}
	return string(k.Proto) + " " + netip.AddrPortFrom(k.Addr, k.Port).String()
}

// Method is how a director forwards to a real server.
type Method string

// Forwarding methods, named as `ipvsadm -L` names them.
const (
	Route  Method = "Route"  // LVS-DR, -g
	Tunnel Method = "Tunnel" // LVS-TUN, -i
	Masq   Method = "Masq"   // LVS-NAT, -m
	Local  Method = "Local"  // the director itself
)

var methodFlags = map[Method]string{Route: "-g", Tunnel: "-i", Masq: "-m", Local: "-g"}

// TunnelOpts are the options of a Tunnel real server (ipvsadm 1.31's
// --tun-type, --tun-port and checksum switches).
type TunnelOpts struct {
	// Type is "" (IPIP, the kernel's default), "gue" or "gre".
	Type string
	// Port is GUE's UDP port.
	Port uint16
	// Csum is "" (no checksum, the kernel's default), "csum" or
	// "remcsum" (GUE's remote checksum offload).
	Csum string
}

// Dest is one real server of a virtual service.
type Dest struct {
	Addr   netip.Addr
	Port   uint16
	Method Method
	Weight int
	Tunnel TunnelOpts
	// Host is the spec's name of the real server; empty in a table read
	// from a director.
	Host string
	// ActiveConns and InactConns are a live table's connection counters
	// (ipvsadm -L -n); zero in a wanted table.
	ActiveConns, InactConns int
}

// AddrPort is the real server's address and port: "192.0.2.11:80",
// "[2001:db8::11]:80" (port 0 for a firewall-mark service's real servers).
func (d Dest) AddrPort() string { return netip.AddrPortFrom(d.Addr, d.Port).String() }

// Service is one virtual service and its real servers.
type Service struct {
	Key
	// Name is the spec's name of the service; empty in a table read from a
	// director.
	Name string
	// VIP is the address clients reach the service at: Addr, or the
	// address a firewall-mark service's packets are marked for (unknown,
	// so invalid, in a table read from a director).
	VIP netip.Addr
	// MarkPorts are the ports of VIP whose packets a firewall-mark service
	// gets marked (unknown, so empty, in a table read from a director).
	MarkPorts []uint16
	Scheduler string
	// Method is how the spec forwards to every real server of the service
	// (keepalived's lvs_method, the method of ldirectord's fallback); empty
	// in a table read from a director, where each real server has its own.
	Method Method
	// Tunnel is, likewise, the spec's tunnel options of every real server
	// of a Tunnel service.
	Tunnel TunnelOpts
	// SchedFlags are the scheduler's flags (ipvsadm -b), e.g. mh-port.
	SchedFlags []string
	// OnePacket is one-packet scheduling (ipvsadm -o, UDP).
	OnePacket bool
	// Persistent is the persistence timeout in seconds; 0 is none.
	Persistent int
	// Netmask is the persistence granularity as ipvsadm writes it (a dotted
	// IPv4 mask, an IPv6 prefix length); "" is one client address.
	Netmask string
	Dests   []Dest
}

// Dest returns the real server at addr:port, or nil.
func (s *Service) Dest(addr netip.Addr, port uint16) *Dest {
	for i := range s.Dests {
		if s.Dests[i].Addr == addr && s.Dests[i].Port == port {
			return &s.Dests[i]
		}
	}
	return nil
}

// Table is an IPVS table: its virtual services in order (the spec's for a
// wanted table, ipvsadm's for a live one).
type Table struct {
	Services []Service
	// Timeouts are the connection timeouts; zero ones are the kernel's.
	Timeouts Timeouts
	// Sync is connection synchronisation between the directors; nil: none.
	Sync *Sync
	// Sysctls are the net.ipv4.vs settings, in the order they are set.
	Sysctls []Sysctl
}

// Service returns the virtual service with key k, or nil.
func (t *Table) Service(k Key) *Service {
	return t.find(func(s *Service) bool { return s.Key == k })
}

// Named returns the spec's service called name, or nil.
func (t *Table) Named(name string) *Service {
	return t.find(func(s *Service) bool { return s.Name == name })
}

// find returns the first virtual service that matches, or nil.
func (t *Table) find(match func(*Service) bool) *Service {
	for i := range t.Services {
		if match(&t.Services[i]) {
			return &t.Services[i]
		}
	}
	return nil
}

// Uses reports whether any real server of the table is forwarded to by m.
func (t *Table) Uses(m Method) bool {
	return t.UsesIn(m, false) || t.UsesIn(m, true)
}

// UsesIn reports whether any real server of the table's services of one
// family (IPv6 if v6) is forwarded to by m.
func (t *Table) UsesIn(m Method, v6 bool) bool {
	for _, s := range t.Services {
		for _, d := range s.Dests {
			if d.Method == m && s.Is6() == v6 {
				return true
			}
		}
	}
	return false
}

// Has6 reports whether the table has an IPv6 virtual service.
func (t *Table) Has6() bool {
	for _, s := range t.Services {
		if s.Is6() {
			return true
		}
	}
	return false
}

// DestOf returns host's real-server entry in s, or nil.
func (s *Service) DestOf(host string) *Dest {
	for i := range s.Dests {
		if s.Dests[i].Host == host {
			return &s.Dests[i]
		}
	}
	return nil
}

// ServicesOf returns the services real server host serves, in table order.
func (t *Table) ServicesOf(host string) []*Service {
	var out []*Service
	for i := range t.Services {
		if t.Services[i].DestOf(host) != nil {
			out = append(out, &t.Services[i])
		}
	}
	return out
}

// Rules encodes the table as `ipvsadm -S -n` writes it (and `ipvsadm -R`
// reads it): each virtual service followed by its real servers, numeric.
// Tunnel real servers of the default type carry no --tun-type, so that an
// ipvsadm older than 1.31 restores them too.
func (t *Table) Rules() []string {
	var lines []string
	for _, s := range t.Services {
		line := "-A " + s.Rule() + " -s " + s.Scheduler
		if s.Persistent > 0 {
			line += " -p " + strconv.Itoa(s.Persistent)
			if s.Netmask != "" {
				line += " -M " + s.Netmask
			}
		}
		if s.OnePacket {
			line += " -o"
		}
		if len(s.SchedFlags) > 0 {
			line += " -b " + strings.Join(s.SchedFlags, ",")
		}
		lines = append(lines, line)
		for _, d := range s.Dests {
			line := fmt.Sprintf("-a %s -r %s %s -w %d", s.Rule(), d.AddrPort(), methodFlags[d.Method], d.Weight)
			if d.Method == Tunnel && d.Tunnel.Type != "" {
				line += " --tun-type " + d.Tunnel.Type
				if d.Tunnel.Type == "gue" {
					line += " --tun-port " + strconv.Itoa(int(d.Tunnel.Port))
				}
				if d.Tunnel.Csum != "" {
					line += " --tun-" + d.Tunnel.Csum
				}
			}
			lines = append(lines, line)
		}
	}
	return lines
}

// sortedFlags is flags in the order ipvsadm prints them (fallback before port).
func sortedFlags(flags []string) []string {
	out := slices.Clone(flags)
	slices.Sort(out)
	return out
}
