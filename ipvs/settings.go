package ipvs

import (
	"fmt"
	"strconv"
	"strings"
)

// Timeouts are IPVS's connection timeouts in seconds: TCP established,
// TCP after a FIN, UDP. 0 is the kernel's own (900, 120, 300). ipvsadm -S
// saves none of them: they are set apart from the table (ipvsadm --set,
// keepalived's lvs_timeouts).
type Timeouts struct {
	TCP, TCPFin, UDP int
}

// IsZero reports whether every timeout is the kernel's.
func (t Timeouts) IsZero() bool { return t == Timeouts{} }

// SetArgs are ipvsadm's arguments that set the timeouts; a 0 tells
// ipvsadm to keep that one as it is.
func (t Timeouts) SetArgs() []string {
	return []string{"--set", strconv.Itoa(t.TCP), strconv.Itoa(t.TCPFin), strconv.Itoa(t.UDP)}
}

// ParseTimeout reads `ipvsadm -L --timeout`: "Timeout (tcp tcpfin udp): 900 120 300".
func ParseTimeout(text string) (Timeouts, error) {
	var t Timeouts
	rest, ok := strings.CutPrefix(strings.TrimSpace(text), "Timeout (tcp tcpfin udp):")
	f := strings.Fields(rest)
	if !ok || len(f) != 3 {
		return t, fmt.Errorf("parse ipvsadm --timeout %q: want \"Timeout (tcp tcpfin udp): TCP TCPFIN UDP\"", text)
	}
	var err error
	for i, dst := range []*int{&t.TCP, &t.TCPFin, &t.UDP} {
		if *dst, err = number("timeout", f[i]); err != nil {
			return t, fmt.Errorf("parse ipvsadm --timeout: %w", err)
		}
	}
	return t, nil
}

// Sync is connection synchronisation between directors: the interface the
// sync daemons send and listen on (multicast 224.0.0.81, port 8848) and the
// sync ID that tells one cluster's messages from another's (0: take all).
type Sync struct {
	Interface string
	SyncID    int
}

// Daemons are the sync daemons a director runs to sync both ways: a master
// sending its connections and a backup learning the peer's (kernels since
// 2.6.33 run both at once), so that whichever director holds the VIPs, the
// other knows its connections.
func (s Sync) Daemons() []SyncDaemon {
	return []SyncDaemon{{State: "master", Sync: s}, {State: "backup", Sync: s}}
}

// SyncDaemon is one IPVS sync daemon.
type SyncDaemon struct {
	// State is "master" (sends) or "backup" (receives).
	State string
	Sync
}

// StartArgs are ipvsadm's arguments that start the daemon.
func (d SyncDaemon) StartArgs() []string {
	return []string{"--start-daemon", d.State, "--mcast-interface", d.Interface, "--syncid", strconv.Itoa(d.SyncID)}
}

// Listed is how `ipvsadm -L --daemon` begins the daemon's line; the kernel
// may add ", maxlen=N" and more before the closing parenthesis.
func (d SyncDaemon) Listed() string {
	return fmt.Sprintf("%s sync daemon (mcast=%s, syncid=%d", d.State, d.Interface, d.SyncID)
}

// ParseDaemons reads `ipvsadm -L --daemon`: a line per running daemon,
// "master sync daemon (mcast=eth1, syncid=7, maxlen=1472, ...)".
func ParseDaemons(text string) ([]SyncDaemon, error) {
	var out []SyncDaemon
	for i, line := range strings.Split(text, "\n") {
		if strings.TrimSpace(line) == "" {
			continue
		}
		state, rest, ok := strings.Cut(line, " sync daemon (")
		inner, closed := strings.CutSuffix(strings.TrimSpace(rest), ")")
		if !ok || !closed || (state != "master" && state != "backup") {
			return nil, fmt.Errorf("parse ipvsadm --daemon line %d %q: want \"master|backup sync daemon (mcast=IF, syncid=N...)\"", i+1, line)
		}
		d := SyncDaemon{State: state}
		for _, kv := range strings.Split(inner, ", ") {
			k, v, _ := strings.Cut(kv, "=")
			var err error
			switch k {
			case "mcast":
				d.Interface = v
			case "syncid":
				d.SyncID, err = number("sync ID", v)
			}
			if err != nil {
				return nil, fmt.Errorf("parse ipvsadm --daemon line %d: %w", i+1, err)
			}
		}
		out = append(out, d)
	}
	return out, nil
}

// Sysctl is one IPVS setting under /proc/sys/net/ipv4/vs (IPv6 services
// obey them too).
type Sysctl struct {
	Name  string
	Value int
}

// Key is the setting's /proc/sys path below /proc/sys: net/ipv4/vs/NAME.
func (s Sysctl) Key() string { return "net/ipv4/vs/" + s.Name }
