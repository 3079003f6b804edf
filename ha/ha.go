// Package ha reads the running HA daemons of the directors: which floating
// addresses a director holds, whether its heartbeat or keepalived runs and
// what it thinks of itself and its peer. roles renders those daemons'
// configuration; this package asks them how they are. Query is one
// read-only shell script per director; Parse reads its output.
package ha

import (
	"bufio"
	"bytes"
	"fmt"
	"net/netip"
	"slices"
	"strings"

	"github.com/lvsforge/lvsforge/cluster"
)

// Director is what a director's HA daemon says, and the addresses it holds.
type Director struct {
	Name string `json:"name"`
	// Running is whether the HA daemon (heartbeat, keepalived) runs.
	Running bool `json:"running"`
	// State is heartbeat's view of the resources it holds ("all", "local",
	// "foreign", "none", "transition") or keepalived's VRRP state (MASTER,
	// BACKUP, FAULT, INIT); "" when the daemon does not run.
	State string `json:"state"`
	// Peers is heartbeat's status of each other node (active, dead, up,
	// ping) as this director sees it; nil with keepalived.
	Peers map[string]string `json:"peers,omitempty"`
	// Addrs are the addresses on the director's interfaces.
	Addrs []netip.Addr `json:"-"`
}

// Holds reports whether the director holds addr on an interface.
func (d *Director) Holds(addr netip.Addr) bool { return slices.Contains(d.Addrs, addr) }

// heartbeat's tools; cl_status is in PATH on Debian and Red Hat.
const (
	hbStandby  = "/usr/share/heartbeat/hb_standby"
	hbTakeover = "/usr/share/heartbeat/hb_takeover"
)

// Query is the read-only script that reports a director's HA state:
// "A ADDR" per address on an interface but lo, then, for heartbeat, "H running|stopped",
// "R RESOURCES" and "N NODE STATUS" per node; for keepalived
// "K running|stopped" and "V INSTANCE STATE" per VRRP instance.
func Query(backend string) string {
	var b strings.Builder
	// lo's addresses are not held: both directors keep the VIPs on lo
	// (hot standby, lvs-director); the holder has them on an interface.
	b.WriteString(`ip -o addr show | while read -r _ dev _ a _; do [ "$dev" = lo ] || echo "A ${a%/*}"; done; `)
	switch backend {
	case cluster.BackendHeartbeat:
		b.WriteString(`if cl_status hbstatus >/dev/null 2>&1; then echo "H running"; ` +
			`echo "R $(cl_status rscstatus 2>/dev/null)"; ` +
			`for n in $(cl_status listnodes 2>/dev/null); do echo "N $n $(cl_status nodestatus "$n" 2>/dev/null)"; done; ` +
			`else echo "H stopped"; fi; `)
	case cluster.BackendKeepalived:
		// keepalived writes its state to /tmp/keepalived.data when told
		// (asynchronously): the file is removed first and waited for.
		b.WriteString(`p=$(cat /run/keepalived.pid 2>/dev/null); ` +
			`if [ -n "$p" ] && kill -0 "$p" 2>/dev/null; then echo "K running"; ` +
			`rm -f /tmp/keepalived.data; kill -s "$(keepalived --signum=DATA)" "$p"; ` +
			`i=0; while [ ! -s /tmp/keepalived.data ] && [ $i -lt 50 ]; do sleep 0.1; i=$((i+1)); done; sleep 0.2; ` +
			`sed -n 's/^ *VRRP Instance = \(.*\)$/I \1/p; s/^ *State = \([A-Z]*\)$/S \1/p' /tmp/keepalived.data; ` +
			`else echo "K stopped"; fi; `)
	}
	b.WriteString("true")
	return b.String()
}

// Parse reads Query's output for director name.
func Parse(name string, out []byte) (*Director, error) {
	d := &Director{Name: name}
	sc := bufio.NewScanner(bytes.NewReader(out))
	instance := ""
	for sc.Scan() {
		line := sc.Text()
		tag, rest, _ := strings.Cut(line, " ")
		switch tag {
		case "A":
			if a, err := netip.ParseAddr(rest); err == nil {
				d.Addrs = append(d.Addrs, a.Unmap())
			}
		case "H", "K":
			d.Running = rest == "running"
		case "R":
			d.State = rest
		case "N":
			node, st, _ := strings.Cut(rest, " ")
			if d.Peers == nil {
				d.Peers = map[string]string{}
			}
			if node != name {
				d.Peers[node] = st
			}
		case "I":
			instance = rest
		case "S":
			// keepalived's dump has a State line per instance and per
			// interface: the instance's is the first after its name.
			if instance != "" {
				d.State, instance = rest, ""
			}
		case "":
		default:
			return nil, fmt.Errorf("parse %s's HA state: unexpected line %q", name, line)
		}
	}
	return d, nil
}

// Active reports whether the director's HA daemon considers it the one
// that serves: heartbeat holds its resources (all, or the local group),
// keepalived is VRRP master.
func (d *Director) Active() bool {
	return d.State == "all" || d.State == "local" || d.State == "MASTER"
}

// StandbyCommand is what makes the director at the other end of a
// heartbeat pair take over everything (heartbeat's hb_standby, run on the
// director that holds the resources).
func StandbyCommand() []string { return []string{hbStandby, "all"} }

// TakeoverCommand is what makes this director take over everything
// (heartbeat's hb_takeover).
func TakeoverCommand() []string { return []string{hbTakeover, "all"} }
