// Package cluster owns the cluster spec: its Go types, YAML parsing with
// line/column positions, defaults, and the validation every other command
// runs first. Everything that reaches a script or a config file passes one of
// the strict validators in this package before any template sees it.
package cluster

// APIVersion and Kind identify the spec format; a file with any other pair is refused.
const (
	APIVersion = "lvsforge.dev/v1alpha1"
	Kind       = "Cluster"
)

// Roles a host can play.
const (
	RoleDirector   = "director"
	RoleRealServer = "realserver"
)

// Spec is the whole cluster description (cluster.yaml).
type Spec struct {
	APIVersion string     `yaml:"apiVersion"`
	Kind       string     `yaml:"kind"`
	Metadata   Metadata   `yaml:"metadata"`
	Kernel     Kernel     `yaml:"kernel"`
	PatchSets  []PatchSet `yaml:"patchSets"`
	Services   []Service  `yaml:"services"`
	Hosts      []Host     `yaml:"hosts"`
	HA         HA         `yaml:"ha"`
	// IPVS is how the directors' IPVS behaves beyond its table.
	IPVS IPVS `yaml:"ipvs"`

	// Dir is the directory of the spec file; relative paths (authkey file,
	// local tarballs, patches) are resolved against it. Not part of the YAML.
	Dir string `yaml:"-"`
	// File is the name used in error messages. Not part of the YAML.
	File string `yaml:"-"`
	// Warnings are what validation found works, but badly (a scheduler
	// that differs between active directors): the commands print them on
	// stderr. Not part of the YAML.
	Warnings Errors `yaml:"-"`
	// pos is where each field path was written in File, so that errors
	// found after parsing (a missing authkey at render time) point at it.
	pos map[string]Pos
}

// Metadata names the cluster.
type Metadata struct {
	Name string `yaml:"name"`
}

// Kernel says which kernel sources to build and how each role's kernel differs.
type Kernel struct {
	// Version is the upstream version of the source, e.g. "6.1.192".
	Version string       `yaml:"version"`
	Source  KernelSource `yaml:"source"`
	// Config is the base configuration every role starts from.
	Config KernelConfig `yaml:"config"`
	// PanicTimeout is the panic=N seconds put on the command line of every
	// GRUB entry lvsforge writes, so a kernel that panics reboots to the old default.
	PanicTimeout int `yaml:"panicTimeout"`
	// Cmdline is appended to the kernel command line of lvsforge's GRUB entries.
	Cmdline  string     `yaml:"cmdline"`
	Director RoleKernel `yaml:"director"`
	// RealServer is the real servers' kernel profile.
	RealServer RoleKernel `yaml:"realserver"`
	// BuildFarm lists distcc/icecc hosts for distributed compiles.
	BuildFarm BuildFarm `yaml:"buildFarm"`
}

// Kernel source types.
const (
	SourceKernelOrg = "kernel.org"
	SourceTarball   = "tarball"
	SourceDistro    = "distro"
)

// KernelSource says where the kernel tarball comes from and how it is trusted.
type KernelSource struct {
	// Type is kernel.org (signature-verified), tarball (a local file or URL
	// with a pinned sha256) or distro (the distro's linux-source tarball, pinned sha256).
	Type string `yaml:"type"`
	// URL is the download location for kernel.org (a mirror base) or a tarball URL.
	Mirrors []string `yaml:"mirrors"`
	// Path is a local tarball (tarball and distro types).
	Path string `yaml:"path"`
	// URL is a remote tarball for the tarball type.
	URL    string `yaml:"url"`
	SHA256 string `yaml:"sha256"`
	// VerifyTarSign (kernel.org only) also checks linux-VERSION.tar.sign
	// over the uncompressed tarball with the release signers' keys.
	VerifyTarSign bool `yaml:"verifyTarSign"`
}

// KernelConfig is the base config.
type KernelConfig struct {
	// Base is tinyconfig, defconfig, or a path to a config file.
	Base string `yaml:"base"`
}

// RoleKernel is what one role adds to the base kernel.
type RoleKernel struct {
	// LocalVersion is appended to the release (CONFIG_LOCALVERSION), e.g. "-lvs".
	LocalVersion string `yaml:"localVersion"`
	// PatchSets names entries of Spec.PatchSets applied to this role's tree, in order.
	PatchSets []string `yaml:"patchSets"`
	// Options are extra Kconfig settings: CONFIG_FOO=y, CONFIG_BAR=m, CONFIG_BAZ=n, CONFIG_X="s".
	Options []string `yaml:"options"`
}

// BuildFarm configures distributed compiles.
type BuildFarm struct {
	Engine string   `yaml:"engine"` // distcc or icecc
	Hosts  []string `yaml:"hosts"`
}

// PatchSet is a named series of patches.
type PatchSet struct {
	Name    string       `yaml:"name"`
	Patches []PatchEntry `yaml:"patches"`
}

// PatchEntry is one patch of a series.
type PatchEntry struct {
	File   string `yaml:"file"`
	URL    string `yaml:"url"`
	SHA256 string `yaml:"sha256"`
	// Strip is the -pN level (default 1).
	Strip *int `yaml:"strip"`
	// Roles limits the patch to these roles' kernels (director,
	// realserver); empty means every role whose patchSets name the set.
	Roles []string `yaml:"roles"`
}

// Forwarding methods.
const (
	ForwardDR  = "dr"
	ForwardTUN = "tun"
	ForwardNAT = "nat"
)

// Service is one IPVS virtual service.
type Service struct {
	Name string `yaml:"name"`
	// VIP is the virtual address, IPv4 or IPv6: its family is the
	// service's, and every address the service is served through (the
	// real servers', the directors', the sorry server) is of that family.
	VIP string `yaml:"vip"`
	// Port is the virtual port; 0 with FWMark set for firewall-mark services.
	Port   int `yaml:"port"`
	FWMark int `yaml:"fwmark"`
	// FWMarkPorts are the destination ports (of Protocol, to VIP) whose
	// packets the director marks with FWMark: IPVS sees a firewall-mark
	// service only through the mark, so without these rules it gets no traffic.
	FWMarkPorts []int `yaml:"fwmarkPorts"`
	// RealPort is the port on the real servers (NAT only may differ; default Port).
	RealPort    int          `yaml:"realPort"`
	Protocol    string       `yaml:"protocol"`
	Scheduler   string       `yaml:"scheduler"`
	Forwarding  string       `yaml:"forwarding"`
	Persistence *Persistence `yaml:"persistence"`
	Check       Check        `yaml:"check"`
	// Quiescent: a failed real server keeps its entry with weight 0 (true,
	// ldirectord's default) instead of being removed.
	Quiescent *bool     `yaml:"quiescent"`
	Fallback  *Fallback `yaml:"fallback"`
	// OnePacket is one-packet scheduling (ipvsadm -o): every UDP datagram
	// is scheduled on its own, so one client's datagrams spread over the
	// real servers.
	OnePacket bool `yaml:"ops"`
	// SchedulerFlags are the scheduler's flags (ipvsadm -b): mh-fallback,
	// mh-port for mh; sh-fallback, sh-port for sh.
	SchedulerFlags []string `yaml:"schedulerFlags"`
	// Tunnel is how a tun service encapsulates (default: IP-in-IP).
	Tunnel *Tunnel `yaml:"tunnel"`
}

// Tunnel types and checksum options of LVS-TUN (ipvsadm 1.31's
// --tun-type and --tun-*csum; kernel >= 5.3 for all of them).
const (
	TunnelIPIP = "ipip"
	TunnelGUE  = "gue"
	TunnelGRE  = "gre"
	CsumNone   = "nocsum"
	CsumOn     = "csum"
	CsumRemote = "remcsum"
)

// Tunnel is the encapsulation of a tun service's packets to its real servers.
type Tunnel struct {
	// Type is ipip, gue (IPIP in UDP) or gre.
	Type string `yaml:"type"`
	// Port is GUE's UDP port on the real servers.
	Port int `yaml:"port"`
	// Checksum is nocsum, csum or remcsum (GUE's remote checksum offload).
	Checksum string `yaml:"checksum"`
}

// Persistence makes a client stick to one real server.
type Persistence struct {
	Timeout int `yaml:"timeout"`
	// Netmask groups clients: a dotted netmask for an IPv4 service, a
	// prefix length (1-128) for an IPv6 one, as ipvsadm -M takes them.
	Netmask string `yaml:"netmask"`
}

// Check is the real-server health check.
type Check struct {
	// Type is connect, http, negotiate, external or off.
	Type string `yaml:"type"`
	// Service is the ldirectord protocol for negotiate checks (http, https, smtp, ...).
	Service string `yaml:"service"`
	Request string `yaml:"request"`
	Receive string `yaml:"receive"`
	// Port is the port checked (default: the real port). Firewall-mark
	// services have no port of their own, so their checks need one.
	Port int `yaml:"port"`
	// Interval and Timeout are in seconds.
	Interval int `yaml:"interval"`
	Timeout  int `yaml:"timeout"`
	// Retries is how many times a failed check is tried again, Interval
	// apart, before the real server is taken out; nil leaves it to the
	// daemon (ldirectord: none, keepalived: 1).
	Retries *int `yaml:"retries"`
	// Command is an external check's program (absolute path), run as
	// ldirectord runs it: with the virtual address (or firewall mark), the
	// virtual port, the real server's address and port as arguments.
	Command string `yaml:"command"`
}

// Fallback is the sorry server used when every real server is down.
type Fallback struct {
	Address string `yaml:"address"`
	Port    int    `yaml:"port"`
}

// OS families and init systems.
const (
	OSDebian      = "debian"
	OSRedHat      = "redhat"
	InitSysV      = "sysv"
	InitSystemd   = "systemd"
	ProfileModern = "modern"
	ProfileHidden = "legacy-hidden"
)

// Host is one machine of the cluster.
type Host struct {
	Name string `yaml:"name"`
	Role string `yaml:"role"`
	// Address is the host's public address with prefix length (DIP or
	// RIP), IPv4 or IPv6, e.g. 192.168.7.9/24 or 2001:db8:7::9/64.
	Address string `yaml:"address"`
	// Address6 is the IPv6 address, with prefix length, of a dual-stack
	// host whose Address is IPv4: the one its IPv6 services use.
	Address6   string     `yaml:"address6"`
	SSH        SSH        `yaml:"ssh"`
	Interfaces Interfaces `yaml:"interfaces"`
	// Gateway is the default route of Address's family. For NAT real
	// servers it must be a director address.
	Gateway string `yaml:"gateway"`
	// Gateway6 is the IPv6 default route of a dual-stack host (Address6).
	Gateway6      string `yaml:"gateway6"`
	OS            string `yaml:"os"`
	Init          string `yaml:"init"`
	KernelProfile string `yaml:"kernelProfile"`
	// Weights maps service name to this real server's weight for it. A real
	// server serves every service, with weight 1 unless an entry says
	// otherwise; an entry of 0 means it does not serve that service at all
	// (no table entry), which is how a server is kept out of a service.
	Weights map[string]int `yaml:"weights"`
	Boot    Boot           `yaml:"boot"`
	// BGP is a director's own BGP settings (ha.backend bgp).
	BGP *HostBGP `yaml:"bgp"`
}

// HostBGP is what differs between the directors of the bgp backend.
type HostBGP struct {
	// AS is the director's local AS; 0 takes ha.bgp.as.
	AS int `yaml:"as"`
	// RouterID is the director's BGP router ID, a dotted quad unique among
	// the directors; "" takes the director's public address.
	RouterID string `yaml:"routerID"`
}

// SSH says how to reach a host.
type SSH struct {
	User string `yaml:"user"`
	Port int    `yaml:"port"`
	Key  string `yaml:"key"`
	// Jump is a jump host, [user@]host[:port].
	Jump string `yaml:"jump"`
	// Address overrides the address used to connect (default: Host.Address).
	Address string `yaml:"address"`
}

// Interfaces names the host's network interfaces.
type Interfaces struct {
	Public string `yaml:"public"`
	// Heartbeat is the dedicated heartbeat link of a director, with its address.
	Heartbeat        string `yaml:"heartbeat"`
	HeartbeatAddress string `yaml:"heartbeatAddress"`
}

// Boot describes how the host boots, for the GRUB entries lvsforge writes.
type Boot struct {
	// Root is the root device on the kernel command line (root=...).
	Root string `yaml:"root"`
	// GrubRoot is GRUB legacy's root device, e.g. (hd0,0).
	GrubRoot string `yaml:"grubRoot"`
}

// HA backends and heartbeat media types.
const (
	BackendHeartbeat  = "heartbeat"
	BackendKeepalived = "keepalived"
	MediumBcast       = "bcast"
	MediumUcast       = "ucast"
	MediumMcast       = "mcast"
	MediumSerial      = "serial"
)

// BackendBGP runs every director at once: each announces the VIPs to its
// BGP peers (BIRD) while its own checks (keepalived, without VRRP) see a
// live real server, and the routers spread the flows over the directors
// (ECMP).
const BackendBGP = "bgp"

// HA is the director failover configuration.
type HA struct {
	Backend string `yaml:"backend"`
	// Primary is the director that holds the VIP when both are up.
	Primary string `yaml:"primary"`
	// Heartbeat timings (seconds, or e.g. "500ms").
	Keepalive    Duration `yaml:"keepalive"`
	Deadtime     Duration `yaml:"deadtime"`
	Warntime     Duration `yaml:"warntime"`
	Initdead     Duration `yaml:"initdead"`
	AutoFailback *bool    `yaml:"autoFailback"`
	UDPPort      int      `yaml:"udpPort"`
	Baud         int      `yaml:"baud"`
	Media        []Medium `yaml:"media"`
	Ping         []string `yaml:"ping"`
	Authkey      Authkey  `yaml:"authkey"`
	// FloatingGateway is an extra address (with prefix) the active director
	// holds beside the VIPs: the NAT real servers' gateway, IPv4 or IPv6.
	FloatingGateway string `yaml:"floatingGateway"`
	// FloatingGateway6 is the IPv6 one of a dual-stack cluster whose
	// FloatingGateway is IPv4.
	FloatingGateway6 string     `yaml:"floatingGateway6"`
	Keepalived       Keepalived `yaml:"keepalived"`
	// Sync enables IPVS connection synchronisation between the directors.
	Sync Sync `yaml:"sync"`
	// BGP is the bgp backend's announcement of the VIPs.
	BGP BGP `yaml:"bgp"`
}

// BGP configures how the directors of the bgp backend announce the VIPs:
// each as a host route (/32), to every peer, from its public address.
type BGP struct {
	// AS is the local AS of every director that sets none of its own.
	AS int `yaml:"as"`
	// HoldTime is BGP's hold time in seconds: a peer that hears nothing
	// from a director for so long drops its routes. Keepalives go every
	// third of it.
	HoldTime int `yaml:"holdTime"`
	// BFD runs BFD with the peers (BIRD's, 300 ms x 3): a peer that runs
	// it too drops a silent director's routes within a second.
	BFD bool `yaml:"bfd"`
	// Peers are the routers every director announces the VIPs to; each
	// on every director's public subnet.
	Peers []BGPPeer `yaml:"peers"`
}

// BGPPeer is one router the directors announce the VIPs to.
type BGPPeer struct {
	Address string `yaml:"address"`
	AS      int    `yaml:"as"`
}

// Medium is one heartbeat communication path.
type Medium struct {
	Type      string `yaml:"type"`
	Interface string `yaml:"interface"`
	// Device is the serial device, e.g. /dev/ttyS0.
	Device string `yaml:"device"`
	Group  string `yaml:"group"`
	Port   int    `yaml:"port"`
	TTL    int    `yaml:"ttl"`
	Loop   *bool  `yaml:"loop"`
}

// Authkey is heartbeat's shared secret, read from a file or an environment
// variable at render time: never written into the spec.
type Authkey struct {
	Method string `yaml:"method"`
	File   string `yaml:"file"`
	Env    string `yaml:"env"`
}

// Keepalived holds VRRP settings for the keepalived backend.
type Keepalived struct {
	VirtualRouterID int `yaml:"virtualRouterID"`
	AdvertInt       int `yaml:"advertInt"`
	// Unicast sends VRRP adverts to the other directors' public addresses
	// instead of multicast, which many networks filter.
	Unicast bool `yaml:"unicast"`
	// TrackInterfaces are interfaces (besides the VRRP one) whose loss
	// puts the director in FAULT state, giving up the VIPs.
	TrackInterfaces []string `yaml:"trackInterfaces"`
	// TrackScript is a check command whose failure gives up the VIPs.
	TrackScript *TrackScript `yaml:"trackScript"`
	// Notify holds the commands run on VRRP state changes.
	Notify Notify `yaml:"notify"`
	// GarpMasterRefresh repeats the gratuitous ARPs every so many seconds
	// while a director holds the VIPs.
	GarpMasterRefresh int `yaml:"garpMasterRefresh"`
}

// TrackScript is keepalived's vrrp_script.
type TrackScript struct {
	// Command is an absolute path and its arguments.
	Command string `yaml:"command"`
	// Interval is seconds between runs; Fall and Rise are how many
	// failures or successes in a row change the state.
	Interval int `yaml:"interval"`
	Fall     int `yaml:"fall"`
	Rise     int `yaml:"rise"`
	// Weight 0 puts the director in FAULT when the command fails; another
	// value is added to its priority while the command fails (negative) or
	// succeeds (positive).
	Weight int `yaml:"weight"`
}

// Notify are keepalived's notify commands (absolute paths and arguments).
type Notify struct {
	Master string `yaml:"master"`
	Backup string `yaml:"backup"`
	Fault  string `yaml:"fault"`
	Stop   string `yaml:"stop"`
	// Any runs on every change, with keepalived's four arguments appended:
	// INSTANCE, the instance's name, the new state and the priority.
	Any string `yaml:"any"`
}

// Sync configures IPVS connection synchronisation: keepalived's
// lvs_sync_daemon, or with heartbeat IPVS's master and backup sync daemons
// on both directors, which lvs-director starts.
type Sync struct {
	Enabled   bool   `yaml:"enabled"`
	Interface string `yaml:"interface"`
	SyncID    int    `yaml:"syncID"`
}

// IPVS holds the directors' IPVS settings outside the table: connection
// timeouts and the net.ipv4.vs sysctls that decide what happens to the
// connections of a removed or quiescent real server.
type IPVS struct {
	Timeouts Timeouts `yaml:"timeouts"`
	// ExpireNodestConn (net.ipv4.vs.expire_nodest_conn) ends a connection
	// whose real server was removed at its next packet, instead of
	// dropping its packets until it times out.
	ExpireNodestConn *bool `yaml:"expireNodestConn"`
	// ExpireQuiescentTemplate (net.ipv4.vs.expire_quiescent_template)
	// expires the persistence of clients to a real server of weight 0.
	ExpireQuiescentTemplate *bool `yaml:"expireQuiescentTemplate"`
	// ConnReuseMode (net.ipv4.vs.conn_reuse_mode) says when a new
	// connection that reuses a client port is scheduled afresh.
	ConnReuseMode *int `yaml:"connReuseMode"`
}

// Timeouts are IPVS's connection timeouts in seconds (ipvsadm --set,
// keepalived's lvs_timeouts); 0 keeps the kernel's (900, 120, 300).
type Timeouts struct {
	TCP    int `yaml:"tcp"`
	TCPFin int `yaml:"tcpFin"`
	UDP    int `yaml:"udp"`
}
