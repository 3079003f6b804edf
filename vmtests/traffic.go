package vmtests

import (
	"context"
	_ "embed"
	"fmt"
	"net"
	"net/netip"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/internal/shell"
)

// testSvcScript is lvsforge-testsvc, the real servers' stand-in
// applications (see its header).
//
//go:embed testsvc.sh
var testSvcScript []byte

// Service kinds of the test applications.
const (
	kindHTTP = "http"
	kindTCP  = "tcp"
	// kindEcho echoes every line: the long-lived connections of the
	// drain and failover scenarios.
	kindEcho = "echo"
)

// kindOf says which test application serves sv: busybox httpd where the
// health check speaks HTTP, a TCP banner otherwise. UDP services are not
// served (no check of them is made).
func kindOf(sv *cluster.Service) string {
	if sv.Protocol == "udp" {
		return ""
	}
	if sv.Check.Type == "http" || sv.Check.Type == "negotiate" && (sv.Check.Service == "" || sv.Check.Service == "http") {
		return kindHTTP
	}
	return kindTCP
}

// StartServices starts the test applications of spec on every real
// server: each service's real port, and its check port if that differs.
func (c *Cluster) StartServices(ctx context.Context, spec *cluster.Spec) error {
	errs := make(chan error, len(spec.Hosts))
	rss := spec.HostsByRole(cluster.RoleRealServer)
	for _, h := range rss {
		go func() { errs <- c.startServicesOn(ctx, spec, h) }()
	}
	var all []error
	for range rss {
		if err := <-errs; err != nil {
			all = append(all, err)
		}
	}
	if len(all) > 0 {
		return fmt.Errorf("start test services: %v", all)
	}
	return nil
}

// startServicesOn starts the test applications of spec's services on real
// server h.
func (c *Cluster) startServicesOn(ctx context.Context, spec *cluster.Spec, h *cluster.Host) error {
	var cmds []string
	seen := map[string]bool{}
	for _, sv := range servicesOf(spec, h) {
		for _, cmd := range startCmds(sv) {
			if !seen[cmd] {
				seen[cmd] = true
				cmds = append(cmds, cmd)
			}
		}
	}
	if len(cmds) == 0 {
		return nil
	}
	cmd := strings.Join(cmds, " && ")
	if c.opts.BootDisks {
		cmd = bootServicesCmd(cmds) + " && " + cmd
	}
	_, err := c.Exec(ctx, h.Name, cmd)
	return err
}

// bootServicesUnit starts a real server's test applications again at each
// boot, as a real server starts its own, on a cluster whose hosts reboot
// (BootDisks): after the hostname is set, which they answer with.
const bootServicesUnit = `[Unit]
Description=lvsforge VM test applications, started again at boot
After=lvsforge-cmdline.service

[Service]
Type=oneshot
RemainAfterExit=yes
TimeoutStartSec=5min
ExecStart=/bin/sh -e /etc/lvsforge-vmtest/services

[Install]
WantedBy=multi-user.target
`

// bootServicesCmd is the guest command that keeps cmds (startCmds) for
// bootServicesUnit and enables it.
func bootServicesCmd(cmds []string) string {
	quoted := make([]string, len(cmds))
	for i, c := range cmds {
		quoted[i] = shell.Quote(c)
	}
	return fmt.Sprintf("mkdir -p /etc/lvsforge-vmtest && printf '%%s\\n' %s >/etc/lvsforge-vmtest/services && "+
		"printf '%%s' %s >/etc/systemd/system/lvsforge-vmtest-services.service && systemctl enable --quiet lvsforge-vmtest-services.service",
		strings.Join(quoted, " "), shell.Quote(bootServicesUnit))
}

// startCmds are the guest commands that start sv's test application on a
// real server: its real port, and its check port if that differs.
func startCmds(sv *cluster.Service) []string {
	kind := kindOf(sv)
	if kind == "" {
		return nil
	}
	ports := []int{sv.RealPort}
	if sv.Check.Port != 0 && sv.Check.Port != sv.RealPort {
		ports = append(ports, sv.Check.Port)
	}
	var cmds []string
	for _, p := range ports {
		cmd := fmt.Sprintf("%s start %s %d", guestTestSvc, kind, p)
		if kind == kindHTTP && sv.Check.Request != "" {
			cmd += " " + shell.Quote("/"+strings.TrimPrefix(sv.Check.Request, "/")) + " " + shell.Quote(sv.Check.Receive)
		}
		cmds = append(cmds, cmd)
	}
	return cmds
}

// Tally counts which real server answered each request. Seq is every
// answer in order, a failure as "!" and the request's exit status.
type Tally struct {
	N      int
	By     map[string]int
	Failed int
	Seq    []string
	// From and To are the client's clock when the requests began and
	// ended, to set beside the directors' logs when a check fails.
	From, To string
}

func (t Tally) String() string {
	var names []string
	for n := range t.By {
		names = append(names, n)
	}
	sort.Strings(names)
	var parts []string
	for _, n := range names {
		parts = append(parts, fmt.Sprintf("%s %d", n, t.By[n]))
	}
	if t.Failed > 0 {
		parts = append(parts, fmt.Sprintf("failed %d", t.Failed))
	}
	return strings.Join(parts, ", ")
}

// Sequence is the answers in order, for a failure message: which request
// failed, how, and what came before and after it.
func (t Tally) Sequence() string { return strings.Join(t.Seq, " ") }

// requestCmd is the client's shell command for one request to sv, printing
// the answering host's name, or nothing when the request fails.
func requestCmd(sv *cluster.Service, timeout int) string {
	addr := net.JoinHostPort(sv.VIP, strconv.Itoa(sv.Port)) // [2001:db8:7::110]:80
	if kindOf(sv) == kindHTTP {
		// Not wget -T: Debian 12's busybox-static wget segfaults with it.
		return fmt.Sprintf("timeout %d wget -q -O - http://%s/ 2>/dev/null", timeout, addr)
	}
	return fmt.Sprintf("nc -w %d %s %d </dev/null 2>/dev/null", timeout, sv.VIP, sv.Port)
}

// requestTimeout bounds, in seconds, each request Requests sends.
const requestTimeout = 10

// Requests sends n requests to sv from the client, one after the other,
// from src (the zero Addr: the client's own address), and tallies the
// answers.
func (c *Cluster) Requests(ctx context.Context, sv *cluster.Service, n int, src netip.Addr) (Tally, error) {
	if kindOf(sv) == "" {
		return Tally{}, fmt.Errorf("requests to %s: %s services are not checked", sv.Name, sv.Protocol)
	}
	if src.IsValid() {
		if netip.MustParseAddr(sv.VIP).Is6() {
			return Tally{}, fmt.Errorf("requests to %s: the client has one IPv6 source address", sv.Name)
		}
		if _, err := c.ClientRun(ctx, c.plan.vipRoute(sv.VIP, "eth0", src)); err != nil {
			return Tally{}, err
		}
		defer c.ClientRun(context.WithoutCancel(ctx), c.plan.vipRoute(sv.VIP, "eth0", c.plan.Client))
	}
	// One line per request, "R:" then the answer: a failed request is "!"
	// and its exit status (143: timed out), not a missing line. Each has
	// requestTimeout: a request that fails is refused or reset at once; one
	// that is only slow (three emulated CPUs on its way, shared with the
	// other VMs) must not count as failed.
	cmd := fmt.Sprintf(`date -u '+T:%%T.%%N'; i=0; while [ $i -lt %d ]; do a=$(%s); echo "R:${a:-!$?}"; i=$((i+1)); done; date -u '+T:%%T.%%N'`, n, requestCmd(sv, requestTimeout))
	out, err := c.ClientRun(ctx, cmd)
	if err != nil {
		return Tally{}, err
	}
	t := Tally{By: map[string]int{}}
	for _, l := range strings.Split(out, "\n") {
		l = strings.TrimSpace(l)
		if at, ok := strings.CutPrefix(l, "T:"); ok {
			if t.From == "" {
				t.From = at
			} else {
				t.To = at
			}
			continue
		}
		if !strings.HasPrefix(l, "R:") {
			continue
		}
		t.N++
		name := strings.Fields(strings.TrimPrefix(l, "R:"))
		if len(name) == 0 || strings.HasPrefix(name[0], "!") {
			t.Failed++
			t.Seq = append(t.Seq, strings.Join(name, ""))
			continue
		}
		t.By[name[0]]++
		t.Seq = append(t.Seq, name[0])
	}
	if t.N != n {
		return t, fmt.Errorf("requests to %s: %d answers for %d requests:\n%s", sv.Name, t.N, n, lastLines(out, 20))
	}
	return t, nil
}

// WaitServing polls sv through the VIP until a request succeeds, and
// returns when it did.
func (c *Cluster) WaitServing(ctx context.Context, sv *cluster.Service, limit time.Duration) (time.Time, error) {
	if _, ok := poll(ctx, limit, 500*time.Millisecond, func(ctx context.Context) bool {
		out, err := c.ClientRun(ctx, requestCmd(sv, 2)+" || true")
		return err == nil && strings.TrimSpace(lastLines(out, 1)) != ""
	}); !ok {
		return time.Time{}, fmt.Errorf("%s at %s:%d did not answer through the VIP within %s", sv.Name, sv.VIP, sv.Port, limit)
	}
	return time.Now(), nil
}
