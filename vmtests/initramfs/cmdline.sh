#!/bin/sh
# lvsforge-cmdline: applies the lvs.* settings of the kernel command line, so
# one image or initramfs serves every VM of a cluster, and of
# /etc/lvsforge/cmdline, for a VM that boots through GRUB, whose command line
# is GRUB's, or of /etc/lvsforge/cmdline.d/MAC, named for one of its NICs, on
# a disk that every host of a role boots (a cluster booted from disks). Shared by the busybox guest's /init and the Debian guest image
# (initramfs.CmdlineScript).
#   lvs.hostname=NAME          host name (heartbeat needs it to match ha.cf)
#   lvs.ifname=MAC,NAME        name the NIC with this MAC as the spec does (repeatable)
#   lvs.ip=IFACE,ADDR/PREFIX   an address (repeatable)
#   lvs.gw=ADDR                default gateway
#   lvs.gw6=ADDR               IPv6 default gateway
#   lvs.sshkey=BASE64          a root authorized_keys line, base64 (repeatable)
#
# It runs at every boot of five VMs sharing two emulated cores: the ip(8)
# commands go to iproute2 as two batches (two execs, not one per command);
# busybox's ip, which has no batch mode, runs them one by one.

BATCH=/run/lvsforge-cmdline.ip
batch=
if ip -batch /dev/null 2>/dev/null; then
	batch=1
fi

# run_ip: the commands collected in $BATCH.
run_ip() {
	if [ -n "$batch" ]; then
		ip -force -batch "$BATCH"
	else
		while read -r l; do
			# shellcheck disable=SC2086 # a line is ip's arguments
			ip $l || echo "lvsforge-cmdline: ip $l failed"
		done <"$BATCH"
	fi
	: >"$BATCH"
}

# Waits for an interface whose driver udev may still be loading.
wait_iface() {
	i=0
	while [ ! -e "/sys/class/net/$1" ] && [ $i -lt 300 ]; do
		sleep 0.1
		i=$((i + 1))
	done
}

# settings prints the settings: the command line's, and a GRUB-booted VM's
# from its disk. A disk that carries several hosts' names each one's file
# by the host's NIC, which the driver may still be bringing up.
settings() {
	cat /proc/cmdline /etc/lvsforge/cmdline 2>/dev/null
	[ -d /etc/lvsforge/cmdline.d ] || return 0
	i=0
	while [ $i -lt 300 ]; do
		for d in /sys/class/net/*; do
			if read -r a <"$d/address" && [ -f "/etc/lvsforge/cmdline.d/$a" ]; then
				cat "/etc/lvsforge/cmdline.d/$a"
				return 0
			fi
		done
		sleep 0.1
		i=$((i + 1))
	done
	echo "lvsforge-cmdline: no NIC's MAC names a file in /etc/lvsforge/cmdline.d" >&2
}

[ -d /run ] || mkdir /run
ARGS=$(settings)
: >"$BATCH"
echo "link set lo up" >>"$BATCH"
# Renames first: the addresses below name interfaces by their new names.
# Two passes through temporary names, so that swapping two names works.
n=0
for arg in $ARGS; do
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
		if [ -n "$dev" ]; then
			echo "link set dev $dev name lvsr$n" >>"$BATCH"
			renames="$renames lvsr$n,${v#*,}"
		else
			echo "lvsforge-cmdline: no interface with MAC $mac"
		fi
		n=$((n + 1))
		;;
	esac
done
for r in $renames; do
	echo "link set dev ${r%%,*} name ${r#*,}" >>"$BATCH"
done
run_ip
for arg in $ARGS; do
	case "$arg" in
	lvs.hostname=*)
		echo "${arg#lvs.hostname=}" >/proc/sys/kernel/hostname
		echo "${arg#lvs.hostname=}" >/etc/hostname
		;;
	lvs.ip=*)
		v="${arg#lvs.ip=}"
		dev="${v%%,*}"
		wait_iface "$dev"
		echo "link set dev $dev up" >>"$BATCH"
		case "${v#*,}" in
		*:*)
			# IPv6: usable at once, without duplicate address detection's
			# second (the harness gave every address once).
			echo "addr add ${v#*,} dev $dev nodad" >>"$BATCH"
			;;
		*)
			# brd +: heartbeat's bcast medium sends to the interface's
			# broadcast address, which ip(8) leaves unset otherwise.
			echo "addr add ${v#*,} brd + dev $dev" >>"$BATCH"
			;;
		esac
		;;
	lvs.gw=*)
		gw="${arg#lvs.gw=}"
		;;
	lvs.gw6=*)
		gw6="${arg#lvs.gw6=}"
		;;
	lvs.sshkey=*)
		[ -d /root/.ssh ] || mkdir -m 700 /root/.ssh
		(
			umask 077
			echo "${arg#lvs.sshkey=}" | base64 -d >>/root/.ssh/authorized_keys
			echo >>/root/.ssh/authorized_keys
		)
		;;
	esac
done
# The route needs its interface's address first, whatever the argument order.
if [ -n "$gw" ]; then
	echo "route add default via $gw" >>"$BATCH"
fi
if [ -n "$gw6" ]; then
	echo "route add ::/0 via $gw6" >>"$BATCH"
fi
run_ip
