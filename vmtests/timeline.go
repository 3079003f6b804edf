package vmtests

import (
	"context"
	"fmt"
	"regexp"
	"strconv"
	"strings"

	"github.com/lvsforge/lvsforge/cluster"
)

// A takeover's timeline from the new holder's own journal: when its HA
// daemon declared the peer dead (heartbeat) or became master (VRRP), and
// when the VIP was up, each as seconds after the power-off. They split a
// failover's outage into detection and the resources' start.

// uptime is a guest's /proc/uptime, the clock of its journal's
// monotonic timestamps.
func (c *Cluster) uptime(ctx context.Context, host string) (float64, error) {
	out, err := c.Exec(ctx, host, "cut -d' ' -f1 /proc/uptime")
	if err != nil {
		return 0, err
	}
	return strconv.ParseFloat(strings.TrimSpace(out), 64)
}

// journalLine is one `journalctl -o short-monotonic` line.
type journalLine struct {
	t   float64
	msg string
}

var monoLine = regexp.MustCompile(`^\[\s*(\d+\.\d+)\]\s+(.*)$`)

// journalSince returns host's journal lines from the boot's second since
// on whose text matches re.
func (c *Cluster) journalSince(ctx context.Context, host string, since float64, re *regexp.Regexp) ([]journalLine, error) {
	out, err := c.Exec(ctx, host, "journalctl --no-pager -b -o short-monotonic")
	if err != nil {
		return nil, err
	}
	var ls []journalLine
	for _, l := range strings.Split(out, "\n") {
		m := monoLine.FindStringSubmatch(l)
		if m == nil {
			continue
		}
		t, err := strconv.ParseFloat(m[1], 64)
		if err != nil || t < since || !re.MatchString(m[2]) {
			continue
		}
		ls = append(ls, journalLine{t, m[2]})
	}
	return ls, nil
}

// takeoverEvents are the journal lines of a takeover worth timing.
func takeoverEvents(s *cluster.Spec, vip string) *regexp.Regexp {
	if s.HA.Backend == cluster.BackendKeepalived {
		return regexp.MustCompile(`Entering MASTER STATE|Sending gratuitous ARP|` + regexp.QuoteMeta(vip))
	}
	return regexp.MustCompile(`is dead|Taking over resource group|Running /etc/ha.d/+resource.d/|takeover complete|` + regexp.QuoteMeta(vip))
}

// timeline is the takeover's events on host after t0 (its uptime at the
// power-off), each as "+S.SSs message".
func (c *Cluster) timeline(ctx context.Context, s *cluster.Spec, host, vip string, t0 float64) (string, []journalLine, error) {
	ls, err := c.journalSince(ctx, host, t0, takeoverEvents(s, vip))
	if err != nil {
		return "", nil, err
	}
	var b strings.Builder
	for _, l := range ls {
		fmt.Fprintf(&b, "\n\t+%.2fs %s", l.t-t0, l.msg)
	}
	return b.String(), ls, nil
}
