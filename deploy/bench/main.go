// Command bench measures `lvsforge push` against one plain scp per host in
// parallel (and Ansible's copy module when ansible-playbook is installed) on
// real sshd hosts in network namespaces: a 12 MiB artifact plus 9 small
// config files to every host, wall and client CPU time, median of N rounds
// (each tool once per round, so that every ratio compares runs made
// seconds apart), plus the no-op re-push; also the CPU time the hosts'
// sshd spent, which the machine's load does not inflate. It needs root,
// sshd and scp:
//
//	go run ./deploy/bench -hosts 20 -runs 3
//
// It is a measurement tool, not a test: nothing asserts on the times.
package main

import (
	"bytes"
	"context"
	"crypto/rand"
	"flag"
	"fmt"
	"io"
	"log"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"strings"
	"sync"
	"syscall"
	"time"

	"github.com/lvsforge/lvsforge/install"

	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/deploy/sshtest"
)

// remoteDir is where every tool puts the files, so all start from the same state.
const remoteDir = "/etc/lvsbench"

// tool is one way of getting the files onto every host.
type tool struct {
	name  string
	run   func() error
	fresh bool // reset the hosts before each run
	runs  int  // 0: -runs
}

type sample struct {
	wall, cpu, server time.Duration
}

func cpuTimes() (self, children time.Duration) {
	var s, c syscall.Rusage
	syscall.Getrusage(syscall.RUSAGE_SELF, &s)
	syscall.Getrusage(syscall.RUSAGE_CHILDREN, &c)
	tv := func(t syscall.Timeval) time.Duration { return time.Duration(t.Nano()) }
	return tv(s.Utime) + tv(s.Stime), tv(c.Utime) + tv(c.Stime)
}

// measure runs fn and returns its wall time, the CPU time of this process
// and of the children it waited for (scp, ssh, ansible), and the CPU time
// the hosts spent (sshd, sftp-server, the remote commands), which the
// machine's other load barely changes.
func measure(c *sshtest.Cluster, fn func() error) (sample, error) {
	h0, herr := c.CPUTime()
	s0, c0 := cpuTimes()
	start := time.Now()
	err := fn()
	wall := time.Since(start)
	s1, c1 := cpuTimes()
	// The hosts' last sessions end just after the client is done.
	time.Sleep(200 * time.Millisecond)
	h1, _ := c.CPUTime()
	s := sample{wall: wall, cpu: (s1 - s0) + (c1 - c0), server: -1}
	if herr == nil {
		s.server = h1 - h0
	}
	return s, err
}

func median(ss []sample) sample {
	w := make([]sample, len(ss))
	copy(w, ss)
	sort.Slice(w, func(i, j int) bool { return w[i].wall < w[j].wall })
	return w[len(w)/2]
}

func main() {
	nHosts := flag.Int("hosts", 20, "sshd hosts")
	runs := flag.Int("runs", 3, "rounds: each tool runs once per round (the median is reported)")
	artifactMiB := flag.Int("artifact-mib", 12, "size of the large artifact")
	withAnsible := flag.Bool("ansible", true, "also measure Ansible when ansible-playbook is installed")
	ansibleRuns := flag.Int("ansible-runs", 1, "rounds with Ansible (each run takes minutes)")
	uploads := flag.Int("upload-concurrency", 0, "lvsforge's cap on concurrent large uploads (0: the default)")
	flag.Parse()
	log.SetFlags(0)

	dir, err := os.MkdirTemp("", "lvsbench")
	if err != nil {
		log.Fatal(err)
	}
	defer os.RemoveAll(dir)
	c, err := sshtest.New(filepath.Join(dir, "hosts"), *nHosts)
	if err != nil {
		log.Fatalf("start hosts: %v", err)
	}
	defer c.Close()

	// The payload: one artifact and nine small configs, also as local files for scp.
	local := filepath.Join(dir, "payload")
	os.MkdirAll(local, 0o755)
	big := make([]byte, *artifactMiB<<20)
	rand.Read(big)
	os.WriteFile(filepath.Join(local, "vmlinuz"), big, 0o644)
	art, err := install.OpenArtifact(filepath.Join(local, "vmlinuz"))
	if err != nil {
		log.Fatal(err)
	}
	files := []install.File{{Path: remoteDir + "/vmlinuz", Artifact: art}}
	for i := 1; i <= 9; i++ {
		data := bytes.Repeat([]byte(fmt.Sprintf("setting%d = value %d\n", i, i)), 40*i)
		name := fmt.Sprintf("conf%d.cf", i)
		os.WriteFile(filepath.Join(local, name), data, 0o644)
		files = append(files, install.File{Path: remoteDir + "/" + name, Data: data})
	}
	var hosts []deploy.Host
	for _, h := range c.Hosts {
		hosts = append(hosts, deploy.Host{
			Target: deploy.Target{Name: h.Name, Host: h.Addr, Port: 22, User: "root", KeyFiles: []string{c.ClientKeyFile}},
			Files:  files,
		})
	}
	opts := deploy.Options{
		Dial:              deploy.DialOptions{HostKeys: &deploy.HostKeys{Policy: deploy.HostKeyStrict, Files: []string{c.KnownHostsFile}}, NoAgent: true},
		Concurrency:       *nHosts,
		UploadConcurrency: *uploads,
		Backups:           -1,
	}
	reset := func() {
		var wg sync.WaitGroup
		for _, h := range c.Hosts {
			wg.Add(1)
			go func() {
				defer wg.Done()
				if _, err := h.Exec("sh", "-c", "rm -rf "+remoteDir+" && mkdir "+remoteDir); err != nil {
					log.Fatal(err)
				}
			}()
		}
		wg.Wait()
	}
	push := func() error {
		r := deploy.Push(context.Background(), hosts, opts)
		return r.Err()
	}
	scp := func() error {
		var names []string
		for _, f := range files {
			names = append(names, filepath.Join(local, filepath.Base(f.Path)))
		}
		errs := make(chan error, len(c.Hosts))
		for _, h := range c.Hosts {
			go func() {
				args := append([]string{"-q", "-i", c.ClientKeyFile, "-o", "BatchMode=yes", "-o", "UserKnownHostsFile=" + c.KnownHostsFile}, names...)
				out, err := exec.Command("scp", append(args, "root@"+h.Addr+":"+remoteDir+"/")...).CombinedOutput()
				if err != nil {
					err = fmt.Errorf("scp to %s: %w: %s", h.Name, err, out)
				}
				errs <- err
			}()
		}
		var first error
		for range c.Hosts {
			if err := <-errs; err != nil && first == nil {
				first = err
			}
		}
		return first
	}
	tools := []tool{
		{"parallel scp (one per host)", scp, true, 0},
		{"lvsforge push", push, true, 0},
		{"lvsforge push, no-op re-push", push, false, 0},
	}
	if ap, err := exec.LookPath("ansible-playbook"); err == nil && *withAnsible {
		for _, t := range ansibleTools(ap, dir, c, local, files) {
			t.runs = *ansibleRuns
			tools = append(tools, t)
		}
	} else if *withAnsible {
		log.Printf("ansible-playbook not installed: Ansible not measured")
	}
	fmt.Printf("%d hosts, %d MiB artifact + 9 small files, median of %d rounds\n", *nHosts, *artifactMiB, *runs)
	start := loadAvg()
	// Round by round, every tool once per round: on a shared machine the
	// load drifts, and each round's ratio compares runs seconds apart.
	samples := make([][]sample, len(tools))
	for round := 0; round < *runs; round++ {
		for i, t := range tools {
			if t.runs > 0 && round >= t.runs {
				continue
			}
			if t.fresh {
				reset()
			}
			s, err := measure(c, t.run)
			if err != nil {
				log.Fatalf("%s: %v", t.name, err)
			}
			samples[i] = append(samples[i], s)
		}
	}
	fmt.Printf("%-40s %10s %10s %10s %10s\n", "tool", "wall", "client CPU", "hosts CPU", "wall / scp")
	for i, t := range tools {
		m := median(samples[i])
		// The median of each round's ratio to that round's scp.
		var ratios []float64
		for r, s := range samples[i] {
			ratios = append(ratios, s.wall.Seconds()/samples[0][r].wall.Seconds())
		}
		sort.Float64s(ratios)
		server := "-"
		if m.server >= 0 {
			server = fmt.Sprintf("%.2fs", m.server.Seconds())
		}
		fmt.Printf("%-40s %9.2fs %9.2fs %10s %9.2fx  (%d runs; ratios %s)\n", t.name, m.wall.Seconds(), m.cpu.Seconds(), server, ratios[len(ratios)/2], len(samples[i]), fmtRatios(ratios))
	}
	fmt.Printf("load average at start %.2f, at end %.2f (1 min; 2 cores shared with other work)\n", start, loadAvg())
}

func loadAvg() float64 {
	var l float64
	if b, err := os.ReadFile("/proc/loadavg"); err == nil {
		fmt.Sscan(string(b), &l)
	}
	return l
}

func fmtRatios(r []float64) string {
	var s []string
	for _, x := range r {
		s = append(s, fmt.Sprintf("%.2f", x))
	}
	return strings.Join(s, " ")
}

// ansibleTools copies the same files with Ansible's copy module, with the
// default forks and with forks=N plus pipelining.
func ansibleTools(playbook, dir string, c *sshtest.Cluster, local string, files []install.File) []tool {
	var inv strings.Builder
	inv.WriteString("[hosts]\n")
	for _, h := range c.Hosts {
		fmt.Fprintf(&inv, "%s ansible_host=%s ansible_user=root ansible_ssh_private_key_file=%s\n", h.Name, h.Addr, c.ClientKeyFile)
	}
	os.WriteFile(filepath.Join(dir, "inventory"), []byte(inv.String()), 0o644)
	var pb strings.Builder
	pb.WriteString("- hosts: hosts\n  gather_facts: false\n  tasks:\n")
	for _, f := range files {
		fmt.Fprintf(&pb, "    - copy: {src: %s, dest: %s, mode: '0644'}\n", filepath.Join(local, filepath.Base(f.Path)), f.Path)
	}
	os.WriteFile(filepath.Join(dir, "playbook.yml"), []byte(pb.String()), 0o644)
	run := func(extra ...string) func() error {
		return func() error {
			cmd := exec.Command(playbook, append([]string{"-i", filepath.Join(dir, "inventory"), filepath.Join(dir, "playbook.yml")}, extra...)...)
			cmd.Env = append(os.Environ(),
				"ANSIBLE_HOST_KEY_CHECKING=True",
				"ANSIBLE_SSH_ARGS=-o UserKnownHostsFile="+c.KnownHostsFile+" -o ControlMaster=auto -o ControlPersist=60s",
			)
			if len(extra) > 0 {
				cmd.Env = append(cmd.Env, "ANSIBLE_PIPELINING=True")
			}
			cmd.Stdout, cmd.Stderr = io.Discard, os.Stderr
			if err := cmd.Run(); err != nil {
				return fmt.Errorf("ansible-playbook: %w", err)
			}
			return nil
		}
	}
	n := fmt.Sprint(len(c.Hosts))
	return []tool{
		{"ansible copy (default forks)", run(), true, 0},
		{"ansible copy (forks=" + n + ", pipelining)", run("--forks", n), true, 0},
		{"ansible copy, no-op re-run (tuned)", run("--forks", n), false, 0},
	}
}
