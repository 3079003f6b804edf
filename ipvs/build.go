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
		vs := Service{Name: sv.Name, VIP: vip, Scheduler: sv.Scheduler, Method: methodOf[sv.Forwarding]}
		if sv.FWMark != 0 {
			vs.Mark, vs.V6 = uint32(sv.FWMark), vip.Is6()
		} else {
			vs.Proto, vs.Addr, vs.Port = Protocol(sv.Protocol), vip, uint16(sv.Port)
		}
		if p := sv.Persistence; p != nil {
			vs.Persistent = p.Timeout
			if p.Netmask != "" && p.Netmask != "255.255.255.255" {
				vs.Netmask = p.Netmask
			}
		}
		for _, h := range s.RealServers(sv) {
			vs.Dests = append(vs.Dests, Dest{
				Addr: h.Prefix().Addr(), Port: uint16(sv.RealPort), Method: vs.Method,
				Weight: cluster.Weight(h, sv.Name), Host: h.Name,
			})
		}
		t.Services = append(t.Services, vs)
	}
	return t
}
