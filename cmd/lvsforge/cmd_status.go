package main

import (
	"errors"
	"fmt"
	"time"

	"github.com/urfave/cli/v2"

	"github.com/lvsforge/lvsforge/action"
)

func init() {
	register(func(a *App) *cli.Command {
		return &cli.Command{
			Name:  "status",
			Usage: "show the running cluster: VIP holders, HA state, the live IPVS table against the spec, drains, kernels",
			Description: "Read-only. For each VIP the director that holds it; each director's heartbeat or keepalived state\n" +
				"and sync daemons; the active director's live IPVS table with each real server's weight, connections\n" +
				"and health as the checker sees it; drift from the spec; drained real servers; each host's running,\n" +
				"confirmed and next-boot kernel. Exit status 1 when something is wrong (no VIP holder or two, drift,\n" +
				"an unreachable host, an HA daemon down): usable as a monitoring check.",
			Flags: append(sshFlags(),
				&cli.BoolFlag{Name: "watch", Usage: "refresh in place until Ctrl-C"},
				&cli.DurationFlag{Name: "interval", Value: 2 * time.Second, Usage: "`DURATION` between refreshes with --watch", Action: func(_ *cli.Context, d time.Duration) error {
					if d < 100*time.Millisecond {
						return usageError{fmt.Sprintf("--interval %s: want 100ms or more", d)}
					}
					return nil
				}},
			),
			Action: a.status,
		}
	})
}

// errStatus is the exit status 1 of a status that found problems (listed
// in its output already).
var errStatus = errors.New("the cluster has problems (listed above)")

func (a *App) status(c *cli.Context) error {
	env, err := a.actionEnv(c)
	if err != nil {
		return err
	}
	env.Log = nil
	for {
		st, err := action.ReadStatus(c.Context, env)
		if err != nil {
			return err
		}
		switch {
		case a.json && c.Bool("watch"):
			// One envelope per refresh, one per line, for tools.
			if err := writeEnvelope(a.Stdout, "status", st, statusErr(st)); err != nil {
				return err
			}
		case c.Bool("watch"):
			fmt.Fprint(a.Stdout, "\033[H\033[2J")
			fmt.Fprintf(a.Stdout, "lvsforge status, every %s (Ctrl-C ends it) %s\n\n", c.Duration("interval"), time.Now().Format(time.TimeOnly))
			if err := st.WriteTable(a.Stdout); err != nil {
				return err
			}
		default:
			if err := a.emit(st, st.WriteTable); err != nil {
				return err
			}
			return statusErr(st)
		}
		select {
		case <-c.Context.Done():
			return nil
		case <-time.After(c.Duration("interval")):
		}
	}
}

func statusErr(st *action.Status) error {
	if st.OK() {
		return nil
	}
	return errStatus
}
