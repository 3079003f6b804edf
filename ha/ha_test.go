package ha

import (
	"net/netip"
	"reflect"
	"testing"
)

func TestParseHeartbeat(t *testing.T) {
	out := "A 127.0.0.1\nA 192.168.7.9\nA 192.168.7.110\nA ::1\nH running\nR all\nN linuxha1 active\nN linuxha2 dead\n"
	d, err := Parse("linuxha1", []byte(out))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Running || d.State != "all" || !d.Active() || !reflect.DeepEqual(d.Peers, map[string]string{"linuxha2": "dead"}) {
		t.Errorf("parsed %+v", d)
	}
	if !d.Holds(netip.MustParseAddr("192.168.7.110")) || d.Holds(netip.MustParseAddr("192.168.7.10")) {
		t.Errorf("addresses %v", d.Addrs)
	}
	d, err = Parse("linuxha2", []byte("A 192.168.7.10\nH stopped\n"))
	if err != nil || d.Running || d.Active() {
		t.Errorf("a stopped heartbeat parsed as %+v, %v", d, err)
	}
}

// The lines Query's sed keeps of keepalived 2.2.7's data dump: the
// instance's state comes before its interface's ("State = UP, RUNNING" is
// not kept).
func TestParseKeepalived(t *testing.T) {
	d, err := Parse("linuxha2", []byte("A 192.168.7.10\nK running\nI VI_1\nS BACKUP\n"))
	if err != nil {
		t.Fatal(err)
	}
	if !d.Running || d.State != "BACKUP" || d.Active() || d.Peers != nil {
		t.Errorf("parsed %+v", d)
	}
	if _, err := Parse("x", []byte("Z what\n")); err == nil {
		t.Error("an unknown line parsed")
	}
}
