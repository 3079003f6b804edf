package qemu

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"os/exec"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Accel is a QEMU accelerator.
type Accel string

// Accelerators. AccelAuto probes: KVM if a probe VM boots with it, else TCG.
const (
	AccelAuto Accel = ""
	AccelKVM  Accel = "kvm"
	AccelTCG  Accel = "tcg"
)

// AccelEnv overrides the probe ("kvm" or "tcg"), to skip it on machines
// whose answer is known.
const AccelEnv = "LVSFORGE_QEMU_ACCEL"

// The KVM probe's limits. A kernel prints its first line in well under a
// second under KVM and reaches its root-mount panic in about a second more;
// under nested KVM on these machines the vCPU spins in the host kernel and
// prints nothing at all. So silence for probeFirstLine settles on TCG early,
// and probeTimeout bounds a probe that started but never finishes booting.
const (
	probeFirstLine = 8 * time.Second
	probeTimeout   = 30 * time.Second
)

var probes struct {
	sync.Mutex
	result map[string]probeResult
}

type probeResult struct {
	accel  Accel
	reason string
}

// DetectAccel returns the accelerator VMs of this process use. /dev/kvm
// existing is not enough: with nested virtualisation it opens fine and then
// the guest hangs or QEMU aborts on an MSR assertion. So a probe VM boots
// kernel under KVM with no root filesystem and must reach the kernel's
// "VFS: Unable to mount root" panic, the proof it ran to the end of boot.
// The result is cached per QEMU binary and kernel for the life of the
// process. The reason says why, for the test log.
func DetectAccel(ctx context.Context, qemuBin, kernel string) (Accel, string) {
	switch a := Accel(os.Getenv(AccelEnv)); a {
	case AccelKVM, AccelTCG:
		return a, AccelEnv + "=" + string(a)
	}
	key := qemuBin + "\x00" + kernel
	probes.Lock()
	defer probes.Unlock()
	if r, ok := probes.result[key]; ok {
		return r.accel, r.reason
	}
	r := probeKVM(ctx, qemuBin, kernel)
	if probes.result == nil {
		probes.result = map[string]probeResult{}
	}
	probes.result[key] = r
	return r.accel, r.reason
}

func probeKVM(ctx context.Context, qemuBin, kernel string) probeResult {
	f, err := os.OpenFile("/dev/kvm", os.O_RDWR, 0)
	if err != nil {
		return probeResult{AccelTCG, fmt.Sprintf("no usable /dev/kvm: %v", err)}
	}
	f.Close()
	if kernel == "" {
		return probeResult{AccelTCG, "no kernel to probe KVM with"}
	}
	ctx, cancel := context.WithTimeout(ctx, probeTimeout)
	defer cancel()
	cmd := exec.Command(qemuBin, "-accel", "kvm", "-cpu", "host", "-m", "128", "-smp", "1",
		"-nodefaults", "-no-user-config", "-display", "none", "-no-reboot",
		"-serial", "stdio", "-kernel", kernel, "-append", "console=ttyS0 panic=-1 loglevel=4")
	cmd.SysProcAttr = &syscall.SysProcAttr{Setpgid: true, Pdeathsig: syscall.SIGKILL}
	out, err := cmd.StdoutPipe()
	if err != nil {
		return probeResult{AccelTCG, fmt.Sprintf("probe KVM: %v", err)}
	}
	var stderr strings.Builder
	cmd.Stderr = &stderr
	if err := cmd.Start(); err != nil {
		return probeResult{AccelTCG, fmt.Sprintf("probe KVM: %v", err)}
	}
	booted := make(chan bool, 1)
	spoke := make(chan struct{})
	go func() {
		sc := bufio.NewScanner(out)
		ok, first := false, true
		for sc.Scan() {
			if first {
				close(spoke)
				first = false
			}
			if strings.Contains(sc.Text(), "Kernel panic") {
				ok = true
				break
			}
		}
		booted <- ok
	}()
	var ok bool
	silent := time.NewTimer(probeFirstLine)
	defer silent.Stop()
	select {
	case <-spoke:
		select {
		case ok = <-booted:
		case <-ctx.Done():
		}
	case ok = <-booted:
	case <-silent.C:
	case <-ctx.Done():
	}
	syscall.Kill(-cmd.Process.Pid, syscall.SIGKILL)
	cmd.Wait()
	if ok {
		return probeResult{AccelKVM, "a probe kernel booted under KVM"}
	}
	msg := strings.TrimSpace(stderr.String())
	if i := strings.LastIndexByte(msg, '\n'); i >= 0 {
		msg = msg[i+1:]
	}
	if msg == "" {
		msg = "no console output"
	}
	return probeResult{AccelTCG, fmt.Sprintf("a probe kernel did not boot under KVM (%s); using TCG", msg)}
}
