package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy"
)

// sshFlags are the connection flags of every command that reaches the hosts.
func sshFlags() []cli.Flag {
	return []cli.Flag{
		specFlag,
		&cli.StringFlag{Name: "hosts", Usage: "only these hosts (comma-separated `NAMES`)"},
		&cli.StringFlag{Name: "role", Usage: "only hosts of this `ROLE` (director or realserver)"},
		intFlag("concurrency", 16, 1, "`N` hosts worked on at once"),
		&cli.StringFlag{Name: "host-key-policy", Value: string(deploy.HostKeyStrict), Usage: "`POLICY` for host keys: strict refuses unknown hosts; accept-new appends their keys to known_hosts (a changed key is always refused)"},
		&cli.StringFlag{Name: "known-hosts", Usage: "known_hosts `FILE` (default ~/.ssh/known_hosts)"},
		&cli.StringFlag{Name: "ssh-config", Usage: "ssh_config `FILE` for User, Port, IdentityFile, HostName and ProxyJump (default ~/.ssh/config; \"none\" ignores it)"},
		jsonFlag,
	}
}

func init() {
	register(func(a *App) *cli.Command {
		return &cli.Command{
			Name:  "push",
			Usage: "install every host's rendered files over SSH, atomically, and restart what changed",
			Description: "Facts (file hashes, kernel, init system) are gathered from every host first; files whose\n" +
				"sha256 already matches are skipped. --dry-run prints the exact per-host plan and changes nothing.\n" +
				"Exit status 1 if any host failed; every host is attempted and reported.",
			Flags: append(append(sshFlags(),
				&cli.BoolFlag{Name: "dry-run", Usage: "gather facts and print the plan; change nothing"},
				&cli.BoolFlag{Name: "diff", Usage: "print unified diffs of changed files (never of secrets)"},
				intFlag("upload-concurrency", 4, 1, "`N` concurrent uploads of files of 1 MiB or more, across hosts"),
				intFlag("backups", 3, 0, "`N` previous versions kept per replaced file under "+deploy.DefaultBackupDir+" (0: none)"),
				&cli.StringFlag{Name: "ipvsadm", Usage: "also install this ipvsadm `BINARY` (from lvsforge build ipvsadm --static) on the directors, over the host's ipvsadm (command -v) or as " + deploy.IpvsadmPath + "; with --kernel the cache's is the default"},
			), kernelPushFlags()...),
			Action: func(c *cli.Context) error {
				spec, hosts, opts, err := a.pushSetup(c, true)
				if err != nil {
					return err
				}
				if p := c.String("ipvsadm"); p != "" {
					if err := deploy.AddIpvsadm(spec, hosts, p); err != nil {
						return err
					}
				}
				if err := a.addKernels(c, spec, hosts); err != nil {
					return err
				}
				opts.DryRun, opts.Diff = c.Bool("dry-run"), c.Bool("diff")
				opts.UploadConcurrency = c.Int("upload-concurrency")
				opts.Backups = c.Int("backups")
				if opts.Backups == 0 {
					opts.Backups = -1
				}
				return a.report(deploy.Push(c.Context, hosts, opts))
			},
		}
	})
}

// pushSetup loads the spec (never the example: see hostSpec), selects the hosts and resolves how to reach
// them; with render, it also renders their files.
func (a *App) pushSetup(c *cli.Context, render bool) (*cluster.Spec, []deploy.Host, deploy.Options, error) {
	var o deploy.Options
	s, err := a.hostSpec(c)
	if err != nil {
		return nil, nil, o, err
	}
	policy, err := deploy.ParseHostKeyPolicy(c.String("host-key-policy"))
	if err != nil {
		return nil, nil, o, usageError{err.Error()}
	}
	known := c.String("known-hosts")
	if known == "" {
		known = deploy.DefaultKnownHosts()
	}
	var sc *deploy.SSHConfig
	if p := c.String("ssh-config"); p != "none" {
		if p == "" {
			p = deploy.DefaultSSHConfigPath()
		}
		if sc, err = deploy.LoadSSHConfig(p); err != nil {
			return nil, nil, o, err
		}
	}
	selected, err := selectHosts(s, c.String("hosts"), c.String("role"))
	if err != nil {
		return nil, nil, o, err
	}
	var hosts []deploy.Host
	if render {
		if hosts, err = deploy.FromSpec(s, selected, sc); err != nil {
			return nil, nil, o, err
		}
	} else {
		for _, h := range selected {
			t, err := deploy.SpecTarget(s, h, sc)
			if err != nil {
				return nil, nil, o, err
			}
			hosts = append(hosts, deploy.Host{Target: t})
		}
	}
	o = deploy.Options{
		Dial:        deploy.DialOptions{HostKeys: &deploy.HostKeys{Policy: policy, Files: []string{known}}},
		Concurrency: c.Int("concurrency"),
		Out:         a.Stdout,
	}
	if a.json {
		// Plans are in the JSON; diffs go to stderr so stdout stays one document.
		o.Out = a.Stderr
	}
	return s, hosts, o, nil
}

// selectHosts applies --hosts and --role; a name that is not in the spec is
// an error, not silently nothing.
func selectHosts(s *cluster.Spec, names, role string) ([]*cluster.Host, error) {
	want := map[string]bool{}
	if names != "" {
		for _, n := range strings.Split(names, ",") {
			n = strings.TrimSpace(n)
			if s.Host(n) == nil {
				return nil, usageError{fmt.Sprintf("--hosts: no host %q in the spec", n)}
			}
			want[n] = true
		}
	}
	if role != "" && role != cluster.RoleDirector && role != cluster.RoleRealServer {
		return nil, usageError{fmt.Sprintf("--role %q: want %s or %s", role, cluster.RoleDirector, cluster.RoleRealServer)}
	}
	var out []*cluster.Host
	for i := range s.Hosts {
		h := &s.Hosts[i]
		if (len(want) == 0 || want[h.Name]) && (role == "" || h.Role == role) {
			out = append(out, h)
		}
	}
	if len(out) == 0 {
		return nil, errors.New("select hosts: no host matches --hosts and --role")
	}
	return out, nil
}

// report prints the summary (or hands it to the JSON envelope) and turns
// host failures into the exit status.
func (a *App) report(r *deploy.Report) error {
	if err := a.emit(r, r.WriteTable); err != nil {
		return err
	}
	if failed := r.Failed(); len(failed) > 0 {
		return fmt.Errorf("failed on %d of %d hosts: %s", len(failed), len(r.Hosts), strings.Join(failed, ", "))
	}
	return nil
}
