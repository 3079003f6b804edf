package main

import (
	"fmt"

	"github.com/lvsforge/lvsforge/roles"
	"github.com/urfave/cli/v2"
)

func init() {
	register(func(a *App) *cli.Command {
		return &cli.Command{
			Name:      "render",
			Usage:     "write every host's files to OUT/<host>/<path> (all or nothing)",
			ArgsUsage: " ",
			Flags: []cli.Flag{specFlag, &cli.StringFlag{
				Name: "out", Aliases: []string{"o"}, Value: "out", Usage: "output `DIR`; replaced only if empty or an earlier render",
			}},
			Action: func(c *cli.Context) error {
				s, err := a.loadSpec(c)
				if err != nil {
					return err
				}
				hosts, err := roles.Render(s)
				if err != nil {
					return err
				}
				if err := roles.WriteTree(c.String("out"), s.Metadata.Name, hosts); err != nil {
					return err
				}
				n := 0
				for _, h := range hosts {
					n += len(h.Files)
				}
				fmt.Fprintf(a.Stdout, "rendered %d files for %d hosts of cluster %q into %s\n", n, len(hosts), s.Metadata.Name, c.String("out"))
				return nil
			},
		}
	})
}
