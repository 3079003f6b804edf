package guestimage

import (
	"bytes"
	"context"
	"crypto/sha256"
	"encoding/binary"
	"encoding/hex"
	"fmt"
	"os"
	"path/filepath"
)

// A boot disk is the base plus a kernel in /boot, on an MBR-partitioned disk
// whose first partition holds the root filesystem and whose boot track holds
// GRUB, as `grub-install` would lay it out: the VM boots through the BIOS
// and GRUB, not QEMU's -kernel, so a kernel installed by `lvsforge push
// --kernel` and chosen by grub-reboot is what really boots.

// BootDisk says what a boot disk holds besides the base.
type BootDisk struct {
	// Release, Kernel and Modules are the kernel the disk boots first: a
	// bzImage and its modules tarball (lib/modules/RELEASE/...).
	Release string
	Kernel  string
	Modules string
	// Cmdline is GRUB's kernel command line for it and its
	// /etc/default/grub, e.g. "console=ttyS0 panic=10".
	Cmdline string
	// Files are added as in Extra (settings for the harness).
	Files []File
}

// partStart is where the root partition starts: 1 MiB, as partitioning
// tools align it, leaving the boot track for GRUB's core image.
const partStart = 1 << 20

func (d BootDisk) key(base string) (string, error) {
	e := Extra{Modules: []string{d.Kernel}, Files: d.Files}
	if d.Modules != "" {
		e.Modules = append(e.Modules, d.Modules)
	}
	k, err := e.key(base)
	if err != nil {
		return "", err
	}
	s := sha256.Sum256([]byte("bootdisk-v2\n" + k + "\n" + d.Release + "\n" + d.Cmdline))
	return hex.EncodeToString(s[:])[:32], nil
}

// BootDisk returns a raw disk image of the base for spec with d's kernel
// and GRUB, building what the cache lacks. Boot a qcow2 Overlay of it.
func (b *Builder) BootDisk(ctx context.Context, spec Spec, d BootDisk) (string, error) {
	base, err := b.Root(ctx, spec)
	if err != nil {
		return "", err
	}
	key, err := d.key(spec.Key())
	if err != nil {
		return "", err
	}
	img := filepath.Join(b.CacheDir, "images", "boot-"+key+".raw")
	return b.layered(ctx, base, img, func(work, root string) (string, error) { return b.bootDisk(ctx, base, work, root, d) })
}

// bootDisk lays d out in root and makes the disk in work.
func (b *Builder) bootDisk(ctx context.Context, base, work, root string, d BootDisk) (string, error) {
	kernel, err := os.ReadFile(d.Kernel)
	if err != nil {
		return "", fmt.Errorf("read boot disk kernel: %w", err)
	}
	grubMods := filepath.Join(base, "usr/lib/grub/i386-pc")
	files := []File{
		{Path: "/boot/vmlinuz-" + d.Release, Data: kernel, Mode: 0o644},
		{Path: "/etc/fstab", Data: []byte("/dev/vda1 / ext4 rw,errors=remount-ro 0 1\n"), Mode: 0o644},
		// What update-grub needs to make entries these kernels boot with
		// no initramfs: root by device (root=UUID= needs one) and the
		// serial console the harness reads.
		{Path: "/etc/default/grub", Mode: 0o644, Data: []byte("GRUB_TIMEOUT=0\nGRUB_DISTRIBUTOR=Debian\n" +
			"GRUB_CMDLINE_LINUX=\"" + d.Cmdline + "\"\nGRUB_DISABLE_LINUX_UUID=true\nGRUB_DISABLE_OS_PROBER=true\n" +
			"GRUB_TERMINAL=serial\nGRUB_SERIAL_COMMAND=\"serial --unit=0 --speed=115200\"\n")},
		// Until push runs update-grub: one entry, the first kernel's.
		{Path: "/boot/grub/grub.cfg", Mode: 0o644, Data: []byte(fmt.Sprintf(
			"serial --unit=0 --speed=115200\nterminal_input serial\nterminal_output serial\nset default=\"${saved_entry}\"\nset timeout=0\nmenuentry 'Debian, Linux %s' --id 'first-%s' {\n\tlinux /boot/vmlinuz-%s root=/dev/vda1 ro %s\n}\n",
			d.Release, d.Release, d.Release, d.Cmdline))},
		{Path: "/boot/grub/grubenv", Mode: 0o644, Data: grubenv()},
	}
	ents, err := os.ReadDir(grubMods)
	if err != nil {
		return "", fmt.Errorf("read GRUB modules (grub-pc-bin in the base): %w", err)
	}
	for _, e := range ents {
		if !e.Type().IsRegular() {
			continue
		}
		data, err := os.ReadFile(filepath.Join(grubMods, e.Name()))
		if err != nil {
			return "", fmt.Errorf("read GRUB modules: %w", err)
		}
		files = append(files, File{Path: "/boot/grub/i386-pc/" + e.Name(), Data: data, Mode: 0o644})
	}
	for _, f := range append(files, d.Files...) {
		if err := addFile(root, f); err != nil {
			return "", err
		}
	}
	if d.Modules != "" {
		if err := unpackModules(d.Modules, root); err != nil {
			return "", err
		}
	}
	// core.img, made by the base's own grub-mkimage, so that it matches the
	// modules it will load whatever GRUB the build host has; it is taken
	// out of the tree before the filesystem is made.
	if err := b.run(ctx, "chroot", root, "grub-mkimage", "-O", "i386-pc", "-d", "/usr/lib/grub/i386-pc", "-o", "/core.img",
		"-p", "(hd0,msdos1)/boot/grub", "biosdisk", "part_msdos", "ext2"); err != nil {
		return "", err
	}
	core := filepath.Join(work, "core.img")
	if err := os.Rename(filepath.Join(root, "core.img"), core); err != nil {
		return "", fmt.Errorf("build GRUB core image: %w", err)
	}
	size, err := fsSize(root)
	if err != nil {
		return "", err
	}
	raw := filepath.Join(work, "disk.raw")
	// The filesystem goes straight to its place in the disk file.
	if err := b.run(ctx, "mke2fs", "-q", "-t", "ext4", "-L", "lvsroot", "-E", fmt.Sprintf("offset=%d", partStart),
		"-d", root, raw, fmt.Sprintf("%dk", size>>10)); err != nil {
		return "", err
	}
	return raw, installGRUB(raw, filepath.Join(grubMods, "boot.img"), core, size)
}

// grubenv is an empty GRUB environment block: 1024 bytes, as grub-editenv
// creates it; grub-reboot and grub-set-default write into it.
func grubenv() []byte {
	h := "# GRUB Environment Block\n"
	return append([]byte(h), bytes.Repeat([]byte("#"), 1024-len(h))...)
}

// Offsets in GRUB's i386-pc boot.img (include/grub/i386/pc/boot.h).
const (
	bootKernelSector = 0x5c  // LBA of core.img's first sector
	bootDrive        = 0x64  // BIOS drive, 0xff: the one booted from
	bootDriveCheck   = 0x66  // a jump that trusts the BIOS's drive number
	bootNTMagic      = 0x1b8 // from here: disk signature and partition table
	blocklistSize    = 12    // diskboot.img's last bytes: start, len, segment
	kernelSegment    = 0x800 // where diskboot loads core.img, in paragraphs
)

// installGRUB writes what grub-bios-setup would: an MBR with one Linux
// partition (bootable, from partStart, fsSize bytes), GRUB's boot.img in
// its code area pointing at core.img, and core.img in the sectors after
// the MBR, whose first sector (diskboot) lists where the rest is.
func installGRUB(disk, bootImg, coreImg string, fsSize int64) error {
	boot, err := os.ReadFile(bootImg)
	if err != nil || len(boot) != 512 {
		return fmt.Errorf("install GRUB: read %s: want 512 bytes (%v)", bootImg, err)
	}
	core, err := os.ReadFile(coreImg)
	if err != nil {
		return fmt.Errorf("install GRUB: %w", err)
	}
	sectors := (len(core) + 511) / 512
	if int64(1+sectors)*512 > partStart {
		return fmt.Errorf("install GRUB: core.img of %d sectors does not fit before the partition", sectors)
	}
	core = append(core, make([]byte, sectors*512-len(core))...)
	// diskboot's blocklist: the rest of core.img, right after its first sector.
	bl := core[512-blocklistSize : 512]
	binary.LittleEndian.PutUint64(bl[0:8], 2)
	binary.LittleEndian.PutUint16(bl[8:10], uint16(sectors-1))
	binary.LittleEndian.PutUint16(bl[10:12], kernelSegment+0x20)

	mbr := make([]byte, 512)
	copy(mbr, boot[:bootNTMagic])
	binary.LittleEndian.PutUint64(mbr[bootKernelSector:], 1)
	mbr[bootDrive] = 0xff
	mbr[bootDriveCheck], mbr[bootDriveCheck+1] = 0x90, 0x90      // nop: not a floppy
	binary.LittleEndian.PutUint32(mbr[bootNTMagic:], 0x4c56530a) // disk signature
	p := mbr[0x1be : 0x1be+16]
	p[0] = 0x80                         // bootable
	p[1], p[2], p[3] = 0xfe, 0xff, 0xff // CHS: use LBA
	p[4] = 0x83                         // Linux
	p[5], p[6], p[7] = 0xfe, 0xff, 0xff
	binary.LittleEndian.PutUint32(p[8:], partStart/512)
	binary.LittleEndian.PutUint32(p[12:], uint32(fsSize/512))
	mbr[510], mbr[511] = 0x55, 0xaa

	f, err := os.OpenFile(disk, os.O_WRONLY, 0)
	if err != nil {
		return fmt.Errorf("install GRUB: %w", err)
	}
	if _, err := f.WriteAt(mbr, 0); err == nil {
		_, err = f.WriteAt(core, 512)
	}
	if cerr := f.Close(); err == nil {
		err = cerr
	}
	if err != nil {
		return fmt.Errorf("install GRUB: %w", err)
	}
	return nil
}
