package qemu

import (
	"fmt"
	"net"
	"strings"
	"time"
)

type nic struct {
	socket string
	mac    string
}

type forward struct {
	hostPort, guestPort int
}

// serial is a serial port joined to a unix socket; port -1 means the next
// free one.
type serial struct {
	port int
	path string
}

// maxSerial is the number of ISA serial ports QEMU gives a PC (ttyS0-3).
const maxSerial = 4

type disk struct {
	path, format string
	snapshot     bool
}

type config struct {
	name         string
	qemu         string
	kernel       string
	initrd       string
	append       []string
	memoryMB     int
	cpus         int
	accel        Accel
	nics         []nic
	serials      []serial
	consolePort  int
	disks        []disk
	forwards     []forward
	mgmtMAC      string
	timeout      time.Duration
	consoleLog   string
	dir          string
	allowReboot  bool
	startRetries int
}

// Option configures a VM.
type Option func(*config) error

// WithName names the VM in logs and errors (the cluster host name).
func WithName(name string) Option {
	return func(c *config) error { c.name = name; return nil }
}

// WithQEMU sets the QEMU binary; the default is qemu-system-x86_64 from PATH.
func WithQEMU(path string) Option {
	return func(c *config) error { c.qemu = path; return nil }
}

// WithKernel boots the kernel image at path directly (-kernel). It is also
// the kernel the KVM probe boots.
func WithKernel(path string) Option {
	return func(c *config) error { c.kernel = path; return nil }
}

// WithInitrd sets the initramfs (-initrd).
func WithInitrd(path string) Option {
	return func(c *config) error { c.initrd = path; return nil }
}

// WithAppend adds kernel command line arguments. The driver always adds
// console=ttyS<console port>, so the console reader sees the boot, and panic=-1, so a
// panicking guest ends (or reboots) instead of hanging until the timeout.
func WithAppend(args ...string) Option {
	return func(c *config) error { c.append = append(c.append, args...); return nil }
}

// WithMemory sets the guest RAM in MiB (default 256).
func WithMemory(mb int) Option {
	return func(c *config) error {
		if mb < 16 {
			return fmt.Errorf("set memory: %d MiB is too small", mb)
		}
		c.memoryMB = mb
		return nil
	}
}

// WithAccel forces an accelerator instead of probing.
func WithAccel(a Accel) Option {
	return func(c *config) error { c.accel = a; return nil }
}

// WithNIC adds a virtio NIC with the given MAC, cabled to a switch port's
// unix socket (vlan.Switch.AddPort). NICs become eth0, eth1, ... in order;
// their QEMU device ids are nic0, nic1, ... (see SetLink).
func WithNIC(switchSocket, mac string) Option {
	return func(c *config) error {
		if _, err := net.ParseMAC(mac); err != nil {
			return fmt.Errorf("add nic: %w", err)
		}
		if strings.Contains(switchSocket, ",") {
			// QEMU's option parser would split the path at the comma.
			return fmt.Errorf("add nic: socket path %q contains a comma", switchSocket)
		}
		c.nics = append(c.nics, nic{socket: switchSocket, mac: mac})
		return nil
	}
}

// WithSerialSocket adds a serial port (the lowest ttySN that is neither the
// console nor taken) connected as a client to a unix socket, reconnecting
// every second while the other side is away. Give two VMs the two ends of a
// serialcable.Cable to join them with a null-modem line.
func WithSerialSocket(path string) Option { return WithSerialSocketAt(-1, path) }

// WithSerialSocketAt is WithSerialSocket on ttyS<port>, for a cable the
// cluster spec puts on a given device (the seed's is on /dev/ttyS0).
func WithSerialSocketAt(port int, path string) Option {
	return func(c *config) error {
		if strings.Contains(path, ",") {
			return fmt.Errorf("add serial port: socket path %q contains a comma", path)
		}
		if port < -1 || port >= maxSerial {
			return fmt.Errorf("add serial port: ttyS%d, want ttyS0 to ttyS%d", port, maxSerial-1)
		}
		c.serials = append(c.serials, serial{port: port, path: path})
		return nil
	}
}

// WithConsolePort puts the console on ttyS<port> (default 0), leaving the
// other ports to cables.
func WithConsolePort(port int) Option {
	return func(c *config) error {
		if port < 0 || port >= maxSerial {
			return fmt.Errorf("set console: ttyS%d, want ttyS0 to ttyS%d", port, maxSerial-1)
		}
		c.consolePort = port
		return nil
	}
}

// WithSerialSocketPair adds one end of a null-modem cable as the next serial
// port; it is WithSerialSocket named for what it is used for.
func WithSerialSocketPair(cableEnd string) Option { return WithSerialSocket(cableEnd) }

// WithDisk adds a virtio disk (vda, vdb, ...). format is "raw" or "qcow2".
func WithDisk(path, format string) Option {
	return func(c *config) error {
		if format != "raw" && format != "qcow2" {
			return fmt.Errorf("add disk %s: format %q, want raw or qcow2", path, format)
		}
		c.disks = append(c.disks, disk{path: path, format: format})
		return nil
	}
}

// WithSnapshotDisk adds a virtio disk whose writes go to a temporary overlay
// QEMU discards at exit: several VMs can boot one image.
func WithSnapshotDisk(path, format string) Option {
	return func(c *config) error {
		if err := WithDisk(path, format)(c); err != nil {
			return err
		}
		c.disks[len(c.disks)-1].snapshot = true
		return nil
	}
}

// WithHostForward adds a user-mode NIC, restricted so the guest reaches
// nothing outside, forwarding 127.0.0.1:hostPort to guestPort in the VM:
// the management path by which push reaches a guest's sshd. hostPort 0 picks
// a free port; VM.HostPort tells which.
func WithHostForward(hostPort, guestPort int) Option {
	return func(c *config) error {
		c.forwards = append(c.forwards, forward{hostPort: hostPort, guestPort: guestPort})
		return nil
	}
}

// WithManagementMAC sets the MAC of the user-mode NIC WithHostForward adds,
// so the guest can tell it from the others.
func WithManagementMAC(mac string) Option {
	return func(c *config) error {
		if _, err := net.ParseMAC(mac); err != nil {
			return fmt.Errorf("set management nic: %w", err)
		}
		c.mgmtMAC = mac
		return nil
	}
}

// WithTimeout kills the VM after d, whatever it is doing, so a hung guest
// cannot hang the test run. Zero (the default) means no limit.
func WithTimeout(d time.Duration) Option {
	return func(c *config) error { c.timeout = d; return nil }
}

// WithConsoleLog writes every console line to path.
func WithConsoleLog(path string) Option {
	return func(c *config) error { c.consoleLog = path; return nil }
}

// WithDir sets where the VM keeps its QMP socket; it must be short (unix
// socket paths have room for 107 bytes). Default: a new directory under /tmp.
func WithDir(dir string) Option {
	return func(c *config) error { c.dir = dir; return nil }
}

// WithAllowReboot lets a guest reboot. By default QEMU runs with -no-reboot,
// so a reboot or a panic (panic=-1) ends the process and tests see it.
func WithAllowReboot() Option {
	return func(c *config) error { c.allowReboot = true; return nil }
}

// serialPorts lays the console and the cables out on ttyS0..: the console
// and every WithSerialSocketAt on their own port, the rest on the lowest
// free ones. Entry i is the socket of ttyS<i>, "" for the console or an
// unused port before a used one.
func (c *config) serialPorts() ([]string, error) {
	ports := make([]string, maxSerial)
	used := make([]bool, maxSerial)
	used[c.consolePort] = true
	n := c.consolePort + 1
	for _, s := range c.serials {
		if s.port < 0 {
			continue
		}
		if used[s.port] {
			return nil, fmt.Errorf("serial port ttyS%d is taken twice (console on ttyS%d)", s.port, c.consolePort)
		}
		used[s.port], ports[s.port] = true, s.path
		n = max(n, s.port+1)
	}
	for _, s := range c.serials {
		if s.port >= 0 {
			continue
		}
		i := 0
		for i < maxSerial && used[i] {
			i++
		}
		if i == maxSerial {
			return nil, fmt.Errorf("more than %d serial ports", maxSerial)
		}
		used[i], ports[i] = true, s.path
		n = max(n, i+1)
	}
	return ports[:n], nil
}
