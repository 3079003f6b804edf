package qemu

import (
	"context"
	"errors"
	"io"
	"regexp"
	"strings"
	"testing"
	"time"
)

func feed(t *testing.T, text string, close bool) *console {
	t.Helper()
	c := newConsole(nil)
	r, w := io.Pipe()
	go c.read(r)
	go func() {
		io.WriteString(w, text)
		if close {
			w.Close()
		}
	}()
	t.Cleanup(func() { w.Close() })
	return c
}

func ctx10s(t *testing.T) context.Context {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	t.Cleanup(cancel)
	return ctx
}

func TestExpectConsumesLines(t *testing.T) {
	c := feed(t, "boot\r\nmarker 1\r\nnoise\r\nmarker 2\r\n", false)
	re := regexp.MustCompile(`^marker (\d)$`)
	for _, want := range []string{"1", "2"} {
		m, err := c.expect(ctx10s(t), "vm", re)
		if err != nil {
			t.Fatal(err)
		}
		if m[1] != want {
			t.Fatalf("matched marker %s, want %s", m[1], want)
		}
	}
}

func TestExpectStripsCarriageReturnRedraws(t *testing.T) {
	c := feed(t, "progress 10%\rprogress 100%\r\n", false)
	if _, err := c.expect(ctx10s(t), "vm", regexp.MustCompile(`^progress 100%$`)); err != nil {
		t.Fatal(err)
	}
}

func TestExpectReportsPanic(t *testing.T) {
	text := "Linux version 6.1\nVFS: Cannot open root device\nKernel panic - not syncing: VFS: Unable to mount root fs\n"
	c := feed(t, text, false)
	_, err := c.expect(ctx10s(t), "ha1", regexp.MustCompile("login:"))
	var ce *ConsoleError
	if !errors.As(err, &ce) || !errors.Is(err, ErrKernelPanic) {
		t.Fatalf("got %v, want a ConsoleError wrapping ErrKernelPanic", err)
	}
	if ce.VM != "ha1" || len(ce.Tail) != 3 || !strings.Contains(err.Error(), "Unable to mount root fs") {
		t.Fatalf("error lacks the VM name or console tail: %v", err)
	}
}

func TestExpectCanMatchAPanic(t *testing.T) {
	// The kernel-fallback scenario waits for the broken kernel's panic.
	c := feed(t, "Kernel panic - not syncing: VFS\n", false)
	if _, err := c.expect(ctx10s(t), "vm", regexp.MustCompile("Kernel panic")); err != nil {
		t.Fatal(err)
	}
}

func TestExpectReportsExitAndTimeout(t *testing.T) {
	c := feed(t, "partial line without newline", true)
	_, err := c.expect(ctx10s(t), "vm", regexp.MustCompile("never"))
	if !errors.Is(err, ErrExited) {
		t.Fatalf("got %v, want ErrExited", err)
	}
	if tail := c.tail(5); len(tail) != 1 || tail[0] != "partial line without newline" {
		t.Fatalf("tail = %q, want the unterminated last line", tail)
	}

	c = feed(t, "", false)
	ctx, cancel := context.WithTimeout(context.Background(), 50*time.Millisecond)
	defer cancel()
	if _, err := c.expect(ctx, "vm", regexp.MustCompile("never")); !errors.Is(err, context.DeadlineExceeded) {
		t.Fatalf("got %v, want DeadlineExceeded", err)
	}
}
