package build

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strings"

	"github.com/ProtonMail/go-crypto/openpgp"

	"github.com/lvsforge/lvsforge/cluster"
	"github.com/lvsforge/lvsforge/patches"
)

// IpvsadmSource is the ipvsadm 1.31 source lvsforge builds by default:
// Debian's copy of the upstream tarball, pinned by the sha256 in Debian's
// signed ipvsadm_1.31-1.dsc.
var IpvsadmSource = Source{
	Name: "ipvsadm-1.31.tar.gz",
	URLs: []string{
		"https://deb.debian.org/debian/pool/main/i/ipvsadm/ipvsadm_1.31.orig.tar.gz",
		"http://deb.debian.org/debian/pool/main/i/ipvsadm/ipvsadm_1.31.orig.tar.gz",
	},
	SHA256: "7276bcf214f31051188b2e44f11029e57303f37e54126e517000c1b2123a6d4e",
	Kind:   KindIpvsadm,
}

// Roles lvsforge builds kernels for.
var Roles = []string{cluster.RoleDirector, cluster.RoleRealServer}

// FetchOptions says how to verify what a spec names.
type FetchOptions struct {
	// Verifier checks kernel.org's sha256sums.asc.
	Verifier Verifier
	// Ipvsadm is the ipvsadm source; the zero value means IpvsadmSource.
	// IpvsadmFile, when set, is a local copy (still checked against the pin).
	Ipvsadm     Source
	IpvsadmFile string
	// SkipIpvsadm leaves ipvsadm out (kernel-only builds).
	SkipIpvsadm bool
	// TarSignKeyring verifies linux-VERSION.tar.sign when the spec sets
	// kernel.source.verifyTarSign; nil means ReleaseSignersKeyring.
	TarSignKeyring openpgp.EntityList
}

// Fetched is every verified input of a spec, in the cache.
type Fetched struct {
	Kernel Item
	// Patches holds each role's series, in order.
	Patches map[string][]PatchInput
	Ipvsadm *Item
}

// Item is one verified file.
type Item struct {
	Name   string `json:"name"`
	Path   string `json:"path"`
	SHA256 string `json:"sha256"`
	// SignedBy is the key whose .tar.sign verified the file, when one did.
	SignedBy string `json:"signedBy,omitempty"`
}

// Items lists every file of f once, for reports.
func (f *Fetched) Items() []Item {
	items := []Item{f.Kernel}
	seen := map[string]bool{}
	for _, r := range Roles {
		for _, p := range f.Patches[r] {
			if !seen[p.SHA256] {
				seen[p.SHA256] = true
				items = append(items, Item{Name: p.Name, Path: p.Path, SHA256: p.SHA256})
			}
		}
	}
	if f.Ipvsadm != nil {
		items = append(items, *f.Ipvsadm)
	}
	return items
}

// RoleKernel returns the spec's kernel profile of a role.
func RoleKernel(s *cluster.Spec, role string) (cluster.RoleKernel, error) {
	if rk, ok := s.Kernel.ForRole(role); ok {
		return *rk, nil
	}
	return cluster.RoleKernel{}, fmt.Errorf("unknown role %q: want %s", role, strings.Join(Roles, " or "))
}

// FetchSpec fetches and verifies the kernel source, every role's patches and
// the ipvsadm source named by the spec, several at once, into the cache.
func (f *Fetcher) FetchSpec(ctx context.Context, s *cluster.Spec, opt FetchOptions) (*Fetched, error) {
	out := &Fetched{Patches: map[string][]PatchInput{}}
	var srcs []Source
	var assign []func(path string)

	k := s.Kernel
	name := "linux-" + k.Version + ".tar.xz"
	if k.Source.VerifyTarSign && k.Source.Type != cluster.SourceKernelOrg {
		return nil, fmt.Errorf("fetch kernel: kernel.source.verifyTarSign needs a kernel.org source, not %q", k.Source.Type)
	}
	switch k.Source.Type {
	case cluster.SourceKernelOrg:
		src, err := f.KernelOrgSource(ctx, k.Version, k.Source.Mirrors, opt.Verifier, k.Source.SHA256)
		if err != nil {
			return nil, err
		}
		srcs = append(srcs, src)
		assign = append(assign, func(p string) { out.Kernel = Item{Name: src.Name, Path: p, SHA256: src.SHA256} })
	case cluster.SourceTarball, cluster.SourceDistro:
		if k.Source.Path != "" {
			p := k.Source.Path
			if !filepath.IsAbs(p) {
				p = filepath.Join(s.Dir, p)
			}
			cached, err := f.Cache.Import(p, k.Source.SHA256, KindKernel)
			if err != nil {
				return nil, err
			}
			out.Kernel = Item{Name: filepath.Base(p), Path: cached, SHA256: strings.ToLower(k.Source.SHA256)}
		} else {
			src := Source{Name: name, URLs: []string{k.Source.URL}, SHA256: k.Source.SHA256, Kind: KindKernel}
			srcs = append(srcs, src)
			assign = append(assign, func(p string) { out.Kernel = Item{Name: src.Name, Path: p, SHA256: strings.ToLower(src.SHA256)} })
		}
	default:
		return nil, fmt.Errorf("fetch kernel: unknown source type %q", k.Source.Type)
	}

	for _, role := range Roles {
		rk, _ := RoleKernel(s, role)
		entries, err := patches.Resolve(s.PatchSets, rk.PatchSets, role, s.Dir)
		if err != nil {
			return nil, fmt.Errorf("fetch %s patches: %w", role, err)
		}
		series := make([]PatchInput, len(entries))
		out.Patches[role] = series
		for i, e := range entries {
			series[i] = PatchInput{Patch: patches.Patch{Name: e.Name, Strip: e.Strip}, SHA256: e.SHA256}
			if e.File != "" {
				p, err := f.Cache.Import(e.File, e.SHA256, KindPatch)
				if err != nil {
					return nil, fmt.Errorf("fetch patch %s: %w", e.Name, err)
				}
				series[i].Path = p
				continue
			}
			srcs = append(srcs, Source{Name: e.Name, URLs: []string{e.URL}, SHA256: e.SHA256, Kind: KindPatch})
			assign = append(assign, func(p string) { series[i].Path = p })
		}
	}

	if !opt.SkipIpvsadm {
		src := opt.Ipvsadm
		if src.SHA256 == "" {
			src = IpvsadmSource
		}
		if opt.IpvsadmFile != "" {
			p, err := f.Cache.Import(opt.IpvsadmFile, src.SHA256, KindIpvsadm)
			if err != nil {
				return nil, fmt.Errorf("fetch ipvsadm: %w", err)
			}
			out.Ipvsadm = &Item{Name: src.Name, Path: p, SHA256: strings.ToLower(src.SHA256)}
		} else {
			srcs = append(srcs, src)
			assign = append(assign, func(p string) { out.Ipvsadm = &Item{Name: src.Name, Path: p, SHA256: strings.ToLower(src.SHA256)} })
		}
	}

	paths, err := f.Fetch(ctx, srcs...)
	if err != nil {
		return nil, err
	}
	for i, p := range paths {
		assign[i](p)
	}
	if k.Source.VerifyTarSign {
		keyring := opt.TarSignKeyring
		if keyring == nil {
			if keyring, err = ReleaseSignersKeyring(); err != nil {
				return nil, err
			}
		}
		if out.Kernel.SignedBy, err = f.verifyKernelOrgTarSign(ctx, k.Version, k.Source.Mirrors, out.Kernel.Path, out.Kernel.SHA256, keyring); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// KernelInputsFor assembles a role's build inputs from the spec and what was
// fetched. vm adds the QEMU guest fragment.
func KernelInputsFor(s *cluster.Spec, role string, got *Fetched, vm bool) (KernelInputs, error) {
	rk, err := RoleKernel(s, role)
	if err != nil {
		return KernelInputs{}, err
	}
	roleFrag, err := BuiltinFragment(role)
	if err != nil {
		return KernelInputs{}, err
	}
	frags := []Fragment{roleFrag}
	var extra []string
	if role == cluster.RoleDirector && hasFWMark(s) {
		extra = append(extra, FragmentFWMark)
	}
	if role == cluster.RoleDirector && s.HA.Backend == cluster.BackendBGP {
		extra = append(extra, FragmentBGP)
	}
	if vm {
		extra = append(extra, FragmentVM)
	}
	for _, name := range extra {
		f, err := BuiltinFragment(name)
		if err != nil {
			return KernelInputs{}, err
		}
		frags = append(frags, f)
	}
	base := s.Kernel.Config.Base
	switch base {
	case "", "tinyconfig", "defconfig", "allnoconfig":
		if base == "" {
			base = "tinyconfig"
		}
	default:
		if !filepath.IsAbs(base) {
			base = filepath.Join(s.Dir, base)
		}
	}
	return KernelInputs{
		Role: role, Version: s.Kernel.Version, Tarball: got.Kernel.Path, TarballSHA256: got.Kernel.SHA256,
		Patches: got.Patches[role], Base: base, Fragments: frags, IPVSSchedulers: role == cluster.RoleDirector,
		Options: rk.Options, LocalVersion: rk.LocalVersion, BuildFarm: s.Kernel.BuildFarm,
	}, nil
}

// SpecArtifacts are the builds of one spec: each requested role's kernel
// and, if asked for, ipvsadm.
type SpecArtifacts struct {
	Kernels map[string]*KernelArtifacts
	Ipvsadm *IpvsadmArtifacts
}

// SpecBuild says what BuildSpec builds.
type SpecBuild struct {
	Roles []string
	// VM adds the QEMU guest fragment to every kernel.
	VM bool
	// Ipvsadm builds ipvsadm too, statically linked when Static is set.
	Ipvsadm, Static bool
	// Package, "deb" or "rpm", packages every kernel too (see KernelInputs).
	Package string
}

// BuildSpec fetches and verifies what s names (a no-op for what the cache
// holds) and builds what want asks for, each returning its cached artifacts
// when nothing changed. `lvsforge build` and the VM tests both go through it.
func (b *Builder) BuildSpec(ctx context.Context, f *Fetcher, s *cluster.Spec, opt FetchOptions, want SpecBuild) (*SpecArtifacts, error) {
	opt.SkipIpvsadm = !want.Ipvsadm
	got, err := f.FetchSpec(ctx, s, opt)
	if err != nil {
		return nil, err
	}
	out := &SpecArtifacts{Kernels: map[string]*KernelArtifacts{}}
	for _, role := range want.Roles {
		in, err := KernelInputsFor(s, role, got, want.VM)
		if err != nil {
			return nil, err
		}
		in.Package = want.Package
		if out.Kernels[role], err = b.Kernel(ctx, in); err != nil {
			return nil, err
		}
	}
	if want.Ipvsadm {
		if out.Ipvsadm, err = b.Ipvsadm(ctx, IpvsadmInputs{Tarball: got.Ipvsadm.Path, TarballSHA256: got.Ipvsadm.SHA256, Static: want.Static}); err != nil {
			return nil, err
		}
	}
	return out, nil
}

// DefaultKeyring is $XDG_CONFIG_HOME/lvsforge/kernel.org-keyring.asc when
// that file exists, else "": a user who exported the kernel.org autosigner
// key there once need not pass --keyring again.
func DefaultKeyring() string {
	d, err := os.UserConfigDir()
	if err != nil {
		return ""
	}
	p := filepath.Join(d, "lvsforge", "kernel.org-keyring.asc")
	if _, err := os.Stat(p); err != nil {
		return ""
	}
	return p
}

// NewVerifier loads keyring (DefaultKeyring when "", and when there is none
// either, the kernel.org key lvsforge ships) and requires signatures by
// fingerprint unless it is "any".
func NewVerifier(keyring, fingerprint string) (Verifier, error) {
	var v Verifier
	if keyring == "" {
		keyring = DefaultKeyring()
	}
	var err error
	if keyring != "" {
		v.Keyring, err = LoadKeyring(keyring)
	} else {
		v.Keyring, err = ShippedKeyring()
	}
	if err != nil {
		return v, err
	}
	if fingerprint != "any" {
		v.RequireFingerprint = fingerprint
	}
	return v, nil
}

// hasFWMark says whether a spec has a firewall-mark service, whose packets
// the director marks with iptables.
func hasFWMark(s *cluster.Spec) bool {
	for _, sv := range s.Services {
		if sv.FWMark != 0 {
			return true
		}
	}
	return false
}
