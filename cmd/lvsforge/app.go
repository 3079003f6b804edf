package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"runtime/debug"
	"sort"
	"strings"

	"github.com/urfave/cli/v2"
)

// Exit codes, documented in the README.
const (
	ExitOK      = 0
	ExitFailure = 1 // the command ran and something failed (invalid spec, a host failed)
	ExitUsage   = 2 // bad command line
)

// App is the lvsforge program bound to its standard streams.
type App struct {
	Stdin  io.Reader
	Stdout io.Writer
	Stderr io.Writer

	// json is set for one Run when the command prints the JSON envelope;
	// result is what the command reported for it (see emit).
	json   bool
	result any
}

// NewApp builds the program around the given streams.
func NewApp(stdin io.Reader, stdout, stderr io.Writer) *App {
	return &App{Stdin: stdin, Stdout: stdout, Stderr: stderr}
}

// commandBuilders holds one constructor per command; each cmd_*.go file
// registers its own from init so that commands are added without touching this file.
var commandBuilders []func(*App) *cli.Command

func register(build func(*App) *cli.Command) { commandBuilders = append(commandBuilders, build) }

// usageError marks errors in how the command was called (exit status 2).
type usageError struct{ msg string }

func (e usageError) Error() string { return e.msg }

// commands builds the command tree of one Run.
func (a *App) commands() []*cli.Command {
	var cmds []*cli.Command
	for _, b := range commandBuilders {
		cmds = append(cmds, b(a))
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name < cmds[j].Name })
	for _, c := range cmds {
		setupCommand(c)
	}
	return cmds
}

// Run executes the command line and returns the process exit status.
func (a *App) Run(ctx context.Context, args []string) int {
	cmds := a.commands()
	args, inv := resolve(cmds, args)
	a.json, a.result = inv.json, nil
	bi, ok := debug.ReadBuildInfo()
	app := &cli.App{
		Name:      "lvsforge",
		Usage:     "build, configure, push and test Linux Virtual Server clusters",
		UsageText: "lvsforge [global options] command [command options] [SPEC]",
		Version:   versionString(bi, ok),
		Reader:    a.Stdin,
		Writer:    a.Stdout,
		ErrWriter: a.Stderr,
		Commands:  cmds,
		Action:    unknownCommand,
		// Errors are printed once, by Run, with the right exit status.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   onUsageError,
	}
	err := app.RunContext(ctx, args)
	if a.json {
		if werr := writeEnvelope(a.Stdout, inv.path, a.result, err); werr != nil && err == nil {
			err = werr
		}
	}
	if err == nil {
		return ExitOK
	}
	fmt.Fprintf(a.Stderr, "lvsforge: %v\n", err)
	var ue usageError
	if errors.As(err, &ue) {
		return ExitUsage
	}
	return ExitFailure
}

func onUsageError(_ *cli.Context, err error, _ bool) error { return usageError{err.Error()} }

// setupCommand makes bad flags of c and its subcommands exit 2, an unknown
// subcommand a usage error that suggests the nearest, and a positional
// argument that the command does not take a usage error rather than
// something silently ignored.
func setupCommand(c *cli.Command) {
	if c.OnUsageError == nil {
		c.OnUsageError = onUsageError
	}
	if len(c.Subcommands) > 0 {
		if c.Action == nil {
			c.Action = unknownCommand
		}
		for _, sc := range c.Subcommands {
			setupCommand(sc)
		}
		return
	}
	action := c.Action
	switch {
	case hasFlag(c, specFlag):
		if strings.TrimSpace(c.ArgsUsage) == "" {
			c.ArgsUsage = "[SPEC]"
		}
		c.Action = func(ctx *cli.Context) error {
			if _, err := specArg(ctx); err != nil {
				return err
			}
			return action(ctx)
		}
	case strings.TrimSpace(c.ArgsUsage) == "":
		// A command that documents no arguments takes none.
		c.Action = func(ctx *cli.Context) error {
			if ctx.NArg() > 0 {
				return usageError{fmt.Sprintf("%s takes no arguments, got %s", commandName(ctx), quoteArgs(ctx.Args().Slice()))}
			}
			return action(ctx)
		}
	}
}

// unknownCommand is the action of the program and of every command with
// subcommands: a word that names no subcommand is a usage error.
func unknownCommand(c *cli.Context) error {
	if c.NArg() == 0 {
		if c.Command == nil || c.Command.Name == "" {
			return cli.ShowAppHelp(c)
		}
		return cli.ShowSubcommandHelp(c)
	}
	cmds := c.App.Commands
	where := "lvsforge"
	if c.Command != nil && len(c.Command.Subcommands) > 0 {
		cmds, where = c.Command.Subcommands, c.Command.HelpName
	}
	name := c.Args().First()
	msg := fmt.Sprintf("unknown command %q.", name)
	if cli.SuggestCommand != nil {
		msg += " " + cli.SuggestCommand(visible(cmds), name)
	}
	return usageError{fmt.Sprintf("%s `%s --help` lists them all.", msg, where)}
}

// visible drops hidden commands and urfave/cli's help command from
// suggestions.
func visible(cmds []*cli.Command) []*cli.Command {
	var out []*cli.Command
	for _, c := range cmds {
		if !c.Hidden && c.Name != "help" {
			out = append(out, c)
		}
	}
	return out
}

// commandName is the command as typed after the program's name, e.g.
// "kernel status" (cli's FullName is only its last word).
func commandName(c *cli.Context) string {
	return strings.TrimPrefix(c.Command.HelpName, c.App.HelpName+" ")
}

func hasFlag(c *cli.Command, f cli.Flag) bool {
	for _, g := range c.Flags {
		if g == f {
			return true
		}
	}
	return false
}

func quoteArgs(args []string) string {
	q := make([]string, len(args))
	for i, s := range args {
		q[i] = fmt.Sprintf("%q", s)
	}
	return strings.Join(q, " ")
}
