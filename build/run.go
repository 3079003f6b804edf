package build

import (
	"bufio"
	"bytes"
	"context"
	"fmt"
	"io"
	"os/exec"
	"strings"
	"sync"
)

// tailBuffer keeps the last n lines written to it, for error messages.
type tailBuffer struct {
	mu    sync.Mutex
	n     int
	lines []string
	part  []byte
}

func (t *tailBuffer) Write(p []byte) (int, error) {
	t.mu.Lock()
	defer t.mu.Unlock()
	t.part = append(t.part, p...)
	for {
		i := bytes.IndexByte(t.part, '\n')
		if i < 0 {
			break
		}
		t.lines = append(t.lines, string(t.part[:i]))
		t.part = t.part[i+1:]
		if len(t.lines) > t.n {
			t.lines = t.lines[len(t.lines)-t.n:]
		}
	}
	return len(p), nil
}

func (t *tailBuffer) String() string {
	t.mu.Lock()
	defer t.mu.Unlock()
	s := strings.Join(t.lines, "\n")
	if len(t.part) > 0 {
		s += "\n" + string(t.part)
	}
	return s
}

// command is one external program run of a build, logged to a file.
type command struct {
	dir  string
	env  []string
	log  io.Writer
	line func(string) // called for every output line, may be nil
}

// run executes prog with args; output goes to the log, and on failure the
// error carries the last lines and names the log.
func (c command) run(ctx context.Context, logName, prog string, args ...string) error {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = c.dir
	cmd.Env = c.env
	tail := &tailBuffer{n: 25}
	pr, pw := io.Pipe()
	cmd.Stdout = pw
	cmd.Stderr = pw
	done := make(chan struct{})
	go func() {
		defer close(done)
		sc := bufio.NewScanner(pr)
		sc.Buffer(make([]byte, 64<<10), 1<<20)
		for sc.Scan() {
			l := sc.Text()
			if c.log != nil {
				fmt.Fprintln(c.log, l)
			}
			tail.Write([]byte(l + "\n"))
			if c.line != nil {
				c.line(l)
			}
		}
		io.Copy(io.Discard, pr)
	}()
	if c.log != nil {
		fmt.Fprintf(c.log, "+ %s %s\n", prog, strings.Join(args, " "))
	}
	err := cmd.Run()
	pw.Close()
	<-done
	if err != nil {
		where := ""
		if logName != "" {
			where = " (full log: " + logName + ")"
		}
		return fmt.Errorf("run %s %s: %w%s\n%s", prog, strings.Join(args, " "), err, where, tail.String())
	}
	return nil
}

// output runs a short command and returns its trimmed stdout.
func output(ctx context.Context, dir string, env []string, prog string, args ...string) (string, error) {
	cmd := exec.CommandContext(ctx, prog, args...)
	cmd.Dir = dir
	cmd.Env = env
	var stderr bytes.Buffer
	cmd.Stderr = &stderr
	out, err := cmd.Output()
	if err != nil {
		return "", fmt.Errorf("run %s: %w: %s", prog, err, strings.TrimSpace(stderr.String()))
	}
	return strings.TrimSpace(string(out)), nil
}

// firstLine is the first line of "prog --version", or "" when prog is absent.
func firstLine(prog string, args ...string) string {
	out, err := exec.Command(prog, args...).Output()
	if err != nil {
		return ""
	}
	l, _, _ := strings.Cut(string(out), "\n")
	return strings.TrimSpace(l)
}
