package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"

	"github.com/lvsforge/lvsforge/roles"
)

// renderReport is render's result (--json).
type renderReport struct {
	Cluster string `json:"cluster"`
	Out     string `json:"out"`
	Hosts   int    `json:"hosts"`
	Files   int    `json:"files"`
}

func init() {
	register(func(a *App) *cli.Command {
		return &cli.Command{
			Name:  "render",
			Usage: "write every host's files to OUT/<host>/<path> (all or nothing)",
			Flags: []cli.Flag{specFlag, &cli.StringFlag{
				Name: "out", Aliases: []string{"o"}, Value: "out", Usage: "output `DIR`; replaced only if empty or an earlier render with nothing added or changed",
			}, jsonFlag},
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
				r := renderReport{Cluster: s.Metadata.Name, Out: c.String("out"), Hosts: len(hosts)}
				for _, h := range hosts {
					r.Files += len(h.Files)
				}
				return a.emit(r, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "rendered %d files for %d hosts of cluster %q into %s\n", r.Files, r.Hosts, r.Cluster, r.Out)
					return err
				})
			},
		}
	})
}
