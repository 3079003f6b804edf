package main

import (
	"fmt"
	"strconv"
	"strings"

	"github.com/urfave/cli/v2"
)

// invocation is what resolve learnt about a command line.
type invocation struct {
	// path names the command, e.g. "kernel status"; "" for none.
	path string
	// json: the command prints the JSON envelope (--json given to a
	// command that takes jsonFlag, and no --help).
	json bool
}

// rawArgs are the commands whose words after the first positional argument
// belong to another program (vm ssh HOST COMMAND...): none of them is
// lvsforge's flag, so none is moved.
var rawArgs = map[string]bool{"vm ssh": true}

// resolve finds the command args name and returns args with that
// command's flags moved before its positional arguments. urfave/cli v2
// stops parsing flags at the first positional argument and has no switch
// to change that, so `push cluster.yaml --dry-run` would otherwise push
// for real. A "--" ends the flags as usual.
func resolve(cmds []*cli.Command, args []string) ([]string, invocation) {
	var inv invocation
	if len(args) == 0 {
		return args, inv
	}
	out := []string{args[0]}
	level := cmds
	var cur *cli.Command
	i := 1
	for i < len(args) {
		a := args[i]
		if isFlagArg(a) { // the program's or a parent command's (help, version): no values
			out = append(out, a)
			i++
			continue
		}
		next := findCommand(level, a)
		if next == nil {
			break
		}
		cur = next
		inv.path = strings.TrimSpace(inv.path + " " + cur.Name)
		out = append(out, a)
		i++
		if len(cur.Subcommands) == 0 {
			break
		}
		level = cur.Subcommands
	}
	if cur == nil || len(cur.Subcommands) > 0 || rawArgs[inv.path] {
		return append(out, args[i:]...), inv
	}
	var flags, pos []string
	dashdash, help, json := false, false, false
	for j := i; j < len(args); j++ {
		a := args[j]
		if a == "--" {
			dashdash = true
			pos = append(pos, args[j+1:]...)
			break
		}
		if !isFlagArg(a) {
			pos = append(pos, a)
			continue
		}
		flags = append(flags, a)
		name, value, hasValue := strings.Cut(strings.TrimLeft(a, "-"), "=")
		f := flagNamed(cur, name)
		switch {
		case name == "help" || name == "h":
			help = true
		case f == jsonFlag:
			json = !hasValue
			if hasValue {
				json, _ = strconv.ParseBool(value)
			}
		case !hasValue && takesValue(f) && j+1 < len(args):
			j++
			flags = append(flags, args[j])
		}
	}
	inv.json = json && !help
	out = append(out, flags...)
	if dashdash {
		out = append(out, "--")
	}
	return append(out, pos...), inv
}

// isFlagArg: "-" alone is an argument (stdin, by convention), "--" ends
// the flags.
func isFlagArg(a string) bool { return len(a) > 1 && a[0] == '-' && a != "--" }

func findCommand(cmds []*cli.Command, name string) *cli.Command {
	for _, c := range cmds {
		if c.HasName(name) {
			return c
		}
	}
	return nil
}

func flagNamed(c *cli.Command, name string) cli.Flag {
	for _, f := range c.Flags {
		for _, n := range f.Names() {
			if n == name {
				return f
			}
		}
	}
	return nil
}

// takesValue: an unknown flag takes none (urfave/cli then reports it).
func takesValue(f cli.Flag) bool {
	df, ok := f.(cli.DocGenerationFlag)
	return ok && df.TakesValue()
}

// intFlag is a numeric flag refused (exit 2) below min, with what is valid.
func intFlag(name string, value, min int, usage string) *cli.IntFlag {
	return &cli.IntFlag{Name: name, Value: value, Usage: usage, Action: func(_ *cli.Context, v int) error {
		if v < min {
			return usageError{fmt.Sprintf("--%s %d: want %d or more", name, v, min)}
		}
		return nil
	}}
}
