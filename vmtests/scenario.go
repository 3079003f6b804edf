package vmtests

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"maps"
	"reflect"
	"sort"
	"strings"
	"text/tabwriter"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
)

// Scenario is one check of a cluster in VMs; each is a Go test of this
// package and a `lvsforge vmtest --scenario` name.
type Scenario struct {
	Name string
	Doc  string
	// Spec derives the spec the scenario runs on from the one it is given
	// (a copy; nil keeps it as it is).
	Spec func(*cluster.Spec) error
	// Standalone scenarios boot their own VMs instead of the cluster (Run.C
	// is nil).
	Standalone bool
	// BootDisks scenarios run on a cluster whose hosts boot through GRUB
	// from disks and may reboot (Options.BootDisks), and only there.
	BootDisks bool
	Run       func(ctx context.Context, r *Run) error
}

// Figure is one measured value of a scenario.
type Figure struct {
	Name  string  `json:"name"`
	Value float64 `json:"value"`
	Unit  string  `json:"unit"`
}

func (f Figure) String() string {
	v := strconv64(f.Value)
	if f.Unit == "" {
		return f.Name + " " + v
	}
	return f.Name + " " + v + " " + f.Unit
}

func strconv64(v float64) string {
	if v == float64(int64(v)) {
		return fmt.Sprintf("%d", int64(v))
	}
	return fmt.Sprintf("%.2f", v)
}

// Result is the outcome of one scenario.
type Result struct {
	Scenario string   `json:"scenario"`
	Pass     bool     `json:"pass"`
	Failures []string `json:"failures,omitempty"`
	Figures  []Figure `json:"figures"`
	Seconds  float64  `json:"seconds"`
}

// Run is what a scenario works with: the running cluster, its own spec,
// and the result it fills in. Errorf records a failed check and lets the
// scenario go on; returning an error ends it.
type Run struct {
	C    *Cluster
	Spec *cluster.Spec
	Opts Options
	res  *Result
	log  io.Writer
}

// Errorf records a failed check.
func (r *Run) Errorf(format string, args ...any) {
	r.res.Failures = append(r.res.Failures, fmt.Sprintf(format, args...))
}

// Figure records a measured value.
func (r *Run) Figure(name string, v float64, unit string) {
	r.res.Figures = append(r.res.Figures, Figure{Name: name, Value: v, Unit: unit})
}

// Logf writes a progress line.
func (r *Run) Logf(format string, args ...any) {
	if r.log != nil {
		fmt.Fprintf(r.log, "%s: %s\n", r.res.Scenario, fmt.Sprintf(format, args...))
	}
}

// Suite runs scenarios on as few clusters as it can: a scenario whose
// spec keeps the hosts, their network and the HA backend of the running
// cluster converges it by a push; any other starts a new cluster.
type Suite struct {
	Base *cluster.Spec
	Opts Options
	c    *Cluster
	// Up is when the first cluster came up; FirstRequest the time from the
	// start of its Up to the first answer through the VIP.
	FirstRequest time.Duration
}

// Close stops the running cluster.
func (s *Suite) Close() error {
	err := s.c.Close()
	s.c = nil
	return err
}

// Scenarios lists every scenario, in the order `--scenario all` runs them:
// those that keep the spec's network and backend first (one cluster, pushed
// to), then the other forwarding methods and backends.
var Scenarios = []*Scenario{
	seedDR, arpScenario, rsScript, statusScenario, drainScenario, wrrScenario, rsDownScenario,
	linksScenario, failoverScenario, tunScenario, connSyncHeartbeatScenario, liveChangeScenario, ipv6Scenario, natScenario,
	keepalivedScenario, trackScenario, gueScenario, liveChangeKeepalivedScenario, connSyncScenario, unicastVRRPScenario, ecmpScenario, kernelFallback, rollingUpgrade,
}

// Lookup returns the named scenarios; "all" is every one.
func Lookup(names []string) ([]*Scenario, error) {
	var out []*Scenario
	for _, n := range names {
		if n == "all" {
			return Scenarios, nil
		}
		found := false
		for _, sc := range Scenarios {
			if sc.Name == n {
				out, found = append(out, sc), true
			}
		}
		if !found {
			var all []string
			for _, sc := range Scenarios {
				all = append(all, sc.Name)
			}
			return nil, fmt.Errorf("no scenario %q: want one of %s, or all", n, strings.Join(all, " "))
		}
	}
	return out, nil
}

// Run runs one scenario and returns its result; the error is for a
// scenario that could not run at all (the cluster did not come up).
func (s *Suite) Run(ctx context.Context, sc *Scenario) (*Result, error) {
	res := &Result{Scenario: sc.Name}
	start := time.Now()
	defer func() { res.Seconds = time.Since(start).Seconds() }()
	spec, err := deriveSpec(s.Base, sc.Spec)
	if err != nil {
		return res, fmt.Errorf("scenario %s: %w", sc.Name, err)
	}
	if s.c != nil && !s.c.runs(sc, spec) {
		s.c.Close()
		s.c = nil
	}
	if sc.Standalone {
		r := &Run{Spec: spec, Opts: s.Opts, res: res, log: s.Opts.Log}
		if err := sc.Run(ctx, r); err != nil {
			r.Errorf("%v", err)
		}
		res.Pass = len(res.Failures) == 0
		return res, nil
	}
	first := s.c == nil
	if first {
		s.Opts.logf("%s: starting the cluster's VMs", sc.Name)
		o := s.Opts
		o.BootDisks = sc.BootDisks
		if s.c, err = Up(ctx, spec, o); err != nil {
			return res, fmt.Errorf("scenario %s: %w", sc.Name, err)
		}
	}
	r := &Run{C: s.c, Spec: spec, Opts: s.Opts, res: res, log: s.Opts.Log}
	served, err := s.c.Converge(ctx, spec)
	if err == nil && first {
		d := served.Sub(s.c.Started)
		if s.FirstRequest == 0 {
			s.FirstRequest = d
		}
		for _, phase := range []string{"build", "image", "boot", "push"} {
			r.Figure(phase, s.c.Timings[phase].Seconds(), "s")
		}
		r.Figure("first request after start", d.Seconds(), "s")
	}
	if err == nil {
		err = sc.Run(ctx, r)
	}
	if err != nil {
		r.Errorf("%v", err)
	}
	res.Pass = len(res.Failures) == 0
	if !res.Pass {
		res.Failures = append(res.Failures, "consoles:\n"+s.c.ConsoleTails(15))
		// The cluster's state is unknown after a failure: the next
		// scenario starts a fresh one.
		s.c.Close()
		s.c = nil
	}
	return res, nil
}

// The least health-check timeout and interval, in seconds, of the specs
// the scenarios run. A check that times out takes a healthy real server out
// of the table, and the scenarios count every request that then fails or
// lands elsewhere: with the seed's 3 s, a cold CI run failed when ldirectord
// quiesced rs2 for one check and restored it moments later. A check takes
// 0.03 to 0.1 s on a running guest (an HTTP GET from the active director,
// measured through realserver-down; 1.9 s the first, loading Perl modules);
// a 3 s one is a guest whose emulated CPU did not run: the guests' clock
// watchdog logged gaps of up to 4.7 s in a cold CI run, where five VMs share
// two cores. Ten seconds is twice that. A real failure (a stopped service
// refuses at once) is not slowed by a longer timeout; detection and recovery
// wait for the interval, which stays just above the timeout, as validation
// wants.
const (
	vmCheckTimeout  = 10
	vmCheckInterval = 12
)

// deriveSpec copies base (deep enough for the variants to edit hosts and
// services), applies f and gives every check at least the VMs' timeout and
// interval (the spec's own where they are longer).
func deriveSpec(base *cluster.Spec, f func(*cluster.Spec) error) (*cluster.Spec, error) {
	s := cloneSpec(base)
	if f != nil {
		if err := f(s); err != nil {
			return nil, err
		}
	}
	for i := range s.Services {
		c := &s.Services[i].Check
		c.Timeout = max(c.Timeout, vmCheckTimeout)
		c.Interval = max(c.Interval, vmCheckInterval, c.Timeout+1)
	}
	if err := cluster.Validate(s); err != nil {
		return nil, fmt.Errorf("derive the scenario's spec: %w", err)
	}
	return s, nil
}

// cloneSpec copies base deep enough for a variant to edit its hosts,
// services and heartbeat media.
func cloneSpec(base *cluster.Spec) *cluster.Spec {
	s := *base
	s.Services = append([]cluster.Service(nil), base.Services...)
	s.Hosts = make([]cluster.Host, len(base.Hosts))
	for i, h := range base.Hosts {
		s.Hosts[i] = h
		if h.Weights != nil {
			s.Hosts[i].Weights = maps.Clone(h.Weights)
		}
	}
	s.HA.Media = append([]cluster.Medium(nil), base.HA.Media...)
	return &s
}

// BootDiskSpec is s for a cluster on boot disks (Options.BootDisks), as
// `lvsforge vm up --boot-disks` starts it and its --vm commands reach it:
// lvsforge's GRUB entries name the VMs' root disk and serial console, and
// no heartbeat medium is a serial cable (the console has the port).
func BootDiskSpec(s *cluster.Spec) (*cluster.Spec, error) {
	out := cloneSpec(s)
	if err := bootDiskSpec(out); err != nil {
		return nil, err
	}
	if err := cluster.Validate(out); err != nil {
		return nil, fmt.Errorf("boot the spec from disks: %w", err)
	}
	return out, nil
}

// runs says whether scenario sc, with its derived spec, runs on the
// running cluster c (nil: none) after a push, rather than on a new one.
func (c *Cluster) runs(sc *Scenario, spec *cluster.Spec) bool {
	return c != nil && !sc.Standalone && sc.BootDisks == c.opts.BootDisks && c.compatible(spec)
}

// compatible says whether spec can run on c by a push: same hosts with the
// same addresses, interfaces, gateways and init systems (each VM booted the
// image of its host's), same network plan, same HA backend and heartbeat
// links.
func (c *Cluster) compatible(spec *cluster.Spec) bool {
	if len(spec.Hosts) != len(c.Spec.Hosts) || spec.HA.Backend != c.Spec.HA.Backend {
		return false
	}
	// A live pair cannot be moved between multicast and unicast VRRP one
	// director at a time: each ignores the other's adverts, both become
	// master, and the rolling push stops there (as it should). A scenario
	// of the other kind boots its own pair.
	if spec.HA.Keepalived.Unicast != c.Spec.HA.Keepalived.Unicast {
		return false
	}
	for i, h := range spec.Hosts {
		o := c.Spec.Hosts[i]
		if h.Name != o.Name || h.Role != o.Role || h.Address != o.Address || h.Interfaces != o.Interfaces || h.Gateway != o.Gateway ||
			guestInit(&h) != guestInit(&o) {
			return false
		}
	}
	// IPv6 host addresses and the client's legs for them are set on a
	// running cluster (setIPv6): the rest of the plan must be the same.
	plan, err := planNetwork(spec)
	if err != nil {
		return false
	}
	a, b := *plan, *c.plan
	a.Legs6, b.Legs6 = nil, nil
	if !reflect.DeepEqual(a, b) {
		return false
	}
	ns := (&Cluster{Spec: spec}).serialDevice()
	return ns == c.serialDevice() && c.needsHBLink() == (&Cluster{Spec: spec}).needsHBLink()
}

// ServiceTimeout bounds the wait for the first answer through a VIP after
// a push: heartbeat's initdead when the peer is not heard yet, plus
// ldirectord's first checks, with room for a loaded machine.
func ServiceTimeout(s *cluster.Spec) time.Duration {
	d := 90 * time.Second
	if s.HA.Backend == cluster.BackendHeartbeat {
		d += time.Duration(s.HA.Initdead) + time.Duration(s.HA.Deadtime)
	}
	return d
}

// Converge brings the cluster to spec: the real servers' test services and
// `lvsforge push` of spec, side by side (the health checks start at the end
// of the directors' push, by when the services answer), then it waits
// until every checked service answers through its VIP, the directors'
// pair has settled and their tables are the rendered one. It returns when
// the first service first answered: that one is asked from the start, since
// a cluster serves as soon as a director holds the VIP and the table, which
// comes before the push has started ldirectord (seconds of Perl on an
// emulated CPU).
func (c *Cluster) Converge(ctx context.Context, spec *cluster.Spec) (time.Time, error) {
	plan, err := planNetwork(spec)
	if err != nil {
		return time.Time{}, err
	}
	if err := c.setIPv6(ctx, spec, plan); err != nil {
		return time.Time{}, err
	}
	svcs := checkedServices(spec)
	t := time.Now()
	wctx, cancel := context.WithCancel(ctx)
	defer cancel()
	type answer struct {
		at  time.Time
		err error
	}
	firstAnswer := make(chan answer, 1)
	if len(svcs) > 0 {
		go func() {
			at, err := c.WaitServing(wctx, svcs[0], ServiceTimeout(spec)+convergePushLimit)
			firstAnswer <- answer{at, err}
		}()
	}
	services := make(chan error, 1)
	go func() { services <- c.StartServices(ctx, spec) }()
	_, perr := c.Push(ctx, spec)
	if err := errors.Join(<-services, perr); err != nil {
		return time.Time{}, err
	}
	c.Timings["push"] = time.Since(t)
	c.opts.logf("converge: test services started and spec pushed in %.1f s", time.Since(t).Seconds())
	c.Spec = spec
	// A service that does not answer is the directors' story: which holds
	// the VIP, their tables and the HA daemons' and checker's last words,
	// asked before a failed scenario takes the VMs (and their volatile
	// journals) down.
	var first time.Time
	if len(svcs) > 0 {
		a := <-firstAnswer
		if a.err != nil {
			return time.Time{}, fmt.Errorf("%w\n%s", a.err, c.lbState(ctx, svcs[0]))
		}
		first = a.at
	}
	for _, sv := range svcs[min(1, len(svcs)):] {
		if _, err := c.WaitServing(ctx, sv, ServiceTimeout(spec)); err != nil {
			return time.Time{}, fmt.Errorf("%w\n%s", err, c.lbState(ctx, sv))
		}
	}
	// A push that restarted heartbeat moves the VIPs over and back.
	if err := c.waitSettled(ctx, spec, takeoverLimit(spec)+time.Duration(spec.HA.Initdead)); err != nil {
		return time.Time{}, err
	}
	// A change inside a virtual service reaches the kernel when
	// ldirectord (or keepalived) has reloaded and checked: wait for the
	// directors' tables to be the rendered one before anything is
	// measured.
	return first, c.waitRules(ctx, spec, checkLimit(spec))
}

// convergePushLimit is the room a push has within Converge's wait for the
// first answer, which starts with the push.
const convergePushLimit = 3 * time.Minute

// waitRules polls until every running director's IPVS table equals the
// rules rendered for spec (the standby keeps one too).
func (c *Cluster) waitRules(ctx context.Context, spec *cluster.Spec, limit time.Duration) error {
	var err error
	if _, ok := poll(ctx, limit, time.Second, func(ctx context.Context) bool {
		// Every bgp director holds the VIPs (on lo).
		if spec.HA.Backend != cluster.BackendBGP {
			if _, err = c.ActiveDirector(ctx, spec.Services[0].VIP); err != nil {
				return false
			}
		}
		for _, d := range spec.HostsByRole(cluster.RoleDirector) {
			if c.Nodes[d.Name].off() {
				continue
			}
			if err = c.CheckRules(ctx, d.Name, spec); err != nil {
				return false
			}
		}
		return true
	}); !ok {
		return fmt.Errorf("the IPVS table did not become the rendered one within %s: %w", limit, err)
	}
	return nil
}

// RunAll runs the scenarios in order on spec and returns every result.
func RunAll(ctx context.Context, spec *cluster.Spec, scenarios []*Scenario, o Options) ([]*Result, *Suite, error) {
	s := &Suite{Base: spec, Opts: o}
	defer s.Close()
	var out []*Result
	for _, sc := range scenarios {
		res, err := s.Run(ctx, sc)
		if err != nil {
			res.Failures = append(res.Failures, err.Error())
		}
		out = append(out, res)
		if ctx.Err() != nil {
			return out, s, ctx.Err()
		}
	}
	return out, s, nil
}

// WriteTable prints the results as a table: scenario, result, seconds, figures.
func WriteTable(w io.Writer, results []*Result) error {
	tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "SCENARIO\tRESULT\tTIME\tFIGURES")
	for _, r := range results {
		state := "pass"
		if !r.Pass {
			state = "FAIL"
		}
		var figs []string
		for _, f := range r.Figures {
			figs = append(figs, f.String())
		}
		fmt.Fprintf(tw, "%s\t%s\t%.0fs\t%s\n", r.Scenario, state, r.Seconds, strings.Join(figs, "; "))
	}
	if err := tw.Flush(); err != nil {
		return err
	}
	for _, r := range results {
		for _, f := range r.Failures {
			fmt.Fprintf(w, "\n%s: %s\n", r.Scenario, f)
		}
	}
	return nil
}

// WriteJSON prints the results as one JSON document.
func WriteJSON(w io.Writer, results []*Result) error {
	enc := json.NewEncoder(w)
	enc.SetIndent("", "  ")
	return enc.Encode(map[string]any{"results": results})
}

// Failed returns the names of the failed scenarios.
func Failed(results []*Result) []string {
	var out []string
	for _, r := range results {
		if !r.Pass {
			out = append(out, r.Scenario)
		}
	}
	return out
}

// ErrFailed is returned when a scenario failed.
var ErrFailed = errors.New("vm scenarios failed")

func sortedNames(m map[string]int) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
