// Package qemu drives qemu-system-x86_64 for the VM tests: functional
// options build the command line, the serial console is read line by line
// into a log and an expect-style matcher with kernel-panic detection, a QMP
// connection gives hard power-off and NIC link control, and every process
// runs in its own process group with a parent-death signal so no VM outlives
// the test that started it, also on failure or Ctrl-C.
package qemu

import (
	"context"
	"errors"
	"fmt"
	"io"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"strconv"
	"strings"
	"sync"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/lvsforge/lvsforge/internal/syncbuf"
)

var timeZero time.Time

// ErrStart is wrapped by Start when QEMU could not be started at all.
var ErrStart = errors.New("start qemu")

// VM is a running QEMU process.
type VM struct {
	name    string
	cfg     config
	accel   Accel
	reason  string
	cmd     *exec.Cmd
	stdin   io.WriteCloser
	console *console
	qmp     *qmp
	dir     string
	ownDir  bool
	logFile *os.File
	stderr  *syncbuf.Buffer
	ports   map[int]int // guest port -> host port
	started time.Time

	done    chan struct{} // closed when the process has been reaped
	waitErr error
	timer   *time.Timer
	killed  atomic.Bool // Kill or the timeout ended it
	runSeq  atomic.Int64
	closeMu sync.Mutex
	closed  bool
}

// running holds every VM not yet reaped, for KillAll.
var running sync.Map // *VM -> struct{}

// KillAll kills every VM this process started. A command's signal handler
// calls it; tests rely on Close in t.Cleanup and the parent-death signal.
func KillAll() {
	running.Range(func(k, _ any) bool {
		k.(*VM).Kill()
		return true
	})
}

// Start boots a VM. QEMU exiting before its QMP monitor answers is a start
// failure and is retried (a freshly picked forward port may be taken, a
// socket may not exist yet); nothing after that is ever retried.
func Start(ctx context.Context, opts ...Option) (*VM, error) {
	cfg := config{qemu: "qemu-system-x86_64", memoryMB: 256, cpus: 1, name: "vm", startRetries: 2}
	for _, o := range opts {
		if err := o(&cfg); err != nil {
			return nil, fmt.Errorf("configure vm %s: %w", cfg.name, err)
		}
	}
	if p, err := exec.LookPath(cfg.qemu); err == nil {
		cfg.qemu = p
	} else {
		return nil, fmt.Errorf("%w %s: %w", ErrStart, cfg.name, err)
	}
	// QEMU 7.2 connects a stream netdev in the background and keeps running
	// without a cable if the socket is missing, so check it here, where the
	// error can still name the switch port.
	for _, n := range cfg.nics {
		if st, err := os.Stat(n.socket); err != nil || st.Mode().Type() != os.ModeSocket {
			return nil, fmt.Errorf("%w %s: switch socket %s is not listening", ErrStart, cfg.name, n.socket)
		}
	}
	accel, reason := cfg.accel, "requested"
	if accel == AccelAuto {
		accel, reason = DetectAccel(ctx, cfg.qemu, cfg.kernel)
	}
	var errs []error
	for attempt := 0; attempt <= cfg.startRetries; attempt++ {
		vm, err := start(ctx, cfg, accel, reason)
		if err == nil {
			return vm, nil
		}
		errs = append(errs, err)
		if ctx.Err() != nil {
			break
		}
	}
	return nil, fmt.Errorf("%w %s after %d attempts: %w", ErrStart, cfg.name, len(errs), errors.Join(errs...))
}

func start(ctx context.Context, cfg config, accel Accel, reason string) (*VM, error) {
	vm := &VM{name: cfg.name, cfg: cfg, accel: accel, reason: reason, done: make(chan struct{}), ports: map[int]int{}}
	vm.dir = cfg.dir
	if vm.dir == "" {
		d, err := os.MkdirTemp("", "qemu-"+sanitize(cfg.name)+"-")
		if err != nil {
			return nil, fmt.Errorf("create vm dir: %w", err)
		}
		vm.dir, vm.ownDir = d, true
	}
	qmpPath := filepath.Join(vm.dir, sanitize(cfg.name)+".qmp")
	if len(qmpPath) >= 108 {
		vm.cleanupDir()
		return nil, fmt.Errorf("qmp socket path %s is longer than 107 bytes", qmpPath)
	}
	os.Remove(qmpPath)
	for _, f := range cfg.forwards {
		hp := f.hostPort
		if hp == 0 {
			p, err := freePort()
			if err != nil {
				vm.cleanupDir()
				return nil, err
			}
			hp = p
		}
		vm.ports[f.guestPort] = hp
	}
	args, err := vm.args(qmpPath)
	if err != nil {
		vm.cleanupDir()
		return nil, fmt.Errorf("configure vm %s: %w", cfg.name, err)
	}
	cmd := exec.Command(cfg.qemu, args...)
	// Own process group so Kill takes QEMU and anything it spawned; the
	// parent-death signal kills it when the test binary dies (Ctrl-C, a
	// test timeout panic) before any cleanup can run.
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	stdin, err := cmd.StdinPipe()
	if err != nil {
		vm.cleanupDir()
		return nil, fmt.Errorf("pipe console: %w", err)
	}
	stdout, err := cmd.StdoutPipe()
	if err != nil {
		vm.cleanupDir()
		return nil, fmt.Errorf("pipe console: %w", err)
	}
	vm.stderr = &syncbuf.Buffer{}
	cmd.Stderr = vm.stderr
	var log io.Writer
	if cfg.consoleLog != "" {
		f, err := os.Create(cfg.consoleLog)
		if err != nil {
			vm.cleanupDir()
			return nil, fmt.Errorf("create console log: %w", err)
		}
		vm.logFile, log = f, f
	}
	vm.console = newConsole(log)
	vm.cmd, vm.stdin = cmd, stdin
	vm.started = time.Now()
	if err := cmd.Start(); err != nil {
		vm.closeFiles()
		vm.cleanupDir()
		return nil, fmt.Errorf("run %s: %w", cfg.qemu, err)
	}
	running.Store(vm, struct{}{})
	go vm.console.read(stdout)
	go func() {
		vm.waitErr = cmd.Wait()
		running.Delete(vm)
		close(vm.done)
	}()
	if cfg.timeout > 0 {
		vm.timer = time.AfterFunc(cfg.timeout, func() { vm.Kill() })
	}
	if err := vm.connectQMP(ctx, qmpPath); err != nil {
		vm.Kill()
		<-vm.done
		vm.closeFiles()
		vm.cleanupDir()
		return nil, err
	}
	return vm, nil
}

// connectQMP waits for QEMU's monitor: its answer is the definition of
// "QEMU started", after device setup that fails on bad sockets or files.
func (vm *VM) connectQMP(ctx context.Context, path string) error {
	for {
		q, err := dialQMP(path)
		if err == nil {
			vm.qmp = q
			return nil
		}
		select {
		case <-vm.done:
			return fmt.Errorf("qemu exited during start-up (%v): %s", vm.waitErr, strings.TrimSpace(vm.stderr.String()))
		case <-ctx.Done():
			return fmt.Errorf("wait for qmp of %s: %w", vm.name, ctx.Err())
		case <-time.After(20 * time.Millisecond):
		}
	}
}

func (vm *VM) args(qmpPath string) ([]string, error) {
	c := vm.cfg
	a := []string{
		"-name", c.name,
		"-nodefaults", "-no-user-config", "-display", "none",
		"-m", strconv.Itoa(c.memoryMB), "-smp", strconv.Itoa(c.cpus),
		"-accel", string(vm.accel),
		"-qmp", "unix:" + qmpPath + ",server=on,wait=off",
	}
	ports, err := c.serialPorts()
	if err != nil {
		return nil, err
	}
	for i, p := range ports {
		switch {
		case i == c.consolePort:
			// The console is on QEMU's stdio; signal=off so a ^C typed by a
			// test into the guest does not kill QEMU.
			a = append(a, "-chardev", "stdio,id=con0,signal=off", "-serial", "chardev:con0")
		case p == "":
			a = append(a, "-serial", "null") // keeps the ports after it in place
		default:
			id := fmt.Sprintf("ser%d", i)
			a = append(a, "-chardev", fmt.Sprintf("socket,id=%s,path=%s,reconnect=1", id, p), "-serial", "chardev:"+id)
		}
	}
	if vm.accel == AccelKVM {
		a = append(a, "-cpu", "host")
	}
	if !c.allowReboot {
		a = append(a, "-no-reboot")
	}
	if c.kernel != "" {
		a = append(a, "-kernel", c.kernel)
		a = append(a, "-append", strings.Join(append([]string{fmt.Sprintf("console=ttyS%d", c.consolePort), "panic=-1"}, c.append...), " "))
	}
	if c.initrd != "" {
		a = append(a, "-initrd", c.initrd)
	}
	for i, n := range c.nics {
		// romfile= keeps QEMU from loading the iPXE option ROM: the guests
		// never netboot, and the ROM is a separate package (ipxe-qemu).
		a = append(a,
			"-netdev", fmt.Sprintf("stream,id=net%d,server=off,addr.type=unix,addr.path=%s", i, n.socket),
			"-device", fmt.Sprintf("virtio-net-pci,netdev=net%d,id=nic%d,mac=%s,romfile=", i, i, n.mac))
	}
	if len(c.forwards) > 0 {
		// restrict=on: the guest can reach nothing through this NIC, only
		// the forwarded ports reach it.
		user := "user,id=mgmt,restrict=on"
		for _, f := range c.forwards {
			user += fmt.Sprintf(",hostfwd=tcp:127.0.0.1:%d-:%d", vm.ports[f.guestPort], f.guestPort)
		}
		dev := "virtio-net-pci,netdev=mgmt,id=mgmt0,romfile="
		if c.mgmtMAC != "" {
			dev += ",mac=" + c.mgmtMAC
		}
		a = append(a, "-netdev", user, "-device", dev)
	}
	for i, d := range c.disks {
		drive := fmt.Sprintf("file=%s,format=%s,if=virtio,id=disk%d", d.path, d.format, i)
		if d.snapshot {
			drive += ",snapshot=on"
		}
		a = append(a, "-drive", drive)
	}
	return a, nil
}

// Name returns the VM's name.
func (vm *VM) Name() string { return vm.name }

// Accel returns the accelerator the VM runs under and why it was chosen.
func (vm *VM) Accel() (Accel, string) { return vm.accel, vm.reason }

// Args returns QEMU's command line, for logs.
func (vm *VM) Args() []string { return append([]string{vm.cmd.Path}, vm.cmd.Args[1:]...) }

// StartedAt returns when the QEMU process was started, for boot timings.
func (vm *VM) StartedAt() time.Time { return vm.started }

// HostPort returns the host port on 127.0.0.1 forwarded to guestPort.
func (vm *VM) HostPort(guestPort int) (int, bool) {
	p, ok := vm.ports[guestPort]
	return p, ok
}

// Expect waits for a console line matching re, after the lines earlier
// Expect calls consumed, and returns the match and its submatches. It fails
// with ErrKernelPanic, ErrExited or the context's error, carrying the last
// console lines (see ConsoleError).
func (vm *VM) Expect(ctx context.Context, re *regexp.Regexp) ([]string, error) {
	return vm.console.expect(ctx, vm.name, re)
}

// ExpectString waits for a console line containing s.
func (vm *VM) ExpectString(ctx context.Context, s string) error {
	_, err := vm.Expect(ctx, regexp.MustCompile(regexp.QuoteMeta(s)))
	return err
}

// ConsoleTail returns the last n console lines, for failure messages.
func (vm *VM) ConsoleTail(n int) []string { return vm.console.tail(n) }

// Stderr returns what QEMU itself printed.
func (vm *VM) Stderr() string { return vm.stderr.String() }

// SendLine types a line on the serial console.
func (vm *VM) SendLine(s string) error {
	if _, err := io.WriteString(vm.stdin, s+"\n"); err != nil {
		return fmt.Errorf("write to %s console: %w", vm.name, err)
	}
	return nil
}

// Run executes a shell command line in a guest whose console runs a
// line-reading shell (the busybox test guest's init, or a root shell) and
// returns its output and exit status. cmd must be one line; one ending in
// '&' starts a background job and returns at once with status 0. The status comes back on a marker line; output is every console
// line in between, so kernel messages printed meanwhile appear in it.
func (vm *VM) Run(ctx context.Context, cmd string) (output string, status int, err error) {
	if strings.ContainsAny(cmd, "\n\r") {
		return "", -1, fmt.Errorf("run on %s: command contains a newline", vm.name)
	}
	id := vm.runSeq.Add(1)
	marker := fmt.Sprintf("@@lvsforge-rc:%d:", id)
	vm.console.mu.Lock()
	from := len(vm.console.lines)
	vm.console.mu.Unlock()
	// The marker text is split in the command so that an echoing terminal
	// (a shell with echo on) cannot produce a line matching it.
	// A command ending in '&' already ends in a separator; "&;" would be a
	// syntax error.
	sep := ";"
	if t := strings.TrimSpace(cmd); strings.HasSuffix(t, "&") && !strings.HasSuffix(t, "&&") {
		sep = ""
	}
	if err := vm.SendLine(fmt.Sprintf(`%s%s echo "@@lvsforge-rc:%d:""$?"`, cmd, sep, id)); err != nil {
		return "", -1, err
	}
	re := regexp.MustCompile("^" + regexp.QuoteMeta(marker) + `(\d+)$`)
	m, err := vm.Expect(ctx, re)
	if err != nil {
		return "", -1, fmt.Errorf("run %q on %s: %w", cmd, vm.name, err)
	}
	status, _ = strconv.Atoi(m[1])
	vm.console.mu.Lock()
	var out []string
	for _, l := range vm.console.lines[from:] {
		if re.MatchString(l) {
			break
		}
		if strings.Contains(l, `echo "@@lvsforge-rc:`) {
			continue // the terminal's echo of the command itself
		}
		out = append(out, l)
	}
	vm.console.mu.Unlock()
	return strings.Join(out, "\n"), status, nil
}

// QMP runs a QMP command and returns its "return" value.
func (vm *VM) QMP(ctx context.Context, command string, args any) ([]byte, error) {
	ret, err := vm.qmp.execute(ctx, command, args)
	if err != nil {
		return nil, fmt.Errorf("qmp on %s: %w", vm.name, err)
	}
	return ret, nil
}

// SetLink sets the carrier of NIC i (the i-th WithNIC, eth<i> in the guest)
// as the guest sees it. Unlike vlan.Switch.SetLink, the guest notices.
func (vm *VM) SetLink(ctx context.Context, i int, up bool) error {
	_, err := vm.QMP(ctx, "set_link", map[string]any{"name": fmt.Sprintf("nic%d", i), "up": up})
	return err
}

// PowerOff pulls the plug: QMP quit, no guest shutdown, as a power failure
// of a director. If QEMU does not go within the context, it is killed.
func (vm *VM) PowerOff(ctx context.Context) error {
	if _, err := vm.qmp.execute(ctx, "quit", nil); err != nil {
		// QEMU may exit before answering; only a live process is a failure.
		select {
		case <-vm.done:
			return nil
		default:
		}
	}
	select {
	case <-vm.done:
		return nil
	case <-ctx.Done():
		vm.Kill()
		<-vm.done
		return fmt.Errorf("power off %s: %w; killed", vm.name, ctx.Err())
	}
}

// Kill sends SIGKILL to the VM's process group.
func (vm *VM) Kill() {
	vm.killed.Store(true)
	select {
	case <-vm.done:
		return
	default:
	}
	syscall.Kill(-vm.cmd.Process.Pid, syscall.SIGKILL)
}

// Done is closed when the QEMU process has ended.
func (vm *VM) Done() <-chan struct{} { return vm.done }

// Wait waits for QEMU to end and returns its exit error; a VM ended by Kill
// or its timeout returns nil.
func (vm *VM) Wait(ctx context.Context) error {
	select {
	case <-vm.done:
	case <-ctx.Done():
		return fmt.Errorf("wait for %s: %w", vm.name, ctx.Err())
	}
	if vm.killed.Load() {
		return nil
	}
	if vm.waitErr != nil {
		return fmt.Errorf("qemu %s: %w: %s", vm.name, vm.waitErr, strings.TrimSpace(vm.stderr.String()))
	}
	return nil
}

// Close kills the VM if it still runs, waits for it and releases its files.
// It is safe to call more than once and from t.Cleanup after a failure.
func (vm *VM) Close() error {
	vm.closeMu.Lock()
	defer vm.closeMu.Unlock()
	if vm.closed {
		return nil
	}
	vm.closed = true
	if vm.timer != nil {
		vm.timer.Stop()
	}
	vm.Kill()
	<-vm.done
	vm.closeFiles()
	vm.cleanupDir()
	return nil
}

func (vm *VM) closeFiles() {
	if vm.qmp != nil {
		vm.qmp.close()
	}
	if vm.stdin != nil {
		vm.stdin.Close()
	}
	if vm.logFile != nil {
		vm.logFile.Close()
	}
}

func (vm *VM) cleanupDir() {
	if vm.ownDir {
		os.RemoveAll(vm.dir)
	}
}

func sanitize(name string) string {
	return strings.Map(func(r rune) rune {
		if r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '-' || r == '_' {
			return r
		}
		return '_'
	}, name)
}

// freePort asks the kernel for a free loopback port. Another process may
// take it before QEMU binds it; QEMU then fails to start and Start retries
// with a new port.
func freePort() (int, error) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		return 0, fmt.Errorf("pick host port: %w", err)
	}
	defer l.Close()
	return l.Addr().(*net.TCPAddr).Port, nil
}
