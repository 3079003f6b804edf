// Package syncbuf is a byte buffer that one goroutine may write while
// another reads it: an SSH session's or a QEMU process's output, collected
// as it comes and read for a message or a command's result.
package syncbuf

import (
	"bytes"
	"sync"
)

// Buffer is a bytes.Buffer behind a mutex. It has no ReadFrom, so io.Copy
// into it goes through Write.
type Buffer struct {
	mu sync.Mutex
	b  bytes.Buffer
}

func (b *Buffer) Write(p []byte) (int, error) {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.Write(p)
}

// String is everything written so far.
func (b *Buffer) String() string {
	b.mu.Lock()
	defer b.mu.Unlock()
	return b.b.String()
}

// Since is what was written after the first n bytes, and the length now:
// pass that length to the next call to read only what came since.
func (b *Buffer) Since(n int) (string, int) {
	b.mu.Lock()
	defer b.mu.Unlock()
	n = min(n, b.b.Len())
	return string(b.b.Bytes()[n:]), b.b.Len()
}
