package roles

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/install"
	"github.com/lvsforge/lvsforge/internal/shell"
	"github.com/lvsforge/lvsforge/ipvs"
	"github.com/lvsforge/lvsforge/templates"
)

// RulesPath is where each OS family keeps the saved IPVS table.
func RulesPath(osFamily string) string {
	if osFamily == cluster.OSRedHat {
		return "/etc/sysconfig/ipvsadm"
	}
	return "/etc/ipvsadm.rules"
}

var ldirectordMethod = map[ipvs.Method]string{ipvs.Route: "gate", ipvs.Tunnel: "ipip", ipvs.Masq: "masq"}
var keepalivedMethod = map[ipvs.Method]string{ipvs.Route: "DR", ipvs.Tunnel: "TUN", ipvs.Masq: "NAT"}

func allServices(s *cluster.Spec) []*cluster.Service {
	out := make([]*cluster.Service, len(s.Services))
	for i := range s.Services {
		out[i] = &s.Services[i]
	}
	return out
}

func broadcast(p netip.Prefix) netip.Addr {
	b := p.Masked().Addr().As4()
	host := ^uint32(0) >> p.Bits()
	v := (uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])) | host
	return netip.AddrFrom4([4]byte{byte(v >> 24), byte(v >> 16), byte(v >> 8), byte(v)})
}

// floatingAddrs are the addresses the active director holds: every VIP and
// the NAT gateways.
func floatingAddrs(s *cluster.Spec) []netip.Addr {
	var addrs []netip.Addr
	for _, v := range s.VIPs() {
		addrs = append(addrs, netip.MustParseAddr(v))
	}
	for _, g := range []string{s.HA.FloatingGateway, s.HA.FloatingGateway6} {
		if g != "" {
			addrs = append(addrs, netip.MustParsePrefix(g).Addr())
		}
	}
	return addrs
}

// floatingPrefix is the prefix a director adds a floating address with:
// an IPv4 one takes the subnet of the director's address (and its
// broadcast address); an IPv6 one is a /128, as keepalived adds it, with
// no subnet route of its own: the director's own IPv6 address has that.
func floatingPrefix(h *cluster.Host, a netip.Addr) netip.Prefix {
	if a.Is6() {
		return netip.PrefixFrom(a, 128)
	}
	own, _ := h.PrefixOf(false)
	return netip.PrefixFrom(a, own.Bits())
}

func (r *renderer) director() error {
	s, h := r.s, r.h
	svcs := allServices(s)
	rules := RulesPath(h.OS)
	// With heartbeat, lvs-director loads the rules at boot and ldirectord
	// keeps the table from then on, from its own config, which holds the
	// same services: a changed file needs nothing more. keepalived keeps its
	// own table.
	// With heartbeat, lvs-director's reload removes the virtual services
	// the rules no longer have; keepalived keeps its own table.
	var rulesUnits []string
	if s.HA.Backend == cluster.BackendHeartbeat {
		rulesUnits = []string{"lvs-director"}
	}
	if err := r.add(rules, 0o644, "ipvsadm.rules.tmpl", r.t.Rules(), rulesUnits...); err != nil {
		return err
	}
	// The drains this table carries, where the next push reads them back.
	r.out.Files = append(r.out.Files, install.File{Path: install.DrainsFile, Mode: 0o644, Data: ipvs.FormatDrains(r.drains)})
	fwd, fwdWhy, redir, redirWhy := "0", "LVS-DR/TUN: the director is not the real servers' gateway: no forwarding.", "1",
		"LVS-DR/TUN: the director is not the real servers' gateway: leave ICMP redirects on."
	if r.t.UsesIn(ipvs.Masq, false) {
		fwd, fwdWhy, redir, redirWhy = "1", "LVS-NAT: the director is the real servers' gateway: forward.",
			"0", "LVS-NAT: replies pass through the director: it must not redirect real servers elsewhere."
	}
	redirKeys := []string{"net/ipv4/conf/all/send_redirects", "net/ipv4/conf/default/send_redirects", "net/ipv4/conf/" + h.Interfaces.Public + "/send_redirects"}
	var sysctlLines []string
	sysctlLines = append(sysctlLines, sysctlLine("net/ipv4/ip_forward", fwd, false))
	for _, k := range redirKeys {
		sysctlLines = append(sysctlLines, sysctlLine(k, redir, false))
	}
	if s.HA.Backend == cluster.BackendHeartbeat {
		// Both directors keep the VIPs on lo (lvs-director): a director
		// answers ARP only for the addresses on the interface asked, so
		// only the one holding them on the public interface does.
		for _, dev := range []string{"all", h.Interfaces.Public} {
			sysctlLines = append(sysctlLines, sysctlLine("net/ipv4/conf/"+dev+"/arp_ignore", "1", false),
				sysctlLine("net/ipv4/conf/"+dev+"/arp_announce", "2", false))
		}
	}
	bgp := s.HA.Backend == cluster.BackendBGP
	if bgp {
		sysctlLines = append(sysctlLines, bgpSysctls(h)...)
	}
	// IPv6 forwards by its own switch (IPv6 has no redirect switch); only
	// a cluster with IPv6 services sets it.
	fwd6, fwd6Why := "", ""
	if r.t.Has6() {
		fwd6, fwd6Why = "0", "LVS-DR/TUN over IPv6: the director is not the real servers' gateway: no IPv6 forwarding."
		if r.t.UsesIn(ipvs.Masq, true) {
			fwd6, fwd6Why = "1", "LVS-NAT over IPv6: the director is the real servers' IPv6 gateway: forward."
		}
		sysctlLines = append(sysctlLines, sysctlLine("net/ipv6/conf/all/forwarding", fwd6, false))
	}
	// The IPVS settings exist once ip_vs is loaded: at boot
	// systemd-modules-load runs before systemd-sysctl; on push, this.
	var modules []string
	for _, c := range r.t.Sysctls {
		sysctlLines = append(sysctlLines, sysctlLine(c.Key(), strconv.Itoa(c.Value), false))
		modules = []string{"ip_vs"}
	}
	if len(modules) > 0 {
		if err := r.modulesLoad("IPVS's settings (net.ipv4.vs) exist once ip_vs is loaded", modules); err != nil {
			return err
		}
	}
	if err := r.sysctl("/etc/sysctl.d/60-lvsforge-director.conf", "LVS director kernel settings ("+methodsOf(r.t.Services...)+")", sysctlLines, modules...); err != nil {
		return err
	}
	marks := markRules(svcs)
	script := map[string]any{
		"Cluster": s.Metadata.Name, "Methods": methodsOf(r.t.Services...), "Lock": lockPath(h, "lvs-director"),
		"IPForward": fwd, "ForwardReason": fwdWhy, "SendRedirects": redir, "RedirectReason": redirWhy,
		"IPv6Forward": fwd6, "IPv6ForwardReason": fwd6Why,
		"Redirects": redirKeys, "Rules": "", "Marks": marks, "Timeouts": "", "Sync": []syncDaemon(nil), "LocalVIPs": []string(nil),
	}
	if s.HA.Backend == cluster.BackendKeepalived || bgp {
		holder, before := "keepalived holds the VIPs and the IPVS table", "keepalived.service"
		if bgp {
			holder, before = "keepalived keeps the IPVS table, lvs-bgp holds the VIPs and BIRD announces them", "keepalived.service bird.service"
		}
		script["Manager"] = holder + "; this sets the kernel up."
		if len(marks) > 0 {
			script["Manager"] = holder + "; this sets the kernel up and marks the firewall-mark services' packets."
		}
		if err := r.initScript("lvs-director", "lvs-director.sh.tmpl", script, "LVS director kernel settings for cluster "+s.Metadata.Name, before, true); err != nil {
			return err
		}
		if bgp {
			if err := r.bgp(); err != nil {
				return err
			}
		}
		return r.keepalived(svcs)
	}
	// Hot standby: both directors set the kernel up, load the table and
	// run ldirectord from boot; heartbeat moves only the floating
	// addresses (lvs-vip), so a takeover has nothing else to start.
	script["Manager"] = "It runs at boot on both directors (hot standby); heartbeat moves only the floating addresses (lvs-vip)."
	script["Rules"] = rules
	script["LocalVIPs"] = vips4(s)
	if !r.t.Timeouts.IsZero() {
		script["Timeouts"] = strings.Join(r.t.Timeouts.SetArgs(), " ")
	}
	if r.t.Sync != nil {
		var daemons []syncDaemon
		for _, d := range r.t.Sync.Daemons() {
			daemons = append(daemons, syncDaemon{State: d.State, Listed: d.Listed(), Start: strings.Join(d.StartArgs(), " ")})
		}
		script["Sync"] = daemons
	}
	if err := r.initScript("lvs-director", "lvs-director.sh.tmpl", script, "LVS director kernel settings and IPVS table for cluster "+s.Metadata.Name, "ldirectord.service heartbeat.service", true); err != nil {
		return err
	}
	return r.heartbeat(svcs)
}

// orRestart is a unit's one-command reload that falls back to its
// one-command restart.
func orRestart(reload, restart [][]string) [][]string {
	return [][]string{{"sh", "-c", shell.Join(reload[0]) + " || " + shell.Join(restart[0])}}
}

// heartbeatBin is the heartbeat daemon of an OS family (not in PATH).
func heartbeatBin(osFamily string) string {
	if osFamily == cluster.OSRedHat {
		return "/usr/lib64/heartbeat/heartbeat"
	}
	return "/usr/libexec/heartbeat/heartbeat"
}

// syncDaemon is an IPVS sync daemon lvs-director keeps running: how
// ipvsadm lists it, and the arguments that start it.
type syncDaemon struct{ State, Listed, Start string }

// vips4 are the spec's IPv4 VIPs: those lvs-director keeps on lo and
// lvs-vip's handoff covers (IPv6 VIPs move without them for now).
func vips4(s *cluster.Spec) []string {
	var out []string
	for _, v := range s.VIPs() {
		if netip.MustParseAddr(v).Is4() {
			out = append(out, v)
		}
	}
	return out
}

// handoffGrace is how long, in seconds, a director that took the VIPs over
// from a live peer hands the peer's connections back to it (lvs-vip's
// handoff): long enough for a planned move's connections to end, which an
// upgrade waits for before it reboots the peer.
const handoffGrace = 300

// LVSVIPPath is the heartbeat resource that holds the floating addresses.
const LVSVIPPath = "/etc/ha.d/resource.d/lvs-vip"

// vipAddr is one floating address on a director's public interface, with
// the interface's prefix length and broadcast address.
type vipAddr struct {
	Addr, Dev, Bcast string
	Bits             int
}

func (r *renderer) lvsVIP() error {
	var addrs []vipAddr
	v6 := false
	for _, a := range floatingAddrs(r.s) {
		p := floatingPrefix(r.h, a)
		va := vipAddr{Addr: a.String(), Bits: p.Bits(), Dev: r.h.Interfaces.Public, Bcast: "-"}
		if a.Is4() {
			va.Bcast = broadcast(p).String()
		}
		v6 = v6 || a.Is6()
		addrs = append(addrs, va)
	}
	what := "VIPs"
	if r.s.HA.FloatingGateway != "" || r.s.HA.FloatingGateway6 != "" {
		what = "VIPs, NAT gateway"
	}
	var peer *cluster.Host
	for _, d := range r.s.HostsByRole(cluster.RoleDirector) {
		if d.Name != r.h.Name {
			peer = d
		}
	}
	if err := r.add(LVSVIPPath, 0o755, "lvs-vip.sh.tmpl", map[string]any{
		"Cluster": r.s.Metadata.Name, "Lock": lockPath(r.h, "lvs-vip"), "Addrs": addrs, "What": what, "IPv6": v6,
		"VIPs": vips4(r.s), "Dev": r.h.Interfaces.Public, "Peer": peer.IP(), "PeerName": peer.Name, "Grace": handoffGrace,
	}, "lvs-vip"); err != nil {
		return err
	}
	// heartbeat reads a resource script when it acquires the resources, so
	// a new one needs no heartbeat restart (which would fail the VIPs over
	// and back): it is re-run where it is active, and nowhere else.
	r.out.Units = append(r.out.Units, install.Unit{Name: "lvs-vip", Restart: [][]string{{LVSVIPPath, "condrestart"}}})
	return nil
}

// markRule is the iptables rule (its match and target, after
// "-t mangle -A PREROUTING") that gives a firewall-mark service its packets.
type markRule struct{ Service, Rule string }

// markRules: IPVS sees a firewall-mark service only in the mark a packet
// carries, so the director marks the service's traffic before routing.
func markRules(svcs []*cluster.Service) []markRule {
	var out []markRule
	for _, sv := range svcs {
		if sv.FWMark == 0 {
			continue
		}
		ports := make([]string, len(sv.FWMarkPorts))
		for i, p := range sv.FWMarkPorts {
			ports[i] = strconv.Itoa(p)
		}
		// An IPv6 service's rule starts with -6: lvs-director hands it to
		// ip6tables.
		family, bits := "", 32
		if netip.MustParseAddr(sv.VIP).Is6() {
			family, bits = "-6 ", 128
		}
		out = append(out, markRule{Service: sv.Name, Rule: fmt.Sprintf("%s-d %s/%d -p %s -m multiport --dports %s -j MARK --set-mark %d",
			family, sv.VIP, bits, sv.Protocol, strings.Join(ports, ","), sv.FWMark)})
	}
	return out
}

func lockPath(h *cluster.Host, name string) string {
	if h.OS == cluster.OSRedHat {
		return "/var/lock/subsys/" + name
	}
	return "/run/" + name + ".active"
}

func (r *renderer) heartbeat(svcs []*cluster.Service) error {
	s, ha := r.s, &r.s.HA
	var nodes []string
	for _, d := range s.HostsByRole(cluster.RoleDirector) {
		nodes = append(nodes, d.Name)
	}
	var media []string
	serial := false
	for _, m := range ha.Media {
		switch m.Type {
		case cluster.MediumSerial:
			serial = true
			media = append(media, "serial "+m.Device)
		case cluster.MediumBcast:
			media = append(media, "bcast "+m.Interface)
		case cluster.MediumMcast:
			loop := 0
			if m.Loop != nil && *m.Loop {
				loop = 1
			}
			media = append(media, fmt.Sprintf("mcast %s %s %d %d %d", m.Interface, m.Group, m.Port, m.TTL, loop))
		case cluster.MediumUcast:
			// Every director's address on this link, on every director:
			// heartbeat ignores the line naming itself, so ha.cf stays identical.
			for _, d := range s.HostsByRole(cluster.RoleDirector) {
				peer, err := cluster.UcastPeer(d, m.Interface)
				if err != nil {
					return err
				}
				media = append(media, hbMedium("ucast", peer)+" "+m.Interface+" "+peer)
			}
		}
	}
	failback := "off"
	if *ha.AutoFailback {
		failback = "on"
	}
	var ping []string
	for _, a := range ha.Ping {
		ping = append(ping, hbMedium("ping", a)+" "+a)
	}
	if err := r.add("/etc/ha.d/ha.cf", 0o644, "ha.cf.tmpl", map[string]any{
		"Cluster": s.Metadata.Name, "Keepalive": ha.Keepalive.HeartbeatString(), "Deadtime": ha.Deadtime.HeartbeatString(),
		"Warntime": ha.Warntime.HeartbeatString(), "Initdead": ha.Initdead.HeartbeatString(), "UDPPort": ha.UDPPort,
		"Serial": serial, "Baud": ha.Baud, "Media": media, "AutoFailback": failback, "Ping": ping, "Nodes": nodes,
	}, "heartbeat"); err != nil {
		return err
	}
	if err := r.add("/etc/ha.d/haresources", 0o644, "haresources.tmpl", map[string]any{
		"Cluster": s.Metadata.Name, "Line": ha.Primary + " lvs-vip",
	}, "heartbeat"); err != nil {
		return err
	}
	if err := r.lvsVIP(); err != nil {
		return err
	}
	if err := r.add(AuthkeysPath, 0o600, "authkeys.tmpl", map[string]string{"Method": ha.Authkey.Method, "Secret": r.secret}, "heartbeat"); err != nil {
		return err
	}
	r.out.Files[len(r.out.Files)-1].Secret = true
	if err := r.ldirectord(svcs); err != nil {
		return err
	}
	// heartbeat first: traffic needs only the VIP and the table, which
	// lvs-director loaded; ldirectord (seconds of Perl on a small host)
	// keeps the table from when it is up. It runs on both directors, each
	// keeping its own table: a changed config is reloaded, or restarts it
	// (virtual services added or removed) on both.
	hb := r.daemon("heartbeat", true)
	hb.Interrupts = true
	// heartbeat's reload (heartbeat -r, the init script's reload) re-reads
	// ha.cf, haresources and authkeys and re-executes itself keeping the
	// resources it holds ("-R -C local"): a changed timing or medium moves no
	// VIP. systemd's unit has no reload, and the init script's reload needs
	// a running heartbeat: one that is not running is started.
	reload := "if cl_status hbstatus >/dev/null 2>&1; then exec " + heartbeatBin(r.h.OS) + " -r; else exec %s; fi"
	systemdReload := []string{"sh", "-c", fmt.Sprintf(reload, "systemctl restart heartbeat.service")}
	if r.h.Init == cluster.InitSystemd {
		hb.Reload = [][]string{systemdReload}
	} else {
		hb.Reload = [][]string{{"sh", "-c", fmt.Sprintf(reload, "/etc/init.d/heartbeat restart")}}
		hb.OnSystemd.Reload = [][]string{systemdReload}
	}
	// ldirectord's reload applies changes inside existing virtual blocks
	// only: a virtual service added or removed restarts it (which keeps
	// the table: cleanstop=no), and lvs-director's reload removes from the
	// table the virtual services the rules no longer have.
	ld := r.daemon("ldirectord", true)
	ld.Fingerprint = "virtual services:\n" + strings.Join(r.t.Keys(), "\n")
	// ldirectord's reload exits 1 when its pid file names no running
	// ldirectord (seen after a restart under load): then it restarts,
	// which keeps the table.
	ld.Reload = orRestart(ld.Reload, ld.Restart)
	if ld.OnSystemd != nil {
		ld.OnSystemd.Reload = orRestart(ld.OnSystemd.Reload, ld.OnSystemd.Restart)
	}
	return nil
}

// hbMedium is heartbeat's medium (plugin) for an address: ucast and ping
// are IPv4's, ucast6 and ping6 IPv6's.
func hbMedium(kind, addr string) string {
	if netip.MustParseAddr(addr).Is6() {
		return kind + "6"
	}
	return kind
}

type ldVirtual struct {
	// Six is "6" for an IPv6 service: ldirectord's virtual6, real6 and
	// fallback6 directives, which take bracketed addresses.
	Six                                                   string
	Name, Virtual, Fallback, Scheduler, Protocol, Netmask string
	CheckType, Service, Request, Receive, Quiescent       string
	SchedFlags, Command                                   string
	Reals                                                 []string
	Persistent, Interval, Timeout, CheckPort, Failures    int
	OnePacket                                             bool
}

// ldAddr is an address as ldirectord reads it without a port: an IPv6 one
// in brackets, or it would take the last group for a port.
func ldAddr(a netip.Addr) string {
	if a.Is6() {
		return "[" + a.String() + "]"
	}
	return a.String()
}

func yesNo(b *bool) string {
	if b == nil || *b {
		return "yes"
	}
	return "no"
}

func (r *renderer) ldirectord(svcs []*cluster.Service) error {
	var vs []ldVirtual
	for _, sv := range svcs {
		m := r.t.Named(sv.Name)
		v := ldVirtual{Name: sv.Name, Scheduler: m.Scheduler, Protocol: sv.Protocol, Quiescent: yesNo(sv.Quiescent),
			Interval: sv.Check.Interval, Timeout: sv.Check.Timeout, CheckPort: sv.Check.Port,
			SchedFlags: strings.Join(m.SchedFlags, ","), OnePacket: m.OnePacket}
		if n := sv.Check.Retries; n != nil {
			// failurecount counts the failed checks, the first one too.
			v.Failures = *n + 1
		}
		method := ldirectordMethod[m.Method]
		if m.Is6() {
			v.Six = "6"
		}
		if m.Mark != 0 {
			v.Virtual, v.Protocol = strconv.Itoa(int(m.Mark)), "fwm"
		} else {
			v.Virtual = netip.AddrPortFrom(m.Addr, m.Port).String()
		}
		for _, d := range m.Dests {
			addr := d.AddrPort()
			if m.Mark != 0 {
				addr = ldAddr(d.Addr)
			}
			v.Reals = append(v.Reals, fmt.Sprintf("%s %s %d", addr, ldirectordMethod[d.Method], d.Weight))
		}
		if fb := sv.Fallback; fb != nil {
			v.Fallback = ldAddr(netip.MustParseAddr(fb.Address))
			if fb.Port != 0 {
				v.Fallback += ":" + strconv.Itoa(fb.Port)
			}
			v.Fallback += " " + method
		}
		v.Persistent, v.Netmask = m.Persistent, m.Netmask
		switch sv.Check.Type {
		case "connect":
			v.CheckType = "connect"
		case "off":
			v.CheckType = "off"
		case "http":
			v.CheckType, v.Service, v.Request, v.Receive = "negotiate", "http", sv.Check.Request, sv.Check.Receive
		case "negotiate":
			v.CheckType, v.Service, v.Request, v.Receive = "negotiate", sv.Check.Service, sv.Check.Request, sv.Check.Receive
		case "external":
			v.CheckType, v.Command = "external", sv.Check.Command
		}
		vs = append(vs, v)
	}
	// Without fork, ldirectord has one global check interval and ignores
	// per-virtual ones; fork only when the services really differ.
	fork := false
	for _, v := range vs {
		fork = fork || v.Interval != vs[0].Interval
	}
	return r.add(LdirectordPath, 0o644, "ldirectord.cf.tmpl", map[string]any{
		"Cluster": r.s.Metadata.Name, "Quiescent": "yes", "Virtuals": vs, "Fork": fork, "Interval": vs[0].Interval,
	}, "ldirectord")
}

type kaReal struct {
	Address, Check, Path, Regex, Command string
	Port, Weight, Timeout, ConnectPort   int
	Inhibit                              bool
	// Retries is the check's retry count, -1 for keepalived's default.
	Retries, RetryDelay int
}

type kaVirtual struct {
	// Family is a firewall-mark service's ip_family: inet6 for IPv6.
	Family                                                     string
	Name, Virtual, Scheduler, Method, Protocol, Netmask, Sorry string
	Flags                                                      []string
	Interval, Persistent                                       int
	OnePacket                                                  bool
	Reals                                                      []kaReal
	// QuorumUp and QuorumDown (the bgp backend) report the service's
	// quorum, at least one live real server, to lvs-bgp.
	QuorumUp, QuorumDown string
}

// kaMethod is keepalived's lvs_method of a service, with a tunnel's type
// and options: "TUN type gue port 6080 csum".
func kaMethod(m *ipvs.Service) string {
	method := keepalivedMethod[m.Method]
	if t := m.Tunnel; m.Method == ipvs.Tunnel && t.Type != "" {
		method += " type " + t.Type
		if t.Port != 0 {
			method += " port " + strconv.Itoa(int(t.Port))
		}
		if t.Csum != "" {
			method += " " + t.Csum
		}
	}
	return method
}

// kaCheck is the keepalived checker of a service: tcp (TCP_CHECK), http
// (HTTP_GET), ssl (SSL_GET), misc (MISC_CHECK), or none.
func kaCheck(c *cluster.Check) string {
	switch {
	case c.Type == "connect":
		return "tcp"
	case c.Type == "http" || (c.Type == "negotiate" && c.Service == "http"):
		return "http"
	case c.Type == "negotiate" && c.Service == "https":
		return "ssl"
	case c.Type == "external":
		return "misc"
	}
	return ""
}

// vrrpScript is the keepalived vrrp_script of ha.keepalived.trackScript.
type vrrpScript struct {
	Name, Command                string
	Interval, Fall, Rise, Weight int
}

func (r *renderer) keepalived(svcs []*cluster.Service) error {
	s, h, ha := r.s, r.h, &r.s.HA
	// With the bgp backend keepalived only checks: no VRRP, every
	// director holds the VIPs (lvs-bgp) and keepalived reports to lvs-bgp.
	bgp := ha.Backend == cluster.BackendBGP
	state, priority := "BACKUP", 100
	for i, d := range s.HostsByRole(cluster.RoleDirector) {
		if d.Name == h.Name && d.Name != ha.Primary {
			priority = 100 - i
		}
	}
	if h.Name == ha.Primary {
		state, priority = "MASTER", 150
	}
	noPreempt := !*ha.AutoFailback
	if noPreempt {
		// keepalived honours nopreempt only when every node starts as BACKUP.
		state = "BACKUP"
	}
	instances := kaInstances(s, h)
	var vs []kaVirtual
	for _, sv := range svcs {
		m := r.t.Named(sv.Name)
		v := kaVirtual{Name: sv.Name, Scheduler: m.Scheduler, Method: kaMethod(m),
			Interval: sv.Check.Interval, Flags: m.SchedFlags, OnePacket: m.OnePacket}
		if bgp {
			v.QuorumUp, v.QuorumDown = bgpQuorum(h, sv.Name)
		}
		if m.Mark != 0 {
			v.Virtual = "fwmark " + strconv.Itoa(int(m.Mark))
			if m.V6 {
				// keepalived takes a firewall-mark service for IPv4
				// unless told otherwise.
				v.Family = "inet6"
			}
		} else {
			v.Virtual = fmt.Sprintf("%s %d", m.Addr, m.Port)
			v.Protocol = strings.ToUpper(string(m.Proto))
		}
		v.Persistent, v.Netmask = m.Persistent, m.Netmask
		if fb := sv.Fallback; fb != nil {
			port := fb.Port
			if port == 0 {
				port = sv.RealPort
			}
			v.Sorry = fmt.Sprintf("%s %d", fb.Address, port)
		}
		virt := m.Addr.String()
		if m.Mark != 0 {
			virt = strconv.Itoa(int(m.Mark))
		}
		for _, d := range m.Dests {
			kr := kaReal{Address: d.Addr.String(), Port: int(d.Port), Weight: d.Weight,
				Timeout: sv.Check.Timeout, Inhibit: sv.Quiescent == nil || *sv.Quiescent, ConnectPort: sv.Check.Port,
				Check: kaCheck(&sv.Check), Retries: -1}
			switch kr.Check {
			case "http", "ssl":
				kr.Path, kr.Regex = sv.Check.Request, sv.Check.Receive
				if kr.Path == "" {
					kr.Path = "/" // keepalived refuses a path keyword without one
				}
			case "misc":
				// The arguments ldirectord gives an external check, so that
				// one program serves both backends.
				kr.Command = fmt.Sprintf("%s %s %d %s %d", sv.Check.Command, virt, m.Port, d.Addr, d.Port)
			}
			if n := sv.Check.Retries; n != nil {
				// Retried at the check interval, as ldirectord's
				// failurecount counts failures of checks that far apart.
				kr.Retries, kr.RetryDelay = *n, sv.Check.Interval
			}
			v.Reals = append(v.Reals, kr)
		}
		vs = append(vs, v)
	}
	ka := &ha.Keepalived
	data := map[string]any{
		"Host": h.Name, "Cluster": s.Metadata.Name, "Instance": instances[0].Name, "Instances": instances, "SyncGroup": "",
		"State": state, "Interface": h.Interfaces.Public, "RouterID": ka.VirtualRouterID, "Priority": priority,
		"AdvertInt": ka.AdvertInt, "NoPreempt": noPreempt, "Virtuals": vs,
		"SyncInterface": "", "SyncID": 0, "Timeouts": kaTimeouts(r.t.Timeouts), "TrackInterfaces": ka.TrackInterfaces,
		"Script": (*vrrpScript)(nil), "GarpRefresh": ka.GarpMasterRefresh, "Notify": kaNotify(&ka.Notify),
		"VRRP": !bgp, "Forget": "",
	}
	if bgp {
		// keepalived's checks start over when it starts, and stop with
		// it: lvs-bgp forgets what it reported, and withdraws the VIPs.
		data["Forget"] = bgpScript(h) + " forget"
	}
	if len(instances) > 1 {
		// Tracking and notify commands go on the group: keepalived sets
		// the weights of a grouped instance's track scripts to 0, and
		// would run each command once per instance.
		data["SyncGroup"] = "VG_1"
	}
	if r.t.Sync != nil {
		data["SyncInterface"], data["SyncID"] = r.t.Sync.Interface, r.t.Sync.SyncID
	}
	scripts := len(data["Notify"].([]kaNotifyLine)) > 0 || bgp
	if ts := ka.TrackScript; ts != nil {
		data["Script"] = &vrrpScript{Name: "chk_lvsforge", Command: ts.Command, Interval: ts.Interval, Fall: ts.Fall, Rise: ts.Rise, Weight: ts.Weight}
		scripts = true
	}
	for _, v := range vs {
		for _, kr := range v.Reals {
			scripts = scripts || kr.Command != ""
		}
	}
	// keepalived refuses to run scripts without script security, and
	// warns when its default script user does not exist.
	data["ScriptSecurity"] = scripts
	if err := r.add("/etc/keepalived/keepalived.conf", 0o644, "keepalived.conf.tmpl", data, "keepalived"); err != nil {
		return err
	}
	// keepalived's reload (SIGHUP) applies added, removed and changed
	// virtual_server blocks to the IPVS table, and a VRRP instance's new
	// or removed addresses: it keeps each instance of the same name in
	// its state, and its track scripts' results, and the master adds the
	// new addresses, with gratuitous ARPs, and deletes the old ones
	// (keepalived 2.2.7, vrrp.c: clear_diff_vrrp, restore_vrrp_state).
	// A restart moves the VIPs to the standby and back, and without
	// connection sync the requests in flight then are reset. Anything
	// else outside the virtual_server blocks (global_defs, the other
	// instance settings, an instance added or gone, the sync daemon)
	// restarts it: the fingerprint is the configuration without the
	// virtual_server blocks and the instances' addresses.
	data["Virtuals"] = nil
	bare := make([]kaInstance, len(instances))
	for i, in := range instances {
		in.Addresses = nil
		bare[i] = in
	}
	data["Instances"] = bare
	outside, err := templates.Render("keepalived.conf.tmpl", data)
	if err != nil {
		return err
	}
	kd := r.daemon("keepalived", true)
	kd.Fingerprint, kd.Interrupts = string(outside), true
	return nil
}

// kaInstance is one VRRP instance: the floating addresses of one family,
// and with unicast VRRP the directors' addresses of that family.
type kaInstance struct {
	Name          string
	Addresses     []string
	UnicastSource string
	UnicastPeers  []string
}

// kaInstances: keepalived wants every VIP of an instance of one family
// (an IPv6 instance speaks VRRPv3), so a dual-stack cluster has two, VI_1
// (IPv4) and VI_6 (IPv6), on the same interface and router ID, which the
// two protocols keep apart. A single-family cluster has VI_1 only.
func kaInstances(s *cluster.Spec, h *cluster.Host) []kaInstance {
	var out []kaInstance
	for _, v6 := range []bool{false, true} {
		var addrs []string
		for _, a := range floatingAddrs(s) {
			if a.Is6() == v6 {
				addrs = append(addrs, floatingPrefix(h, a).String()+" dev "+h.Interfaces.Public)
			}
		}
		if len(addrs) == 0 {
			continue
		}
		in := kaInstance{Name: "VI_1", Addresses: addrs}
		if v6 && len(out) > 0 {
			in.Name = "VI_6"
		}
		if s.HA.Keepalived.Unicast {
			// The VRRP interface is the public one: every director's
			// address of the instance's family there.
			own, _ := h.PrefixOf(v6)
			in.UnicastSource = own.Addr().String()
			for _, d := range s.HostsByRole(cluster.RoleDirector) {
				if p, ok := d.PrefixOf(v6); ok && d.Name != h.Name {
					in.UnicastPeers = append(in.UnicastPeers, p.Addr().String())
				}
			}
		}
		out = append(out, in)
	}
	return out
}

// kaTimeouts is keepalived's lvs_timeouts: only the timeouts the spec
// sets, the others left as they are.
func kaTimeouts(t ipvs.Timeouts) string {
	var parts []string
	for _, x := range []struct {
		name string
		val  int
	}{{"tcp", t.TCP}, {"tcpfin", t.TCPFin}, {"udp", t.UDP}} {
		if x.val != 0 {
			parts = append(parts, x.name+" "+strconv.Itoa(x.val))
		}
	}
	return strings.Join(parts, " ")
}

// kaNotifyLine is one notify keyword of a vrrp_instance and its command.
type kaNotifyLine struct{ Keyword, Command string }

// kaNotify: keepalived runs the state's own command before the general one.
func kaNotify(n *cluster.Notify) []kaNotifyLine {
	var out []kaNotifyLine
	for _, c := range []kaNotifyLine{{"notify_master", n.Master}, {"notify_backup", n.Backup}, {"notify_fault", n.Fault}, {"notify_stop", n.Stop}, {"notify", n.Any}} {
		if c.Command != "" {
			out = append(out, c)
		}
	}
	return out
}
