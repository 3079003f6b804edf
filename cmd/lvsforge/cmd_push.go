package main

import (
	"errors"
	"fmt"
	"strings"

	"github.com/urfave/cli/v2"

	"github.com/lvsforge/lvsforge/action"
	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/install"
)

// sshFlags are the flags of every command that reaches the hosts: the
// connection flags and the host selection.
func sshFlags() []cli.Flag {
	return append([]cli.Flag{
		&cli.StringFlag{Name: "hosts", Usage: "only these hosts (comma-separated `NAMES`)"},
		&cli.StringFlag{Name: "role", Usage: "only hosts of this `ROLE` (director or realserver)"},
	}, connectFlags()...)
}

// connectFlags are how a command reaches the hosts: the spec, SSH, or --vm.
func connectFlags() []cli.Flag {
	return []cli.Flag{
		specFlag,
		intFlag("concurrency", 16, 1, "`N` hosts worked on at once"),
		&cli.StringFlag{Name: "host-key-policy", Value: string(deploy.HostKeyStrict), Usage: "`POLICY` for host keys: strict refuses unknown hosts; accept-new appends their keys to known_hosts (a changed key is always refused)"},
		&cli.StringFlag{Name: "known-hosts", Usage: "known_hosts `FILE` (default ~/.ssh/known_hosts)"},
		&cli.StringFlag{Name: "ssh-config", Usage: "ssh_config `FILE` for User, Port, IdentityFile, HostName and ProxyJump (default ~/.ssh/config; \"none\" ignores it)"},
		jsonFlag,
		&cli.BoolFlag{Name: "vm", Usage: "reach the VMs of the running lvsforge vm up (its spec, unless -f names another with the same hosts) instead of the real hosts: a rehearsal"},
		stateFlag,
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
				env, err := a.actionEnv(c)
				if err != nil {
					return err
				}
				if p := c.String("ipvsadm"); p != "" {
					if env.Ipvsadm, err = install.OpenArtifact(p); err != nil {
						return err
					}
				}
				if err := a.addKernels(c, env); err != nil {
					return err
				}
				env.Deploy.DryRun, env.Deploy.Diff = c.Bool("dry-run"), c.Bool("diff")
				env.Deploy.UploadConcurrency = c.Int("upload-concurrency")
				env.Deploy.Backups = c.Int("backups")
				if env.Deploy.Backups == 0 {
					env.Deploy.Backups = -1
				}
				rep, err := action.RunPush(c.Context, env)
				return a.report(rep, err)
			},
		}
	})
}

// actionEnv loads the spec (never the example: see hostSpec), selects the
// hosts (--hosts, --role) and says how to reach them: their spec and
// ssh_config, or with --vm the VMs of the running `lvsforge vm up`.
func (a *App) actionEnv(c *cli.Context) (*action.Env, error) {
	if c.Bool("vm") {
		return a.vmEnv(c)
	}
	s, err := a.hostSpec(c)
	if err != nil {
		return nil, err
	}
	policy, err := deploy.ParseHostKeyPolicy(c.String("host-key-policy"))
	if err != nil {
		return nil, usageError{err.Error()}
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
			return nil, err
		}
	}
	env, err := a.envFor(c, s)
	if err != nil {
		return nil, err
	}
	env.Target = func(h *cluster.Host) (deploy.Target, error) { return deploy.SpecTarget(s, h, sc) }
	env.Deploy.Dial = deploy.DialOptions{HostKeys: &deploy.HostKeys{Policy: policy, Files: []string{known}}}
	return env, nil
}

// envFor is the action environment of spec s with the command's host
// selection, concurrency and output, the targets still to set.
func (a *App) envFor(c *cli.Context, s *cluster.Spec) (*action.Env, error) {
	selected, err := selectHosts(s, c.String("hosts"), c.String("role"))
	if err != nil {
		return nil, err
	}
	env := &action.Env{Spec: s, Log: a.Stderr, Deploy: deploy.Options{Concurrency: c.Int("concurrency"), Out: a.Stdout}}
	if len(selected) < len(s.Hosts) {
		for _, h := range selected {
			env.Only = append(env.Only, h.Name)
		}
	}
	if a.json {
		// Plans are in the JSON; diffs go to stderr so stdout stays one document.
		env.Deploy.Out = a.Stderr
	}
	return env, nil
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

// report prints an action's summary (or hands it to the JSON envelope)
// and turns its failure, or a host's, into the exit status.
func (a *App) report(r *deploy.Report, err error) error {
	if r != nil {
		if werr := a.emit(r, r.WriteTable); werr != nil {
			return werr
		}
	}
	if err != nil {
		return err
	}
	if failed := r.Failed(); len(failed) > 0 {
		return fmt.Errorf("failed on %d of %d hosts: %s", len(failed), len(r.Hosts), strings.Join(failed, ", "))
	}
	return nil
}
