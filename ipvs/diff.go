package ipvs

import (
	"fmt"
	"slices"
	"strconv"
	"strings"
)

// Drift kinds: how a live table differs from the wanted one.
const (
	DriftMissing   = "missing"   // wanted, not in the live table
	DriftExtra     = "extra"     // in the live table, not wanted
	DriftService   = "service"   // scheduler, flags or persistence differ
	DriftMethod    = "method"    // another forwarding method or tunnel type
	DriftWeight    = "weight"    // another weight above 0
	DriftQuiescent = "quiescent" // weight 0 live where the wanted weight is above 0
)

// Drift is one difference between a wanted and a live table.
type Drift struct {
	Key Key `json:"-"`
	// Service is the key for people (Key.String), and Dest the real
	// server's ADDR:PORT, empty for a drift of the virtual service itself.
	Service string `json:"service"`
	Dest    string `json:"dest,omitempty"`
	Kind    string `json:"kind"`
	Want    string `json:"want,omitempty"`
	Got     string `json:"got,omitempty"`
}

func (d Drift) String() string {
	what := d.Service
	if d.Dest != "" {
		what += " -> " + d.Dest
	}
	switch d.Kind {
	case DriftMissing:
		return what + ": missing from the live table"
	case DriftExtra:
		return what + ": in the live table, not in the spec"
	case DriftQuiescent:
		return what + ": quiescent (weight 0 live, " + d.Want + " in the spec)"
	}
	return fmt.Sprintf("%s: %s %s in the spec, %s live", what, d.Kind, d.Want, d.Got)
}

// Diff lists how live differs from want: virtual services and real servers
// missing or extra, and each property that differs. Order is want's, then
// the extras in live's order. Connection counters are not compared.
func Diff(want, live *Table) []Drift {
	var out []Drift
	for _, w := range want.Services {
		l := live.Service(w.Key)
		if l == nil {
			out = append(out, Drift{Key: w.Key, Service: w.Key.String(), Kind: DriftMissing})
			continue
		}
		if a, b := w.describe(), l.describe(); a != b {
			out = append(out, Drift{Key: w.Key, Service: w.Key.String(), Kind: DriftService, Want: a, Got: b})
		}
		for _, wd := range w.Dests {
			ld := l.Dest(wd.Addr, wd.Port)
			dr := Drift{Key: w.Key, Service: w.Key.String(), Dest: wd.AddrPort()}
			switch {
			case ld == nil:
				dr.Kind = DriftMissing
			case wd.Method != ld.Method || wd.Tunnel != ld.Tunnel:
				dr.Kind, dr.Want, dr.Got = DriftMethod, wd.describeMethod(), ld.describeMethod()
			case ld.Weight == 0 && wd.Weight > 0:
				dr.Kind, dr.Want = DriftQuiescent, strconv.Itoa(wd.Weight)
			case ld.Weight != wd.Weight:
				dr.Kind, dr.Want, dr.Got = DriftWeight, strconv.Itoa(wd.Weight), strconv.Itoa(ld.Weight)
			default:
				continue
			}
			out = append(out, dr)
		}
		for _, ld := range l.Dests {
			if w.Dest(ld.Addr, ld.Port) == nil {
				out = append(out, Drift{Key: w.Key, Service: w.Key.String(), Dest: ld.AddrPort(), Kind: DriftExtra})
			}
		}
	}
	for _, l := range live.Services {
		if want.Service(l.Key) == nil {
			out = append(out, Drift{Key: l.Key, Service: l.Key.String(), Kind: DriftExtra})
		}
	}
	return out
}

// describe is what Diff compares of a virtual service itself.
func (s *Service) describe() string {
	d := "scheduler " + s.Scheduler
	if len(s.SchedFlags) > 0 {
		d += " (" + strings.Join(sortedFlags(s.SchedFlags), ",") + ")"
	}
	if s.Persistent > 0 {
		d += " persistent " + strconv.Itoa(s.Persistent)
		if s.Netmask != "" {
			d += " mask " + s.Netmask
		}
	}
	if s.OnePacket {
		d += " ops"
	}
	return d
}

func (d *Dest) describeMethod() string {
	m := string(d.Method)
	if d.Method == Tunnel && d.Tunnel.Type != "" {
		parts := []string{d.Tunnel.Type}
		if d.Tunnel.Port != 0 {
			parts = append(parts, "port "+strconv.Itoa(int(d.Tunnel.Port)))
		}
		if d.Tunnel.Csum != "" {
			parts = append(parts, d.Tunnel.Csum)
		}
		m += " (" + strings.Join(parts, " ") + ")"
	}
	return m
}

// Equal reports whether two tables hold the same virtual services with the
// same real servers and settings, in any order.
func Equal(a, b *Table) bool { return len(Diff(a, b)) == 0 }

// Keys are the table's virtual-service keys, in the form of its rules and
// sorted: what a daemon that reloads only inside existing virtual services
// must be restarted for when it changes.
func (t *Table) Keys() []string {
	keys := make([]string, len(t.Services))
	for i, s := range t.Services {
		keys[i] = s.Rule()
	}
	slices.Sort(keys)
	return keys
}
