package initramfs

import (
	"bufio"
	"bytes"
	"encoding/binary"
	"errors"
	"fmt"
	"os"
	"path"
	"path/filepath"
	"strings"
)

// KernelRelease reads the release string ("6.1.0-56-amd64") from an x86
// bzImage's setup header, so the matching /lib/modules directory is found
// from the kernel file itself rather than from its name.
func KernelRelease(bzImage string) (string, error) {
	f, err := os.Open(bzImage)
	if err != nil {
		return "", fmt.Errorf("read kernel release: %w", err)
	}
	defer f.Close()
	var hdr [0x210]byte
	if _, err := f.ReadAt(hdr[:], 0); err != nil {
		return "", fmt.Errorf("read kernel release of %s: %w", bzImage, err)
	}
	// Boot protocol: "HdrS" at 0x202; kernel_version at 0x20e is an offset
	// from 0x200 to a NUL-terminated "RELEASE (builder) #N ..." string.
	if string(hdr[0x202:0x206]) != "HdrS" {
		return "", fmt.Errorf("read kernel release of %s: not an x86 bzImage", bzImage)
	}
	off := int64(binary.LittleEndian.Uint16(hdr[0x20e:])) + 0x200
	var buf [256]byte
	n, err := f.ReadAt(buf[:], off)
	if n == 0 {
		return "", fmt.Errorf("read kernel release of %s: %w", bzImage, err)
	}
	s := string(buf[:n])
	if i := strings.IndexByte(s, 0); i >= 0 {
		s = s[:i]
	}
	rel, _, _ := strings.Cut(s, " ")
	if rel == "" {
		return "", fmt.Errorf("read kernel release of %s: empty version string", bzImage)
	}
	return rel, nil
}

// ErrNoModule is returned when a requested module is not in modules.dep.
var ErrNoModule = errors.New("module not found")

// ResolveModules returns the modules.dep paths (relative to modulesDir) of
// the named modules and everything they depend on, dependencies first: the
// order insmod needs, since busybox insmod, unlike modprobe, loads exactly
// one file. Names match with '-' and '_' treated alike, as modprobe does.
// A module built into the kernel (listed in modules.builtin) is skipped.
func ResolveModules(modulesDir string, names ...string) ([]string, error) {
	deps, err := readModulesDep(filepath.Join(modulesDir, "modules.dep"))
	if err != nil {
		return nil, err
	}
	builtin := map[string]bool{}
	if data, err := os.ReadFile(filepath.Join(modulesDir, "modules.builtin")); err == nil {
		for _, l := range strings.Split(string(data), "\n") {
			if l != "" {
				builtin[modName(l)] = true
			}
		}
	}
	byName := map[string]string{}
	for p := range deps {
		byName[modName(p)] = p
	}
	var order []string
	state := map[string]int{} // 1 visiting, 2 done
	var visit func(p string) error
	visit = func(p string) error {
		switch state[p] {
		case 1:
			return fmt.Errorf("resolve module %s: dependency cycle", p)
		case 2:
			return nil
		}
		state[p] = 1
		for _, d := range deps[p] {
			if err := visit(d); err != nil {
				return err
			}
		}
		state[p] = 2
		order = append(order, p)
		return nil
	}
	for _, n := range names {
		key := strings.ReplaceAll(n, "-", "_")
		p, ok := byName[key]
		if !ok {
			if builtin[key] {
				continue
			}
			return nil, fmt.Errorf("resolve module %s in %s: %w", n, modulesDir, ErrNoModule)
		}
		if err := visit(p); err != nil {
			return nil, err
		}
	}
	for _, p := range order {
		if !strings.HasSuffix(p, ".ko") {
			// busybox insmod cannot decompress; a kernel with compressed
			// modules needs them unpacked first.
			return nil, fmt.Errorf("resolve module %s: compressed modules are not supported", p)
		}
	}
	return order, nil
}

func modName(p string) string {
	b := path.Base(p)
	if i := strings.Index(b, ".ko"); i >= 0 {
		b = b[:i]
	}
	return strings.ReplaceAll(b, "-", "_")
}

func readModulesDep(file string) (map[string][]string, error) {
	data, err := os.ReadFile(file)
	if err != nil {
		return nil, fmt.Errorf("read modules.dep: %w", err)
	}
	deps := map[string][]string{}
	sc := bufio.NewScanner(bytes.NewReader(data))
	sc.Buffer(make([]byte, 64*1024), 1024*1024)
	for sc.Scan() {
		mod, rest, ok := strings.Cut(sc.Text(), ":")
		if !ok {
			continue
		}
		deps[mod] = strings.Fields(rest)
	}
	if err := sc.Err(); err != nil {
		return nil, fmt.Errorf("read modules.dep: %w", err)
	}
	return deps, nil
}
