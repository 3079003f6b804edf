package cluster

import (
	"fmt"
	"net/netip"
	"strings"
)

// maxAS is the largest AS number a director or a peer can have: 4-byte AS
// numbers end at 4294967295, which RFC 7300 reserves.
const maxAS = 1<<32 - 2

// asTrans is AS_TRANS (RFC 6793), which stands in for a 4-byte AS towards
// speakers of 2-byte AS numbers and is no AS of its own.
const asTrans = 23456

// DefaultHoldTime is the BGP hold time the directors use unless
// ha.bgp.holdTime says otherwise: the data-centre value (FRR's too) rather
// than BGP's 180 or BIRD's 240, so that a director that dies silently
// leaves the routers' ECMP sets within seconds even without BFD.
const DefaultHoldTime = 9

// BGPOf is director h's local AS and router ID: its own, else the
// cluster's AS and its public address. Valid after validation.
func (s *Spec) BGPOf(h *Host) (as int, routerID string) {
	as, routerID = s.HA.BGP.AS, h.IP()
	if b := h.BGP; b != nil {
		if b.AS != 0 {
			as = b.AS
		}
		if b.RouterID != "" {
			routerID = b.RouterID
		}
	}
	return as, routerID
}

func (v *validator) asNumber(path string, as int) {
	switch {
	case as < 1 || as > maxAS:
		v.add(path, "%d is out of range: expected an AS number 1-%d", as, maxAS)
	case as == asTrans:
		v.add(path, "AS %d is AS_TRANS, which stands in for 4-byte AS numbers and belongs to no one: use your own AS (private ones: 64512-65534, 4200000000-4294967294)", as)
	}
}

// bgp checks ha.bgp and the directors' hosts[].bgp for the bgp backend.
func (v *validator) bgp(directors []string, h hostAddrs) {
	b := &v.s.HA.BGP
	for i, host := range v.s.Hosts {
		if host.BGP != nil && host.Role != RoleDirector {
			v.add(fmt.Sprintf("hosts[%d].bgp", i), "only directors speak BGP: remove bgp from real server %s", host.Name)
		}
	}
	if v.s.HA.Backend != BackendBGP {
		return
	}
	if len(directors) < 1 {
		v.add("hosts", "the bgp backend needs at least one director")
	}
	if b.AS != 0 {
		v.asNumber("ha.bgp.as", b.AS)
	}
	v.rangeInt("ha.bgp.holdTime", b.HoldTime, 3, 65535)
	routerIDs := map[netip.Addr]string{}
	for i, host := range v.s.Hosts {
		if host.Role != RoleDirector {
			continue
		}
		p := fmt.Sprintf("hosts[%d]", i)
		own := host.BGP
		if own == nil {
			own = &HostBGP{}
		}
		switch {
		case own.AS != 0:
			v.asNumber(p+".bgp.as", own.AS)
		case b.AS == 0 && !v.skip["ha.bgp.as"]:
			v.add(p, "director %s has no BGP AS: set ha.bgp.as (every director's) or its own bgp.as", host.Name)
		}
		idPath, id := p+".bgp.routerID", own.RouterID
		if id == "" {
			pfx, ok := h.pub[host.Name]
			if !ok {
				continue // reported as a bad address
			}
			idPath, id = p+".address", pfx.Addr().String()
		}
		a, err := netip.ParseAddr(id)
		if err != nil || !a.Is4() || a.IsUnspecified() {
			v.add(idPath, "invalid router ID %q: expected a dotted quad other than 0.0.0.0, e.g. 10.255.0.1 (a director's router ID is its address unless bgp.routerID sets one)", id)
			continue
		}
		if prev, dup := routerIDs[a]; dup {
			v.add(idPath, "router ID %s is already director %s's: BGP tells speakers apart by it; set bgp.routerID on one of them", a, prev)
			continue
		}
		routerIDs[a] = host.Name
	}
	v.bgpPeers(directors, h)
	for i, sv := range v.s.Services {
		p := fmt.Sprintf("services[%d]", i)
		if sv.Forwarding == ForwardNAT {
			v.add(p+".forwarding", "with the bgp backend every director forwards at once, and a real server's replies go to its one gateway: LVS-NAT would send the replies of every other director's connections to the wrong one; use dr or tun")
		}
		if sv.Fallback != nil {
			v.add(p+".fallback", "with the bgp backend a director whose checks find no live real server withdraws the VIP, so no packet would reach the sorry server: remove fallback")
		}
	}
	v.keepalivedChecks()
}

// bgpPeers checks ha.bgp.peers: BIRD peers with each directly (one hop)
// from every director's public address.
func (v *validator) bgpPeers(directors []string, h hostAddrs) {
	peers := v.s.HA.BGP.Peers
	if len(peers) == 0 {
		v.add("ha.bgp.peers", "the directors announce the VIPs to at least one BGP peer (the routers in front of them): add peers: [{address: 192.168.7.254, as: 65000}]")
		return
	}
	used := map[netip.Addr]string{}
	for _, host := range v.s.Hosts {
		if pfx, ok := h.pub[host.Name]; ok {
			used[pfx.Addr()] = "host " + host.Name
		}
	}
	for _, sv := range v.s.Services {
		if a, err := netip.ParseAddr(sv.VIP); err == nil {
			used[a] = "the VIP of service " + sv.Name
		}
	}
	for i, peer := range peers {
		p := fmt.Sprintf("ha.bgp.peers[%d]", i)
		v.asNumber(p+".as", peer.AS)
		a, err := parseIPv4(peer.Address)
		if err != nil {
			v.add(p+".address", "%v", err)
			continue
		}
		if prev, ok := used[a]; ok {
			v.add(p+".address", "address %s is already used by %s: a peer is a router of its own", a, prev)
			continue
		}
		used[a] = fmt.Sprintf("peer %d", i)
		subnets := map[netip.Prefix]bool{}
		for _, d := range directors {
			pfx, ok := h.pub[d]
			switch {
			case !ok:
			case !pfx.Contains(a):
				v.add(p+".address", "peer %s is not on director %s's subnet (%s): BIRD peers directly, from each director's public address; use a router on that subnet", a, d, pfx.Masked())
			case !subnets[pfx.Masked()]:
				subnets[pfx.Masked()] = true
				v.hostAddress(p+".address", pfx, a)
			}
		}
	}
}

// bgpAddresses checks where a service's VIP and its LVS-DR real servers may
// be with the bgp backend, in place of the checks for a VIP that moves
// between directors on their subnet.
func (v *validator) bgpAddresses(p string, sv *Service, vip netip.Addr, h hostAddrs) {
	for _, host := range v.s.Hosts {
		if pfx, ok := h.pub[host.Name]; ok && host.Role == RoleDirector && pfx.Contains(vip) {
			v.add(p+".vip", "VIP %s of service %q is on director %s's subnet (%s): with the bgp backend the directors hold the VIPs on lo and answer no ARP for them, so the hosts on that subnet could not reach it; use an address of no director's subnet (the routers reach it through the directors' host routes)", vip, sv.Name, host.Name, pfx.Masked())
			break
		}
	}
	if sv.Forwarding != ForwardDR {
		return
	}
	for j := range v.s.Hosts {
		rs := &v.s.Hosts[j]
		rsp, ok := h.pub[rs.Name]
		if !ok || !ServesService(rs, sv.Name) {
			continue
		}
		for _, d := range v.s.Hosts {
			if dp, ok := h.pub[d.Name]; ok && d.Role == RoleDirector && !dp.Contains(rsp.Addr()) {
				v.add(fmt.Sprintf("hosts[%d].address", j), "LVS-DR real server %s (%s) must be on the L2 subnet of every director, which forwards to it by its MAC address: it is not on director %s's (%s)", rs.Name, rsp, d.Name, dp.Masked())
				break
			}
		}
	}
}

// schedulersPerDirector are the schedulers whose choice depends on the
// director's own state (a position in a rotation, connection counts,
// random draws): two directors pick different real servers for one flow.
var schedulersPerDirector = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "sed", "nq", "ovf", "twos"}

// bgpWarnings: what works with several active directors, but badly. The
// routers hash each flow to a director, and move flows when a director
// comes or goes; only a scheduler that picks the same real server on
// every director keeps such a flow on its real server.
func (v *validator) bgpWarnings() {
	if v.s.HA.Backend != BackendBGP {
		return
	}
	directors := len(v.s.HostsByRole(RoleDirector))
	if directors < 2 {
		return
	}
	for i, sv := range v.s.Services {
		p := fmt.Sprintf("services[%d]", i)
		quiescent := sv.Quiescent == nil || *sv.Quiescent
		switch {
		case oneOf(sv.Scheduler, schedulersPerDirector...):
			v.warn(p+".scheduler", "with %d active directors, %s picks a real server from each director's own state, so they pick different ones: a connection the routers move to another director (when one comes or goes) lands on another real server and breaks; use scheduler mh with schedulerFlags [mh-port, mh-fallback]", directors, sv.Scheduler)
		case sv.Scheduler != "mh":
			v.warn(p+".scheduler", "with %d active directors, mh is the scheduler made for this (Maglev hashing: every director picks the same real server, and a real server that fails moves only its own connections); %s is consistent only while every director lists the same real servers in the same order: use scheduler mh with schedulerFlags [mh-port, mh-fallback]", directors, sv.Scheduler)
		default:
			var missing []string
			if !oneOf("mh-port", sv.SchedulerFlags...) {
				missing = append(missing, "mh-port (hash the client's port too, or every connection of one client, or of many behind one NAT, goes to one real server)")
			}
			if !oneOf("mh-fallback", sv.SchedulerFlags...) && quiescent {
				missing = append(missing, "mh-fallback (a new connection whose hash falls on a failed real server, kept at weight 0, goes to the next one instead of being refused)")
			}
			if len(missing) > 0 {
				path := p + ".schedulerFlags"
				if len(sv.SchedulerFlags) == 0 {
					path = p + ".scheduler"
				}
				v.warn(path, "with %d active directors add %s", directors, strings.Join(missing, " and "))
			}
		}
		if !quiescent && !oneOf(sv.Scheduler, schedulersPerDirector...) {
			v.warn(p+".quiescent", "keepalived then removes a failed real server and adds it back, at the head of IPVS's list, when it recovers: the directors' lists, and the %s tables built from them, come to differ, and a connection the routers move to another director lands on another real server; leave quiescent true", sv.Scheduler)
		}
	}
}
