package ipvs

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Conn is one entry of a director's connection table (`ipvsadm -L -n -c`):
// a client's connection to a virtual service, and the real server IPVS
// sent it to.
type Conn struct {
	// Proto is the connection's protocol; "" for ipvsadm's "IP" (another).
	Proto Protocol
	// State is IPVS's state of the connection: ESTABLISHED, SYN_RECV,
	// FIN_WAIT, TIME_WAIT, CLOSE, UDP, NONE (a persistence template)...
	State                 string
	Client, Virtual, Dest netip.AddrPort
}

// openStates are the states of a connection a drain waits for: set up or
// being set up. IPVS's state of a DR or TUN connection follows the
// client's packets only (the replies go straight to the client), so once
// the client has sent its FIN the entry sits in FIN_WAIT for the whole
// fin_wait timeout (2 minutes) whatever the real server does. Counting
// those would make every drain wait two minutes after the last request;
// the price is a half-closed connection (a client that shut down its
// sending side and still reads a long answer), which a drain does not
// wait for. ipvsadm -L -n counts only ESTABLISHED as active; a
// connection still being set up (SYN_RECV) is a request on its way, which
// a restart of its real server would reset: it is waited for too. UDP
// entries are only timers, NONE a persistence template.
var openStates = map[string]bool{
	"ESTABLISHED": true, "SYN_RECV": true, "SYN_SENT": true, "SYNACK": true,
	// SCTP's association set-up.
	"INIT1": true, "INIT": true, "COOKIE_SENT": true, "COOKIE_REPLIED": true, "COOKIE_WAIT": true, "COOKIE_ECHOED": true,
}

// Open reports whether a drain waits for the connection (openStates).
func (c Conn) Open() bool { return openStates[c.State] }

// knownProto are the protocol names ipvsadm -L -c prints for lvsforge's
// services; "IP" is a firewall-mark service's persistence template.
var knownProto = map[string]bool{"TCP": true, "UDP": true, "SCTP": true, "IP": true}

// ParseConns reads `ipvsadm -L -n -c` output (or the lines of it a
// filter kept: the headers are optional).
func ParseConns(text string) ([]Conn, error) {
	var out []Conn
	for i, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(line, "IPVS connection entries") || f[0] == "pro" {
			continue
		}
		if !knownProto[f[0]] {
			// Another protocol's entry (ipvsadm prints IP_50 for ESP): it
			// belongs to no service lvsforge renders.
			continue
		}
		c, err := parseConn(f)
		if err != nil {
			return nil, fmt.Errorf("parse ipvsadm -L -n -c line %d %q: %w", i+1, line, err)
		}
		out = append(out, c)
	}
	return out, nil
}

func parseConn(f []string) (Conn, error) {
	var c Conn
	if len(f) < 6 {
		return c, fmt.Errorf("want PROTOCOL EXPIRE STATE SOURCE VIRTUAL DESTINATION")
	}
	if f[0] != "IP" {
		c.Proto = Protocol(strings.ToLower(f[0]))
	}
	c.State = f[2]
	for i, dst := range []*netip.AddrPort{&c.Client, &c.Virtual, &c.Dest} {
		a, p, err := parseAddrPort(f[3+i])
		if err != nil {
			return c, err
		}
		*dst = netip.AddrPortFrom(a, p)
	}
	return c, nil
}

// OpenConns counts the open connections (Conn.Open) of a director's
// connection table that go to the real server of drain d, for the
// services d covers; t is the wanted table, which knows the real server's
// address in each service (a dual-stack real server has one per family)
// and each service's VIP. A connection is counted once, however many of
// the covered services it could belong to.
func (t *Table) OpenConns(conns []Conn, d Drain) int {
	n := 0
	for _, c := range conns {
		if !c.Open() {
			continue
		}
		for _, s := range t.ServicesOf(d.Host) {
			if d.Covers(s.Name) && s.carries(c, s.DestOf(d.Host)) {
				n++
				break
			}
		}
	}
	return n
}

// carries reports whether connection c is one of s's to real server dest.
// A firewall-mark service's connections are to its VIP at a marked port;
// its real servers take that port (dest port 0).
func (s *Service) carries(c Conn, dest *Dest) bool {
	if c.Dest.Addr() != dest.Addr || (dest.Port != 0 && c.Dest.Port() != dest.Port) {
		return false
	}
	if s.Mark != 0 {
		return s.VIP.IsValid() && c.Virtual.Addr() == s.VIP && slices.Contains(s.MarkPorts, c.Virtual.Port())
	}
	return c.Proto == s.Proto && c.Virtual == netip.AddrPortFrom(s.Addr, s.Port)
}
