package ipvs

import (
	"fmt"
	"slices"
	"strings"
)

// Drain takes a real server out of service on purpose: weight 0 for the
// named services (every service it serves when Services is empty), so new
// connections go elsewhere while its established ones finish. A drain is
// part of the wanted table, so the health checkers, which read their
// weights from the files rendered from it, keep it at 0.
type Drain struct {
	Host     string
	Services []string
}

// All reports whether the drain covers every service of its host.
func (d Drain) All() bool { return len(d.Services) == 0 }

// Covers reports whether the drain takes its host out of service.
func (d Drain) Covers(service string) bool { return d.All() || slices.Contains(d.Services, service) }

// Drained returns a copy of t with the drained real servers at weight 0.
func (t *Table) Drained(drains []Drain) *Table {
	out := *t
	out.Services = make([]Service, len(t.Services))
	for i, s := range t.Services {
		s.Dests = slices.Clone(s.Dests)
		for j := range s.Dests {
			for _, d := range drains {
				if s.Dests[j].Host == d.Host && d.Covers(s.Name) {
					s.Dests[j].Weight = 0
				}
			}
		}
		out.Services[i] = s
	}
	return &out
}

// Merge adds d to drains: a host drained for every service stays so; two
// service lists are joined. The result is sorted by host.
func Merge(drains []Drain, d Drain) []Drain {
	out := slices.Clone(drains)
	i := slices.IndexFunc(out, func(x Drain) bool { return x.Host == d.Host })
	switch {
	case i < 0:
		out = append(out, Drain{Host: d.Host, Services: slices.Clone(d.Services)})
	case out[i].All() || d.All():
		out[i].Services = nil
	default:
		svcs := append(slices.Clone(out[i].Services), d.Services...)
		slices.Sort(svcs)
		out[i].Services = slices.Compact(svcs)
	}
	slices.SortFunc(out, func(a, b Drain) int { return strings.Compare(a.Host, b.Host) })
	return out
}

// Undrain removes services (every one when empty) from host's drain in
// drains. A host drained for all its services and undrained for some stays
// drained for the others t gives it.
func (t *Table) Undrain(drains []Drain, host string, services []string) []Drain {
	var out []Drain
	for _, d := range drains {
		if d.Host != host {
			out = append(out, d)
			continue
		}
		if len(services) == 0 {
			continue
		}
		held := d.Services
		if d.All() {
			held = nil
			for _, s := range t.ServicesOf(host) {
				held = append(held, s.Name)
			}
		}
		var keep []string
		for _, s := range held {
			if !slices.Contains(services, s) {
				keep = append(keep, s)
			}
		}
		if len(keep) > 0 {
			out = append(out, Drain{Host: host, Services: keep})
		}
	}
	return out
}

// DrainsHeader starts the drain record lvsforge keeps on every director.
const DrainsHeader = "# Real servers drained by `lvsforge drain`: weight 0 on every director until `lvsforge undrain`.\n" +
	"# One line per real server: HOST, then the drained services (* for all). Written by lvsforge push.\n"

// FormatDrains is the drain record: DrainsHeader, then one line per drain.
func FormatDrains(drains []Drain) []byte {
	var b strings.Builder
	b.WriteString(DrainsHeader)
	for _, d := range drains {
		svcs := "*"
		if !d.All() {
			svcs = strings.Join(d.Services, ",")
		}
		fmt.Fprintf(&b, "%s %s\n", d.Host, svcs)
	}
	return []byte(b.String())
}

// ParseDrains reads a drain record (FormatDrains).
func ParseDrains(data []byte) ([]Drain, error) {
	var out []Drain
	for i, line := range strings.Split(string(data), "\n") {
		f := strings.Fields(line)
		if len(f) == 0 || strings.HasPrefix(f[0], "#") {
			continue
		}
		if len(f) != 2 {
			return nil, fmt.Errorf("parse drain record line %d %q: want HOST SERVICES", i+1, line)
		}
		d := Drain{Host: f[0]}
		if f[1] != "*" {
			d.Services = strings.Split(f[1], ",")
		}
		out = Merge(out, d)
	}
	return out, nil
}
