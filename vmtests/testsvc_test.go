package vmtests

import (
	"os"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/build"
	"github.com/lvsforge/lvsforge/internal/testenv"
)

// TestTestServicesWithoutSystemd runs lvsforge-testsvc as on a real server
// that boots sysvinit (init: sysv): as root, in namespaces of its own (PID,
// so that whatever it starts ends with it; network, a loopback of its own;
// mounts, a /run without systemd's and the guest's busybox path; UTS, a
// host name) it starts each kind of service, asks each for the host name,
// restarts one, and stops them.
func TestTestServicesWithoutSystemd(t *testing.T) {
	testenv.Root(t)
	unshare := testenv.LookPath(t, "unshare", "util-linux")
	for tool, pkg := range map[string]string{"start-stop-daemon": "dpkg", "ss": "iproute2", "perl": "perl-base", "ip": "iproute2"} {
		testenv.LookPath(t, tool, pkg)
	}
	if dyn, err := build.IsDynamic(busyboxPath); err != nil || dyn {
		testenv.Missing(t, "a static busybox at "+busyboxPath, "apt-get install -y busybox-static")
	}
	script := filepath.Join(t.TempDir(), "lvsforge-testsvc")
	if err := os.WriteFile(script, testSvcScript, 0o755); err != nil {
		t.Fatal(err)
	}
	driver := `set -u
mount -t tmpfs tmpfs /run
mount -t tmpfs tmpfs /usr/local/lib
mkdir /usr/local/lib/lvsforge
cp ` + busyboxPath + ` /usr/local/lib/lvsforge/busybox
hostname rs-sysv
ip link set lo up
svc=$1
BB=/usr/local/lib/lvsforge/busybox
get() { $BB wget -q -O - "http://127.0.0.1:$1$2" 2>&1; }
"$svc" start http 8080 /health.html alive; echo "start http=$?"
"$svc" start tcp 8023; echo "start tcp=$?"
"$svc" start echo 8007; echo "start echo=$?"
echo "http: $(get 8080 /)"
echo "check: $(get 8080 /health.html)"
echo "tcp: $($BB nc 127.0.0.1 8023 </dev/null)"
echo "echo: $(echo hello | $BB nc -w 2 127.0.0.1 8007)"
"$svc" start http 8080; echo "restart http=$?"
echo "pids: $(ls /run | grep -c '^lvsforge-test-.*\.pid$')"
"$svc" stop http 8080; echo "stop http=$?"
echo "http after stop: $(ss -Hltn 'sport = :8080' | grep -c .)"
"$svc" stop http 8080 2>/dev/null; echo "stop again=$?"
"$svc" stop tcp 8023; echo "stop tcp=$?"
"$svc" stop echo 8007; echo "stop echo=$?"
echo "left: $(ls /run | grep -c '^lvsforge-test-')"
`
	cmd := exec.Command(unshare, "--pid", "--fork", "--mount-proc", "--net", "--uts", "--propagation", "private",
		"sh", "-c", driver, "driver", script)
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("driver failed: %v\n%s", err, out)
	}
	got := string(out)
	for _, want := range []string{
		"start http=0\nstart tcp=0\nstart echo=0\n",
		"http: rs-sysv\ncheck: rs-sysv alive\ntcp: rs-sysv\necho: hello\n",
		"restart http=0\npids: 3\n",
		"stop http=0\nhttp after stop: 0\nstop again=1\nstop tcp=0\nstop echo=0\nleft: 0\n",
	} {
		if !strings.Contains(got, want) {
			t.Errorf("missing %q in the run:\n%s", want, got)
		}
	}
}
