#!/bin/sh
# /init of the lvsforge busybox test guest; see busybox.go for the contract.
mount -t proc proc /proc
mount -t sysfs sysfs /sys
mount -t devtmpfs devtmpfs /dev
mount -t tmpfs tmpfs /tmp
mount -t tmpfs tmpfs /run

if [ -f /etc/modules.order ]; then
	while read -r m; do
		insmod "$m" || echo "lvsforge-init: insmod $m failed"
	done < /etc/modules.order
fi

# lvs.root=DEV: this initramfs only loads the drivers the kernel lacks, then
# hands over to the disk image's own init (systemd in a Debian guest image).
for arg in $(cat /proc/cmdline); do
	case "$arg" in
	lvs.root=*)
		root="${arg#lvs.root=}"
		mkdir -p /newroot
		if mount -t ext4 "$root" /newroot; then
			umount /tmp /run
			mount --move /dev /newroot/dev
			mount --move /proc /newroot/proc
			mount --move /sys /newroot/sys
			exec switch_root /newroot /sbin/init
		fi
		# Power off rather than carry on: a test waiting for the image's
		# services then fails at once, with this line in the console tail.
		echo "lvsforge-init: cannot mount $root; powering off"
		poweroff -f
		;;
	esac
done

/bin/lvsforge-cmdline

# Kernel messages would interleave with command output on the console; the
# guest's dmesg still has them. Panics are printed at every level.
dmesg -n 1
stty -echo < /dev/console
echo "lvsforge-init: ready"
while IFS= read -r cmd; do
	(eval "$cmd") < /dev/null
done < /dev/console
# The console closed: keep PID 1 alive so the kernel does not panic.
while true; do sleep 3600; done
