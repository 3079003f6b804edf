package main

import (
	"fmt"
	"os"
	"path/filepath"

	"github.com/urfave/cli/v2"

	"github.com/lvsforge/lvsforge/cluster"
)

// specFlag is the -f flag every command that reads a cluster takes; such a
// command also takes the spec as its one positional argument.
var specFlag = &cli.StringFlag{
	Name:    "file",
	Aliases: []string{"f"},
	Usage:   "cluster spec `FILE` (or give it as the argument; default ./cluster.yaml, else $" + specEnv + ")",
}

const (
	// specEnv names a spec for commands given none.
	specEnv = "LVSFORGE_SPEC"
	// specHere is the spec a command given none takes from the current directory.
	specHere = "cluster.yaml"
)

// ownArgs are the commands whose positional arguments are their own (the
// real server of drain): they take the spec with -f only.
var ownArgs = map[string]bool{"drain": true, "undrain": true}

// specArg is the spec the command line names: -f or the one positional
// argument ("" when neither is given).
func specArg(c *cli.Context) (string, error) {
	f := c.String("file")
	if ownArgs[commandName(c)] {
		return f, nil
	}
	switch c.NArg() {
	case 0:
		return f, nil
	case 1:
	default:
		return "", usageError{fmt.Sprintf("%s takes one spec file, got %d arguments: %s", commandName(c), c.NArg(), quoteArgs(c.Args().Slice()))}
	}
	p := c.Args().First()
	if f != "" && filepath.Clean(f) != filepath.Clean(p) {
		return "", usageError{fmt.Sprintf("two specs: -f %q and the argument %q; give one", f, p)}
	}
	return p, nil
}

// specPath is the spec a command uses: the one the command line names,
// else ./cluster.yaml, else $LVSFORGE_SPEC; "" when there is none. A spec
// the command line does not name is announced on stderr.
func (a *App) specPath(c *cli.Context) (string, error) {
	p, err := specArg(c)
	if err != nil || p != "" {
		return p, err
	}
	if st, err := os.Stat(specHere); err == nil && !st.IsDir() {
		fmt.Fprintf(a.Stderr, "lvsforge: no spec named: using ./%s\n", specHere)
		return specHere, nil
	}
	if p := os.Getenv(specEnv); p != "" {
		fmt.Fprintf(a.Stderr, "lvsforge: no spec named: using $%s (%q)\n", specEnv, p)
		return p, nil
	}
	return "", nil
}

// loadSpec reads the spec (see specPath), or else the built-in example.
// The example's heartbeat authkey is generated once under
// $XDG_CONFIG_HOME/lvsforge/example, so it works with no set-up.
func (a *App) loadSpec(c *cli.Context) (*cluster.Spec, error) {
	p, err := a.specPath(c)
	if err != nil {
		return nil, err
	}
	if p != "" {
		return a.load(p)
	}
	fmt.Fprintln(a.Stderr, "lvsforge: no spec named, no ./"+specHere+", no $"+specEnv+": using the built-in example (the seed article's cluster)")
	return a.exampleSpec()
}

// exampleSpec is the built-in example, with its authkey.
func (a *App) exampleSpec() (*cluster.Spec, error) {
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
	return cluster.Example(src, dir)
}

// hostSpec is loadSpec for the commands that reach real hosts (push,
// kernel confirm, kernel status): they never fall back to the example,
// whose hosts may well be someone's machines.
func (a *App) hostSpec(c *cli.Context) (*cluster.Spec, error) {
	p, err := a.specPath(c)
	if err != nil {
		return nil, err
	}
	if p == "" {
		name := commandName(c)
		return nil, usageError{fmt.Sprintf("%s reaches real hosts, so it never uses the built-in example: name the spec "+
			"(lvsforge %s FILE, or -f FILE), or put it in ./%s or $%s", name, name, specHere, specEnv)}
	}
	return a.load(p)
}

// load reads the spec at p, and prints what validation warns about on
// stderr: it is valid, but something in it works badly (with --json too,
// whose document stays on stdout).
func (a *App) load(p string) (*cluster.Spec, error) {
	s, err := cluster.Load(p)
	if err != nil {
		return nil, err
	}
	for _, w := range s.Warnings {
		fmt.Fprintf(a.Stderr, "lvsforge: warning: %s\n", w)
	}
	return s, nil
}
