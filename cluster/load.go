package cluster

import (
	"bytes"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"os"
	"path/filepath"
	"reflect"
	"regexp"
	"strconv"
	"strings"
	"syscall"
	"time"

	"go.yaml.in/yaml/v3"
)

// maxSpecSize bounds what Parse reads: a spec is a few KiB; anything far
// larger is a mistake (a tarball passed as -f) and must not eat memory.
const maxSpecSize = 4 << 20

// Load reads, defaults and validates the spec at path. Only a regular file
// is read, and no more of it than a spec can be: -f /dev/zero or a named
// pipe must fail at once, not fill memory or wait for a writer.
func Load(path string) (*Spec, error) {
	data, err := readSpec(path)
	if err != nil {
		return nil, err
	}
	abs, err := filepath.Abs(path)
	if err != nil {
		return nil, fmt.Errorf("resolve spec path: %w", err)
	}
	return Parse(data, path, filepath.Dir(abs))
}

func readSpec(path string) ([]byte, error) {
	// O_NONBLOCK: opening a named pipe with no writer would otherwise
	// block before there is anything to check.
	f, err := os.OpenFile(path, os.O_RDONLY|syscall.O_NONBLOCK, 0)
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	defer f.Close()
	st, err := f.Stat()
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	if !st.Mode().IsRegular() {
		return nil, fmt.Errorf("read spec: %s is %s, not a regular file: name the spec's YAML file", escape(path), fileKind(st.Mode()))
	}
	data, err := io.ReadAll(io.LimitReader(f, maxSpecSize+1))
	if err != nil {
		return nil, fmt.Errorf("read spec: %w", err)
	}
	return data, nil
}

// fileKind names what a non-regular file is, for an error message.
func fileKind(m fs.FileMode) string {
	switch {
	case m.IsDir():
		return "a directory"
	case m&fs.ModeNamedPipe != 0:
		return "a named pipe"
	case m&fs.ModeCharDevice != 0:
		return "a character device"
	case m&fs.ModeDevice != 0:
		return "a block device"
	case m&fs.ModeSocket != 0:
		return "a socket"
	}
	return "not a regular file"
}

var reYAMLLine = regexp.MustCompile(`^yaml: line ([0-9]+): (.*)$`)

// Parse decodes a spec from data, applies defaults and validates it. file
// names the spec in error messages; dir resolves its relative paths. The
// error, if any, is an Errors listing every problem found.
func Parse(data []byte, file, dir string) (*Spec, error) {
	if len(data) > maxSpecSize {
		return nil, Errors{{File: file, Pos: Pos{1, 1}, Msg: fmt.Sprintf("spec is larger than the %d bytes a spec can be: name the spec's YAML file", maxSpecSize)}}
	}
	root, fe := parseYAML(data)
	if fe != nil {
		fe.File = file
		return nil, Errors{fe}
	}
	if root.Kind == 0 || len(root.Content) == 0 {
		return nil, Errors{{File: file, Pos: Pos{1, 1}, Msg: "the spec is empty: start from `lvsforge init`"}}
	}
	s := &Spec{File: file, Dir: dir}
	d := &decoder{pos: map[string]Pos{}, nulls: map[string]bool{}}
	d.decode(root, reflect.ValueOf(s).Elem(), "")
	s.pos = d.pos
	skip := map[string]bool{}
	for _, e := range d.errs {
		e.File = file
		skip[e.Path] = true
	}
	v := &validator{s: s, pos: d.pos, skip: skip}
	v.asWritten(func(path string) bool {
		_, ok := d.pos[path]
		return ok && !d.nulls[path]
	})
	applyDefaults(s)
	v.validate()
	errs := append(d.errs, v.errs...)
	if len(errs) > 0 {
		errs.sortByPos()
		return nil, errs
	}
	derivedDefaults(s)
	s.Warnings = v.warns
	return s, nil
}

// parseYAML reads the one YAML document of a spec. A second document
// (after ---) is an error: yaml.Unmarshal would drop it without a word.
func parseYAML(data []byte) (*yaml.Node, *FieldError) {
	dec := yaml.NewDecoder(bytes.NewReader(data))
	var root, next yaml.Node
	if err := dec.Decode(&root); errors.Is(err, io.EOF) {
		return &root, nil
	} else if err != nil {
		return nil, syntaxError(data, err)
	}
	switch err := dec.Decode(&next); {
	case errors.Is(err, io.EOF):
	case err != nil:
		return nil, syntaxError(data, err)
	case len(next.Content) > 0 && next.Content[0].Tag != "!!null":
		return nil, &FieldError{Pos: Pos{next.Line, next.Column}, Msg: "a second YAML document starts here: a spec is one document; remove this --- and what follows it"}
	}
	return &root, nil
}

// syntaxError reports a file yaml.v3 refused, at the offending line and in
// words where diagnoseSyntax can tell, else with yaml.v3's message at the
// line it names (or the top of the file, for the errors it names none for).
func syntaxError(data []byte, err error) *FieldError {
	msg, line := strings.TrimPrefix(err.Error(), "yaml: "), 0
	if m := reYAMLLine.FindStringSubmatch(err.Error()); m != nil {
		line, _ = strconv.Atoi(m[1])
		msg = m[2]
	}
	if pos, what, ok := diagnoseSyntax(data, line); ok {
		return &FieldError{Pos: pos, Msg: "YAML syntax: " + what}
	}
	return &FieldError{Pos: Pos{max(line, 1), 1}, Msg: "YAML syntax: " + msg}
}

// IsInvalid reports whether err is a spec validation error.
func IsInvalid(err error) bool {
	var es Errors
	return errors.As(err, &es)
}

func applyDefaults(s *Spec) {
	k := &s.Kernel
	if k.Source.Type == "" {
		k.Source.Type = SourceKernelOrg
	}
	if k.Source.Type == SourceKernelOrg && len(k.Source.Mirrors) == 0 {
		k.Source.Mirrors = []string{"https://cdn.kernel.org/pub/linux/kernel"}
	}
	if k.Config.Base == "" {
		k.Config.Base = "tinyconfig"
	}
	if k.PanicTimeout == 0 {
		k.PanicTimeout = 10
	}
	if k.Director.LocalVersion == "" {
		k.Director.LocalVersion = "-lvs"
	}
	if k.RealServer.LocalVersion == "" {
		k.RealServer.LocalVersion = "-rs"
	}
	for i := range s.PatchSets {
		for j := range s.PatchSets[i].Patches {
			if s.PatchSets[i].Patches[j].Strip == nil {
				one := 1
				s.PatchSets[i].Patches[j].Strip = &one
			}
		}
	}
	for i := range s.Services {
		sv := &s.Services[i]
		def(&sv.Protocol, "tcp")
		def(&sv.Scheduler, "wlc") // ipvsadm's own default
		def(&sv.Forwarding, ForwardDR)
		def(&sv.Check.Type, "connect")
		if sv.Check.Type == "http" && sv.Check.Request == "" {
			sv.Check.Request = "/"
		}
		if sv.Check.Interval == 0 {
			sv.Check.Interval = 10 // ldirectord's checkinterval default
		}
		if sv.Check.Timeout == 0 {
			sv.Check.Timeout = 5 // ldirectord's checktimeout default
		}
		if sv.Tunnel != nil {
			def(&sv.Tunnel.Type, TunnelIPIP)
		}
	}
	for i := range s.Hosts {
		h := &s.Hosts[i]
		def(&h.SSH.User, "root")
		if h.SSH.Port == 0 {
			h.SSH.Port = 22
		}
		def(&h.Interfaces.Public, "eth0")
		def(&h.OS, OSDebian)
		def(&h.Init, InitSystemd)
		def(&h.KernelProfile, ProfileModern)
		def(&h.Boot.Root, "/dev/sda1")
		def(&h.Boot.GrubRoot, "(hd0,0)")
	}
	ha := &s.HA
	def(&ha.Backend, BackendHeartbeat)
	if ha.Primary == "" {
		for _, h := range s.Hosts {
			if h.Role == RoleDirector {
				ha.Primary = h.Name
				break
			}
		}
	}
	defDur(&ha.Keepalive, 2*time.Second)
	defDur(&ha.Deadtime, 30*time.Second)
	defDur(&ha.Warntime, 10*time.Second)
	defDur(&ha.Initdead, 120*time.Second)
	if ha.AutoFailback == nil {
		t := true
		ha.AutoFailback = &t
	}
	if ha.UDPPort == 0 {
		ha.UDPPort = 694
	}
	if ha.Baud == 0 {
		ha.Baud = 19200
	}
	def(&ha.Authkey.Method, "sha1")
	if ha.Keepalived.VirtualRouterID == 0 {
		ha.Keepalived.VirtualRouterID = 51
	}
	if ha.Keepalived.AdvertInt == 0 {
		ha.Keepalived.AdvertInt = 1
	}
	defInt(&ha.BGP.HoldTime, DefaultHoldTime)
	if ts := ha.Keepalived.TrackScript; ts != nil {
		defInt(&ts.Interval, 2)
		defInt(&ts.Fall, 2)
		defInt(&ts.Rise, 2)
	}
	ipvsDefaults(&s.IPVS)
	if ha.Sync.Enabled && ha.Sync.Interface == "" {
		for _, h := range s.Hosts {
			if h.Role == RoleDirector {
				ha.Sync.Interface = h.Interfaces.Public
				if h.Interfaces.Heartbeat != "" {
					ha.Sync.Interface = h.Interfaces.Heartbeat
				}
				break
			}
		}
	}
}

// derivedDefaults fills the defaults copied from other fields, once the
// spec is valid: done before validation, a bad port would be reported a
// second time under the field it was copied to, which the user never wrote.
func derivedDefaults(s *Spec) {
	for i := range s.Services {
		if sv := &s.Services[i]; sv.RealPort == 0 {
			sv.RealPort = sv.Port
		}
	}
}

// ipvsDefaults are the IPVS sysctls chosen for drains (weight 0, then
// waiting for the connections to end) and failures: see the README.
func ipvsDefaults(c *IPVS) {
	on := func(p **bool) {
		if *p == nil {
			t := true
			*p = &t
		}
	}
	// A removed real server's connections end at their next packet
	// rather than hanging until they time out; a new connection that
	// reuses the port of one to a weight-0 server is scheduled afresh.
	on(&c.ExpireNodestConn)
	// A persistent client of a drained (weight-0) server moves with its
	// next connection: otherwise each one renews its persistence and the
	// drain never ends.
	on(&c.ExpireQuiescentTemplate)
	if c.ConnReuseMode == nil {
		// The kernel's own, written out: 0 would send reused ports back to
		// a drained server.
		one := 1
		c.ConnReuseMode = &one
	}
}

func defInt(p *int, v int) {
	if *p == 0 {
		*p = v
	}
}

func def(p *string, v string) {
	if *p == "" {
		*p = v
	}
}

func defDur(p *Duration, v time.Duration) {
	if *p == 0 {
		*p = Duration(v)
	}
}

// Validate checks a spec built or changed in code (the VM scenarios derive
// variants of the spec they are given) with the same rules as Parse, and
// fills a service's unset realPort as Parse does. The errors carry field
// paths, and the positions of fields the spec was parsed with.
func Validate(s *Spec) error {
	pos := s.pos
	if pos == nil {
		pos = map[string]Pos{}
	}
	v := &validator{s: s, pos: pos, skip: map[string]bool{}}
	v.validate()
	if len(v.errs) > 0 {
		v.errs.sortByPos()
		return v.errs
	}
	derivedDefaults(s)
	s.Warnings = v.warns
	return nil
}
