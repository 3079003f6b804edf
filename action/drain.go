package action

import (
	"context"
	"errors"
	"fmt"
	"net/netip"
	"slices"
	"strings"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/ha"
	"github.com/lvsforge/lvsforge/internal/shell"
	"github.com/lvsforge/lvsforge/ipvs"
)

// DrainRequest is what `lvsforge drain` and `undrain` ask for.
type DrainRequest struct {
	// Host is the real server; Services the services it is drained from
	// (every one when empty).
	Host     string
	Services []string
	// Undrain gives the weights back instead.
	Undrain bool
	// Wait, for a drain, waits until the real server has no open
	// connection left for the drained services, at most Timeout.
	Wait    bool
	Timeout time.Duration
}

// ErrDrainTimeout means connections were still active when a drain's wait ended.
var ErrDrainTimeout = errors.New("open connections remain")

// drainPollEvery is how often a drain's wait reads the active director's table.
const drainPollEvery = time.Second

// Drain takes a real server out of service on every director (or gives
// it back, with Undrain): the drain is recorded on the directors and
// rendered into the checkers' configuration, which is reloaded; new
// connections go elsewhere while established ones finish. Every director
// must be reachable: a drain on one only would end when the other takes
// over.
func Drain(req DrainRequest) *Action {
	return &Action{Name: drainVerb(req), Phases: []Phase{
		{Title: "check the request", Do: func(_ context.Context, r *Run) error { return checkDrain(r, req) }},
		{Title: "connect to the directors", Do: func(ctx context.Context, r *Run) error {
			r.Hosts = r.directors()
			r.connect(ctx, r.Hosts)
			return r.failed(r.Hosts)
		}},
		{Title: "read the drains the directors keep", Do: func(ctx context.Context, r *Run) error {
			st := r.push()
			drains, err := r.recordedDrains(ctx, r.Hosts)
			if err != nil {
				return err
			}
			if req.Undrain {
				st.drains = ipvs.Build(r.Spec).Undrain(drains, req.Host, req.Services)
			} else {
				st.drains = ipvs.Merge(drains, ipvs.Drain{Host: req.Host, Services: req.Services})
			}
			return nil
		}},
		{Title: "render the directors' files", Do: renderHosts},
		{Title: "gather facts and plan", Do: planHosts},
		{Title: "apply on every director", Do: func(ctx context.Context, r *Run) error {
			if err := applyHosts(ctx, r); err != nil {
				return err
			}
			return r.failed(r.Hosts)
		}},
		{Title: "wait until the active director's table has its weights", Skip: func(r *Run) string {
			if r.DryRun() {
				return "dry run"
			}
			return ""
		}, Do: func(ctx context.Context, r *Run) error {
			// The checker takes its new configuration when it reloads, a
			// moment after the apply: until then it may still send new
			// connections to a server being drained.
			if req.Undrain {
				return r.waitWeights(ctx, r.Spec.Host(req.Host), r.push().drains)
			}
			return r.waitOut(ctx, ipvs.Drain{Host: req.Host, Services: req.Services})
		}},
		{Title: "wait for its connections to end", Skip: func(r *Run) string {
			switch {
			case req.Undrain || !req.Wait:
				return "no --wait"
			case r.DryRun():
				return "dry run"
			}
			return ""
		}, Do: func(ctx context.Context, r *Run) error { return waitDrained(ctx, r, req) }},
	}}
}

func drainVerb(req DrainRequest) string {
	if req.Undrain {
		return "undrain"
	}
	return "drain"
}

// RunDrain runs Drain(req) on env.
func RunDrain(ctx context.Context, env *Env, req DrainRequest) (*deploy.Report, error) {
	return runReported(ctx, env, Drain(req))
}

func checkDrain(r *Run, req DrainRequest) error {
	if err := oneHolder(r.Spec, drainVerb(req)); err != nil {
		return err
	}
	h := r.Spec.Host(req.Host)
	if h == nil || h.Role != cluster.RoleRealServer {
		var rs []string
		for _, x := range r.Spec.HostsByRole(cluster.RoleRealServer) {
			rs = append(rs, x.Name)
		}
		return fmt.Errorf("%q is not a real server of the spec: want one of %s", req.Host, joinComma(rs))
	}
	var serves []string
	for _, s := range ipvs.Build(r.Spec).ServicesOf(h.Name) {
		serves = append(serves, s.Name)
	}
	for _, s := range req.Services {
		if !slices.Contains(serves, s) {
			return fmt.Errorf("%s serves no service %q: want one of %s", h.Name, s, joinComma(serves))
		}
	}
	return nil
}

// waitDrained polls the active director's connection table until the
// drained real server has no open connection left for the drained
// services.
func waitDrained(ctx context.Context, r *Run, req DrainRequest) error {
	want := ipvs.Build(r.Spec)
	drain := ipvs.Drain{Host: req.Host, Services: req.Services}
	deadline := r.now().Add(req.Timeout)
	start := r.now()
	for {
		active, where, err := openConns(ctx, r, want, drain)
		if err != nil {
			return err
		}
		if active == 0 {
			r.logf("  %s has no open connection left (%.1f s)", req.Host, r.now().Sub(start).Seconds())
			return nil
		}
		if !r.now().Before(deadline) {
			return fmt.Errorf("%s still has %d open connections on %s after %s: %w", req.Host, active, where, req.Timeout, ErrDrainTimeout)
		}
		r.logf("  %s: %d open connections on %s", req.Host, active, where)
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(drainPollEvery):
		}
	}
}

// openConns counts the drained real server's open connections (begun
// and not ended, ipvs.Conn.Open) for the drained services on the director
// that holds the VIPs.
func openConns(ctx context.Context, r *Run, want *ipvs.Table, d ipvs.Drain) (int, string, error) {
	active, err := r.activeDirector(ctx)
	if err != nil {
		return 0, "", err
	}
	out, err := r.session(ctx, active).Query(ctx, connsOf(want, d.Host))
	if err != nil {
		return 0, active.Name, err
	}
	conns, err := ipvs.ParseConns(string(out))
	if err != nil {
		return 0, active.Name, fmt.Errorf("read %s's connections: %w", active.Name, err)
	}
	return want.OpenConns(conns, d), active.Name, nil
}

// connsOf is the command that lists the director's connections to host:
// `ipvsadm -L -n -c` filtered on the director to those whose destination
// is one of host's addresses, so that a busy director's whole table does
// not cross SSH every second of a drain.
func connsOf(want *ipvs.Table, host string) string {
	var prefixes []string
	for _, s := range want.ServicesOf(host) {
		p := strings.TrimSuffix(netip.AddrPortFrom(s.DestOf(host).Addr, 0).String(), "0")
		if !slices.Contains(prefixes, p) {
			prefixes = append(prefixes, p)
		}
	}
	prog := `BEGIN { n = split(a, p, " ") } { for (i = 1; i <= n; i++) if (index($6, p[i]) == 1) { print; next } }`
	return "ipvsadm -L -n -c | awk -v a=" + shell.Quote(strings.Join(prefixes, " ")) + " " + shell.Quote(prog)
}

// activeDirector is the director that holds the first VIP.
func (r *Run) activeDirector(ctx context.Context) (*cluster.Host, error) {
	vip := netip.MustParseAddr(r.Spec.VIPs()[0])
	for _, d := range r.directors() {
		out, err := r.session(ctx, d).Query(ctx, ha.Query(""))
		if err != nil {
			continue
		}
		if hd, err := ha.Parse(d.Name, out); err == nil && hd.Holds(vip) {
			return d, nil
		}
	}
	return nil, fmt.Errorf("no director holds the VIP %s", vip)
}
