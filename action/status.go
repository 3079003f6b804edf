package action

import (
	"context"
	"fmt"
	"io"
	"net/netip"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/ha"
	"github.com/lvsforge/lvsforge/ipvs"
)

// Status is what `lvsforge status` reports of a running cluster.
type Status struct {
	Cluster string `json:"cluster"`
	Backend string `json:"backend"`
	// VIPs says, for each VIP, which directors hold it; exactly one must.
	VIPs []VIPStatus `json:"vips"`
	// Directors are the HA daemons' state and the sync daemons'.
	Directors []DirectorStatus `json:"directors"`
	// Active is the director that holds the VIPs, whose table Services shows.
	Active   string          `json:"active,omitempty"`
	Services []ServiceStatus `json:"services"`
	// Drift is how the active director's live table differs from the
	// spec's, drains included.
	Drift   []ipvs.Drift  `json:"drift"`
	Drained []DrainStatus `json:"drained"`
	Kernels []HostKernels `json:"kernels"`
	// Problems are what makes the status fail (exit 1): no VIP holder or
	// two, drift, a host unreachable, an HA daemon down.
	Problems []string `json:"problems"`
}

// VIPStatus is one floating address and the directors holding it.
type VIPStatus struct {
	VIP     string   `json:"vip"`
	Holders []string `json:"holders"`
}

// DirectorStatus is one director's HA state.
type DirectorStatus struct {
	Name  string `json:"name"`
	Error string `json:"error,omitempty"`
	*ha.Director
	// Sync is the IPVS connection sync daemons it runs (ipvsadm -L --daemon).
	Sync []string `json:"sync"`
}

// ServiceStatus is one virtual service of the active director's table.
type ServiceStatus struct {
	Service   string       `json:"service"`
	Name      string       `json:"name,omitempty"`
	Scheduler string       `json:"scheduler"`
	Dests     []DestStatus `json:"realServers"`
}

// DestStatus is one real server of a live virtual service.
type DestStatus struct {
	Host       string `json:"host,omitempty"`
	Addr       string `json:"addr"`
	Weight     int    `json:"weight"`
	WantWeight int    `json:"specWeight"`
	Active     int    `json:"activeConns"`
	Inactive   int    `json:"inactiveConns"`
	// Health is what the checker's weight says: up, down (quiescent at 0
	// or removed), drained (weight 0 on purpose).
	Health string `json:"health"`
}

// DrainStatus is a drained real server.
type DrainStatus struct {
	Host     string   `json:"host"`
	Services []string `json:"services"`
}

// HostKernels is a host's kernels and the one its role should run.
type HostKernels struct {
	*deploy.KernelStatus
	// Spec is the release the spec's role kernel has.
	Spec string `json:"spec"`
}

// OK reports whether nothing is wrong.
func (s *Status) OK() bool { return len(s.Problems) == 0 }

func (s *Status) problem(format string, args ...any) {
	s.Problems = append(s.Problems, fmt.Sprintf(format, args...))
}

// ReadStatus reads the cluster's state from every host (read-only).
func ReadStatus(ctx context.Context, env *Env) (*Status, error) {
	if err := oneHolder(env.Spec, "status"); err != nil {
		return nil, err
	}
	r, err := NewRun(env)
	if err != nil {
		return nil, err
	}
	st := &Status{Cluster: r.Spec.Metadata.Name, Backend: r.Spec.HA.Backend, Services: []ServiceStatus{}, Drift: []ipvs.Drift{}, Drained: []DrainStatus{}, Problems: []string{}}
	a := &Action{Name: "status", Phases: []Phase{
		{Title: "connect", Do: func(ctx context.Context, r *Run) error {
			r.connect(ctx, r.Spec.HostsByRole(cluster.RoleDirector))
			r.connect(ctx, r.Hosts)
			return nil
		}},
		{Title: "read the directors", Do: func(ctx context.Context, r *Run) error { return st.readDirectors(ctx, r) }},
		{Title: "read the kernels", Do: func(ctx context.Context, r *Run) error {
			st.Kernels = make([]HostKernels, len(r.Hosts))
			deploy.ForEach(len(r.Hosts), r.batch.Options().Concurrency, func(i int) {
				h := r.Hosts[i]
				st.Kernels[i] = HostKernels{KernelStatus: r.session(ctx, h).KernelStatus(ctx), Spec: r.Spec.Release(h.Role)}
			})
			for _, k := range st.Kernels {
				if k.Error != "" {
					st.problem("%s: unreachable: %s", k.Host, k.Error)
				}
			}
			return nil
		}},
	}}
	return st, a.Do(ctx, r)
}

// readDirectors reads each director's HA daemon, addresses, sync daemons
// and drains, then the active director's table, and compares.
func (st *Status) readDirectors(ctx context.Context, r *Run) error {
	directors := r.directors()
	st.Directors = make([]DirectorStatus, len(directors))
	deploy.ForEach(len(directors), r.batch.Options().Concurrency, func(i int) {
		d := directors[i]
		ds := DirectorStatus{Name: d.Name, Sync: []string{}}
		s := r.session(ctx, d)
		out, err := s.Query(ctx, ha.Query(r.Spec.HA.Backend))
		if err == nil {
			ds.Director, err = ha.Parse(d.Name, out)
		}
		if err == nil {
			var sync []byte
			if sync, err = s.Query(ctx, "ipvsadm -L -n --daemon 2>/dev/null; true"); err == nil {
				for _, l := range strings.Split(strings.TrimSpace(string(sync)), "\n") {
					if l != "" {
						ds.Sync = append(ds.Sync, l)
					}
				}
			}
		}
		if err != nil {
			ds.Error = err.Error()
		}
		st.Directors[i] = ds
	})
	for _, ds := range st.Directors {
		switch {
		case ds.Error != "":
			st.problem("director %s: unreachable: %s", ds.Name, ds.Error)
		case !ds.Running:
			st.problem("director %s: %s is not running", ds.Name, r.Spec.HA.Backend)
		}
	}
	// The VIPs' holders, from the addresses each director has.
	for _, v := range r.Spec.VIPs() {
		vs := VIPStatus{VIP: v, Holders: []string{}}
		addr := netip.MustParseAddr(v)
		for _, ds := range st.Directors {
			if ds.Director != nil && ds.Holds(addr) {
				vs.Holders = append(vs.Holders, ds.Name)
			}
		}
		switch len(vs.Holders) {
		case 0:
			st.problem("VIP %s: no director holds it", v)
		case 1:
			if st.Active == "" {
				st.Active = vs.Holders[0]
			} else if st.Active != vs.Holders[0] {
				st.problem("VIP %s is on %s, the others on %s", v, vs.Holders[0], st.Active)
			}
		default:
			st.problem("VIP %s: held by %d directors at once (%s)", v, len(vs.Holders), joinComma(vs.Holders))
		}
		st.VIPs = append(st.VIPs, vs)
	}
	drains, err := r.recordedDrains(ctx, directors)
	if err != nil {
		return err
	}
	for _, d := range drains {
		ds := DrainStatus{Host: d.Host, Services: d.Services}
		if d.All() {
			ds.Services = []string{"*"}
		}
		st.Drained = append(st.Drained, ds)
	}
	if st.Active == "" {
		return nil
	}
	out, err := r.session(ctx, r.Spec.Host(st.Active)).Query(ctx, "ipvsadm -L -n")
	if err != nil {
		st.problem("director %s: read the IPVS table: %v", st.Active, err)
		return nil
	}
	live, err := ipvs.ParseList(string(out))
	if err != nil {
		st.problem("director %s: %v", st.Active, err)
		return nil
	}
	want := ipvs.Build(r.Spec).Drained(drains)
	st.compare(want, live)
	return nil
}

// compare fills Services from the live table, named and judged by the
// wanted one, and Drift.
func (st *Status) compare(want, live *ipvs.Table) {
	for _, l := range live.Services {
		ss := ServiceStatus{Service: l.Key.String(), Scheduler: l.Scheduler}
		w := want.Service(l.Key)
		if w != nil {
			ss.Name = w.Name
		}
		for _, d := range l.Dests {
			ds := DestStatus{Addr: d.AddrPort(), Weight: d.Weight, Active: d.ActiveConns, Inactive: d.InactConns, Health: "up"}
			if w != nil {
				if wd := w.Dest(d.Addr, d.Port); wd != nil {
					ds.Host, ds.WantWeight = wd.Host, wd.Weight
				}
			}
			switch {
			case d.Weight == 0 && ds.WantWeight == 0 && ds.Host != "":
				ds.Health = "drained"
			case d.Weight == 0:
				ds.Health = "down"
			}
			ss.Dests = append(ss.Dests, ds)
		}
		if w != nil {
			for _, wd := range w.Dests {
				if l.Dest(wd.Addr, wd.Port) == nil {
					ss.Dests = append(ss.Dests, DestStatus{Host: wd.Host, Addr: wd.AddrPort(), WantWeight: wd.Weight, Health: "down"})
				}
			}
		}
		st.Services = append(st.Services, ss)
	}
	st.Drift = append(st.Drift, ipvs.Diff(want, live)...)
	for _, d := range st.Drift {
		st.problem("drift on %s: %s", st.Active, d)
	}
}

// WriteTable prints the status for people.
func (st *Status) WriteTable(w io.Writer) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintf(tw, "cluster %s (%s)\n\n", st.Cluster, st.Backend)
	fmt.Fprintln(tw, "VIP\tHELD BY")
	for _, v := range st.VIPs {
		fmt.Fprintf(tw, "%s\t%s\n", v.VIP, orNone(joinComma(v.Holders)))
	}
	fmt.Fprintln(tw, "\nDIRECTOR\tHA\tSTATE\tPEERS\tSYNC")
	for _, d := range st.Directors {
		if d.Director == nil {
			fmt.Fprintf(tw, "%s\tunreachable\t\t\t\n", d.Name)
			continue
		}
		running := "stopped"
		if d.Running {
			running = "running"
		}
		var peers []string
		for n, s := range d.Peers {
			peers = append(peers, n+" "+s)
		}
		slices.Sort(peers)
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", d.Name, running, orNone(d.State), orNone(joinComma(peers)), orNone(strings.Join(d.Sync, "; ")))
	}
	if st.Active != "" {
		fmt.Fprintf(tw, "\nIPVS TABLE ON %s\tWEIGHT\tSPEC\tACTIVE\tINACTIVE\tHEALTH\n", st.Active)
		for _, s := range st.Services {
			name := s.Service
			if s.Name != "" {
				name += " (" + s.Name + ")"
			}
			fmt.Fprintf(tw, "%s %s\t\t\t\t\t\n", name, s.Scheduler)
			for _, d := range s.Dests {
				fmt.Fprintf(tw, "  -> %s %s\t%d\t%d\t%d\t%d\t%s\n", d.Addr, d.Host, d.Weight, d.WantWeight, d.Active, d.Inactive, d.Health)
			}
		}
	}
	fmt.Fprintln(tw, "\nHOST\tRUNNING\tCONFIRMED (DEFAULT)\tNEXT BOOT\tSPEC")
	for _, k := range st.Kernels {
		if k.Error != "" {
			fmt.Fprintf(tw, "%s\tunreachable\t\t\t%s\n", k.Host, k.Spec)
			continue
		}
		fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", k.Host, k.Running, orNone(k.Default), orNone(k.Next), k.Spec)
	}
	if err := tw.Flush(); err != nil {
		return fmt.Errorf("write status: %w", err)
	}
	if len(st.Drained) > 0 {
		fmt.Fprintln(w, "\ndrained:")
		for _, d := range st.Drained {
			fmt.Fprintf(w, "  %s: %s\n", d.Host, strings.Join(d.Services, ", "))
		}
	}
	if len(st.Problems) == 0 {
		fmt.Fprintln(w, "\nOK")
		return nil
	}
	fmt.Fprintf(w, "\n%d %s:\n", len(st.Problems), plural(len(st.Problems), "problem", "problems"))
	for _, p := range st.Problems {
		fmt.Fprintf(w, "  %s\n", p)
	}
	return nil
}

func orNone(s string) string {
	if s == "" {
		return "-"
	}
	return s
}

func plural(n int, one, many string) string {
	if n == 1 {
		return one
	}
	return many
}
