package roles

import (
	"bytes"
	"crypto/sha256"
	"encoding/hex"
	"fmt"
	"net/netip"
	"os"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/cluster"
)

// TestFwmarkServicesMarkedOnEveryDirector: IPVS sees a firewall-mark
// service only through the mark, so every director's lvs-director script
// marks each such service's ports, under both backends, and is run at
// boot.
func TestFwmarkServicesMarkedOnEveryDirector(t *testing.T) {
	covered := map[string]bool{}
	for _, name := range variants {
		s := loadVariant(t, name)
		hosts, err := Render(s)
		if err != nil {
			t.Fatal(err)
		}
		for _, hf := range hosts {
			if hf.Host.Role != cluster.RoleDirector {
				continue
			}
			files := map[string][]byte{}
			for _, f := range hf.Files {
				files[f.Path] = f.Data
			}
			script := "/usr/local/sbin/lvs-director"
			if hf.Host.Init == cluster.InitSysV {
				script = "/etc/init.d/lvs-director"
			}
			data, ok := files[script]
			if !ok {
				t.Fatalf("%s/%s: no %s", name, hf.Host.Name, script)
			}
			for _, sv := range s.Services {
				if sv.FWMark == 0 {
					continue
				}
				covered[s.HA.Backend] = true
				var ports []string
				for _, p := range sv.FWMarkPorts {
					ports = append(ports, fmt.Sprint(p))
				}
				rule := fmt.Sprintf("-d %s/32 -p %s -m multiport --dports %s -j MARK --set-mark %d", sv.VIP, sv.Protocol, strings.Join(ports, ","), sv.FWMark)
				if strings.Contains(sv.VIP, ":") {
					// ip6tables's rule: lvs-director hands it a rule that starts with -6.
					rule = fmt.Sprintf("-6 -d %s/128 -p %s -m multiport --dports %s -j MARK --set-mark %d", sv.VIP, sv.Protocol, strings.Join(ports, ","), sv.FWMark)
				}
				if !bytes.Contains(data, []byte("\tmark "+rule+" || return 1\n")) || !bytes.Contains(data, []byte("\tunmark "+rule+"\n")) {
					t.Errorf("%s/%s: %s does not mark and unmark service %s's packets (%s):\n%s", name, hf.Host.Name, script, sv.Name, rule, data)
				}
			}
			enabled := false
			for _, u := range hf.Units {
				enabled = enabled || (u.Name == "lvs-director" && len(u.Enable) > 0 && len(u.Restart) > 0)
			}
			if !enabled {
				t.Errorf("%s/%s: lvs-director is not enabled at boot: %+v", name, hf.Host.Name, hf.Units)
			}
		}
	}
	for _, b := range []string{cluster.BackendHeartbeat, cluster.BackendKeepalived} {
		if !covered[b] {
			t.Errorf("no variant has a firewall-mark service with the %s backend", b)
		}
	}
}

// TestHaresourcesIdenticalOnDirectors: heartbeat requires the same
// haresources on both nodes.
func TestHaresourcesIdenticalOnDirectors(t *testing.T) {
	for _, name := range variants {
		s := loadVariant(t, name)
		if s.HA.Backend != cluster.BackendHeartbeat {
			continue
		}
		hosts, err := Render(s)
		if err != nil {
			t.Fatal(err)
		}
		var seen [][]byte
		for _, hf := range hosts {
			for _, f := range hf.Files {
				if f.Path == "/etc/ha.d/haresources" {
					seen = append(seen, f.Data)
				}
			}
		}
		if len(seen) != 2 || !bytes.Equal(seen[0], seen[1]) {
			t.Errorf("%s: haresources differ between the directors:\n%s", name, bytes.Join(seen, []byte("---\n")))
		}
	}
}

// TestManifestRecordsNoSecretHash: MANIFEST.json lists the authkeys file
// as secret but not its sha256, which would let anyone who reads the tree
// check guesses of the secret.
func TestManifestRecordsNoSecretHash(t *testing.T) {
	out := renderTree(t, "seed")
	m, b := readManifestFile(t, out)
	secrets := 0
	for _, h := range m.Hosts {
		for _, f := range h.Files {
			data, err := os.ReadFile(filepath.Join(out, h.Name, filepath.FromSlash(strings.TrimPrefix(f.Path, "/"))))
			if err != nil {
				t.Fatal(err)
			}
			sum := sha256.Sum256(data)
			switch {
			case f.Secret:
				secrets++
				if f.SHA256 != "" || bytes.Contains(b, []byte(hex.EncodeToString(sum[:]))) {
					t.Errorf("%s %s: the manifest records the secret's sha256", h.Name, f.Path)
				}
			case f.SHA256 != hex.EncodeToString(sum[:]):
				t.Errorf("%s %s: sha256 %s, the file's is %x", h.Name, f.Path, f.SHA256, sum)
			}
		}
	}
	if secrets != 2 {
		t.Errorf("%d secret files in the seed's manifest, want its two authkeys", secrets)
	}
}

// TestUnicastPeersAreTheOtherDirectors: with unicast VRRP each director
// sends from its own public address to every other director's, never to
// itself (the keepalived variant's three directors, switched to unicast).
func TestUnicastPeersAreTheOtherDirectors(t *testing.T) {
	s := loadVariant(t, "keepalived")
	s.HA.Keepalived.Unicast = true
	hosts, err := Render(s)
	if err != nil {
		t.Fatal(err)
	}
	directors := s.HostsByRole(cluster.RoleDirector)
	seen := 0
	for _, hf := range hosts {
		for _, f := range hf.Files {
			if f.Path != "/etc/keepalived/keepalived.conf" {
				continue
			}
			seen++
			var peers []string
			for _, d := range directors {
				if d.Name != hf.Host.Name {
					peers = append(peers, "        "+d.IP()+"\n")
				}
			}
			want := "    unicast_src_ip " + hf.Host.IP() + "\n    unicast_peer {\n" + strings.Join(peers, "") + "    }\n"
			if !bytes.Contains(f.Data, []byte(want)) {
				t.Errorf("%s: keepalived.conf lacks\n%s\n%s", hf.Host.Name, want, f.Data)
			}
		}
	}
	if seen != len(directors) || seen != 3 {
		t.Errorf("%d keepalived.conf files for %d directors", seen, len(directors))
	}
}

// TestKeepalivedReloadsForAVIPChange: a VIP added to a keepalived cluster
// changes keepalived.conf (a virtual_server block, an address of the VRRP
// instance) but not keepalived's fingerprint, so push reloads keepalived
// and no VIP moves; any other change to an instance restarts it.
func TestKeepalivedReloadsForAVIPChange(t *testing.T) {
	fingerprints := func(s *cluster.Spec) (conf, fp map[string]string) {
		t.Helper()
		hosts, err := Render(s)
		if err != nil {
			t.Fatal(err)
		}
		conf, fp = map[string]string{}, map[string]string{}
		for _, hf := range hosts {
			for _, f := range hf.Files {
				if f.Path == "/etc/keepalived/keepalived.conf" {
					conf[hf.Host.Name] = string(f.Data)
				}
			}
			for _, u := range hf.Units {
				if u.Name == "keepalived" {
					fp[hf.Host.Name] = u.Fingerprint
				}
			}
		}
		if len(fp) == 0 {
			t.Fatal("no director runs keepalived")
		}
		return conf, fp
	}
	base := loadVariant(t, "keepalived")
	conf, fp := fingerprints(base)

	s := loadVariant(t, "keepalived")
	used := map[netip.Addr]bool{}
	for _, v := range s.VIPs() {
		used[netip.MustParseAddr(v)] = true
	}
	for _, h := range s.Hosts {
		used[h.Prefix().Addr()] = true
	}
	vip := netip.MustParseAddr(s.Services[0].VIP).Next()
	for used[vip] {
		vip = vip.Next()
	}
	second := s.Services[0]
	second.Name, second.VIP = "second", vip.String()
	s.Services = append(s.Services, second)
	conf2, fp2 := fingerprints(s)
	for host := range fp {
		if conf2[host] == conf[host] || !strings.Contains(conf2[host], "        "+vip.String()) {
			t.Errorf("%s: keepalived.conf does not have the second VIP %s as an instance address:\n%s", host, vip, conf2[host])
		}
		if fp2[host] != fp[host] {
			t.Errorf("%s: a second VIP changes keepalived's fingerprint, so push restarts it:\n%s\nwas\n%s", host, fp2[host], fp[host])
		}
	}

	s = loadVariant(t, "keepalived")
	s.HA.Keepalived.AdvertInt++
	_, fp3 := fingerprints(s)
	for host := range fp {
		if fp3[host] == fp[host] {
			t.Errorf("%s: another advert_int keeps keepalived's fingerprint, so push only reloads it", host)
		}
	}
}
