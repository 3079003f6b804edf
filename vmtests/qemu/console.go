package qemu

import (
	"bufio"
	"context"
	"errors"
	"fmt"
	"io"
	"regexp"
	"strings"
	"sync"
)

// ErrKernelPanic is returned by Expect when the guest kernel panicked
// before the expected line appeared.
var ErrKernelPanic = errors.New("kernel panic")

// ErrExited is returned by Expect when the VM ended before the expected
// line appeared.
var ErrExited = errors.New("vm exited")

// tailLines is how many console lines an error carries: enough to show a
// panic's cause and its stack head.
const tailLines = 40

// console collects the serial console line by line. Expect consumes lines:
// each call looks at the lines after the previous match, as an expect(1)
// script does, so a marker printed twice is matched twice.
type console struct {
	mu      sync.Mutex
	lines   []string
	cursor  int
	changed chan struct{}
	eof     bool
	log     io.Writer
}

func newConsole(log io.Writer) *console {
	return &console{changed: make(chan struct{}), log: log}
}

// read consumes the console stream until EOF (QEMU exited).
func (c *console) read(r io.Reader) {
	br := bufio.NewReader(r)
	for {
		line, err := br.ReadString('\n')
		if line != "" {
			// The guest's tty turns \n into \r\n; a lone \r mid-line is a
			// progress redraw and only the text after it is meaningful.
			line = strings.TrimRight(line, "\r\n")
			if i := strings.LastIndexByte(line, '\r'); i >= 0 {
				line = line[i+1:]
			}
			c.add(line)
		}
		if err != nil {
			break
		}
	}
	c.mu.Lock()
	c.eof = true
	close(c.changed)
	c.changed = make(chan struct{})
	c.mu.Unlock()
}

func (c *console) add(line string) {
	c.mu.Lock()
	defer c.mu.Unlock()
	c.lines = append(c.lines, line)
	if c.log != nil {
		io.WriteString(c.log, line+"\n")
	}
	close(c.changed)
	c.changed = make(chan struct{})
}

// tail returns the last n lines.
func (c *console) tail(n int) []string {
	c.mu.Lock()
	defer c.mu.Unlock()
	if n > len(c.lines) {
		n = len(c.lines)
	}
	return append([]string(nil), c.lines[len(c.lines)-n:]...)
}

// expect waits for a line matching re after the cursor and returns its
// submatches. A "Kernel panic" line that does not match re ends the wait
// with ErrKernelPanic, so a test expecting a panic can still match it.
func (c *console) expect(ctx context.Context, name string, re *regexp.Regexp) ([]string, error) {
	for {
		c.mu.Lock()
		for ; c.cursor < len(c.lines); c.cursor++ {
			l := c.lines[c.cursor]
			if m := re.FindStringSubmatch(l); m != nil {
				c.cursor++
				c.mu.Unlock()
				return m, nil
			}
			if strings.Contains(l, "Kernel panic") {
				c.cursor++
				c.mu.Unlock()
				return nil, c.failure(name, re, ErrKernelPanic)
			}
		}
		eof, changed := c.eof, c.changed
		c.mu.Unlock()
		if eof {
			return nil, c.failure(name, re, ErrExited)
		}
		select {
		case <-changed:
		case <-ctx.Done():
			return nil, c.failure(name, re, ctx.Err())
		}
	}
}

// ConsoleError carries the console lines that explain a failed expectation.
type ConsoleError struct {
	VM      string
	Pattern string
	Err     error
	Tail    []string // the last console lines
}

func (e *ConsoleError) Error() string {
	return fmt.Sprintf("expect %q on %s console: %v; last console lines:\n\t%s",
		e.Pattern, e.VM, e.Err, strings.Join(e.Tail, "\n\t"))
}

func (e *ConsoleError) Unwrap() error { return e.Err }

func (c *console) failure(name string, re *regexp.Regexp, err error) error {
	return &ConsoleError{VM: name, Pattern: re.String(), Err: err, Tail: c.tail(tailLines)}
}
