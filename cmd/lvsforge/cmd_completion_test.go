package main

import (
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"testing"

	"github.com/lvsforge/lvsforge/internal/testenv"
)

// completionCases are command lines being typed (the last word is the one
// completed) and the words every shell must offer for it; nil: file names
// (the tests run where the only file is cluster.yaml).
var completionCases = []struct {
	line []string
	want []string
}{
	{[]string{"bu"}, []string{"build"}},
	{[]string{"k"}, []string{"kernel"}},
	{[]string{"build", "k"}, []string{"kernel"}},
	{[]string{"kernel", "s"}, []string{"status"}},
	{[]string{"push", "--dr"}, []string{"--dry-run"}},
	{[]string{"push", "c.yaml", "--upl"}, []string{"--upload-concurrency"}},
	{[]string{"build", "kernel", "--ro"}, []string{"--role"}},
	{[]string{"completion", ""}, []string{"bash", "fish", "zsh"}},
	{[]string{"--vers"}, []string{"--version"}},
	{[]string{"render", "-o", ""}, nil},
}

// TestCompletionScripts: each shell parses its script, and completing the
// cases in that shell offers exactly the expected words.
func TestCompletionScripts(t *testing.T) {
	if code, _, errOut := run(t, "completion", "tcsh"); code != ExitUsage || !strings.Contains(errOut, "bash, fish, zsh") {
		t.Errorf("completion tcsh: exit %d %s", code, errOut)
	}
	for _, shell := range completionShells {
		t.Run(shell, func(t *testing.T) {
			bin := testenv.LookPath(t, shell, shell)
			code, script, errOut := run(t, "completion", shell)
			if code != 0 {
				t.Fatalf("exit %d: %s", code, errOut)
			}
			file := filepath.Join(t.TempDir(), "lvsforge."+shell)
			os.WriteFile(file, []byte(script), 0o644)
			if out, err := exec.Command(bin, "-n", file).CombinedOutput(); err != nil {
				t.Fatalf("%s -n: %v\n%s", shell, err, out)
			}
			dir := t.TempDir()
			os.WriteFile(filepath.Join(dir, "cluster.yaml"), nil, 0o644)
			for _, tc := range completionCases {
				got := complete(t, bin, shell, file, dir, tc.line)
				want := tc.want
				if want == nil && shell == "fish" {
					want = []string{"cluster.yaml"}
				}
				// bash (and zsh's bashcompinit) completes file names itself
				// when the function offers nothing (complete -o default).
				if want == nil && !strings.Contains(script, "\ncomplete -o default -F _lvsforge lvsforge\n") {
					t.Errorf("the %s script does not fall back to file names", shell)
				}
				if strings.Join(got, " ") != strings.Join(want, " ") {
					t.Errorf("lvsforge %s<TAB>: %q, want %q", strings.Join(tc.line, " "), got, want)
				}
			}
		})
	}
}

// complete asks the shell itself for the completions of line.
func complete(t *testing.T, bin, shell, script, dir string, line []string) []string {
	t.Helper()
	words := append([]string{"lvsforge"}, line...)
	var prog string
	switch shell {
	case "fish":
		cmdline := strings.Join(words, " ")
		prog = "source " + script + "; complete -C " + strconv.Quote(cmdline)
	default:
		quoted := make([]string, len(words))
		for i, w := range words {
			quoted[i] = "'" + w + "'"
		}
		prog = "source " + script + "; COMP_WORDS=(" + strings.Join(quoted, " ") + "); COMP_CWORD=" + strconv.Itoa(len(line)) +
			"; _lvsforge; printf '%s\\n' \"${COMPREPLY[@]}\""
		if shell == "zsh" {
			prog = "autoload -U compinit && compinit -u; " + prog
		}
	}
	cmd := exec.Command(bin, "-c", prog)
	cmd.Dir = dir
	out, err := cmd.CombinedOutput()
	if err != nil {
		t.Fatalf("%s -c %q: %v\n%s", shell, prog, err, out)
	}
	var got []string
	for _, l := range strings.Split(strings.TrimSpace(string(out)), "\n") {
		l, _, _ = strings.Cut(l, "\t") // fish appends descriptions after a tab
		// zsh's bashcompinit leaves matching the typed prefix to compadd.
		if l != "" && (shell != "zsh" || strings.HasPrefix(l, line[len(line)-1])) {
			got = append(got, l)
		}
	}
	return got
}
