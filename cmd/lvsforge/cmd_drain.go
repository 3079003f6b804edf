package main

import (
	"fmt"
	"strings"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lvsforge/lvsforge/action"
)

func init() {
	register(func(a *App) *cli.Command { return a.drainCommand(false) })
	register(func(a *App) *cli.Command { return a.drainCommand(true) })
}

func (a *App) drainCommand(undrain bool) *cli.Command {
	flags := append(connectFlags(),
		&cli.StringFlag{Name: "service", Usage: "only these `SERVICES` (comma-separated; default every service the real server serves)"},
		&cli.BoolFlag{Name: "dry-run", Usage: "print the directors' plans; change nothing"},
	)
	cmd := &cli.Command{
		Name:      "undrain",
		Usage:     "give a drained real server its weights back, on every director",
		ArgsUsage: "REALSERVER",
		Flags:     flags,
	}
	if !undrain {
		cmd.Name = "drain"
		cmd.Usage = "take a real server out of service on every director: weight 0, established connections finish"
		cmd.Description = "The drain is recorded on every director and rendered into the health checker's configuration\n" +
			"(ldirectord.cf or keepalived.conf: weight 0), which is reloaded: the checker keeps it at 0, and a later\n" +
			"push keeps the drain until `lvsforge undrain`. drain returns once the active director's table sends it\n" +
			"no new connection (weight 0); --wait then returns when it has no open connection (established or being\n" +
			"set up) left on the active director, or exits 1 at --timeout. undrain returns once the checker has\n" +
			"given the weights back (exit 1 if the server does not pass its check within 3 minutes)."
		cmd.Flags = append(cmd.Flags,
			&cli.BoolFlag{Name: "wait", Usage: "wait until its open connections (established or being set up) reach 0"},
			positiveDuration("timeout", 10*time.Minute, "`DURATION` --wait waits at most"),
		)
	}
	cmd.Action = func(c *cli.Context) error {
		if c.NArg() != 1 {
			return usageError{fmt.Sprintf("%s takes one real server, the spec with -f; got %d arguments", cmd.Name, c.NArg())}
		}
		req := action.DrainRequest{Host: c.Args().First(), Undrain: undrain, Wait: c.Bool("wait"), Timeout: c.Duration("timeout")}
		if s := c.String("service"); s != "" {
			for _, x := range strings.Split(s, ",") {
				req.Services = append(req.Services, strings.TrimSpace(x))
			}
		}
		env, err := a.actionEnv(c)
		if err != nil {
			return err
		}
		env.Deploy.DryRun = c.Bool("dry-run")
		rep, err := action.RunDrain(c.Context, env, req)
		return a.report(rep, err)
	}
	return cmd
}
