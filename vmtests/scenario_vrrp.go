package vmtests

import (
	"context"
	"fmt"
	"net/netip"
	"time"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/vmtests/vlan"
)

// The scenarios of keepalived's VRRP options: unicast peers on a LAN that
// drops multicast, and a track script that gives the VIPs up. Both run on
// the keepalived scenario's cluster, pushed to.
var (
	unicastVRRPScenario = &Scenario{
		Name: "unicast-vrrp",
		Doc:  "keepalived with unicast VRRP peers on a LAN whose switch drops multicast: the adverts cross as unicast, exactly one director holds the VIP, and the power-off failover works",
		Spec: keepalivedWith(func(s *cluster.Spec) error {
			s.HA.Keepalived.Unicast = true
			return nil
		}),
		Run: runUnicastVRRP,
	}
	trackScenario = &Scenario{
		Name: "track",
		Doc:  "a keepalived track_script that fails on the master (a lock it takes is held) moves the VIP to the backup; once it passes again, the VIP goes where preemption says",
		// flock -n fails while another process holds the lock: the
		// scenario holds it on the master to make the check fail.
		Spec: keepalivedWith(func(s *cluster.Spec) error {
			s.HA.Keepalived.TrackScript = &cluster.TrackScript{Command: "/usr/bin/flock -n " + trackLock + " /bin/true", Interval: 1, Fall: 2, Rise: 2}
			return nil
		}),
		Run: runTrack,
	}
)

// trackLock is the lock the track scenario's check takes.
const trackLock = "/run/lvsforge-track.lock"

// vrrpProto is VRRP's IP protocol number.
const vrrpProto = 112

// vrrpWatch is how long unicast-vrrp watches the pair with multicast
// dropped before its failover: ten adverts.
const vrrpWatch = 10 * time.Second

func runUnicastVRRP(ctx context.Context, r *Run) error {
	sv := checkedServices(r.Spec)[0]
	primary, _ := primaryAndBackup(r.Spec)
	if err := r.C.holdOn(ctx, r.Spec, primary); err != nil {
		return err
	}
	r.Logf("the switch drops multicast from now on")
	r.C.LAN.SetMulticast(false)
	defer r.C.LAN.SetMulticast(true)
	mark := r.C.LAN.Mark()
	// Exactly one holder at every look, for ten adverts: had the adverts
	// been multicast, the backup would hear none and take the VIP too.
	for end := time.Now().Add(vrrpWatch); time.Now().Before(end); time.Sleep(time.Second) {
		h, err := r.C.Holders(ctx, sv.VIP)
		if err != nil {
			return err
		}
		if len(h) != 1 || h[0] != primary {
			r.Errorf("with multicast dropped, %s is held by %v; want %s alone", sv.VIP, h, primary)
			break
		}
	}
	unicast, multicast := vrrpAdverts(r.C.LAN.FramesSince(mark))
	r.Figure("unicast VRRP adverts", float64(unicast), "")
	if unicast == 0 || multicast > 0 {
		r.Errorf("VRRP adverts on the LAN: %d unicast, %d multicast (dropped); want unicast only", unicast, multicast)
	}
	return failoverCycle(ctx, r, r.Spec, checkedServices(r.Spec)[0], "unicast, no multicast: ")
}

// vrrpAdverts counts the VRRP packets among frames: to a director's own
// address (unicast, and crossed the switch) and to a multicast group.
func vrrpAdverts(frames []vlan.Frame) (unicast, multicast int) {
	for _, f := range frames {
		ip, ok := f.IPv4()
		if !ok || ip.Protocol != vrrpProto {
			continue
		}
		switch {
		case ip.Dst.IsMulticast():
			multicast++
		case !f.Dropped:
			unicast++
		}
	}
	return unicast, multicast
}

func runTrack(ctx context.Context, r *Run) error {
	sv := checkedServices(r.Spec)[0]
	primary, backup := primaryAndBackup(r.Spec)
	if err := r.C.holdOn(ctx, r.Spec, primary); err != nil {
		return err
	}
	release := func(ctx context.Context) {
		r.C.Exec(ctx, primary, fmt.Sprintf("p=$(cat %s.pid 2>/dev/null) && { pkill -P $p; kill $p; }; rm -f %s.pid; true", trackLock, trackLock))
	}
	defer release(context.WithoutCancel(ctx))
	// flock -o holds the lock itself, not the sleep it runs: killing it
	// releases the lock.
	r.Logf("the track script fails on %s", primary)
	if _, err := r.C.Exec(ctx, primary, fmt.Sprintf("flock -o %s sleep 3600 </dev/null >/dev/null 2>&1 & echo $! >%s.pid", trackLock, trackLock)); err != nil {
		return err
	}
	limit := trackLimit(r.Spec)
	d, err := r.C.WaitHolder(ctx, sv.VIP, backup, limit)
	if err != nil {
		r.Errorf("the track script failed on %s and %s did not take the VIP: %v\n%s", primary, backup, err, r.C.haState(ctx, r.Spec, primary))
		return nil
	}
	r.Figure("VIP on "+backup+" after the track script began to fail", d.Seconds(), "s")
	if err := trafficCheck(ctx, r, 20, netip.Addr{}); err != nil {
		return err
	}
	r.Logf("the track script passes again on %s", primary)
	release(ctx)
	want := backup
	if r.Spec.HA.AutoFailback == nil || *r.Spec.HA.AutoFailback {
		want = primary
	}
	if d, err = r.C.WaitHolder(ctx, sv.VIP, want, limit); err != nil {
		r.Errorf("after the track script passed again: %v", err)
		return nil
	}
	r.Figure("VIP on "+want+" after the track script passed again", d.Seconds(), "s")
	return nil
}

// trackLimit bounds the VIP's move after the track script changes: its
// fall (or rise) checks, then three adverts, with room for an emulated CPU.
func trackLimit(s *cluster.Spec) time.Duration {
	ts := s.HA.Keepalived.TrackScript
	return time.Duration(ts.Interval*max(ts.Fall, ts.Rise))*time.Second + takeoverLimit(s)
}
