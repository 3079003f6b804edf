package main

import (
	"fmt"
	"io"

	"github.com/urfave/cli/v2"
)

// validateReport is validate's result (--json).
type validateReport struct {
	File        string `json:"file"`
	Cluster     string `json:"cluster"`
	Directors   int    `json:"directors"`
	RealServers int    `json:"realServers"`
	Services    int    `json:"services"`
}

func init() {
	register(func(a *App) *cli.Command {
		return &cli.Command{
			Name:  "validate",
			Usage: "check a cluster spec and report every problem with its file, line and field",
			Flags: []cli.Flag{specFlag, jsonFlag},
			Action: func(c *cli.Context) error {
				s, err := a.loadSpec(c)
				if err != nil {
					return err
				}
				r := validateReport{File: s.File, Cluster: s.Metadata.Name, Directors: len(s.HostsByRole("director")),
					RealServers: len(s.HostsByRole("realserver")), Services: len(s.Services)}
				return a.emit(r, func(w io.Writer) error {
					_, err := fmt.Fprintf(w, "%s: cluster %q is valid: %d directors, %d real servers, %d services\n",
						r.File, r.Cluster, r.Directors, r.RealServers, r.Services)
					return err
				})
			},
		}
	})
}
