package main

import (
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lvsforge/lvsforge/action"
)

func init() {
	register(func(a *App) *cli.Command {
		return &cli.Command{
			Name:  "upgrade",
			Usage: "roll the built kernels out to the hosts, one at a time, without interrupting service",
			Description: "Per real server: drain and wait, install the kernel (push --kernel), activate it for one boot,\n" +
				"reboot, wait for sshd, check it runs the new kernel, kernel confirm, wait until it answers, undrain.\n" +
				"Then the directors, the standby first, the active one after the VIPs moved to the standby. A host\n" +
				"already on its new kernel is passed over, so a second run continues where the first stopped. A\n" +
				"kernel that does not come back (it panics and falls back, or sshd is not back in time) stops the\n" +
				"upgrade at that host, which stays on its old kernel (undrained only if it answers).",
			Flags: append(sshFlags(),
				&cli.StringFlag{Name: "kernel-dir", Usage: "`DIR` holding one kernel build per role (DIR/director, DIR/realserver); default: the spec's builds in the cache (lvsforge build)"},
				cacheDirFlag,
				&cli.StringFlag{Name: "ipvsadm", Usage: "also install this ipvsadm `BINARY` on the directors (default: the cache's)"},
				intFlag("batch", 1, 1, "`N` real servers upgraded at a time"),
				&cli.BoolFlag{Name: "dry-run", Usage: "print the order and the steps; change nothing"},
				positiveDuration("drain-timeout", action.DefaultDrainTimeout, "`DURATION` a drained real server's connections may take to end"),
				positiveDuration("boot-timeout", action.DefaultBootTimeout, "`DURATION` a host may take to reboot until its sshd answers"),
				positiveDuration("health-timeout", action.DefaultHealthTimeout, "`DURATION` a host may take to answer again after its reboot"),
			),
			Action: func(c *cli.Context) error {
				env, err := a.actionEnv(c)
				if err != nil {
					return err
				}
				if err := a.loadKernels(c, env, true); err != nil {
					return err
				}
				env.Deploy.DryRun = c.Bool("dry-run")
				env.DrainTimeout, env.HealthTimeout = c.Duration("drain-timeout"), c.Duration("health-timeout")
				rep, err := action.RunUpgrade(c.Context, env, action.UpgradeOptions{Batch: c.Int("batch"), BootTimeout: c.Duration("boot-timeout")})
				return a.report(rep, err)
			},
		}
	})
}

// positiveDuration is a duration flag refused (exit 2) unless above 0.
func positiveDuration(name string, value time.Duration, usage string) *cli.DurationFlag {
	return &cli.DurationFlag{Name: name, Value: value, Usage: usage, Action: func(_ *cli.Context, d time.Duration) error {
		if d <= 0 {
			return usageError{fmt.Sprintf("--%s %s: want a duration above 0", name, d)}
		}
		return nil
	}}
}
