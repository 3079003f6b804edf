package main

import (
	"fmt"

	"github.com/urfave/cli/v2"

	"github.com/lvsforge/lvsforge/build"
	"github.com/lvsforge/lvsforge/cluster"
)

func init() {
	register(func(a *App) *cli.Command {
		common := []cli.Flag{specFlag, cacheDirFlag, keyringFlag, signerFlag, ipvsadmFileFlag, buildJSONFlag,
			jobsFlag(),
			&cli.BoolFlag{Name: "no-ccache", Usage: "do not use ccache even when it is installed (a spec's build farm never does)"},
		}
		kernelFlags := []cli.Flag{
			&cli.BoolFlag{Name: "vm", Value: true, Usage: "add the QEMU guest fragment (virtio, serial console, ACPI); --vm=false for hardware-only kernels"},
			&cli.StringFlag{Name: "package", Usage: "also build the kernel's `FORMAT` packages into the artifacts: deb (bindeb-pkg) or rpm (binrpm-pkg)"},
		}
		staticFlag := &cli.BoolFlag{Name: "static", Usage: "link ipvsadm statically (runs on hosts without libnl and popt)"}
		return &cli.Command{
			Name:  "build",
			Usage: "build role kernels and ipvsadm from verified sources; unchanged inputs return cached artifacts",
			Subcommands: []*cli.Command{
				{
					Name:      "kernel",
					Usage:     "build one role's kernel",
					ArgsUsage: " ",
					Flags: append(append([]cli.Flag{
						&cli.StringFlag{Name: "role", Required: true, Usage: "`ROLE`: director or realserver"},
					}, common...), kernelFlags...),
					Action: func(c *cli.Context) error {
						role := c.String("role")
						if role != cluster.RoleDirector && role != cluster.RoleRealServer {
							return usageError{fmt.Sprintf("--role %q: want director or realserver", role)}
						}
						return a.build(c, []string{role}, false)
					},
				},
				{
					Name:      "ipvsadm",
					Usage:     "build ipvsadm",
					ArgsUsage: " ",
					Flags:     append(common, staticFlag),
					Action:    func(c *cli.Context) error { return a.build(c, nil, true) },
				},
				{
					Name:      "all",
					Usage:     "build every role's kernel and ipvsadm",
					ArgsUsage: " ",
					Flags:     append(append(common, kernelFlags...), staticFlag),
					Action:    func(c *cli.Context) error { return a.build(c, build.Roles, true) },
				},
			},
		}
	})
}

func jobsFlag() *cli.IntFlag {
	f := intFlag("jobs", 0, 1, "parallel make `JOBS` (default: the CPUs, plus each build farm host's /jobs, 4 when it gives none)")
	f.Aliases = []string{"j"}
	return f
}

// buildProgress is how build, vmtest and vm up show a build's steps and
// progress on stderr: one rewritten line on a terminal, log lines
// otherwise (see fetchProgress). vm up and vmtest once sent compilation to
// build.log only, and a first run said nothing for half an hour.
func (a *App) buildProgress() *fetchProgress { return newFetchProgress(a.Stderr) }

type kernelReport struct {
	Role     string   `json:"role"`
	Release  string   `json:"release"`
	Cached   bool     `json:"cached"`
	Dir      string   `json:"dir"`
	BzImage  string   `json:"bzImage"`
	Modules  string   `json:"modules,omitempty"`
	Config   string   `json:"config"`
	Manifest string   `json:"manifest"`
	Packages []string `json:"packages,omitempty"`
}

type ipvsadmReport struct {
	Version string `json:"version"`
	Static  bool   `json:"static"`
	Cached  bool   `json:"cached"`
	Binary  string `json:"binary"`
}

// build fetches (a no-op for what is cached) and builds the roles' kernels
// and, with ipvsadm, ipvsadm.
func (a *App) build(c *cli.Context, roles []string, ipvsadm bool) error {
	if p := c.String("package"); p != "" && p != build.PackageDeb && p != build.PackageRPM {
		return usageError{fmt.Sprintf("--package %q: want %s or %s", p, build.PackageDeb, build.PackageRPM)}
	}
	s, f, opt, err := a.fetchSetup(c)
	if err != nil {
		return err
	}
	if len(roles) == 0 {
		// ipvsadm alone needs no kernel source; FetchSpec always resolves
		// one, so build ipvsadm from its own fetch.
		return a.buildIpvsadmOnly(c, f, opt)
	}
	b := &build.Builder{Cache: f.Cache, Jobs: c.Int("jobs"), SystemXZ: true, NoCCache: c.Bool("no-ccache"), Status: a.buildProgress().step}
	art, err := b.BuildSpec(c.Context, f, s, opt, build.SpecBuild{Roles: roles, VM: c.Bool("vm"), Ipvsadm: ipvsadm, Static: c.Bool("static"), Package: c.String("package")})
	if err != nil {
		return err
	}
	var kernels []kernelReport
	for _, role := range roles {
		k := art.Kernels[role]
		kernels = append(kernels, kernelReport{Role: role, Release: k.Release, Cached: k.Cached, Dir: k.Dir,
			BzImage: k.BzImage, Modules: k.Modules, Config: k.Config, Manifest: k.Dir + "/manifest.json", Packages: k.Packages})
	}
	var ip *ipvsadmReport
	if art.Ipvsadm != nil {
		ip = &ipvsadmReport{Version: art.Ipvsadm.Version, Static: c.Bool("static"), Cached: art.Ipvsadm.Cached, Binary: art.Ipvsadm.Binary}
	}
	return a.reportBuild(c, kernels, ip)
}

func (a *App) buildIpvsadmOnly(c *cli.Context, f *build.Fetcher, opt build.FetchOptions) error {
	src := build.IpvsadmSource
	var path string
	var err error
	if opt.IpvsadmFile != "" {
		path, err = f.Cache.Import(opt.IpvsadmFile, src.SHA256, src.Kind)
	} else {
		var paths []string
		paths, err = f.Fetch(c.Context, src)
		if err == nil {
			path = paths[0]
		}
	}
	if err != nil {
		return err
	}
	b := &build.Builder{Cache: f.Cache, Jobs: c.Int("jobs"), Status: a.buildProgress().step}
	art, err := b.Ipvsadm(c.Context, build.IpvsadmInputs{Tarball: path, TarballSHA256: src.SHA256, Static: c.Bool("static")})
	if err != nil {
		return err
	}
	return a.reportBuild(c, nil, &ipvsadmReport{Version: art.Version, Static: c.Bool("static"), Cached: art.Cached, Binary: art.Binary})
}

func (a *App) reportBuild(c *cli.Context, kernels []kernelReport, ip *ipvsadmReport) error {
	if c.Bool("json") {
		out := map[string]any{"kernels": kernels}
		if ip != nil {
			out["ipvsadm"] = ip
		}
		return writeBuildJSON(a.Stdout, out)
	}
	for _, k := range kernels {
		state := "built"
		if k.Cached {
			state = "cached"
		}
		fmt.Fprintf(a.Stdout, "%s kernel %s (%s): %s\n", k.Role, k.Release, state, k.Dir)
		for _, p := range k.Packages {
			fmt.Fprintf(a.Stdout, "  package %s\n", p)
		}
	}
	if ip != nil {
		state := "built"
		if ip.Cached {
			state = "cached"
		}
		kind := "dynamic"
		if ip.Static {
			kind = "static"
		}
		fmt.Fprintf(a.Stdout, "ipvsadm %s %s (%s): %s\n", ip.Version, kind, state, ip.Binary)
	}
	return nil
}
