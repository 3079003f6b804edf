package ipvs

import (
	"net/netip"

	"github.com/lvsforge/lvsforge/cluster"
)

// methodOf maps the spec's forwarding methods to IPVS's.
var methodOf = map[string]Method{cluster.ForwardDR: Route, cluster.ForwardTUN: Tunnel, cluster.ForwardNAT: Masq}

// Build derives the wanted IPVS table from a validated spec: every service
// in spec order, each with the real servers that serve it (cluster.Weight
// decides who and with which weight) in spec order. It is the one place
// that turns services and hosts into virtual services and their real
// servers; every renderer, the live-table checks and the VM tests read
// this table rather than the spec's hosts.
func Build(s *cluster.Spec) *Table {
	t := &Table{Services: make([]Service, 0, len(s.Services))}
	for i := range s.Services {
		sv := &s.Services[i]
		vip := netip.MustParseAddr(sv.VIP)
		vs := Service{Name: sv.Name, VIP: vip, Scheduler: sv.Scheduler, Method: methodOf[sv.Forwarding], OnePacket: sv.OnePacket}
		if len(sv.SchedulerFlags) > 0 {
			vs.SchedFlags = sortedFlags(sv.SchedulerFlags)
		}
		if t := sv.Tunnel; t != nil && vs.Method == Tunnel {
			vs.Tunnel = tunnelOpts(t)
		}
		if sv.FWMark != 0 {
			vs.Mark, vs.V6 = uint32(sv.FWMark), vip.Is6()
			for _, p := range sv.FWMarkPorts {
				vs.MarkPorts = append(vs.MarkPorts, uint16(p))
			}
		} else {
			vs.Proto, vs.Addr, vs.Port = Protocol(sv.Protocol), vip, uint16(sv.Port)
		}
		if p := sv.Persistence; p != nil {
			vs.Persistent = p.Timeout
			// One client address is IPVS's default, which ipvsadm -S omits.
			if p.Netmask != "" && p.Netmask != "255.255.255.255" && p.Netmask != "128" {
				vs.Netmask = p.Netmask
			}
		}
		for _, h := range s.RealServers(sv) {
			// The real server's address of the service's family (a
			// dual-stack host has one of each).
			rip, _ := h.PrefixOf(vip.Is6())
			vs.Dests = append(vs.Dests, Dest{
				Addr: rip.Addr(), Port: uint16(sv.RealPort), Method: vs.Method,
				Weight: cluster.Weight(h, sv.Name), Host: h.Name, Tunnel: vs.Tunnel,
			})
		}
		t.Services = append(t.Services, vs)
	}
	to := s.IPVS.Timeouts
	t.Timeouts = Timeouts{TCP: to.TCP, TCPFin: to.TCPFin, UDP: to.UDP}
	if s.HA.Sync.Enabled {
		t.Sync = &Sync{Interface: s.HA.Sync.Interface, SyncID: s.HA.Sync.SyncID}
	}
	t.Sysctls = sysctls(&s.IPVS)
	if s.HA.Backend == cluster.BackendBGP {
		t.Sysctls = append(t.Sysctls, activeActive(s)...)
	}
	return t
}

// activeActive are the settings of a director that is one of several
// active at once (the bgp backend): the routers hash flows over the
// directors and rehash some when one comes or goes, so a director gets
// packets of connections it never saw begin. With sloppy_tcp (and
// sloppy_sctp) it takes such a connection up at any packet, not only a SYN
// (an INIT), and schedules it as the director that saw it begin did, when
// the scheduler picks the same real server everywhere (mh); without it the
// packet goes to the director's own stack, which resets the connection.
// schedule_icmp schedules an ICMP error about such a connection (a
// "fragmentation needed" on the way back to the client) by the packet it
// quotes, instead of dropping it.
func activeActive(s *cluster.Spec) []Sysctl {
	out := []Sysctl{{"sloppy_tcp", 1}}
	for _, sv := range s.Services {
		if sv.Protocol == string(SCTP) {
			out = append(out, Sysctl{"sloppy_sctp", 1})
			break
		}
	}
	return append(out, Sysctl{"schedule_icmp", 1})
}

// tunnelOpts are the spec's tunnel options as IPVS keeps them: IPIP and
// no checksum are its defaults, which ipvsadm -S does not name.
func tunnelOpts(t *cluster.Tunnel) TunnelOpts {
	var o TunnelOpts
	if t.Type != cluster.TunnelIPIP {
		o.Type = t.Type
	}
	o.Port = uint16(t.Port)
	if t.Checksum != cluster.CsumNone {
		o.Csum = t.Checksum
	}
	return o
}

// sysctls are the net.ipv4.vs settings the spec sets (every one, once
// defaulted).
func sysctls(c *cluster.IPVS) []Sysctl {
	var out []Sysctl
	flag := func(name string, b *bool) {
		if b != nil {
			v := 0
			if *b {
				v = 1
			}
			out = append(out, Sysctl{name, v})
		}
	}
	flag("expire_nodest_conn", c.ExpireNodestConn)
	flag("expire_quiescent_template", c.ExpireQuiescentTemplate)
	if c.ConnReuseMode != nil {
		out = append(out, Sysctl{"conn_reuse_mode", *c.ConnReuseMode})
	}
	return out
}
