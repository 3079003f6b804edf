// Command lvsforge turns a cluster spec into running LVS directors and real
// servers: it renders every host's files, builds kernels and ipvsadm, pushes
// over SSH and proves the cluster in QEMU. main only wires the process to the
// App; every command lives in its own cmd_*.go file and is testable in-process.
package main

import (
	"context"
	"os"
	"os/signal"
	"syscall"
)

func main() {
	ctx, stop := signal.NotifyContext(context.Background(), os.Interrupt, syscall.SIGTERM)
	code := NewApp(os.Stdin, os.Stdout, os.Stderr).Run(ctx, os.Args)
	stop()
	os.Exit(code)
}
