package ipvs

import (
	"fmt"
	"net/netip"
	"strconv"
	"strings"
)

// ParseRules reads `ipvsadm -S -n` output (the format of the rules file
// lvsforge renders) into a table, in the order of its lines.
func ParseRules(text string) (*Table, error) {
	t := &Table{}
	for i, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if err := t.parseRule(f); err != nil {
			return nil, fmt.Errorf("parse ipvsadm rules line %d %q: %w", i+1, line, err)
		}
	}
	return t, nil
}

func (t *Table) parseRule(f []string) error {
	op := f[0]
	if op != "-A" && op != "-a" {
		return fmt.Errorf("want -A or -a, not %q", op)
	}
	k, rest, err := parseRuleKey(f[1:])
	if err != nil {
		return err
	}
	if op == "-A" {
		s := Service{Key: k, VIP: k.Addr}
		if err := s.parseOpts(rest); err != nil {
			return err
		}
		if t.Service(k) != nil {
			return fmt.Errorf("virtual service %s added twice", k)
		}
		t.Services = append(t.Services, s)
		return nil
	}
	s := t.Service(k)
	if s == nil {
		return fmt.Errorf("real server of %s before its -A line", k)
	}
	d, err := parseDestRule(rest)
	if err != nil {
		return err
	}
	s.Dests = append(s.Dests, d)
	return nil
}

// parseRuleKey reads "-t ADDR:PORT", "-u ...", "--sctp-service ..." or
// "-f MARK [-6]" and returns the key and the remaining fields.
func parseRuleKey(f []string) (Key, []string, error) {
	if len(f) < 2 {
		return Key{}, nil, fmt.Errorf("no virtual service")
	}
	var k Key
	switch f[0] {
	case "-f", "--fwmark-service":
		m, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil || m == 0 {
			return k, nil, fmt.Errorf("bad firewall mark %q", f[1])
		}
		k.Mark = uint32(m)
		f = f[2:]
		if len(f) > 0 && (f[0] == "-6" || f[0] == "--ipv6") {
			k.V6, f = true, f[1:]
		}
		return k, f, nil
	case "-t", "--tcp-service":
		k.Proto = TCP
	case "-u", "--udp-service":
		k.Proto = UDP
	case "--sctp-service":
		k.Proto = SCTP
	default:
		return k, nil, fmt.Errorf("unknown service switch %q", f[0])
	}
	ap, err := netip.ParseAddrPort(f[1])
	if err != nil {
		return k, nil, fmt.Errorf("bad virtual address %q: want ADDR:PORT or [ADDR]:PORT, numeric", f[1])
	}
	k.Addr, k.Port = ap.Addr().Unmap(), ap.Port()
	return k, f[2:], nil
}

// eachOption calls handle with each option of an ipvsadm rule in turn,
// until one fails; handle reads the option's value, where it takes one,
// with value, which fails when the rule ends first.
func eachOption(f []string, handle func(opt string, value func() (string, error)) error) error {
	for i := 0; i < len(f); {
		opt := f[i]
		i++
		value := func() (string, error) {
			if i >= len(f) {
				return "", fmt.Errorf("%s without a value", opt)
			}
			i++
			return f[i-1], nil
		}
		if err := handle(opt, value); err != nil {
			return err
		}
	}
	return nil
}

func (s *Service) parseOpts(f []string) error {
	err := eachOption(f, func(opt string, arg func() (string, error)) (err error) {
		var v string
		switch opt {
		case "-s", "--scheduler":
			s.Scheduler, err = arg()
		case "-p", "--persistent":
			if v, err = arg(); err == nil {
				s.Persistent, err = number("persistence timeout", v)
			}
		case "-M", "--netmask":
			s.Netmask, err = arg()
		case "-o", "--ops":
			s.OnePacket = true
		case "-b", "--sched-flags":
			if v, err = arg(); err == nil {
				s.SchedFlags = sortedFlags(strings.Split(v, ","))
			}
		case "--pe":
			_, err = arg() // persistence engines (sip) are not modelled
		default:
			return fmt.Errorf("unknown virtual service option %q", opt)
		}
		return err
	})
	if err != nil {
		return err
	}
	if s.Scheduler == "" {
		return fmt.Errorf("no scheduler (-s)")
	}
	return nil
}

func parseDestRule(f []string) (Dest, error) {
	var d Dest
	err := eachOption(f, func(opt string, arg func() (string, error)) (err error) {
		var v string
		switch opt {
		case "-r", "--real-server":
			if v, err = arg(); err == nil {
				d.Addr, d.Port, err = parseAddrPort(v)
			}
		case "-g", "--gatewaying":
			d.Method = Route
		case "-i", "--ipip":
			d.Method = Tunnel
		case "-m", "--masquerading":
			d.Method = Masq
		case "-w", "--weight":
			if v, err = arg(); err == nil {
				d.Weight, err = number("weight", v)
			}
		case "-x", "--u-threshold", "-y", "--l-threshold":
			_, err = arg() // thresholds are not modelled (ipvsadm -S does not save them)
		case "--tun-type":
			if v, err = arg(); err == nil && v != "ipip" {
				d.Tunnel.Type = v
			}
		case "--tun-port":
			if v, err = arg(); err == nil {
				var p uint64
				p, err = strconv.ParseUint(v, 10, 16)
				d.Tunnel.Port = uint16(p)
			}
		case "--tun-nocsum":
			d.Tunnel.Csum = "" // the kernel's default
		case "--tun-csum":
			d.Tunnel.Csum = "csum"
		case "--tun-remcsum":
			d.Tunnel.Csum = "remcsum"
		default:
			return fmt.Errorf("unknown real server option %q", opt)
		}
		return err
	})
	if err != nil {
		return d, err
	}
	if !d.Addr.IsValid() {
		return d, fmt.Errorf("no real server (-r)")
	}
	if d.Method == "" {
		d.Method = Route // ipvsadm's default
	}
	return d, nil
}

// parseAddrPort reads a numeric ADDR:PORT or [ADDR]:PORT.
func parseAddrPort(s string) (netip.Addr, uint16, error) {
	ap, err := netip.ParseAddrPort(s)
	if err != nil {
		return netip.Addr{}, 0, fmt.Errorf("bad address %q: want ADDR:PORT or [ADDR]:PORT, numeric", s)
	}
	return ap.Addr().Unmap(), ap.Port(), nil
}

// ParseList reads `ipvsadm -L -n` output: the same table as `ipvsadm -S
// -n`, plus each real server's active and inactive connection counts.
func ParseList(text string) (*Table, error) {
	t := &Table{}
	var cur *Service
	for i, line := range strings.Split(text, "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(line, "IP Virtual Server") || f[0] == "Prot" || (f[0] == "->" && len(f) > 1 && f[1] == "RemoteAddress:Port") {
			continue
		}
		var err error
		if f[0] == "->" {
			if cur == nil {
				err = fmt.Errorf("real server before any virtual service")
			} else {
				var d Dest
				if d, err = parseListDest(f[1:]); err == nil {
					cur.Dests = append(cur.Dests, d)
				}
			}
		} else {
			var s Service
			if s, err = parseListService(f); err == nil {
				t.Services = append(t.Services, s)
				cur = &t.Services[len(t.Services)-1]
			}
		}
		if err != nil {
			return nil, fmt.Errorf("parse ipvsadm -L -n line %d %q: %w", i+1, line, err)
		}
	}
	return t, nil
}

func parseListService(f []string) (Service, error) {
	var s Service
	if len(f) < 3 {
		return s, fmt.Errorf("want PROTOCOL ADDRESS:PORT SCHEDULER")
	}
	switch f[0] {
	case "FWM":
		m, err := strconv.ParseUint(f[1], 10, 32)
		if err != nil || m == 0 {
			return s, fmt.Errorf("bad firewall mark %q", f[1])
		}
		s.Mark, f = uint32(m), f[2:]
		if f[0] == "IPv6" {
			s.V6, f = true, f[1:]
		}
	case "TCP", "UDP", "SCTP":
		s.Proto = Protocol(strings.ToLower(f[0]))
		var err error
		if s.Addr, s.Port, err = parseAddrPort(f[1]); err != nil {
			return s, err
		}
		s.VIP = s.Addr
		f = f[2:]
	default:
		return s, fmt.Errorf("unknown protocol %q", f[0])
	}
	if len(f) == 0 {
		return s, fmt.Errorf("no scheduler")
	}
	s.Scheduler, f = f[0], f[1:]
	for i := 0; i < len(f); i++ {
		var err error
		switch {
		case strings.HasPrefix(f[i], "(") && strings.HasSuffix(f[i], ")"):
			s.SchedFlags = sortedFlags(strings.Split(strings.Trim(f[i], "()"), ","))
		case f[i] == "persistent" && i+1 < len(f):
			i++
			s.Persistent, err = number("persistence timeout", f[i])
		case f[i] == "mask" && i+1 < len(f):
			i++
			s.Netmask = f[i]
		case f[i] == "pe" && i+1 < len(f):
			i++
		case f[i] == "ops":
			s.OnePacket = true
		default:
			err = fmt.Errorf("unknown virtual service word %q", f[i])
		}
		if err != nil {
			return s, err
		}
	}
	return s, nil
}

func parseListDest(f []string) (Dest, error) {
	var d Dest
	if len(f) != 5 {
		return d, fmt.Errorf("want ADDRESS:PORT FORWARD WEIGHT ACTIVECONN INACTCONN")
	}
	var err error
	if d.Addr, d.Port, err = parseAddrPort(f[0]); err != nil {
		return d, err
	}
	d.Method = Method(f[1])
	if _, ok := methodFlags[d.Method]; !ok {
		return d, fmt.Errorf("unknown forwarding method %q", f[1])
	}
	for i, c := range []struct {
		name string
		dst  *int
	}{{"weight", &d.Weight}, {"active connections", &d.ActiveConns}, {"inactive connections", &d.InactConns}} {
		if *c.dst, err = number(c.name, f[2+i]); err != nil {
			return d, err
		}
	}
	return d, nil
}

// number reads a count ipvsadm printed: a non-negative decimal.
func number(what, s string) (int, error) {
	n, err := strconv.Atoi(s)
	if err != nil || n < 0 {
		return 0, fmt.Errorf("bad %s %q: want a number", what, s)
	}
	return n, nil
}
