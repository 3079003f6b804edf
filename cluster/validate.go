package cluster

import (
	"fmt"
	"net/netip"
	"slices"
	"strings"
)

// Schedulers are the 14 IPVS schedulers and the kernel option of each.
var Schedulers = map[string]string{
	"rr": "IP_VS_RR", "wrr": "IP_VS_WRR", "lc": "IP_VS_LC", "wlc": "IP_VS_WLC",
	"lblc": "IP_VS_LBLC", "lblcr": "IP_VS_LBLCR", "dh": "IP_VS_DH", "sh": "IP_VS_SH",
	"sed": "IP_VS_SED", "nq": "IP_VS_NQ", "fo": "IP_VS_FO", "ovf": "IP_VS_OVF",
	"mh": "IP_VS_MH", "twos": "IP_VS_TWOS",
}

// SchedulerNames lists the schedulers in the order ipvsadm's man page gives them.
var SchedulerNames = []string{"rr", "wrr", "lc", "wlc", "lblc", "lblcr", "dh", "sh", "sed", "nq", "fo", "ovf", "mh", "twos"}

// SchedulerFlags are the flags (ipvsadm -b) each scheduler takes.
var SchedulerFlags = map[string][]string{"mh": {"mh-fallback", "mh-port"}, "sh": {"sh-fallback", "sh-port"}}

// negotiateServices are the protocols ldirectord's negotiate check speaks.
var negotiateServices = []string{"dns", "ftp", "http", "https", "http_proxy", "imap", "imaps", "ldap", "mysql", "nntp", "oracle", "pgsql", "pop", "pops", "radius", "simpletcp", "sip", "smtp", "submission"}

var baudRates = []int{9600, 19200, 38400, 57600, 115200, 230400}

// validator collects every semantic problem of a spec.
type validator struct {
	s    *Spec
	errs Errors
	pos  map[string]Pos
	// skip holds paths already reported while decoding, so a wrong type is
	// not reported a second time as a missing value.
	skip map[string]bool
	// warns are what works, but badly: reported, not refused.
	warns Errors
}

func (v *validator) add(path, format string, args ...any) {
	for p := path; p != ""; p = parent(p) {
		if v.skip[p] {
			return
		}
	}
	v.errs = append(v.errs, &FieldError{File: v.s.File, Path: path, Pos: v.lookup(path), Msg: fmt.Sprintf(format, args...)})
}

// warn records a warning about path; a spec with warnings is valid.
func (v *validator) warn(path, format string, args ...any) {
	v.warns = append(v.warns, &FieldError{File: v.s.File, Path: path, Pos: v.lookup(path), Msg: fmt.Sprintf(format, args...)})
}

// lookup finds the position of path, or of its nearest parent that was
// written in the file (a defaulted field has no line of its own).
func (v *validator) lookup(path string) Pos { return lookupPos(v.pos, path) }

// parent is the field path one level up: hosts[2] for hosts[2].name,
// hosts for hosts[2], "" at the top.
func parent(path string) string {
	if i := strings.LastIndexAny(path, ".["); i > 0 {
		return path[:i]
	}
	return ""
}

func lookupPos(positions map[string]Pos, path string) Pos {
	for p := path; p != ""; {
		if pos, ok := positions[p]; ok {
			return pos
		}
		i := strings.LastIndexAny(p, ".[")
		if i < 0 {
			break
		}
		p = p[:i]
	}
	return Pos{1, 1}
}

func oneOf(s string, valid ...string) bool {
	for _, x := range valid {
		if s == x {
			return true
		}
	}
	return false
}

// match reports val as invalid unless ok, saying what would be valid.
func (v *validator) match(path, val string, ok bool, want string) {
	if !ok {
		v.add(path, "invalid value %q: %s", val, want)
	}
}

func (v *validator) errIf(path string, err error) {
	if err != nil {
		v.add(path, "%v", err)
	}
}

func (v *validator) enum(path, val string, valid ...string) {
	if !oneOf(val, valid...) {
		v.add(path, "invalid value %q: expected one of %s", val, strings.Join(valid, ", "))
	}
}

func (v *validator) rangeInt(path string, val, lo, hi int) {
	if val < lo || val > hi {
		v.add(path, "%d is out of range: expected %d-%d", val, lo, hi)
	}
}

func (v *validator) validate() {
	s := v.s
	if s.APIVersion != APIVersion {
		v.add("apiVersion", "invalid value %q: expected %s", s.APIVersion, APIVersion)
	}
	if s.Kind != Kind {
		v.add("kind", "invalid value %q: expected %s", s.Kind, Kind)
	}
	v.match("metadata.name", s.Metadata.Name, reName.MatchString(s.Metadata.Name), "a lowercase name of letters, digits and -")
	v.kernel()
	services := v.services()
	hosts := v.hosts(services)
	v.network(hosts)
	v.ha(hosts)
	v.ipvs()
	v.bgpWarnings()
	v.warns.sortByPos()
}

func (v *validator) kernel() {
	k := &v.s.Kernel
	v.match("kernel.version", k.Version, reVersion.MatchString(k.Version), "an upstream kernel version such as 6.1.192")
	src := &k.Source
	v.enum("kernel.source.type", src.Type, SourceKernelOrg, SourceTarball, SourceDistro)
	for i, m := range src.Mirrors {
		v.errIf(fmt.Sprintf("kernel.source.mirrors[%d]", i), checkURL(m))
	}
	if src.Path != "" {
		v.errIf("kernel.source.path", checkPath(src.Path))
	}
	v.kernelTarball()
	if src.URL != "" {
		v.errIf("kernel.source.url", checkURL(src.URL))
	}
	if src.SHA256 != "" && !reSHA256.MatchString(src.SHA256) {
		v.add("kernel.source.sha256", "invalid value %q: expected 64 lowercase hex digits", src.SHA256)
	}
	if src.VerifyTarSign && src.Type != SourceKernelOrg {
		v.add("kernel.source.verifyTarSign", "only a kernel.org source has a .tar.sign to verify; a %s source is trusted by its pinned sha256", src.Type)
	}
	switch src.Type {
	case SourceTarball:
		if (src.Path == "") == (src.URL == "") {
			v.add("kernel.source", "a tarball source needs exactly one of path or url")
		}
		if src.SHA256 == "" {
			v.add("kernel.source.sha256", "a tarball source must pin its sha256 (sha256sum FILE)")
		}
	case SourceDistro:
		if src.Path == "" {
			v.add("kernel.source.path", "a distro source needs the tarball's path, e.g. /usr/src/linux-source-6.1.tar.xz")
		}
		if src.SHA256 == "" {
			v.add("kernel.source.sha256", "a distro source must pin its sha256 (sha256sum FILE)")
		}
	}
	if b := k.Config.Base; !reConfigRef.MatchString(b) {
		v.errIf("kernel.config.base", checkPath(b))
	}
	v.rangeInt("kernel.panicTimeout", k.PanicTimeout, 1, 3600)
	v.match("kernel.cmdline", k.Cmdline, reCmdline.MatchString(k.Cmdline), "kernel parameters of letters, digits, spaces and . _ , = : / + -")
	sets := map[string]bool{}
	for i, ps := range v.s.PatchSets {
		p := fmt.Sprintf("patchSets[%d]", i)
		v.match(p+".name", ps.Name, reName.MatchString(ps.Name), "a lowercase name of letters, digits and -")
		if sets[ps.Name] {
			v.add(p+".name", "duplicate patch set name %q", ps.Name)
		}
		sets[ps.Name] = true
		if len(ps.Patches) == 0 {
			v.add(p+".patches", "a patch set needs at least one patch")
		}
		for j, e := range ps.Patches {
			pp := fmt.Sprintf("%s.patches[%d]", p, j)
			if (e.File == "") == (e.URL == "") {
				v.add(pp, "a patch needs exactly one of file or url")
			}
			if e.File != "" {
				v.errIf(pp+".file", checkPath(e.File))
			}
			if e.URL != "" {
				v.errIf(pp+".url", checkURL(e.URL))
			}
			v.match(pp+".sha256", e.SHA256, reSHA256.MatchString(e.SHA256), "64 lowercase hex digits (sha256sum FILE)")
			if e.Strip != nil {
				v.rangeInt(pp+".strip", *e.Strip, 0, 8)
			}
			for k, r := range e.Roles {
				v.enum(fmt.Sprintf("%s.roles[%d]", pp, k), r, RoleDirector, RoleRealServer)
			}
		}
	}
	for _, r := range []struct {
		name string
		rk   *RoleKernel
	}{{"director", &k.Director}, {"realserver", &k.RealServer}} {
		p := "kernel." + r.name
		v.match(p+".localVersion", r.rk.LocalVersion, reLocalVer.MatchString(r.rk.LocalVersion), "a suffix such as -lvs: a dash, then letters, digits and . _ + -")
		for i, n := range r.rk.PatchSets {
			if !sets[n] {
				v.add(fmt.Sprintf("%s.patchSets[%d]", p, i), "unknown patch set %q: define it under patchSets", n)
			}
		}
		for i, o := range r.rk.Options {
			v.match(fmt.Sprintf("%s.options[%d]", p, i), o, reOption.MatchString(o), `a Kconfig setting such as CONFIG_IP_VS=y, CONFIG_FOO=m, CONFIG_BAR=n, CONFIG_N=64 or CONFIG_S="text"`)
		}
	}
	if f := k.BuildFarm; f.Engine != "" || len(f.Hosts) > 0 {
		v.enum("kernel.buildFarm.engine", f.Engine, "distcc", "icecc")
		for i, h := range f.Hosts {
			v.match(fmt.Sprintf("kernel.buildFarm.hosts[%d]", i), h, reFarmHost.MatchString(h), "host[:port][/jobs][,lzo], e.g. builder1:3632/8,lzo (no ,cpp: lvsforge runs distcc without pump mode)")
		}
	}
}

func (v *validator) services() map[string]*Service {
	byName := map[string]*Service{}
	type key struct {
		vip   string
		proto string
		port  int
		mark  int
	}
	seen := map[key]string{}
	marks := map[int]string{}
	if len(v.s.Services) == 0 {
		v.add("services", "at least one service is needed")
	}
	for i := range v.s.Services {
		sv := &v.s.Services[i]
		p := fmt.Sprintf("services[%d]", i)
		v.match(p+".name", sv.Name, reName.MatchString(sv.Name), "a lowercase name of letters, digits and -")
		if byName[sv.Name] != nil {
			v.add(p+".name", "duplicate service name %q", sv.Name)
		}
		byName[sv.Name] = sv
		vip, err := parseHostAddr(sv.VIP)
		v.errIf(p+".vip", err)
		if sv.FWMark != 0 {
			if sv.Port != 0 {
				v.add(p+".port", "a firewall-mark service has no port: remove port or fwmark")
			}
			if sv.FWMark < 1 || sv.FWMark > 1<<31-1 {
				v.add(p+".fwmark", "%d is out of range: expected 1-%d", sv.FWMark, 1<<31-1)
			} else if prev, ok := marks[sv.FWMark]; ok {
				v.add(p+".fwmark", "mark %d is already the mark of service %q: each firewall-mark service needs a mark of its own", sv.FWMark, prev)
			}
			marks[sv.FWMark] = sv.Name
			v.fwmarkPorts(p, sv)
		} else {
			v.rangeInt(p+".port", sv.Port, 1, 65535)
			if len(sv.FWMarkPorts) > 0 {
				v.add(p+".fwmarkPorts", "only a firewall-mark service marks ports: set fwmark instead of port, or remove fwmarkPorts")
			}
		}
		// realPort is set here only if the spec says so: the default
		// (the virtual port) is filled in after validation.
		if sv.RealPort != 0 {
			v.rangeInt(p+".realPort", sv.RealPort, 1, 65535)
			switch {
			case sv.Forwarding == ForwardNAT:
			case sv.FWMark != 0:
				v.add(p+".realPort", "with %s forwarding a firewall-mark service keeps each packet's port: remove realPort", sv.Forwarding)
			case sv.RealPort != sv.Port:
				v.add(p+".realPort", "only NAT can map ports: with %s forwarding the real port must equal the virtual port %d", sv.Forwarding, sv.Port)
			}
		}
		v.enum(p+".protocol", sv.Protocol, "tcp", "udp", "sctp")
		if _, ok := Schedulers[sv.Scheduler]; !ok {
			v.add(p+".scheduler", "unknown scheduler %q: expected one of %s", sv.Scheduler, strings.Join(SchedulerNames, ", "))
		}
		v.enum(p+".forwarding", sv.Forwarding, ForwardDR, ForwardTUN, ForwardNAT)
		v.ipvsOptions(p, sv)
		if ps := sv.Persistence; ps != nil {
			v.rangeInt(p+".persistence.timeout", ps.Timeout, 1, 1<<31-1)
			if ps.Netmask != "" {
				v.errIf(p+".persistence.netmask", parseNetmask(ps.Netmask, vip.Is6()))
			}
		}
		c := &sv.Check
		v.enum(p+".check.type", c.Type, "connect", "http", "negotiate", "external", "off")
		if c.Type == "negotiate" || c.Service != "" {
			v.enum(p+".check.service", c.Service, negotiateServices...)
		}
		v.match(p+".check.request", c.Request, reHTTPPath.MatchString(c.Request), "a request path of letters, digits and . _ , = : / + % ? ~ - (no spaces: write %20)")
		v.match(p+".check.receive", c.Receive, reHTTPText.MatchString(c.Receive), "text of letters, digits, spaces and . _ , = : / + % ? ~ -")
		if c.Port != 0 {
			v.rangeInt(p+".check.port", c.Port, 1, 65535)
		} else if sv.FWMark != 0 && c.Type != "off" && c.Type != "external" {
			v.add(p+".check.port", "a firewall-mark service has no port to check: set check.port, or check.type off")
		}
		v.checkCommand(p, c)
		if c.Retries != nil {
			if c.Type == "off" {
				v.add(p+".check.retries", "a service with check.type off is never checked, so nothing is retried: remove retries")
			} else {
				v.rangeInt(p+".check.retries", *c.Retries, 0, maxRetries)
			}
		}
		v.rangeInt(p+".check.interval", c.Interval, 1, 3600)
		v.rangeInt(p+".check.timeout", c.Timeout, 1, 3600)
		if c.Type != "off" && c.Timeout >= c.Interval && c.Interval >= 1 {
			// Point at the one the spec wrote: the other may be a default.
			tp := p + ".check.timeout"
			if _, ok := v.pos[tp]; !ok {
				tp = p + ".check.interval"
			}
			v.add(tp, "check timeout %d is not below its interval %d: a check must give up before the next one is due; make the timeout shorter than the interval (defaults: interval 10, timeout 5)", c.Timeout, c.Interval)
		}
		if fb := sv.Fallback; fb != nil {
			a, err := parseAddr(fb.Address)
			switch {
			case err != nil:
				v.add(p+".fallback.address", "%v", err)
			case vip.IsValid() && a.Is6() != vip.Is6():
				// IPVS forwards to a real server of the service's family
				// only (but through a tunnel).
				v.add(p+".fallback.address", "the sorry server of an %s service must have an %s address, like its VIP %s", family(vip.Is6()), family(vip.Is6()), vip)
			}
			switch {
			case fb.Port == 0:
			case sv.FWMark != 0:
				v.add(p+".fallback.port", "a firewall-mark service has no port: the sorry server gets each packet's own port; remove fallback.port")
			case fb.Port < 1 || fb.Port > 65535:
				v.rangeInt(p+".fallback.port", fb.Port, 1, 65535)
			case sv.Forwarding != ForwardNAT && fb.Port != sv.Port:
				v.add(p+".fallback.port", "with %s forwarding the sorry server gets the packets unchanged: the port must be the virtual port %d, or be left out", sv.Forwarding, sv.Port)
			}
		}
		k := key{sv.VIP, sv.Protocol, sv.Port, sv.FWMark}
		if prev, ok := seen[k]; ok && sv.VIP != "" {
			v.add(p, "same virtual service as %q", prev)
		}
		seen[k] = sv.Name
	}
	v.markedPortsDistinct()
	return byName
}

// maxRetries bounds check.retries: a server that fails more checks in a
// row than this is down, whatever the reason.
const maxRetries = 100

// ipvsOptions checks what a service asks of IPVS beyond address and
// scheduler: one-packet scheduling, scheduler flags, the tunnel type.
func (v *validator) ipvsOptions(p string, sv *Service) {
	if sv.OnePacket && sv.Protocol != "udp" {
		v.add(p+".ops", "one-packet scheduling is for udp services (IPVS then schedules each datagram on its own); a %s service keeps its connections: remove ops", sv.Protocol)
	}
	seen := map[string]bool{}
	for i, f := range sv.SchedulerFlags {
		fp := fmt.Sprintf("%s.schedulerFlags[%d]", p, i)
		valid := SchedulerFlags[sv.Scheduler]
		switch {
		case len(valid) == 0:
			v.add(fp, "scheduler %s takes no flags; only mh (mh-fallback, mh-port) and sh (sh-fallback, sh-port) do: remove schedulerFlags", sv.Scheduler)
			return
		case !oneOf(f, valid...):
			v.add(fp, "invalid value %q: scheduler %s takes %s", f, sv.Scheduler, strings.Join(valid, ", "))
		case seen[f]:
			v.add(fp, "flag %s is listed twice", f)
		}
		seen[f] = true
	}
	t := sv.Tunnel
	if t == nil {
		return
	}
	tp := p + ".tunnel"
	if sv.Forwarding != ForwardTUN {
		v.add(tp, "tunnel options are for forwarding tun, not %s: remove tunnel, or set forwarding: tun", sv.Forwarding)
	}
	v.enum(tp+".type", t.Type, TunnelIPIP, TunnelGUE, TunnelGRE)
	if vip, err := parseHostAddr(sv.VIP); err == nil && vip.Is6() && (t.Type == TunnelGUE || t.Type == TunnelGRE) {
		v.add(tp+".type", "the real servers of an IPv6 service decapsulate IPv6-in-IPv6 (ip6tnl0) only: a %s tunnel needs an IPv4 service; use type ipip", t.Type)
	}
	switch {
	case t.Type == TunnelGUE && t.Port == 0:
		v.add(tp+".port", "a gue tunnel needs the UDP port the real servers decapsulate on, e.g. port: 6080")
	case t.Type == TunnelGUE:
		v.rangeInt(tp+".port", t.Port, 1, 65535)
	case t.Port != 0:
		v.add(tp+".port", "only a gue tunnel has a port: remove port, or set type gue")
	}
	if t.Checksum == "" {
		return
	}
	v.enum(tp+".checksum", t.Checksum, CsumNone, CsumOn, CsumRemote)
	switch {
	case t.Type == TunnelIPIP:
		v.add(tp+".checksum", "an ipip tunnel has no checksum option: remove checksum, or use type gue")
	case t.Type == TunnelGRE && t.Checksum != CsumNone:
		// ip_tunnel_rcv drops a packet whose checksum flag differs from the
		// receiving tunnel's, and gre0 has none.
		v.add(tp+".checksum", "the real servers decapsulate GRE on gre0, the keyless fallback tunnel, which drops packets that carry a checksum: use checksum nocsum, or type gue")
	}
}

// checkCommand checks an external check's program.
func (v *validator) checkCommand(p string, c *Check) {
	cp := p + ".check.command"
	switch {
	case c.Type != "external" && c.Command != "":
		v.add(cp, "only an external check runs a command: set check.type external, or remove command")
	case c.Type == "external" && c.Command == "":
		v.add(cp, "an external check needs the program to run, e.g. command: /usr/local/bin/check-lvs (it gets the virtual address, virtual port, real address and real port)")
	case c.Command != "":
		v.errIf(cp, checkCommand(c.Command, false))
	}
}

// maxMarkPorts is what one iptables multiport match takes.
const maxMarkPorts = 15

// fwmarkPorts checks the ports whose packets a firewall-mark service's
// rules mark: without them IPVS never sees the mark.
func (v *validator) fwmarkPorts(p string, sv *Service) {
	pp := p + ".fwmarkPorts"
	if len(sv.FWMarkPorts) == 0 {
		v.add(pp, "a firewall-mark service needs the ports whose %s packets to %s get mark %d, e.g. fwmarkPorts: [80, 443]", sv.Protocol, sv.VIP, sv.FWMark)
		return
	}
	if len(sv.FWMarkPorts) > maxMarkPorts {
		v.add(pp, "%d ports: expected at most %d (one iptables multiport rule)", len(sv.FWMarkPorts), maxMarkPorts)
	}
	seen := map[int]bool{}
	for i, port := range sv.FWMarkPorts {
		ip := fmt.Sprintf("%s[%d]", pp, i)
		v.rangeInt(ip, port, 1, 65535)
		if seen[port] {
			v.add(ip, "port %d is listed twice", port)
		}
		seen[port] = true
	}
}

// markedPortsDistinct: IPVS looks a marked packet up by its mark first, so
// a port marked for one service never reaches another service on it, and a
// port marked twice ends up with the last rule's mark only.
func (v *validator) markedPortsDistinct() {
	type dest struct {
		vip, proto string
		port       int
	}
	owner := map[dest]string{}
	for _, sv := range v.s.Services {
		if sv.FWMark == 0 && sv.Port != 0 {
			owner[dest{sv.VIP, sv.Protocol, sv.Port}] = fmt.Sprintf("service %q", sv.Name)
		}
	}
	for i, sv := range v.s.Services {
		if sv.FWMark == 0 {
			continue
		}
		for j, port := range sv.FWMarkPorts {
			d := dest{sv.VIP, sv.Protocol, port}
			if prev, ok := owner[d]; ok {
				v.add(fmt.Sprintf("services[%d].fwmarkPorts[%d]", i, j), "%s %s:%d is already %s: a destination belongs to one service", sv.Protocol, sv.VIP, port, prev)
				continue
			}
			owner[d] = fmt.Sprintf("marked for service %q", sv.Name)
		}
	}
}

// hostAddrs are the parsed addresses of the hosts, for the network checks.
type hostAddrs struct {
	pub  map[string]netip.Prefix // host name -> public address
	pub6 map[string]netip.Prefix // host name -> address6, of a dual-stack host
	idx  map[string]int          // host name -> index in Spec.Hosts
	// bad6 are the hosts whose address6 was refused: whether they have an
	// IPv6 address is not known, and not asked.
	bad6 map[string]bool
}

// of is a host's address of one family, as Host.PrefixOf gives it once
// the spec is valid.
func (h hostAddrs) of(name string, v6 bool) (netip.Prefix, bool) {
	if p, ok := h.pub[name]; ok && p.Addr().Is6() == v6 {
		return p, true
	}
	if p, ok := h.pub6[name]; ok && v6 {
		return p, true
	}
	return netip.Prefix{}, false
}

// field is the field of a host's address or gateway (base) of one
// family: base for its address's family, base+"6" for a dual-stack host's
// IPv6 one.
func (h hostAddrs) field(name, base string, v6 bool) string {
	if p, ok := h.pub[name]; ok && p.Addr().Is6() != v6 {
		return base + "6"
	}
	return base
}

func (v *validator) hosts(services map[string]*Service) hostAddrs {
	h := hostAddrs{pub: map[string]netip.Prefix{}, pub6: map[string]netip.Prefix{}, idx: map[string]int{}, bad6: map[string]bool{}}
	if len(v.s.Hosts) == 0 {
		v.add("hosts", "at least one director and one real server are needed")
	}
	served := map[string]bool{}
	for i := range v.s.Hosts {
		host := &v.s.Hosts[i]
		p := fmt.Sprintf("hosts[%d]", i)
		v.errIf(p+".name", checkNodeName(host.Name))
		if _, dup := h.idx[host.Name]; dup {
			v.add(p+".name", "duplicate host name %q", host.Name)
		}
		h.idx[host.Name] = i
		v.enum(p+".role", host.Role, RoleDirector, RoleRealServer)
		pub, err := parsePrefix(host.Address)
		if err != nil {
			v.add(p+".address", "%v", err)
		} else {
			h.pub[host.Name] = pub
		}
		if host.Address6 != "" {
			h.bad6[host.Name] = true
			switch pfx, err := parsePrefix(host.Address6); {
			case err != nil:
				v.add(p+".address6", "%v", err)
			case !pfx.Addr().Is6():
				v.add(p+".address6", "%s is not an IPv6 address: address6 is the IPv6 address of a dual-stack host, with prefix length, e.g. 2001:db8:7::9/64", pfx)
			case pub.Addr().Is6():
				v.add(p+".address6", "the host's address %s is IPv6 already: address6 is the IPv6 address of a host whose address is IPv4; remove address6, or make address the host's IPv4 address", pub)
			default:
				h.pub6[host.Name], h.bad6[host.Name] = pfx, false
			}
		}
		v.match(p+".ssh.user", host.SSH.User, reUser.MatchString(host.SSH.User), "a login name such as root")
		v.rangeInt(p+".ssh.port", host.SSH.Port, 1, 65535)
		if host.SSH.Key != "" {
			if err := checkPath(strings.TrimPrefix(host.SSH.Key, "~/")); err != nil {
				v.add(p+".ssh.key", "%v", err)
			} else {
				v.sshKey(p+".ssh.key", host)
			}
		}
		if host.SSH.Jump != "" {
			v.match(p+".ssh.jump", host.SSH.Jump, reJump.MatchString(host.SSH.Jump), "[user@]host[:port]")
		}
		if a := host.SSH.Address; a != "" {
			if _, err := netip.ParseAddr(a); err == nil {
				if _, err := parseSSHAddr(a); err != nil {
					v.add(p+".ssh.address", "invalid address %q: %v", a, err)
				}
			} else if !reHostname.MatchString(a) && !reJump.MatchString(a) {
				v.add(p+".ssh.address", "invalid value %q: expected an IP address or a DNS name", a)
			}
		}
		ifc := &host.Interfaces
		v.match(p+".interfaces.public", ifc.Public, reIface.MatchString(ifc.Public), "an interface name of at most 15 letters, digits and _ . -")
		if ifc.Heartbeat != "" {
			v.match(p+".interfaces.heartbeat", ifc.Heartbeat, reIface.MatchString(ifc.Heartbeat), "an interface name of at most 15 letters, digits and _ . -")
			if ifc.Heartbeat == ifc.Public {
				v.add(p+".interfaces.heartbeat", "the heartbeat link must be another interface than the public one (%s)", ifc.Public)
			}
		}
		if ifc.HeartbeatAddress != "" {
			_, err := parsePrefix(ifc.HeartbeatAddress)
			v.errIf(p+".interfaces.heartbeatAddress", err)
			if ifc.Heartbeat == "" {
				v.add(p+".interfaces.heartbeat", "heartbeatAddress is set but the heartbeat interface is not")
			}
		}
		if host.Gateway != "" {
			switch gw, err := parseGateway(host.Gateway); {
			case err != nil:
				v.add(p+".gateway", "%v", err)
			case pub.IsValid() && gw.Is6() != pub.Addr().Is6():
				v.add(p+".gateway", "%s is an %s address, but the host's address %s is %s: gateway is the default route of its address's family; a dual-stack host's IPv6 one goes in gateway6", gw, family(gw.Is6()), pub, family(pub.Addr().Is6()))
			}
		}
		if host.Gateway6 != "" {
			switch gw, err := parseGateway(host.Gateway6); {
			case err != nil:
				v.add(p+".gateway6", "%v", err)
			case !gw.Is6():
				v.add(p+".gateway6", "%s is not an IPv6 address: gateway6 is the IPv6 default route of a dual-stack host", gw)
			case host.Address6 == "":
				v.add(p+".gateway6", "gateway6 is the IPv6 default route of a dual-stack host, which has address6: set address6, or, on a host whose address is IPv6, write it in gateway")
			}
		}
		v.enum(p+".os", host.OS, OSDebian, OSRedHat)
		v.enum(p+".init", host.Init, InitSysV, InitSystemd)
		v.enum(p+".kernelProfile", host.KernelProfile, ProfileModern, ProfileHidden)
		v.match(p+".boot.root", host.Boot.Root, reDevice.MatchString(host.Boot.Root), "a root device such as /dev/sda1 or UUID=...")
		v.match(p+".boot.grubRoot", host.Boot.GrubRoot, reGrubRoot.MatchString(host.Boot.GrubRoot), "a GRUB legacy device such as (hd0,0)")
		if host.Role == RoleDirector && len(host.Weights) > 0 {
			v.add(p+".weights", "only real servers have weights")
		}
		if host.Role == RoleRealServer {
			for _, name := range sortedKeys(host.Weights) {
				w := host.Weights[name]
				wp := p + ".weights." + name
				if services[name] == nil {
					v.add(wp, "unknown service %q: expected one of %s", name, strings.Join(sortedKeys(services), ", "))
					continue
				}
				v.rangeInt(wp, w, 0, 65535)
			}
			for name := range services {
				if ServesService(host, name) {
					served[name] = true
				}
			}
		}
	}
	realServers := len(v.s.HostsByRole(RoleRealServer))
	for i, sv := range v.s.Services {
		switch {
		case sv.Name == "" || served[sv.Name]:
		case realServers == 0:
			v.add(fmt.Sprintf("services[%d]", i), "service %q has no real server: add a host with role %s", sv.Name, RoleRealServer)
		default:
			v.add(fmt.Sprintf("services[%d]", i), "service %q has no real server: every real server's weight for it is 0; give one of them a weight above 0 (or remove its entry: the default is 1)", sv.Name)
		}
	}
	return h
}

// network checks how addresses relate: distinct, on the right subnets, NAT
// gateways; each family on its own (a service's VIP, directors and real
// servers are of one family).
func (v *validator) network(h hostAddrs) {
	owner := map[netip.Addr]string{}
	claim := func(a netip.Addr, what, path string) {
		if prev, ok := owner[a]; ok {
			v.add(path, "address %s is already used by %s", a, prev)
			return
		}
		owner[a] = what
	}
	for i, host := range v.s.Hosts {
		p := fmt.Sprintf("hosts[%d]", i)
		for _, a := range []struct {
			field, gwField string
			pfx            netip.Prefix
			ok             bool
		}{{"address", "gateway", h.pub[host.Name], h.pub[host.Name].IsValid()}, {"address6", "gateway6", h.pub6[host.Name], h.pub6[host.Name].IsValid()}} {
			if !a.ok {
				continue
			}
			claim(a.pfx.Addr(), "host "+host.Name, p+"."+a.field)
			v.hostAddress(p+"."+a.field, a.pfx, a.pfx.Addr())
			gw := host.Gateway
			if a.gwField == "gateway6" {
				gw = host.Gateway6
			}
			if g, err := parseGateway(gw); err == nil && g.Is6() == a.pfx.Addr().Is6() {
				v.hostAddress(p+"."+a.gwField, a.pfx, g)
			}
		}
		if hb, err := parsePrefix(host.Interfaces.HeartbeatAddress); err == nil {
			claim(hb.Addr(), "host "+host.Name+" (heartbeat)", p+".interfaces.heartbeatAddress")
			v.hostAddress(p+".interfaces.heartbeatAddress", hb, hb.Addr())
		}
	}
	vips := map[netip.Addr]bool{}
	for i, sv := range v.s.Services {
		p := fmt.Sprintf("services[%d]", i)
		vip, err := parseHostAddr(sv.VIP)
		if err != nil {
			continue
		}
		v6 := vip.Is6()
		if !vips[vip] {
			claim(vip, "the VIP of service "+sv.Name, p+".vip")
			vips[vip] = true
		}
		if v.s.HA.Backend == BackendBGP {
			v.bgpAddresses(p, &sv, vip, h)
			continue
		}
		// A VIP on no director's subnet is the VIP's mistake, reported at
		// its line; one that some directors have and others not is theirs.
		var on, off, none []int
		for j, host := range v.s.Hosts {
			if _, parsed := h.pub[host.Name]; !parsed || host.Role != RoleDirector || (v6 && h.bad6[host.Name]) {
				continue
			}
			switch pfx, ok := h.of(host.Name, v6); {
			case !ok:
				none = append(none, j)
			case pfx.Contains(vip):
				on = append(on, j)
			default:
				off = append(off, j)
			}
		}
		switch {
		case len(on) == 0 && len(off) == 0 && len(none) > 0:
			v.add(p+".vip", "VIP %s of service %q is %s, and no director has an %s address: a director brings the VIP up on its public interface, on its subnet; %s", vip, sv.Name, family(v6), family(v6), addFamily(v6, "give each director"))
			none = nil
		case len(on) == 0 && len(off) > 0:
			var subnets []string
			for _, j := range off {
				pfx, _ := h.of(v.s.Hosts[j].Name, v6)
				if sn := pfx.Masked().String(); !oneOf(sn, subnets...) {
					subnets = append(subnets, sn)
				}
			}
			v.add(p+".vip", "VIP %s of service %q is on no director's subnet (%s): a director brings the VIP up on its public interface; use an address of that subnet", vip, sv.Name, strings.Join(subnets, ", "))
		default:
			for _, j := range off {
				host := &v.s.Hosts[j]
				pfx, _ := h.of(host.Name, v6)
				v.add(fmt.Sprintf("hosts[%d].address", j), "director %s (%s) is not on the subnet of VIP %s of service %q: the VIP is brought up on its public interface", host.Name, pfx, vip, sv.Name)
			}
		}
		for _, j := range none {
			v.add(fmt.Sprintf("hosts[%d].address", j), "director %s has no %s address, but VIP %s of service %q is %s: the VIP is brought up on its public interface, on its subnet; %s", v.s.Hosts[j].Name, family(v6), vip, sv.Name, family(v6), addFamily(v6, "give it"))
		}
		if len(on) > 0 {
			pfx, _ := h.of(v.s.Hosts[on[0]].Name, v6)
			v.hostAddress(p+".vip", pfx, vip)
		}
		for j, host := range v.s.Hosts {
			if _, parsed := h.pub[host.Name]; !parsed || host.Role != RoleRealServer || !ServesService(&v.s.Hosts[j], sv.Name) || (v6 && h.bad6[host.Name]) {
				continue
			}
			switch pfx, ok := h.of(host.Name, v6); {
			case !ok:
				v.add(fmt.Sprintf("hosts[%d].address", j), "real server %s has no %s address, but it serves service %q, whose VIP %s is %s: IPVS forwards to a real server of the service's family; %s, or give it weight 0 for %q", host.Name, family(v6), sv.Name, vip, family(v6), addFamily(v6, "give it"), sv.Name)
			case sv.Forwarding == ForwardDR && !pfx.Contains(vip):
				v.add(fmt.Sprintf("hosts[%d].%s", j, h.field(host.Name, "address", v6)), "LVS-DR real server %s (%s) must be on the L2 subnet of VIP %s of service %q", host.Name, pfx, vip, sv.Name)
			}
		}
	}
	fgws := v.floatingGateways(claim)
	for i, host := range v.s.Hosts {
		if host.Role != RoleRealServer {
			continue
		}
		for _, v6 := range natFamilies(v.s, &v.s.Hosts[i]) {
			if _, ok := h.of(host.Name, v6); !ok {
				continue // reported above
			}
			v.natGateway(i, v6, fgws, h)
		}
	}
}

// addFamily says how a host gets an address of a family it lacks.
func addFamily(v6 bool, who string) string {
	if v6 {
		return who + " an IPv6 address: address6 beside an IPv4 address, or address itself"
	}
	return who + " an IPv4 address: address, with the IPv6 one in address6"
}

// floatingGateways checks ha.floatingGateway and ha.floatingGateway6 and
// returns the NAT gateways the active director holds, by family (true:
// IPv6).
func (v *validator) floatingGateways(claim func(netip.Addr, string, string)) map[bool]netip.Addr {
	ha := &v.s.HA
	out := map[bool]netip.Addr{}
	for _, f := range []struct{ path, val string }{{"ha.floatingGateway", ha.FloatingGateway}, {"ha.floatingGateway6", ha.FloatingGateway6}} {
		if f.val == "" {
			continue
		}
		p, err := parsePrefix(f.val)
		switch {
		case err != nil:
			v.add(f.path, "%v", err)
			continue
		case f.path == "ha.floatingGateway6" && !p.Addr().Is6():
			v.add(f.path, "%s is not an IPv6 address: floatingGateway6 is the IPv6 floating gateway of a cluster whose floatingGateway is IPv4", p)
			continue
		case f.path == "ha.floatingGateway6" && out[true].IsValid():
			v.add(f.path, "floatingGateway %s is IPv6 already: floatingGateway6 is the IPv6 one beside an IPv4 floatingGateway; remove one of them", out[true])
			continue
		}
		out[p.Addr().Is6()] = p.Addr()
		claim(p.Addr(), "the floating gateway", f.path)
		v.hostAddress(f.path, p, p.Addr())
	}
	return out
}

// natFamilies are the address families of the NAT services real server h
// serves (false: IPv4, true: IPv6).
func natFamilies(s *Spec, h *Host) []bool {
	var out []bool
	for _, sv := range s.Services {
		if sv.Forwarding != ForwardNAT || !ServesService(h, sv.Name) {
			continue
		}
		a, err := netip.ParseAddr(sv.VIP)
		if err == nil && !slices.Contains(out, a.Is6()) {
			out = append(out, a.Is6())
		}
	}
	return out
}

// natGateway: replies of a LVS-NAT service must return through the director
// holding the VIP, which rewrites them: real server i's gateway of the
// service's family is the floating gateway of that family, or the one
// director's own address.
func (v *validator) natGateway(i int, v6 bool, fgws map[bool]netip.Addr, h hostAddrs) {
	host := &v.s.Hosts[i]
	field := h.field(host.Name, "gateway", v6)
	p := fmt.Sprintf("hosts[%d].%s", i, field)
	floating := "ha.floatingGateway"
	if v6 && (v.s.HA.FloatingGateway6 != "" || field == "gateway6") {
		floating = "ha.floatingGateway6"
	}
	text := host.Gateway
	if field == "gateway6" {
		text = host.Gateway6
	}
	gw, err := parseGateway(text)
	if err != nil || gw.Is6() != v6 {
		v.add(p, "a LVS-NAT real server's gateway must be a director address or %s", floating)
		return
	}
	if gw == fgws[v6] {
		return
	}
	directors, own := 0, ""
	for _, d := range v.s.Hosts {
		if d.Role != RoleDirector {
			continue
		}
		directors++
		if pfx, has := h.of(d.Name, v6); has && pfx.Addr() == gw {
			own = d.Name
		}
	}
	switch {
	case own == "":
		v.add(p, "a LVS-NAT real server's gateway must be a director address or %s, not %s", floating, gw)
	case directors > 1:
		// Replies would go to that director even while another one
		// holds the VIP, and it cannot rewrite them.
		v.add(p, "%s is director %s's own address, but with %d directors the real servers' gateway must move with the VIP: set %s and use its address here", gw, own, directors, floating)
	}
}

// hostAddress refuses a as an address of a host on subnet p if the kernel
// takes it for something else: IPv4's network and broadcast addresses (the
// subnet itself, every host on it; a /31 or /32 has neither), IPv6's
// subnet-router anycast address (the subnet's address, every host bit 0,
// which the routers on the link answer; a /127 or /128 has none, RFC 6164).
func (v *validator) hostAddress(path string, p netip.Prefix, a netip.Addr) {
	p = p.Masked()
	if !p.Contains(a) {
		return
	}
	network := p.Addr()
	if a.Is6() {
		if p.Bits() <= 126 && a == network {
			v.add(path, "%s is the subnet-router anycast address of %s (every host bit 0), which the routers on the link answer: use another address of %s, from %s on", a, p, p, network.Next())
		}
		return
	}
	if p.Bits() > 30 {
		return
	}
	b := network.As4()
	for i := p.Bits(); i < 32; i++ {
		b[i/8] |= 0x80 >> (i % 8)
	}
	broadcast := netip.AddrFrom4(b)
	what := ""
	switch a {
	case network:
		what = "network"
	case broadcast:
		what = "broadcast"
	default:
		return
	}
	v.add(path, "%s is the %s address of %s, which no host can have: use an address from %s to %s", a, what, p, network.Next(), broadcast.Prev())
}

func (v *validator) ha(h hostAddrs) {
	ha := &v.s.HA
	var directors []string
	for _, host := range v.s.Hosts {
		if host.Role == RoleDirector {
			directors = append(directors, host.Name)
		}
	}
	v.enum("ha.backend", ha.Backend, BackendHeartbeat, BackendKeepalived, BackendBGP)
	switch ha.Backend {
	case BackendHeartbeat:
		if len(directors) != 2 {
			v.add("hosts", "the heartbeat backend needs exactly two directors, found %d", len(directors))
		}
	case BackendKeepalived:
		if len(directors) < 1 {
			v.add("hosts", "the keepalived backend needs at least one director")
		}
	}
	if ha.Primary != "" && !oneOf(ha.Primary, directors...) {
		v.add("ha.primary", "unknown director %q: expected one of %s", ha.Primary, strings.Join(directors, ", "))
	}
	for _, t := range []struct {
		path string
		d    Duration
	}{{"ha.keepalive", ha.Keepalive}, {"ha.deadtime", ha.Deadtime}, {"ha.warntime", ha.Warntime}, {"ha.initdead", ha.Initdead}} {
		if t.d > Duration(MaxDuration) {
			v.add(t.path, "%s is longer than 1h: use at most 3600 seconds", t.d.HeartbeatString())
		}
	}
	if ha.Keepalive <= 0 {
		v.add("ha.keepalive", "must be positive")
	}
	if ha.Deadtime <= ha.Keepalive {
		v.add("ha.deadtime", "deadtime (%s) must be greater than keepalive (%s)", ha.Deadtime.HeartbeatString(), ha.Keepalive.HeartbeatString())
	}
	if ha.Warntime != 0 && (ha.Warntime <= ha.Keepalive || ha.Warntime >= ha.Deadtime) {
		v.add("ha.warntime", "warntime (%s) must lie between keepalive (%s) and deadtime (%s)", ha.Warntime.HeartbeatString(), ha.Keepalive.HeartbeatString(), ha.Deadtime.HeartbeatString())
	}
	if ha.Initdead < 2*ha.Deadtime {
		v.add("ha.initdead", "initdead (%s) must be at least twice deadtime (%s)", ha.Initdead.HeartbeatString(), ha.Deadtime.HeartbeatString())
	}
	v.rangeInt("ha.udpPort", ha.UDPPort, 1, 65535)
	if !containsInt(baudRates, ha.Baud) {
		v.badBaud()
	}
	for i, a := range ha.Ping {
		_, err := parseHostAddr(a)
		v.errIf(fmt.Sprintf("ha.ping[%d]", i), err)
	}
	if ha.Backend == BackendHeartbeat {
		if len(ha.Media) == 0 {
			v.add("ha.media", "heartbeat needs at least one medium (bcast, ucast, mcast or serial)")
		}
		ak := &ha.Authkey
		if ak.File == "" && ak.Env == "" {
			v.add("ha.authkey", "heartbeat needs an authkey: set file (a file holding the secret) or env (a variable holding it)")
		}
	}
	ak := &ha.Authkey
	v.enum("ha.authkey.method", ak.Method, "sha1", "md5", "crc")
	named := ak.File != "" || ak.Env != ""
	if ak.File != "" && ak.Env != "" {
		v.add("ha.authkey", "set only one of file and env")
		named = false
	}
	if ak.File != "" {
		if err := checkPath(ak.File); err != nil {
			v.add("ha.authkey.file", "%v", err)
			named = false
		}
	}
	if ak.Env != "" && !reEnv.MatchString(ak.Env) {
		v.add("ha.authkey.env", "invalid value %q: an environment variable name", ak.Env)
		named = false
	}
	if named && ha.Backend == BackendHeartbeat {
		// Read it now, so that validate finds what render would.
		if _, field, problem := v.s.readSecret(); problem != "" {
			v.add(field, "%s", problem)
		}
	}
	for i, m := range ha.Media {
		p := fmt.Sprintf("ha.media[%d]", i)
		v.enum(p+".type", m.Type, MediumBcast, MediumUcast, MediumMcast, MediumSerial)
		if m.Type == MediumSerial || m.Device != "" {
			v.match(p+".device", m.Device, reSerial.MatchString(m.Device), "a serial device such as /dev/ttyS0")
		}
		if m.Type != MediumSerial || m.Interface != "" {
			v.match(p+".interface", m.Interface, reIface.MatchString(m.Interface), "an interface name of at most 15 letters, digits and _ . -")
		}
		if m.Type == MediumMcast || m.Group != "" {
			g, err := parseIPv4(m.Group)
			if err != nil || !g.IsMulticast() {
				v.add(p+".group", "invalid value %q: expected a multicast IPv4 address such as 225.0.0.1", m.Group)
			}
			v.rangeInt(p+".port", m.Port, 1, 65535)
			v.rangeInt(p+".ttl", m.TTL, 1, 255)
		}
		switch m.Type {
		case MediumUcast:
			for _, d := range directors {
				host := v.s.Hosts[h.idx[d]]
				if _, err := UcastPeer(&host, m.Interface); err != nil {
					v.add(p+".interface", "%v", err)
				}
			}
		case MediumBcast, MediumMcast:
			v.onEveryDirector(p+".interface", m.Interface, directors, h, "heartbeat sends the "+m.Type+" medium from every director")
			for _, d := range directors {
				// heartbeat's bcast and mcast plugins speak IPv4 only
				// (its mcast6 is not rendered).
				host := v.s.Hosts[h.idx[d]]
				if a, err := UcastPeer(&host, m.Interface); err == nil && strings.Contains(a, ":") {
					v.add(p+".type", "director %s's address on %s is IPv6 (%s), and heartbeat's %s medium is IPv4 only: use type ucast, which heartbeat sends as ucast6 to IPv6 addresses", d, m.Interface, a, m.Type)
				}
			}
		}
	}
	switch ha.Backend {
	case BackendKeepalived:
		v.keepalivedChecks()
	case BackendHeartbeat:
		v.ldirectordServices()
	}
	v.bgp(directors, h)
	v.keepalived(directors, h)
	if ha.Sync.Enabled || ha.Sync.Interface != "" {
		v.match("ha.sync.interface", ha.Sync.Interface, reIface.MatchString(ha.Sync.Interface), "an interface name of at most 15 letters, digits and _ . -")
	}
	if ha.Sync.Enabled {
		why := "keepalived's lvs_sync_daemon runs on every director"
		if ha.Backend == BackendHeartbeat {
			why = "lvs-director runs IPVS's sync daemons on both directors"
		}
		v.onEveryDirector("ha.sync.interface", ha.Sync.Interface, directors, h, why)
	}
	v.rangeInt("ha.sync.syncID", ha.Sync.SyncID, 0, 255)
}

// keepalivedChecks: what keepalived's checkers cannot do.
func (v *validator) keepalivedChecks() {
	for i, sv := range v.s.Services {
		p := fmt.Sprintf("services[%d].check", i)
		c := &sv.Check
		web := c.Type == "http" || (c.Type == "negotiate" && oneOf(c.Service, "http", "https"))
		switch {
		case c.Type == "negotiate" && !web:
			v.add(p+".service", "with keepalived, negotiate checks speak http (HTTP_GET) and https (SSL_GET) only; use type connect, external or off for %q", c.Service)
		case c.Receive != "" && !web:
			v.add(p+".receive", "keepalived matches a response body (the regex of HTTP_GET and SSL_GET) in http and https checks only: remove receive, or use check.type http")
		case c.Type == "connect" && sv.Protocol != "tcp":
			v.add(p+".type", "keepalived's TCP_CHECK cannot check a %s service: use type external (a program of yours) or off", sv.Protocol)
		}
	}
}

// ldirectordServices: what ldirectord, which keeps the table with the
// heartbeat backend, cannot set up or would undo.
func (v *validator) ldirectordServices() {
	for i, sv := range v.s.Services {
		p := fmt.Sprintf("services[%d]", i)
		if sv.Protocol == "sctp" {
			v.add(p+".protocol", "ldirectord balances tcp and udp services only: an sctp service needs ha.backend keepalived")
		}
		if t := sv.Tunnel; t != nil && (t.Type == TunnelGUE || t.Type == TunnelGRE) {
			v.add(p+".tunnel.type", "ldirectord adds and re-weights real servers as ipip tunnels, which would undo %s: a %s tunnel needs ha.backend keepalived", t.Type, t.Type)
		}
		if sv.OnePacket && sv.FWMark != 0 {
			v.add(p+".ops", "ldirectord sets one-packet scheduling on udp services with a port only, not on firewall-mark ones: use ha.backend keepalived, or a udp service with a port")
		}
		if vip, err := netip.ParseAddr(sv.VIP); err == nil && vip.Is6() && sv.Check.Type == "negotiate" && !oneOf(sv.Check.Service, ldirectordIPv6Services...) {
			v.add(p+".check.service", "ldirectord negotiates with an IPv6 service in %s only, not %s: use one of those, check.type connect, external or off, or ha.backend keepalived", strings.Join(ldirectordIPv6Services, ", "), sv.Check.Service)
		}
	}
}

// ldirectordIPv6Services are the negotiate checks ldirectord runs against
// IPv6 real servers (its perldoc, "IPv6"); connect, external and off
// checks work for both families.
var ldirectordIPv6Services = []string{"dns", "http", "https", "nntp", "simpletcp", "sip"}

// keepalived checks ha.keepalived.
func (v *validator) keepalived(directors []string, h hostAddrs) {
	ka := &v.s.HA.Keepalived
	v.rangeInt("ha.keepalived.virtualRouterID", ka.VirtualRouterID, 1, 255)
	v.rangeInt("ha.keepalived.advertInt", ka.AdvertInt, 1, 255)
	if ka.Unicast && len(directors) < 2 {
		v.add("ha.keepalived.unicast", "unicast VRRP sends to the other directors' addresses, and there is no other director: remove unicast")
	}
	seen := map[string]bool{}
	for i, iface := range ka.TrackInterfaces {
		p := fmt.Sprintf("ha.keepalived.trackInterfaces[%d]", i)
		if !reIface.MatchString(iface) {
			v.add(p, "invalid value %q: an interface name of at most 15 letters, digits and _ . -", iface)
			continue
		}
		if seen[iface] {
			v.add(p, "interface %s is listed twice", iface)
			continue
		}
		seen[iface] = true
		public := false
		for _, d := range directors {
			public = public || v.s.Hosts[h.idx[d]].Interfaces.Public == iface
		}
		if public {
			v.add(p, "%s is the VRRP interface (the directors' public one), which keepalived tracks by itself: list other interfaces", iface)
			continue
		}
		v.onEveryDirector(p, iface, directors, h, "keepalived tracks it on every director")
	}
	if ts := ka.TrackScript; ts != nil {
		p := "ha.keepalived.trackScript"
		if ts.Command == "" {
			v.add(p+".command", "a track script needs the command to run, e.g. command: /usr/local/bin/check-lvs")
		} else {
			v.errIf(p+".command", checkCommand(ts.Command, true))
		}
		v.rangeInt(p+".interval", ts.Interval, 1, 3600)
		v.rangeInt(p+".fall", ts.Fall, 1, 255)
		v.rangeInt(p+".rise", ts.Rise, 1, 255)
		v.rangeInt(p+".weight", ts.Weight, -253, 253)
	}
	n := &ka.Notify
	for _, c := range []struct{ name, cmd string }{{"master", n.Master}, {"backup", n.Backup}, {"fault", n.Fault}, {"stop", n.Stop}, {"any", n.Any}} {
		if c.cmd != "" {
			v.errIf("ha.keepalived.notify."+c.name, checkCommand(c.cmd, true))
		}
	}
	if ka.GarpMasterRefresh != 0 {
		v.rangeInt("ha.keepalived.garpMasterRefresh", ka.GarpMasterRefresh, 1, 3600)
	}
}

// maxTimeout is the longest IPVS connection timeout keepalived's
// lvs_timeouts takes (31 days); ipvsadm --set takes it too.
const maxTimeout = 31 * 86400

func (v *validator) ipvs() {
	t := &v.s.IPVS.Timeouts
	for _, x := range []struct {
		path string
		val  int
	}{{"ipvs.timeouts.tcp", t.TCP}, {"ipvs.timeouts.tcpFin", t.TCPFin}, {"ipvs.timeouts.udp", t.UDP}} {
		if x.val != 0 {
			v.rangeInt(x.path, x.val, 1, maxTimeout)
		}
	}
	if m := v.s.IPVS.ConnReuseMode; m != nil {
		v.rangeInt("ipvs.connReuseMode", *m, 0, 3)
	}
}

// onEveryDirector reports each director that has no interface iface.
func (v *validator) onEveryDirector(path, iface string, directors []string, h hostAddrs, why string) {
	if !reIface.MatchString(iface) {
		return // reported as an invalid name
	}
	for _, d := range directors {
		host := &v.s.Hosts[h.idx[d]]
		if iface != host.Interfaces.Public && iface != host.Interfaces.Heartbeat {
			has := host.Interfaces.Public
			if host.Interfaces.Heartbeat != "" {
				has += ", " + host.Interfaces.Heartbeat
			}
			v.add(path, "director %s has no interface %q (it has %s): %s; use an interface all of them have, or name it in the director's interfaces", d, iface, has, why)
		}
	}
}

func (v *validator) badBaud() {
	v.add("ha.baud", "unsupported baud rate %d: expected one of 9600, 19200, 38400, 57600, 115200, 230400", v.s.HA.Baud)
}

func containsInt(xs []int, x int) bool {
	for _, y := range xs {
		if x == y {
			return true
		}
	}
	return false
}

// asWritten checks what only the file can tell, before the defaults fill
// it in: a number set to 0 where 0 means "not set" (the default would take
// its place without a word), and a field the chosen backend never reads.
// A spec changed in code (Validate) has no file to tell, so only Parse
// runs it. written reports whether the file gives path a value.
func (v *validator) asWritten(written func(path string) bool) {
	s := v.s
	zero := func(path string, val, lo, hi int) {
		if val == 0 && written(path) {
			v.rangeInt(path, val, lo, hi)
			v.skip[path] = true
		}
	}
	const maxMark = 1<<31 - 1
	zero("kernel.panicTimeout", s.Kernel.PanicTimeout, 1, 3600)
	for i, sv := range s.Services {
		p := fmt.Sprintf("services[%d]", i)
		zero(p+".realPort", sv.RealPort, 1, 65535)
		zero(p+".fwmark", sv.FWMark, 1, maxMark)
		zero(p+".check.port", sv.Check.Port, 1, 65535)
		zero(p+".check.interval", sv.Check.Interval, 1, 3600)
		zero(p+".check.timeout", sv.Check.Timeout, 1, 3600)
		if sv.Fallback != nil {
			zero(p+".fallback.port", sv.Fallback.Port, 1, 65535)
		}
		if sv.Tunnel != nil {
			zero(p+".tunnel.port", sv.Tunnel.Port, 1, 65535)
		}
	}
	for i, h := range s.Hosts {
		zero(fmt.Sprintf("hosts[%d].ssh.port", i), h.SSH.Port, 1, 65535)
	}
	ha := &s.HA
	zero("ha.udpPort", ha.UDPPort, 1, 65535)
	if ha.Baud == 0 && written("ha.baud") {
		v.badBaud()
		v.skip["ha.baud"] = true
	}
	zero("ha.keepalived.virtualRouterID", ha.Keepalived.VirtualRouterID, 1, 255)
	zero("ha.keepalived.advertInt", ha.Keepalived.AdvertInt, 1, 255)
	zero("ha.keepalived.garpMasterRefresh", ha.Keepalived.GarpMasterRefresh, 1, 3600)
	if ts := ha.Keepalived.TrackScript; ts != nil {
		zero("ha.keepalived.trackScript.interval", ts.Interval, 1, 3600)
		zero("ha.keepalived.trackScript.fall", ts.Fall, 1, 255)
		zero("ha.keepalived.trackScript.rise", ts.Rise, 1, 255)
	}
	if ha.Backend == BackendBGP {
		zero("ha.bgp.holdTime", ha.BGP.HoldTime, 3, 65535)
		zeroAS := func(path string, as int) {
			if as == 0 && written(path) {
				v.asNumber(path, as)
				v.skip[path] = true
			}
		}
		zeroAS("ha.bgp.as", ha.BGP.AS)
		for i, h := range s.Hosts {
			if h.BGP != nil {
				zeroAS(fmt.Sprintf("hosts[%d].bgp.as", i), h.BGP.AS)
			}
		}
	}
	zero("ipvs.timeouts.tcp", s.IPVS.Timeouts.TCP, 1, maxTimeout)
	zero("ipvs.timeouts.tcpFin", s.IPVS.Timeouts.TCPFin, 1, maxTimeout)
	zero("ipvs.timeouts.udp", s.IPVS.Timeouts.UDP, 1, maxTimeout)

	backend := ha.Backend
	if backend == "" {
		backend = BackendHeartbeat
	}
	for _, f := range backendFields {
		if written(f.path) && !oneOf(backend, f.backends...) {
			v.add(f.path, "the %s backend does not use %s: remove it, or set ha.backend to %s", backend, f.path, strings.Join(f.backends, " or "))
			v.skip[f.path] = true
		}
	}
	for i, h := range s.Hosts {
		if p := fmt.Sprintf("hosts[%d].bgp", i); written(p) && backend != BackendBGP && h.Role == RoleDirector {
			v.add(p, "the %s backend does not use %s: remove it, or set ha.backend to %s", backend, p, BackendBGP)
			v.skip[p] = true
		}
	}
}

// backendFields are the ha fields only some backends use.
var backendFields = []struct {
	path     string
	backends []string
}{
	{"ha.primary", []string{BackendHeartbeat, BackendKeepalived}},
	{"ha.keepalive", []string{BackendHeartbeat}},
	{"ha.deadtime", []string{BackendHeartbeat}},
	{"ha.warntime", []string{BackendHeartbeat}},
	{"ha.initdead", []string{BackendHeartbeat}},
	{"ha.autoFailback", []string{BackendHeartbeat, BackendKeepalived}},
	{"ha.udpPort", []string{BackendHeartbeat}},
	{"ha.baud", []string{BackendHeartbeat}},
	{"ha.media", []string{BackendHeartbeat}},
	{"ha.ping", []string{BackendHeartbeat}},
	{"ha.authkey", []string{BackendHeartbeat}},
	{"ha.floatingGateway", []string{BackendHeartbeat, BackendKeepalived}},
	{"ha.keepalived", []string{BackendKeepalived}},
	{"ha.sync", []string{BackendHeartbeat, BackendKeepalived}},
	{"ha.bgp", []string{BackendBGP}},
}
