package vmtests

import (
	"context"
	"fmt"
	"net"
	"net/netip"
	"slices"
	"sort"
	"strconv"
	"strings"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/ipvs"
)

// heldAddrs lists a director's addresses, of both families, but lo's:
// both directors keep the VIPs on lo (hot standby); the one holding them
// has them on its public interface.
const heldAddrs = "ip -o addr show | { grep -v '^[0-9]*: lo ' || true; }"

// ActiveDirector returns the director that holds the service's VIP, and
// fails if none or more than one does.
func (c *Cluster) ActiveDirector(ctx context.Context, vip string) (string, error) {
	var holders []string
	for _, d := range c.Spec.HostsByRole(cluster.RoleDirector) {
		out, err := c.Exec(ctx, d.Name, heldAddrs)
		if err != nil {
			return "", err
		}
		if holdsAddr(out, vip) {
			holders = append(holders, d.Name)
		}
	}
	if len(holders) != 1 {
		return "", fmt.Errorf("%d directors hold the VIP %s (%s), want exactly one", len(holders), vip, strings.Join(holders, ", "))
	}
	return holders[0], nil
}

// holdsAddr reports whether `ip -o addr show` output lists addr.
func holdsAddr(ipOut, addr string) bool {
	for _, f := range strings.Fields(ipOut) {
		if strings.HasPrefix(f, addr+"/") {
			return true
		}
	}
	return false
}

// expectedSplit checks a tally of n sequential requests from one client
// against what sv's scheduler and the real servers' weights promise, and
// returns what is wrong ("" when it is right). Only promises that hold for
// every run are checked: rr and wrr split exactly by weight (within 5 %),
// persistence and the hashing schedulers send one client to one server, lc
// and wlc reach every server; the rest only have to answer.
func expectedSplit(spec *cluster.Spec, sv *cluster.Service, t Tally) string {
	if t.Failed > 0 {
		return fmt.Sprintf("%d of %d requests failed", t.Failed, t.N)
	}
	weights := map[string]int{}
	total := 0
	for _, d := range virtualOf(spec, sv).Dests {
		if d.Weight > 0 {
			weights[d.Host] = d.Weight
			total += d.Weight
		}
	}
	for name := range t.By {
		if _, ok := weights[name]; !ok {
			return fmt.Sprintf("%s answered %d requests, but it is not a real server of %s with a weight above 0", name, t.By[name], sv.Name)
		}
	}
	one := func() string {
		if len(t.By) != 1 {
			return fmt.Sprintf("answers came from %d servers (%s), want one: %s sends one client to one server", len(t.By), t, sv.Scheduler)
		}
		return ""
	}
	if sv.Persistence != nil {
		return one()
	}
	switch sv.Scheduler {
	case "rr", "wrr":
		tol := max(1, t.N*5/100)
		for name, w := range weights {
			want := t.N * w / total
			if sv.Scheduler == "rr" {
				want, tol = t.N/len(weights), 1
			}
			if d := t.By[name] - want; d > tol || d < -tol {
				return fmt.Sprintf("%s answered %d of %d, want %d ± %d (%s, weights %v)", name, t.By[name], t.N, want, tol, sv.Scheduler, weights)
			}
		}
	case "mh":
		// mh-port hashes the client's port too: one client's connections
		// spread over every real server.
		if !slices.Contains(sv.SchedulerFlags, "mh-port") {
			return one()
		}
		if t.N >= 10*len(weights) {
			for name := range weights {
				if t.By[name] == 0 {
					return fmt.Sprintf("%s got none of %d requests (mh with mh-port)", name, t.N)
				}
			}
		}
	case "sh", "dh", "lblc", "lblcr":
		return one()
	case "fo":
		if s := one(); s != "" {
			return s
		}
		for name := range t.By {
			for other, w := range weights {
				if w > weights[name] {
					return fmt.Sprintf("fo sent everything to %s (weight %d), but %s has weight %d", name, weights[name], other, w)
				}
			}
		}
	case "lc", "wlc":
		if t.N >= 2*len(weights) {
			for name := range weights {
				if t.By[name] == 0 {
					return fmt.Sprintf("%s got none of %d requests (%s)", name, t.N, sv.Scheduler)
				}
			}
		}
	}
	return ""
}

// CheckRules compares a director's live IPVS table (`ipvsadm -S -n`,
// parsed into the model) with the table lvsforge wants for spec.
func (c *Cluster) CheckRules(ctx context.Context, director string, spec *cluster.Spec) error {
	out, err := c.Exec(ctx, director, "ipvsadm -S -n")
	if err != nil {
		return err
	}
	live, err := ipvs.ParseRules(out)
	if err != nil {
		return fmt.Errorf("read %s's IPVS table: %w", director, err)
	}
	if drift := ipvs.Diff(ipvs.Build(spec), live); len(drift) > 0 {
		var lines []string
		for _, d := range drift {
			lines = append(lines, d.String())
		}
		return fmt.Errorf("the IPVS table on %s is not the spec's:\n\t%s\nipvsadm -S -n:\n\t%s", director,
			strings.Join(lines, "\n\t"), strings.ReplaceAll(strings.TrimSpace(out), "\n", "\n\t"))
	}
	return nil
}

// checkedServices are spec's services the client can send requests to.
func checkedServices(spec *cluster.Spec) []*cluster.Service {
	var out []*cluster.Service
	for i := range spec.Services {
		if kindOf(&spec.Services[i]) != "" {
			out = append(out, &spec.Services[i])
		}
	}
	return out
}

// httpFirst orders svcs HTTP services first, keeping the spec's order
// within each kind: the checks that send the most requests send them to
// the first.
func httpFirst(svcs []*cluster.Service) {
	sort.SliceStable(svcs, func(i, j int) bool { return kindOf(svcs[i]) == kindHTTP && kindOf(svcs[j]) != kindHTTP })
}

// trafficCheck sends n requests to the first HTTP service (or the first
// service), at most 20 to each other one, and checks each split.
func trafficCheck(ctx context.Context, r *Run, n int, src netip.Addr) error {
	svcs := checkedServices(r.Spec)
	httpFirst(svcs)
	for i, sv := range svcs {
		count := n
		if i > 0 {
			count = min(n, 20)
		}
		if err := checkSplit(ctx, r, sv, count, src); err != nil {
			return err
		}
	}
	return nil
}

// checkSplit sends n requests to sv from src (the zero Addr: the next of
// SplitAddrs) and checks that the answers split as sv's scheduler and
// weights promise (expectedSplit); each real server's count is a figure.
func checkSplit(ctx context.Context, r *Run, sv *cluster.Service, n int, src netip.Addr) error {
	if !src.IsValid() {
		src = r.C.splitSource(sv)
	}
	t, err := r.C.Requests(ctx, sv, n, src)
	if err != nil {
		return err
	}
	r.Logf("%s (%s, %s): %s", sv.Name, sv.Scheduler, sv.Forwarding, t)
	for _, name := range sortedNames(t.By) {
		r.Figure(sv.Name+" "+name, float64(t.By[name]), "req")
	}
	if msg := expectedSplit(r.Spec, sv, t); msg != "" {
		r.Errorf("%s through %s: %s\nanswers (client clock %s to %s): %s\n%s", sv.Name, net.JoinHostPort(sv.VIP, strconv.Itoa(sv.Port)), msg, t.From, t.To, t.Sequence(), r.C.lbState(ctx, sv))
	}
	return nil
}

// splitSource is the source address for a split check of sv from no
// address in particular: the next of SplitAddrs, which the client has not
// used for as long as its turn took to come round, so the directors hold
// no connection of it (see SplitAddrs). An IPv6 VIP gets the zero Addr,
// the client's one IPv6 address.
func (c *Cluster) splitSource(sv *cluster.Service) netip.Addr {
	if netip.MustParseAddr(sv.VIP).Is6() {
		return netip.Addr{}
	}
	return SplitAddrs[(c.splits.Add(1)-1)%int64(len(SplitAddrs))]
}

// lbState is what the cluster makes of sv right now, for the message of a
// failed traffic check: on each running director its clock, whether it
// holds the VIP, its IPVS table for sv with weights and counters, and the
// last log lines of the health checker and the HA daemon; on the client,
// its neighbour entry for the VIP.
func (c *Cluster) lbState(ctx context.Context, sv *cluster.Service) string {
	// heartbeat's unit log without its once-a-second noise (the status
	// polls, the notify debug lines): what it did with the resources.
	logs := "journalctl --no-pager -b -t ldirectord | tail -8; journalctl --no-pager -b -u heartbeat | grep -v -e notify_world -e 'rc.d/status' | tail -20"
	switch c.Spec.HA.Backend {
	case cluster.BackendKeepalived:
		logs = "journalctl --no-pager -b -u keepalived | tail -12"
	case cluster.BackendBGP:
		logs = "journalctl --no-pager -b -u keepalived | tail -12; birdc show protocols"
	}
	var b strings.Builder
	for _, d := range c.Spec.HostsByRole(cluster.RoleDirector) {
		if c.Nodes[d.Name].off() {
			continue
		}
		rule := virtualOf(c.Spec, sv).Rule()
		out, err := c.Exec(ctx, d.Name, fmt.Sprintf("date -u '+now %%T.%%N'; ip -o addr show | grep -F ' %s/' || echo 'does not hold %s'; ipvsadm -Ln %s; ipvsadm -Ln --stats %s; %s",
			sv.VIP, sv.VIP, rule, rule, logs))
		if err != nil {
			out += "\n" + err.Error()
		}
		fmt.Fprintf(&b, "--- %s:\n\t%s\n", d.Name, strings.ReplaceAll(strings.TrimSpace(out), "\n", "\n\t"))
	}
	out, err := c.ClientRun(ctx, "ip neigh show "+sv.VIP)
	if err != nil {
		out += "\n" + err.Error()
	}
	fmt.Fprintf(&b, "--- client: neighbour %s", strings.TrimSpace(lastLines(out, 3)))
	if c.Router != nil {
		b.WriteString("\n" + c.routerState(ctx, c.Spec))
	}
	return b.String()
}
