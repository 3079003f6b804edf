package main

import (
	"errors"
	"fmt"
	"io/fs"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/internal/fsutil"
)

func init() {
	register(func(a *App) *cli.Command {
		return &cli.Command{
			Name:      "init",
			Usage:     "write DIR/cluster.yaml (the seed article's cluster, commented) and a fresh heartbeat authkey",
			ArgsUsage: " ",
			Flags: []cli.Flag{
				&cli.StringFlag{Name: "dir", Value: ".", Usage: "`DIR` to write the spec into"},
				&cli.BoolFlag{Name: "force", Usage: "replace an existing cluster.yaml"},
				&cli.StringFlag{Name: "src-dir", Value: "/usr/src", Usage: "where to look for a distro linux-source-*.tar.xz", Hidden: true},
			},
			Action: func(c *cli.Context) error {
				return a.initCluster(c.String("dir"), c.String("src-dir"), c.Bool("force"))
			},
		}
	})
}

func (a *App) initCluster(dir, srcDir string, force bool) error {
	path := filepath.Join(dir, "cluster.yaml")
	if _, err := os.Stat(path); err == nil && !force {
		return fmt.Errorf("write spec: %s already exists (use --force to replace it)", path)
	} else if err != nil && !errors.Is(err, fs.ErrNotExist) {
		return fmt.Errorf("write spec: %w", err)
	}
	src, err := cluster.DetectSource(srcDir)
	if err != nil {
		return err
	}
	data := cluster.ExampleYAML(src)
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return fmt.Errorf("create %s: %w", dir, err)
	}
	key := filepath.Join(dir, "authkey")
	_, err = os.Lstat(key)
	existed := err == nil
	if err := cluster.EnsureAuthkey(key); err != nil {
		return err
	}
	// An authkey already there is kept (it may be the secret the cluster
	// runs with) but made private: it is the file init names in the spec,
	// and validation refuses a secret others can read.
	before, after, err := cluster.PrivateAuthkey(key)
	if err != nil {
		return err
	}
	if err := fsutil.WriteFileAtomic(path, data, 0o644); err != nil {
		return fmt.Errorf("write spec: %w", err)
	}
	if _, err := cluster.Load(path); err != nil {
		// The template is lvsforge's, but an existing authkey is not.
		return fmt.Errorf("check the written spec: %w", err)
	}
	keyNote := fmt.Sprintf("a new heartbeat secret, mode %04o", after)
	switch {
	case existed && before != after:
		keyNote = fmt.Sprintf("the heartbeat secret already there, kept; its mode %04o let others read it, now %04o", before, after)
	case existed:
		keyNote = fmt.Sprintf("the heartbeat secret already there, kept, mode %04o", after)
	}
	fmt.Fprintf(a.Stdout, "wrote %s (kernel %s from %s); %s: %s\n",
		path, src.KernelVersion, sourceName(src), key, keyNote)
	fmt.Fprintf(a.Stdout, "next: lvsforge validate -f %s && lvsforge render -f %s -o out/\n", path, path)
	return nil
}

func sourceName(src cluster.ExampleSource) string {
	if src.KernelVersion == cluster.PinnedKernelOrgVersion && len(src.SourceLines) == 2 {
		return "kernel.org"
	}
	return "the installed distro tarball"
}
