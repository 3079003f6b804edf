package main

import (
	"fmt"

	"github.com/urfave/cli/v2"
)

func init() {
	register(func(a *App) *cli.Command {
		return &cli.Command{
			Name:      "validate",
			Usage:     "check a cluster spec and report every problem with its file, line and field",
			ArgsUsage: " ",
			Flags:     []cli.Flag{specFlag},
			Action: func(c *cli.Context) error {
				s, err := a.loadSpec(c)
				if err != nil {
					return err
				}
				fmt.Fprintf(a.Stdout, "%s: cluster %q is valid: %d directors, %d real servers, %d services\n",
					s.File, s.Metadata.Name, len(s.HostsByRole("director")), len(s.HostsByRole("realserver")), len(s.Services))
				return nil
			},
		}
	})
}
