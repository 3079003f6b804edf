package main

import (
	"encoding/json"
	"errors"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"syscall"
	"text/tabwriter"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lvsforge/lvsforge/action"
	"github.com/lvsforge/lvsforge/build"
	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/vmtests"
)

func init() {
	register(func(a *App) *cli.Command {
		var names []string
		for _, sc := range vmtests.Scenarios {
			names = append(names, sc.Name)
		}
		return &cli.Command{
			Name:  "vmtest",
			Usage: "boot the cluster in QEMU VMs from lvsforge's own kernels, push it, and check it with real traffic",
			Description: "Builds (or takes from the cache) each role's kernel with the vm fragment, ipvsadm and a Debian\n" +
				"guest image with heartbeat, ldirectord and keepalived; boots one VM per host and a client on a\n" +
				"virtual LAN; pushes the rendered files with the same code as `lvsforge push`; runs the scenarios.\n" +
				"Scenarios: " + strings.Join(names, ", ") + ", or all. Needs root (debootstrap) and QEMU.\n" +
				"Exit status 1 if any scenario failed.",
			ArgsUsage: " ",
			Flags: []cli.Flag{specFlag, cacheDirFlag, keyringFlag, signerFlag,
				&cli.StringSliceFlag{Name: "scenario", Value: cli.NewStringSlice("seed-dr"), Usage: "`NAME`s of scenarios to run (repeatable or comma-separated), or all"},
				&cli.StringFlag{Name: "out", Value: filepath.Join("out", "vmtest"), Usage: "`DIR` for every console log, lan.pcap, hb.pcap and the push log"},
				&cli.BoolFlag{Name: "json", Usage: "print the results as JSON"},
			},
			Action: a.vmtest,
		}
	})
	register(func(a *App) *cli.Command {
		return &cli.Command{
			Name:  "vm",
			Usage: "keep the cluster running in VMs to poke at: vm up, vm ssh HOST, vm down",
			Subcommands: []*cli.Command{
				{
					Name:      "up",
					Usage:     "boot and push the cluster, then keep it running until Ctrl-C or `lvsforge vm down`",
					ArgsUsage: " ",
					Flags: []cli.Flag{specFlag, cacheDirFlag, keyringFlag, signerFlag, stateFlag,
						&cli.BoolFlag{Name: "boot-disks", Usage: "boot every host through the BIOS and GRUB from a disk, as real hosts boot, so that upgrade --vm and push --kernel --vm reboot them onto new kernels " +
							"(lvsforge's GRUB entries then name the VMs' disk and serial console, and no heartbeat medium is a serial cable)"}},
					Action: a.vmUp,
				},
				{
					Name:      "ssh",
					Usage:     "log in to a VM of the running cluster (or run a command there)",
					ArgsUsage: "HOST [COMMAND...]",
					Flags:     []cli.Flag{stateFlag},
					Action:    a.vmSSH,
				},
				{
					Name:      "down",
					Usage:     "stop the running cluster",
					ArgsUsage: " ",
					Flags:     []cli.Flag{stateFlag},
					Action:    a.vmDown,
				},
			},
		}
	})
}

// vmSetup loads the spec and makes the cluster options from the common
// flags; consoles, pcaps and logs go to out.
func (a *App) vmSetup(c *cli.Context, out string) (*cluster.Spec, vmtests.Options, error) {
	s, f, opt, err := a.fetchSetup(c)
	if err != nil {
		return nil, vmtests.Options{}, err
	}
	return s, a.vmOptions(f, opt, out), nil
}

// vmOptions reports the kernel and ipvsadm builds, and the downloads,
// through the renderers `lvsforge build` uses.
func (a *App) vmOptions(f *build.Fetcher, opt build.FetchOptions, out string) vmtests.Options {
	return vmtests.Options{CacheDir: f.Cache.Dir, Out: out, Log: a.Stderr, Verifier: opt.Verifier,
		BuildStatus: a.buildProgress().step, FetchProgress: f.Progress}
}

func (a *App) vmtest(c *cli.Context) error {
	var names []string
	for _, n := range c.StringSlice("scenario") {
		names = append(names, strings.Split(n, ",")...)
	}
	scenarios, err := vmtests.Lookup(names)
	if err != nil {
		return usageError{err.Error()}
	}
	s, opts, err := a.vmSetup(c, c.String("out"))
	if err != nil {
		return err
	}
	start := time.Now()
	results, suite, err := vmtests.RunAll(c.Context, s, scenarios, opts)
	if c.Bool("json") {
		if werr := vmtests.WriteJSON(a.Stdout, results); werr != nil {
			return werr
		}
	} else if werr := vmtests.WriteTable(a.Stdout, results); werr != nil {
		return werr
	}
	if suite.FirstRequest > 0 {
		fmt.Fprintf(a.Stderr, "first request through the VIP %.1fs after the cluster's start; whole run %.0fs; logs in %s\n",
			suite.FirstRequest.Seconds(), time.Since(start).Seconds(), c.String("out"))
	}
	if err != nil {
		return err
	}
	if failed := vmtests.Failed(results); len(failed) > 0 {
		return fmt.Errorf("%w: %s", vmtests.ErrFailed, strings.Join(failed, ", "))
	}
	return nil
}

// stateFlag names the directory of the running `vm up`.
var stateFlag = &cli.StringFlag{Name: "state", Value: filepath.Join("out", "vm"), Usage: "`DIR` of the running VM cluster's state, consoles and pcaps"}

// vmState is what `vm up` leaves for `vm ssh`, `vm down` and the commands
// run with --vm.
type vmState struct {
	PID        int            `json:"pid"`
	KeyFile    string         `json:"keyFile"`
	KnownHosts string         `json:"knownHosts"`
	Ports      map[string]int `json:"sshPorts"`
	// Spec is the spec the cluster was started with (absolute), "" for
	// the built-in example.
	Spec string `json:"spec,omitempty"`
	// BootDisks: the hosts boot through GRUB from their disks (vm up
	// --boot-disks); the --vm commands adapt the spec as vm up did.
	BootDisks bool `json:"bootDisks,omitempty"`
}

// vmSpec is s as the running cluster st boots it: on boot disks, with the
// GRUB root and console of the VMs (vmtests.BootDiskSpec).
func (st *vmState) vmSpec(s *cluster.Spec) (*cluster.Spec, error) {
	if !st.BootDisks {
		return s, nil
	}
	return vmtests.BootDiskSpec(s)
}

// vmEnv is the action environment for a command run with --vm: the spec of
// the running `vm up` (or the one the command names, if it has the same
// hosts), every host reached through its VM's forwarded sshd with the
// harness's key, exactly as push reaches a real host.
func (a *App) vmEnv(c *cli.Context) (*action.Env, error) {
	st, err := readState(c)
	if err != nil {
		return nil, err
	}
	var s *cluster.Spec
	p, err := specArg(c)
	switch {
	case err != nil:
		return nil, err
	case p != "":
		s, err = cluster.Load(p)
	case st.Spec != "":
		s, err = cluster.Load(st.Spec)
	default:
		fmt.Fprintln(a.Stderr, "lvsforge: --vm: the running cluster is the built-in example")
		s, err = a.exampleSpec()
	}
	if err == nil {
		s, err = st.vmSpec(s)
	}
	if err != nil {
		return nil, err
	}
	for _, h := range s.Hosts {
		if _, ok := st.Ports[h.Name]; !ok {
			return nil, usageError{fmt.Sprintf("--vm: the running cluster has no VM %q: start it with this spec (lvsforge vm up -f SPEC)", h.Name)}
		}
	}
	env, err := a.envFor(c, s)
	if err != nil {
		return nil, err
	}
	env.Target = func(h *cluster.Host) (deploy.Target, error) {
		return deploy.Target{Name: h.Name, Host: "127.0.0.1", Port: st.Ports[h.Name], User: "root", KeyFiles: []string{st.KeyFile}}, nil
	}
	env.Deploy.Dial = deploy.DialOptions{HostKeys: &deploy.HostKeys{Policy: deploy.HostKeyStrict, Files: []string{st.KnownHosts}}, NoAgent: true}
	return env, nil
}

func statePath(c *cli.Context) string { return filepath.Join(c.String("state"), "state.json") }

func (a *App) vmUp(c *cli.Context) error {
	if old, err := readState(c); err == nil && syscall.Kill(old.PID, 0) == nil {
		return fmt.Errorf("start vm cluster: one is already running (pid %d); `lvsforge vm down --state %s` first", old.PID, c.String("state"))
	}
	s, opts, err := a.vmSetup(c, c.String("state"))
	if err != nil {
		return err
	}
	st := vmState{PID: os.Getpid(), Ports: map[string]int{}, BootDisks: c.Bool("boot-disks")}
	if s, err = st.vmSpec(s); err != nil {
		return err
	}
	opts.BootDisks = st.BootDisks
	cl, err := vmtests.Up(c.Context, s, opts)
	if err != nil {
		return err
	}
	defer cl.Close()
	if _, err := cl.Converge(c.Context, s); err != nil {
		return err
	}
	st.KeyFile, st.KnownHosts = cl.KeyFile(), cl.KnownHosts()
	if p, err := a.specPath(c); err == nil && p != "" {
		st.Spec, _ = filepath.Abs(p)
	}
	tw := tabwriter.NewWriter(a.Stdout, 0, 0, 2, ' ', 0)
	fmt.Fprintln(tw, "HOST\tROLE\tADDRESS\tSSH")
	for _, h := range s.Hosts {
		n := cl.Nodes[h.Name]
		st.Ports[h.Name] = n.SSHPort
		fmt.Fprintf(tw, "%s\t%s\t%s\tlvsforge vm ssh %s\n", h.Name, h.Role, h.Address, h.Name)
	}
	tw.Flush()
	data, _ := json.MarshalIndent(st, "", "  ")
	if err := os.WriteFile(statePath(c), data, 0o600); err != nil {
		return fmt.Errorf("write vm state: %w", err)
	}
	defer os.Remove(statePath(c))
	fmt.Fprintf(a.Stdout, "the cluster is up; consoles and pcaps in %s; Ctrl-C or `lvsforge vm down` stops it\n", c.String("state"))
	fmt.Fprintln(a.Stdout, "rehearse what you will run in production with --vm: lvsforge status --vm, push --vm, drain HOST --vm, undrain HOST --vm, upgrade --vm, kernel status --vm")
	<-c.Context.Done()
	return nil
}

func readState(c *cli.Context) (*vmState, error) {
	data, err := os.ReadFile(statePath(c))
	if err != nil {
		return nil, fmt.Errorf("read vm state: %w (is `lvsforge vm up` running?)", err)
	}
	var st vmState
	if err := json.Unmarshal(data, &st); err != nil {
		return nil, fmt.Errorf("read vm state %s: %w", statePath(c), err)
	}
	return &st, nil
}

func (a *App) vmSSH(c *cli.Context) error {
	if c.NArg() < 1 {
		return usageError{"vm ssh: which host?"}
	}
	st, err := readState(c)
	if err != nil {
		return err
	}
	host := c.Args().First()
	port, ok := st.Ports[host]
	if !ok {
		return usageError{fmt.Sprintf("vm ssh: no host %q in the running cluster", host)}
	}
	args := []string{"-i", st.KeyFile, "-o", "UserKnownHostsFile=" + st.KnownHosts, "-o", "IdentitiesOnly=yes",
		"-p", strconv.Itoa(port), "root@127.0.0.1"}
	args = append(args, c.Args().Tail()...)
	cmd := exec.CommandContext(c.Context, "ssh", args...)
	cmd.Stdin, cmd.Stdout, cmd.Stderr = a.Stdin, a.Stdout, a.Stderr
	if err := cmd.Run(); err != nil {
		var ee *exec.ExitError
		if errors.As(err, &ee) {
			return fmt.Errorf("ssh %s: exit status %d", host, ee.ExitCode())
		}
		return fmt.Errorf("ssh %s: %w", host, err)
	}
	return nil
}

func (a *App) vmDown(c *cli.Context) error {
	st, err := readState(c)
	if err != nil {
		return err
	}
	if err := syscall.Kill(st.PID, syscall.SIGTERM); err != nil {
		os.Remove(statePath(c))
		return fmt.Errorf("stop vm cluster (pid %d): %w; removed its stale state", st.PID, err)
	}
	for i := 0; i < 600; i++ {
		if syscall.Kill(st.PID, 0) != nil {
			fmt.Fprintln(a.Stdout, "the cluster is down")
			return nil
		}
		time.Sleep(100 * time.Millisecond)
	}
	return fmt.Errorf("stop vm cluster: pid %d still runs after 60s", st.PID)
}
