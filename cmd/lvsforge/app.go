package main

import (
	"context"
	"errors"
	"fmt"
	"io"
	"sort"

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

// Run executes the command line and returns the process exit status.
func (a *App) Run(ctx context.Context, args []string) int {
	var cmds []*cli.Command
	for _, b := range commandBuilders {
		cmds = append(cmds, b(a))
	}
	sort.Slice(cmds, func(i, j int) bool { return cmds[i].Name < cmds[j].Name })
	markUsageErrors(cmds)
	app := &cli.App{
		Name:      "lvsforge",
		Usage:     "build, configure, push and test Linux Virtual Server clusters",
		Reader:    a.Stdin,
		Writer:    a.Stdout,
		ErrWriter: a.Stderr,
		Commands:  cmds,
		// Errors are printed once, by Run, with the right exit status.
		ExitErrHandler: func(*cli.Context, error) {},
		OnUsageError:   onUsageError,
	}
	err := app.RunContext(ctx, args)
	if err == nil {
		return ExitOK
	}
	var ue usageError
	if errors.As(err, &ue) {
		fmt.Fprintf(a.Stderr, "lvsforge: %v\n", err)
		return ExitUsage
	}
	fmt.Fprintf(a.Stderr, "lvsforge: %v\n", err)
	return ExitFailure
}

func onUsageError(_ *cli.Context, err error, _ bool) error { return usageError{err.Error()} }

// markUsageErrors makes bad flags of every command and subcommand exit 2.
func markUsageErrors(cmds []*cli.Command) {
	for _, c := range cmds {
		if c.OnUsageError == nil {
			c.OnUsageError = onUsageError
		}
		markUsageErrors(c.Subcommands)
	}
}
