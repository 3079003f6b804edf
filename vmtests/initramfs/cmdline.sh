#!/bin/sh
# lvsforge-cmdline: applies the lvs.* settings of the kernel command line, so
# one image or initramfs serves every VM of a cluster, and of
# /etc/lvsforge/cmdline, for a VM that boots through GRUB, whose command line
# is GRUB's. Shared by the busybox guest's /init and the Debian guest image
# (initramfs.CmdlineScript).
#   lvs.hostname=NAME          host name (heartbeat needs it to match ha.cf)
#   lvs.ifname=MAC,NAME        name the NIC with this MAC as the spec does (repeatable)
#   lvs.ip=IFACE,ADDR/PREFIX   an address (repeatable)
#   lvs.gw=ADDR                default gateway
#   lvs.sshkey=BASE64          a root authorized_keys line, base64 (repeatable)

# shellcheck disable=SC2013 # the command line is one line of words

# Waits for an interface whose driver udev may still be loading.
wait_iface() {
	i=0
	while [ ! -e "/sys/class/net/$1" ] && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}

ip link set lo up
# Renames first: the addresses below name interfaces by their new names.
# Two passes through temporary names, so that swapping two names works.
n=0
for arg in $(cat /proc/cmdline /etc/lvsforge/cmdline 2>/dev/null); do
	case "$arg" in
	lvs.ifname=*)
		v="${arg#lvs.ifname=}"
		mac="${v%%,*}"
		i=0
		dev=
		while [ -z "$dev" ] && [ $i -lt 300 ]; do
			for d in /sys/class/net/*; do
				read -r a <"$d/address" && [ "$a" = "$mac" ] && dev="${d##*/}"
			done
			[ -n "$dev" ] || sleep 0.1
			i=$((i + 1))
		done
		if [ -n "$dev" ] && ip link set "$dev" name "lvsr$n"; then
			renames="$renames lvsr$n,${v#*,}"
		else
			echo "lvsforge-cmdline: no interface with MAC $mac"
		fi
		n=$((n + 1))
		;;
	esac
done
for r in $renames; do
	ip link set "${r%%,*}" name "${r#*,}" || echo "lvsforge-cmdline: cannot name ${r%%,*} ${r#*,}"
done
for arg in $(cat /proc/cmdline /etc/lvsforge/cmdline 2>/dev/null); do
	case "$arg" in
	lvs.hostname=*)
		hostname "${arg#lvs.hostname=}"
		echo "${arg#lvs.hostname=}" > /etc/hostname
		;;
	lvs.ip=*)
		v="${arg#lvs.ip=}"
		dev="${v%%,*}"
		wait_iface "$dev"
		ip link set "$dev" up || echo "lvsforge-cmdline: no interface $dev"
		# brd +: heartbeat's bcast medium sends to the interface's broadcast
		# address, which ip(8) leaves unset otherwise.
		ip addr add "${v#*,}" brd + dev "$dev" || echo "lvsforge-cmdline: cannot add ${v#*,} to $dev"
		;;
	lvs.gw=*)
		gw="${arg#lvs.gw=}"
		;;
	lvs.sshkey=*)
		mkdir -p /root/.ssh
		chmod 700 /root/.ssh
		echo "${arg#lvs.sshkey=}" | base64 -d >> /root/.ssh/authorized_keys
		echo >> /root/.ssh/authorized_keys
		chmod 600 /root/.ssh/authorized_keys
		;;
	esac
done
# The route needs its interface's address first, whatever the argument order.
if [ -n "$gw" ]; then
	ip route add default via "$gw" || echo "lvsforge-cmdline: cannot route via $gw"
fi
