package main

import (
	"fmt"
	"io"
	"path/filepath"
	"slices"
	"strings"
	"text/tabwriter"

	"github.com/urfave/cli/v2"

	"github.com/lvsforge/lvsforge/action"
	"github.com/lvsforge/lvsforge/build"
	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/deploy"
	"github.com/lvsforge/lvsforge/install"
)

// kernelPushFlags are push's flags for installing the built kernel.
func kernelPushFlags() []cli.Flag {
	return []cli.Flag{
		&cli.BoolFlag{Name: "kernel", Usage: "also install the role's built kernel (/boot files, modules + depmod, GRUB entry) and, on the directors, the built ipvsadm"},
		&cli.StringFlag{Name: "kernel-dir", Usage: "`DIR` holding one kernel build per role (DIR/director, DIR/realserver: bzImage, System.map, config, kernelrelease, modules.tar.gz); default: the spec's builds in the cache (lvsforge build)"},
		cacheDirFlag,
		&cli.StringFlag{Name: "activate", Usage: "`once`: boot the new kernel on the next reboot only (lvsforge kernel confirm then makes it the default)"},
	}
}

// builtArtifacts finds what `lvsforge build` left for a spec, without
// building anything.
type builtArtifacts interface {
	// KernelDir is the directory of the role's kernel build for s, in the
	// layout deploy.LoadKernel reads.
	KernelDir(s *cluster.Spec, role string) (string, error)
	// Ipvsadm is the built ipvsadm binary, "" when none was built.
	Ipvsadm() (string, error)
}

// openBuilds opens the builds of the cache in dir ("": the default cache).
var openBuilds = func(dir string) (builtArtifacts, error) {
	if dir == "" {
		var err error
		if dir, err = build.DefaultCacheDir(); err != nil {
			return nil, err
		}
	}
	return cacheBuilds{dir: dir}, nil
}

// cacheBuilds is the cache's builds (build.LatestKernel, LatestIpvsadm).
type cacheBuilds struct{ dir string }

func (b cacheBuilds) KernelDir(s *cluster.Spec, role string) (string, error) {
	return build.LatestKernel(b.dir, s, role, s.Release(role))
}

func (b cacheBuilds) Ipvsadm() (string, error) { return build.LatestIpvsadm(b.dir) }

// addKernels loads each selected role's kernel for push --kernel, from
// --kernel-dir or the cache, and unless --ipvsadm names one, the cache's
// ipvsadm for the directors.
func (a *App) addKernels(c *cli.Context, env *action.Env) error {
	act := c.String("activate")
	if act != "" && act != "once" {
		return usageError{fmt.Sprintf("--activate %q: only \"once\" (then `lvsforge kernel confirm`)", act)}
	}
	if !c.Bool("kernel") {
		if act != "" {
			return usageError{"--activate needs --kernel"}
		}
		return nil
	}
	return a.loadKernels(c, env, act == "once")
}

// loadKernels loads each selected role's built kernel into env, from
// --kernel-dir or the cache, to activate for one boot only with once; and
// unless --ipvsadm names one, the cache's ipvsadm for the directors.
func (a *App) loadKernels(c *cli.Context, env *action.Env, once bool) error {
	var builds builtArtifacts
	kdir := c.String("kernel-dir")
	if kdir == "" {
		var err error
		if builds, err = openBuilds(c.String("cache-dir")); err != nil {
			return err
		}
	}
	s := env.Spec
	env.Kernels = map[string]*deploy.Kernel{}
	directors := false
	for _, h := range selectedHosts(env) {
		directors = directors || h.Role == cluster.RoleDirector
		if env.Kernels[h.Role] != nil {
			continue
		}
		dir := filepath.Join(kdir, h.Role)
		if builds != nil {
			var err error
			if dir, err = builds.KernelDir(s, h.Role); err != nil {
				return err
			}
		}
		k, err := deploy.LoadKernel(dir)
		if err != nil {
			return fmt.Errorf("load %s kernel: %w", h.Role, err)
		}
		// roles' GRUB script lists /boot/vmlinuz-*LOCALVERSION only.
		if want := s.Release(h.Role); k.Release != want {
			return fmt.Errorf("load %s kernel: release %s, but the spec's %s kernel is %s", h.Role, k.Release, h.Role, want)
		}
		k.ActivateOnce = once
		env.Kernels[h.Role] = k
	}
	if builds == nil || c.String("ipvsadm") != "" || !directors {
		return nil
	}
	bin, err := builds.Ipvsadm()
	if err != nil {
		return fmt.Errorf("find the built ipvsadm: %w", err)
	}
	if bin == "" {
		fmt.Fprintln(a.Stderr, "no ipvsadm in the cache (lvsforge build ipvsadm --static): the directors keep their own")
		return nil
	}
	env.Ipvsadm, err = install.OpenArtifact(bin)
	return err
}

// selectedHosts are the spec's hosts env works on.
func selectedHosts(env *action.Env) []*cluster.Host {
	var out []*cluster.Host
	for i := range env.Spec.Hosts {
		h := &env.Spec.Hosts[i]
		if len(env.Only) == 0 || slices.Contains(env.Only, h.Name) {
			out = append(out, h)
		}
	}
	return out
}

func init() {
	register(func(a *App) *cli.Command {
		return &cli.Command{
			Name:  "kernel",
			Usage: "confirm a kernel booted once, or show each host's kernels",
			Subcommands: []*cli.Command{
				{
					Name:  "confirm",
					Usage: "make the kernel each host runs now (booted with push --kernel --activate once) its GRUB default",
					Description: "Refused on a host that is not running the role's kernel (or --release): confirm only\n" +
						"after the kernel booted and the checks passed.",
					Flags: append(sshFlags(),
						&cli.StringFlag{Name: "release", Usage: "kernel `RELEASE` to confirm (default: the role's kernel from the spec)"}),
					Action: func(c *cli.Context) error {
						env, err := a.actionEnv(c)
						if err != nil {
							return err
						}
						if rel := c.String("release"); rel != "" {
							env.Kernels = map[string]*deploy.Kernel{}
							for _, role := range []string{cluster.RoleDirector, cluster.RoleRealServer} {
								env.Kernels[role] = &deploy.Kernel{Release: rel}
							}
						}
						rep, err := action.RunKernelConfirm(c.Context, env)
						return a.report(rep, err)
					},
				},
				{
					Name:  "status",
					Usage: "show each host's running, installed, default and next-boot kernel",
					Flags: sshFlags(),
					Action: func(c *cli.Context) error {
						env, err := a.actionEnv(c)
						if err != nil {
							return err
						}
						st, err := action.KernelStatus(c.Context, env)
						if err != nil {
							return err
						}
						return a.kernelStatus(st)
					},
				},
			},
		}
	})
}

func (a *App) kernelStatus(st []*deploy.KernelStatus) error {
	err := a.emit(st, func(w io.Writer) error {
		tw := tabwriter.NewWriter(w, 0, 0, 2, ' ', 0)
		fmt.Fprintln(tw, "HOST\tRUNNING\tDEFAULT\tNEXT BOOT\tINSTALLED")
		for _, s := range st {
			if s.Err() != nil {
				fmt.Fprintf(tw, "%s\terror: %v\t\t\t\n", s.Host, s.Err())
				continue
			}
			fmt.Fprintf(tw, "%s\t%s\t%s\t%s\t%s\n", s.Host, s.Running, dash(s.Default), dash(s.Next), strings.Join(s.Installed, " "))
		}
		if err := tw.Flush(); err != nil {
			return fmt.Errorf("write status: %w", err)
		}
		return nil
	})
	if err != nil {
		return err
	}
	var failed []string
	for _, s := range st {
		if s.Err() != nil {
			failed = append(failed, s.Host)
		}
	}
	if len(failed) > 0 {
		return fmt.Errorf("failed on %d of %d hosts: %s", len(failed), len(st), strings.Join(failed, ", "))
	}
	return nil
}

func dash(s string) string {
	if s == "" {
		return "-"
	}
	return s
}
