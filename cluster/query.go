package cluster

import (
	"fmt"
	"net/netip"
	"sort"
)

// ServesService reports whether h is a real server of the named service:
// every real server serves every service, except those whose weight for it
// is 0. A service added to a spec thus reaches every real server, rather
// than silently none of those whose weights predate it.
func ServesService(h *Host, service string) bool {
	return h.Role == RoleRealServer && Weight(h, service) > 0
}

// Weight is real server h's weight for the named service: its weights
// entry, 1 without one.
func Weight(h *Host, service string) int {
	if w, ok := h.Weights[service]; ok {
		return w
	}
	return 1
}

// HostsByRole returns the hosts of a role, in spec order.
func (s *Spec) HostsByRole(role string) []*Host {
	var out []*Host
	for i := range s.Hosts {
		if s.Hosts[i].Role == role {
			out = append(out, &s.Hosts[i])
		}
	}
	return out
}

// RealServers returns the real servers of a service (those with a weight
// above 0 for it), in spec order.
func (s *Spec) RealServers(sv *Service) []*Host {
	var out []*Host
	for _, h := range s.HostsByRole(RoleRealServer) {
		if ServesService(h, sv.Name) {
			out = append(out, h)
		}
	}
	return out
}

// VIPs returns the distinct VIPs in spec order.
func (s *Spec) VIPs() []string {
	var out []string
	seen := map[string]bool{}
	for _, sv := range s.Services {
		if !seen[sv.VIP] {
			seen[sv.VIP] = true
			out = append(out, sv.VIP)
		}
	}
	return out
}

// Host returns the named host, or nil.
func (s *Spec) Host(name string) *Host {
	for i := range s.Hosts {
		if s.Hosts[i].Name == name {
			return &s.Hosts[i]
		}
	}
	return nil
}

// Service returns the service called name, or nil.
func (s *Spec) Service(name string) *Service {
	for i := range s.Services {
		if s.Services[i].Name == name {
			return &s.Services[i]
		}
	}
	return nil
}

// Prefix is the host's public address parsed; valid after validation.
func (h *Host) Prefix() netip.Prefix {
	p, _ := netip.ParsePrefix(h.Address)
	return p
}

// IP is the host's public address without prefix length.
func (h *Host) IP() string { return h.Prefix().Addr().String() }

// PrefixOf is the host's address of one family (IPv6 if v6): its address
// when that is of the family, else its address6 for IPv6; false when it
// has none. Valid after validation.
func (h *Host) PrefixOf(v6 bool) (netip.Prefix, bool) {
	if p := h.Prefix(); p.IsValid() && p.Addr().Is6() == v6 {
		return p, true
	}
	if v6 && h.Address6 != "" {
		p, err := netip.ParsePrefix(h.Address6)
		return p, err == nil
	}
	return netip.Prefix{}, false
}

// GatewayOf is the host's default gateway of one family, "" if none.
func (h *Host) GatewayOf(v6 bool) string {
	switch {
	case h.Prefix().Addr().Is6() == v6:
		return h.Gateway
	case v6:
		return h.Gateway6
	}
	return ""
}

// FloatingGatewayOf is the NAT gateway of one family the active director
// holds (ha.floatingGateway or ha.floatingGateway6); false if none.
func (s *Spec) FloatingGatewayOf(v6 bool) (netip.Prefix, bool) {
	for _, g := range []string{s.HA.FloatingGateway, s.HA.FloatingGateway6} {
		if p, err := netip.ParsePrefix(g); err == nil && p.Addr().Is6() == v6 {
			return p, true
		}
	}
	return netip.Prefix{}, false
}

// UcastPeer is the address heartbeat's ucast medium on iface reaches host at.
func UcastPeer(h *Host, iface string) (string, error) {
	switch {
	case iface == h.Interfaces.Heartbeat && h.Interfaces.HeartbeatAddress != "":
		p, err := netip.ParsePrefix(h.Interfaces.HeartbeatAddress)
		if err != nil {
			return "", fmt.Errorf("director %s: invalid heartbeat address", h.Name)
		}
		return p.Addr().String(), nil
	case iface == h.Interfaces.Public:
		return h.IP(), nil
	}
	return "", fmt.Errorf("director %s has no address on interface %q: ucast needs the heartbeat interface (with heartbeatAddress) or the public one", h.Name, iface)
}

func sortedKeys[V any](m map[string]V) []string {
	keys := make([]string, 0, len(m))
	for k := range m {
		keys = append(keys, k)
	}
	sort.Strings(keys)
	return keys
}
