package main

import (
	"fmt"
	"path/filepath"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/urfave/cli/v2"
)

// specFlag is the -f flag every command that reads a cluster takes.
var specFlag = &cli.StringFlag{
	Name:    "file",
	Aliases: []string{"f"},
	Usage:   "cluster spec `FILE` (default: the built-in example, the seed article's cluster)",
}

// loadSpec reads the spec named by -f, or the built-in example. The
// example's heartbeat authkey is generated once under
// $XDG_CONFIG_HOME/lvsforge/example, so it works with no set-up.
func (a *App) loadSpec(c *cli.Context) (*cluster.Spec, error) {
	if f := c.String("file"); f != "" {
		return cluster.Load(f)
	}
	dir, err := cluster.ExampleDir()
	if err != nil {
		return nil, err
	}
	if err := cluster.EnsureAuthkey(filepath.Join(dir, "authkey")); err != nil {
		return nil, err
	}
	src, err := cluster.DetectSource("/usr/src")
	if err != nil {
		return nil, err
	}
	fmt.Fprintln(a.Stderr, "lvsforge: no -f given: using the built-in example (the seed article's cluster)")
	return cluster.Example(src, dir)
}
