// Package vmtests proves lvsforge's clusters in QEMU VMs. Up boots a
// spec's hosts from the role kernels lvsforge builds (with the vm fragment,
// straight from a virtio disk holding a Debian guest with the real
// heartbeat, ldirectord and keepalived) plus a client that is also the
// site's router, on a Go Ethernet switch that records every frame; Push
// installs the rendered files with the same code as `lvsforge push`; the
// scenarios (Scenarios, one Go test each and a `lvsforge vmtest --scenario`
// name) send real traffic through the VIPs and check what crossed the
// switch. Everything a run needs is built by lvsforge itself and cached by
// content, so a second run starts at boot. Tests skip without QEMU, root or
// the kernel source locally and fail without them in CI (internal/testenv).
package vmtests
