package main

import (
	"fmt"
	"io"
	"slices"
	"strings"

	"github.com/urfave/cli/v2"
)

// completionShells are the shells `lvsforge completion` writes a script for.
var completionShells = []string{"bash", "fish", "zsh"}

func init() {
	register(func(a *App) *cli.Command {
		return &cli.Command{
			Name:  "completion",
			Usage: "print a shell script that completes lvsforge's commands, subcommands and flags",
			Description: "bash: source <(lvsforge completion bash), or save it as /etc/bash_completion.d/lvsforge\n" +
				"zsh:  source <(lvsforge completion zsh) after compinit\n" +
				"fish: lvsforge completion fish > ~/.config/fish/completions/lvsforge.fish",
			ArgsUsage: strings.Join(completionShells, "|"),
			Action: func(c *cli.Context) error {
				if c.NArg() != 1 || !slices.Contains(completionShells, c.Args().First()) {
					return usageError{fmt.Sprintf("completion: name one shell: %s (got %s)", strings.Join(completionShells, ", "), quoteArgs(c.Args().Slice()))}
				}
				table := completionTable(c.App)
				if c.Args().First() == "fish" {
					return writeFishCompletion(a.Stdout, table)
				}
				return writeBashCompletion(a.Stdout, table, c.Args().First() == "zsh")
			},
		}
	})
}

// completionEntry is what can follow a command path ("" is the program,
// "build kernel" a subcommand): its subcommands (or, for completion, its
// shells), its flags, and which of those take a value.
type completionEntry struct {
	path                string
	words, flags, value []string
}

// completionTable walks the command tree; every shell's script is written
// from it, so the three complete the same words.
func completionTable(app *cli.App) []completionEntry {
	root := completionEntry{words: commandWords(app.Commands), flags: []string{"--help", "-h", "--version", "-v"}}
	out := []completionEntry{root}
	var walk func(path string, cmds []*cli.Command)
	walk = func(path string, cmds []*cli.Command) {
		for _, c := range visible(cmds) {
			p := strings.TrimSpace(path + " " + c.Name)
			e := completionEntry{path: p, words: commandWords(c.Subcommands), flags: []string{"--help", "-h"}}
			if c.Name == "completion" && path == "" {
				e.words = completionShells
			}
			for _, f := range c.Flags {
				if vf, ok := f.(cli.VisibleFlag); ok && !vf.IsVisible() {
					continue
				}
				for _, n := range f.Names() {
					if n == "help" || n == "h" {
						continue
					}
					name := "--" + n
					if len(n) == 1 {
						name = "-" + n
					}
					e.flags = append(e.flags, name)
					if takesValue(f) {
						e.value = append(e.value, name)
					}
				}
			}
			out = append(out, e)
			walk(p, c.Subcommands)
		}
	}
	walk("", app.Commands)
	return out
}

func commandWords(cmds []*cli.Command) []string {
	var w []string
	for _, c := range visible(cmds) {
		w = append(w, c.Name)
	}
	return w
}

// writeBashCompletion writes the bash script; zsh runs the same script
// through bashcompinit. Arrays are read as ${a[@]: i: 1}, which both shells
// index from 0 (the space keeps zsh from reading ":i" as a modifier), and
// no variable is named path or words, which zsh reserves.
func writeBashCompletion(w io.Writer, table []completionEntry, zsh bool) error {
	head := "# lvsforge completion for bash: source <(lvsforge completion bash), or save it as\n# /etc/bash_completion.d/lvsforge.\n"
	if zsh {
		head = "#compdef lvsforge\n# lvsforge completion for zsh: source <(lvsforge completion zsh), after compinit.\n" +
			"autoload -U +X bashcompinit && bashcompinit\n"
	}
	head += "_lvsforge_table() {\n\tlvs_words='' lvs_flags='' lvs_value=''\n\tcase \"$1\" in\n"
	return writeCompletionScript(w, head, "\t'%s') lvs_words='%s' lvs_flags='%s' lvs_value='%s' ;;\n", table, `	esac
}

_lvsforge() {
	local lvs_path='' lvs_words lvs_flags lvs_value w i
	local cur=${COMP_WORDS[@]: COMP_CWORD: 1} prev=${COMP_WORDS[@]: COMP_CWORD-1: 1}
	_lvsforge_table ''
	for ((i = 1; i < COMP_CWORD; i++)); do
		w=${COMP_WORDS[@]: i: 1}
		case " $lvs_words " in
		*" $w "*)
			lvs_path=${lvs_path:+$lvs_path }$w
			_lvsforge_table "$lvs_path"
			;;
		esac
	done
	COMPREPLY=()
	case " $lvs_value " in
	*" $prev "*) return 0 ;; # a flag's value: file names (complete -o default)
	esac
	case $cur in
	-*) COMPREPLY=($(compgen -W "$lvs_flags" -- "$cur")) ;;
	*) COMPREPLY=($(compgen -W "$lvs_words" -- "$cur")) ;;
	esac
}
complete -o default -F _lvsforge lvsforge
`)
}

func writeFishCompletion(w io.Writer, table []completionEntry) error {
	head := "# lvsforge completion for fish: lvsforge completion fish | source, or save it as\n# ~/.config/fish/completions/lvsforge.fish.\n" +
		"function __lvsforge_table --argument-names lvs_path kind\n\tset -l words\n\tset -l flags\n\tset -l value\n\tswitch \"$lvs_path\"\n"
	return writeCompletionScript(w, head, "\t\tcase '%s'\n\t\t\tset words %s\n\t\t\tset flags %s\n\t\t\tset value %s\n", table, `	end
	switch $kind
		case words
			printf '%s\n' $words
		case flags
			printf '%s\n' $flags
		case value
			printf '%s\n' $value
	end
end

# __lvsforge_words prints what may come next: subcommands, or flags after a
# "-"; nothing after a flag that takes a value, which leaves file names.
function __lvsforge_words
	set -l tokens (commandline -opc)
	set -l lvs_path ''
	for w in $tokens[2..]
		if contains -- $w (__lvsforge_table "$lvs_path" words)
			set lvs_path (string trim -- "$lvs_path $w")
		end
	end
	if contains -- "$tokens[-1]" (__lvsforge_table "$lvs_path" value)
		return
	end
	if string match -q -- '-*' (commandline -ct)
		__lvsforge_table "$lvs_path" flags
	else
		__lvsforge_table "$lvs_path" words
	end
end

function __lvsforge_offers
	set -l w (__lvsforge_words)
	test (count $w) -gt 0
end

complete -c lvsforge -n __lvsforge_offers -f -a '(__lvsforge_words)'
`)
}

// writeCompletionScript writes a shell's script: head, then one line of
// the shell's table function per entry (row formats its path, words,
// flags and value-taking flags, each space-separated), then tail. The
// shells differ only in syntax, so the table reaches each the same way.
func writeCompletionScript(w io.Writer, head, row string, table []completionEntry, tail string) error {
	var b strings.Builder
	b.WriteString(head)
	for _, e := range table {
		fmt.Fprintf(&b, row, e.path, strings.Join(e.words, " "), strings.Join(e.flags, " "), strings.Join(e.value, " "))
	}
	b.WriteString(tail)
	_, err := io.WriteString(w, b.String())
	return err
}
