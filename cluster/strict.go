package cluster

import (
	"fmt"
	"net/netip"
	"net/url"
	"regexp"
	"strconv"
	"strings"
)

// The strict validators. Every string of the spec that ends up in a shell
// script, a config file or a command line matches one of these, so no
// template ever needs to quote: a value either is plain or is refused here.
var (
	reName      = regexp.MustCompile(`^[a-z0-9]([a-z0-9-]{0,61}[a-z0-9])?$`)
	reHostname  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?$`)
	reNodeName  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?(\.[A-Za-z0-9]([A-Za-z0-9-]{0,61}[A-Za-z0-9])?)*$`)
	reIface     = regexp.MustCompile(`^[A-Za-z0-9][A-Za-z0-9_.-]{0,14}$`)
	reUser      = regexp.MustCompile(`^[a-z_][a-z0-9_-]{0,31}$`)
	reEnv       = regexp.MustCompile(`^[A-Za-z_][A-Za-z0-9_]{0,63}$`)
	reSHA256    = regexp.MustCompile(`^[0-9a-f]{64}$`)
	reVersion   = regexp.MustCompile(`^[0-9]+\.[0-9]+(\.[0-9]+)?(-rc[0-9]+)?$`)
	reLocalVer  = regexp.MustCompile(`^-[a-z0-9][a-z0-9._+-]{0,30}$`)
	rePath      = regexp.MustCompile(`^[A-Za-z0-9._/+-]+$`)
	reDevice    = regexp.MustCompile(`^(/dev/[A-Za-z0-9/_.-]+|(UUID|PARTUUID|LABEL)=[A-Za-z0-9._-]+)$`)
	reSerial    = regexp.MustCompile(`^/dev/tty[A-Za-z0-9]+$`)
	reGrubRoot  = regexp.MustCompile(`^\(hd[0-9]+(,[0-9]+)?\)$`)
	reCmdline   = regexp.MustCompile(`^[A-Za-z0-9 ._,=:/+-]*$`)
	reHTTPText  = regexp.MustCompile(`^[A-Za-z0-9 ._,=:/+%?~-]*$`)
	reHTTPPath  = regexp.MustCompile(`^[A-Za-z0-9._,=:/+%?~-]*$`) // no space: keepalived splits `path /a b`
	reOption    = regexp.MustCompile(`^CONFIG_[A-Z0-9_]+=(y|m|n|-?[0-9]+|0x[0-9a-fA-F]+|"[A-Za-z0-9 ._,/:+=-]*")$`)
	reJump      = regexp.MustCompile(`^([a-z_][a-z0-9_-]{0,31}@)?[A-Za-z0-9]([A-Za-z0-9.-]{0,252})(:[0-9]{1,5})?$`)
	reFarmHost  = regexp.MustCompile(`^[A-Za-z0-9]([A-Za-z0-9.-]{0,252})(:[0-9]{1,5})?(/[0-9]{1,3})?(,lzo)?$`)
	reConfigRef = regexp.MustCompile(`^(tinyconfig|defconfig|allnoconfig)$`)
	reURLChars  = regexp.MustCompile(`^[A-Za-z0-9:/._~%+=-]+$`)
	reWord      = regexp.MustCompile(`^[A-Za-z0-9._,=:/+-]+$`)
)

// maxNodeName is the longest name uname -n can give: the kernel's
// __NEW_UTS_LEN.
const maxNodeName = 64

// manifestName is the file beside the hosts' directories at the top of a
// rendered tree (roles.ManifestName): no host may be named so.
const manifestName = "MANIFEST.json"

// checkNodeName accepts a host's name as uname -n gives it: a short name
// (linuxha1) or a fully qualified one (linuxha1.example.com, Red Hat's
// default), which heartbeat takes as the node's name all the same.
func checkNodeName(s string) error {
	if !reNodeName.MatchString(s) || len(s) > maxNodeName {
		return fmt.Errorf("invalid value %q: a host name (uname -n) such as linuxha1 or linuxha1.example.com: labels of letters, digits and -, joined by dots, at most %d characters", s, maxNodeName)
	}
	if strings.EqualFold(s, manifestName) {
		return fmt.Errorf("invalid value %q: the rendered tree holds its manifest under that name beside the hosts' directories; rename the host", s)
	}
	return nil
}

// checkPath accepts a relative or absolute file path made of plain
// characters, without "..", and not starting with "-", which a command
// would read as an option.
func checkPath(s string) error {
	if !rePath.MatchString(s) {
		return fmt.Errorf("invalid path %q: use letters, digits and . _ / + - only", s)
	}
	if strings.HasPrefix(s, "-") {
		return fmt.Errorf("invalid path %q: a path must not start with \"-\" (a command would take it for an option): write ./%s", s, s)
	}
	for _, part := range strings.Split(s, "/") {
		if part == ".." {
			return fmt.Errorf("invalid path %q: \"..\" is not allowed", s)
		}
	}
	return nil
}

// checkCommand accepts a command a daemon runs: an absolute path, then
// words of plain characters separated by single spaces. keepalived splits
// its quoted script strings at spaces and runs them without a shell, so a
// word can hold nothing a shell or keepalived would read otherwise. With
// args false, the path alone (ldirectord runs its external check without
// a shell, the path and its four arguments).
func checkCommand(s string, args bool) error {
	words := strings.Split(s, " ")
	want := "an absolute path, then arguments of letters, digits and . _ , = : / + - separated by single spaces, e.g. /usr/local/bin/check-lvs --quiet"
	if !args {
		want = "an absolute path of letters, digits and . _ / + - (no arguments: the check gets the virtual address, virtual port, real address and real port), e.g. /usr/local/bin/check-lvs"
		if len(words) > 1 {
			return fmt.Errorf("invalid command %q: %s", s, want)
		}
	}
	if !strings.HasPrefix(words[0], "/") || checkPath(words[0]) != nil {
		return fmt.Errorf("invalid command %q: %s", s, want)
	}
	for _, w := range words[1:] {
		if !reWord.MatchString(w) {
			return fmt.Errorf("invalid command %q: %s", s, want)
		}
	}
	return nil
}

// checkURL accepts http(s) URLs made of plain characters.
func checkURL(s string) error {
	u, err := url.Parse(s)
	if err != nil || (u.Scheme != "http" && u.Scheme != "https") || u.Host == "" {
		return fmt.Errorf("invalid URL %q: expected http:// or https:// with a host", s)
	}
	if !reURLChars.MatchString(s) {
		return fmt.Errorf("invalid URL %q: only letters, digits and : / . _ ~ %% + = - are allowed", s)
	}
	return nil
}

// parseIPv4 accepts a plain dotted IPv4 address.
func parseIPv4(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return netip.Addr{}, fmt.Errorf("invalid IPv4 address %q: expected e.g. 192.168.7.110", s)
	}
	return a, nil
}

// parseAddr accepts a dotted IPv4 address or an IPv6 address written as
// RFC 5952 writes it (lowercase, no leading zeros, the longest run of zero
// groups as ::): the spec's text is what ip(8), ipvsadm -S and the daemons
// print, so string comparisons (the same VIP in two services, the holder
// of an address) hold. No zone: these addresses are the cluster's, not a
// link's; no IPv4-mapped IPv6, which IPVS would take as another family.
func parseAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	switch {
	case err != nil || a.Zone() != "":
		return netip.Addr{}, fmt.Errorf("invalid address %q: expected an IPv4 address such as 192.168.7.110 or an IPv6 one such as 2001:db8::110", s)
	case a.Is4In6():
		return netip.Addr{}, fmt.Errorf("invalid address %q: an IPv4-mapped IPv6 address; write the IPv4 address %s", s, a.Unmap())
	case a.String() != s:
		return netip.Addr{}, fmt.Errorf("invalid address %q: write it as %s (lowercase, no leading zeros, the longest run of zero groups as ::)", s, a)
	}
	return a, nil
}

// ipv6Unicast refuses the IPv6 addresses no cluster address can be: a VIP,
// DIP or RIP is a global (or unique local) unicast address, reachable
// beyond the link.
func ipv6Unicast(a netip.Addr) error {
	what := ""
	switch {
	case !a.Is6():
		return nil
	case a.IsUnspecified():
		what = "the unspecified address"
	case a.IsLoopback():
		what = "the loopback address"
	case a.IsMulticast():
		what = "a multicast address"
	case a.IsLinkLocalUnicast():
		what = "a link-local address (fe80::/10), which no router forwards"
	default:
		return nil
	}
	return fmt.Errorf("%s is %s: use a global or unique local unicast address, e.g. 2001:db8::110", a, what)
}

// parseSSHAddr accepts an IP address to connect to. An IPv6 link-local
// address may carry a zone, which must be an interface name: netip takes
// any text after the %, and the address reaches ssh command lines.
func parseSSHAddr(s string) (netip.Addr, error) {
	a, err := netip.ParseAddr(s)
	if err != nil {
		return netip.Addr{}, err
	}
	if z := a.Zone(); z != "" && !reIface.MatchString(z) {
		return netip.Addr{}, fmt.Errorf("invalid zone %q: expected an interface name of at most 15 letters, digits and _ . -", z)
	}
	return a, nil
}

// parsePrefix accepts an IPv4 or IPv6 address with prefix length, e.g.
// 192.168.7.9/24 or 2001:db8::9/64, the address written as parseAddr wants.
func parsePrefix(s string) (netip.Prefix, error) {
	p, err := netip.ParsePrefix(s)
	if err != nil || p.Bits() < 1 {
		return netip.Prefix{}, fmt.Errorf("invalid address %q: expected an address with prefix length, e.g. 192.168.7.9/24 or 2001:db8::9/64", s)
	}
	if p.Addr().Is4In6() {
		return netip.Prefix{}, fmt.Errorf("invalid address %q: an IPv4-mapped IPv6 address; write the IPv4 address with its prefix length", s)
	}
	if want := p.String(); want != s {
		return netip.Prefix{}, fmt.Errorf("invalid address %q: write it as %s (lowercase, no leading zeros, the longest run of zero groups as ::)", s, want)
	}
	if err := ipv6Unicast(p.Addr()); err != nil {
		return netip.Prefix{}, err
	}
	return p, nil
}

// parseNetmask accepts a persistence netmask: for an IPv4 service a dotted
// netmask, e.g. 255.255.255.0; for an IPv6 one a prefix length, e.g. 64,
// as ipvsadm -M and ldirectord take it.
func parseNetmask(s string, v6 bool) error {
	if v6 {
		n, err := strconv.Atoi(s)
		if err != nil || n < 1 || n > 128 || strconv.Itoa(n) != s {
			return fmt.Errorf("invalid netmask %q: an IPv6 service's persistence netmask is a prefix length from 1 to 128, e.g. 64", s)
		}
		return nil
	}
	a, err := netip.ParseAddr(s)
	if err != nil || !a.Is4() {
		return fmt.Errorf("invalid netmask %q: expected e.g. 255.255.255.0", s)
	}
	b := a.As4()
	v := uint32(b[0])<<24 | uint32(b[1])<<16 | uint32(b[2])<<8 | uint32(b[3])
	if v != 0 && (^v)&(^v+1) != 0 {
		return fmt.Errorf("invalid netmask %q: the one bits must be contiguous, e.g. 255.255.255.0", s)
	}
	return nil
}

// parseHostAddr accepts an address a host of the cluster holds (a VIP, a
// ping node): parseAddr's, and for IPv6 a global or unique local unicast one.
func parseHostAddr(s string) (netip.Addr, error) {
	a, err := parseAddr(s)
	if err == nil {
		err = ipv6Unicast(a)
	}
	if err != nil {
		return netip.Addr{}, err
	}
	return a, nil
}

// family names an address family in messages.
func family(v6 bool) string {
	if v6 {
		return "IPv6"
	}
	return "IPv4"
}

// parseGateway accepts a default gateway: parseAddr's, and for IPv6 a
// unicast address, link-local included (IPv6 routers are often known by
// their link-local address, and the route names the device).
func parseGateway(s string) (netip.Addr, error) {
	a, err := parseAddr(s)
	if err == nil && !a.IsLinkLocalUnicast() {
		err = ipv6Unicast(a)
	}
	if err != nil {
		return netip.Addr{}, err
	}
	return a, nil
}
