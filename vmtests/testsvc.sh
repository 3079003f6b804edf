#!/bin/sh
# lvsforge-testsvc: the real servers' stand-in applications in the VM tests.
# Every one answers with the host's name, so the client can tell which real
# server served a request. Each runs as a transient systemd unit, or on a
# host that runs sysvinit (a spec's init: sysv) as a start-stop-daemon
# background process with a pid file.
#   lvsforge-testsvc start http PORT [PATH TEXT]  busybox httpd: GET / answers
#                                                 NAME; GET PATH answers
#                                                 NAME TEXT (a health check's
#                                                 request and receive)
#   lvsforge-testsvc start tcp PORT               writes NAME and closes (perl)
#   lvsforge-testsvc start echo PORT              echoes every line back
#   lvsforge-testsvc stop http|tcp|echo PORT
set -eu
BB=/usr/local/lib/lvsforge/busybox
action=$1 kind=$2 port=$3
unit="lvsforge-test-$kind-$port"
pidfile="/run/$unit.pid"

# run COMMAND ARGS... starts the service in the background, detached.
# halt stops it, failing if it is not running.
if [ -d /run/systemd/system ]; then
	run() { systemd-run --quiet --unit="$unit" "$@"; }
	halt() { systemctl stop "$unit"; }
else
	run() {
		cmd=$1
		shift
		start-stop-daemon --start --quiet --background --make-pidfile --pidfile "$pidfile" --startas "$cmd" -- "$@"
	}
	halt() { start-stop-daemon --stop --quiet --retry 5 --pidfile "$pidfile" --remove-pidfile; }
fi

case "$action" in
start)
	halt 2>/dev/null || true
	if [ -d /run/systemd/system ]; then
		systemctl reset-failed "$unit" 2>/dev/null || true
	fi
	case "$kind" in
	http)
		www="/run/lvsforge-www-$port"
		mkdir -p "$www"
		hostname >"$www/index.html"
		if [ $# -ge 5 ] && [ "$4" != / ]; then
			mkdir -p "$www$(dirname "$4")"
			echo "$(hostname) $5" >"$www$4"
		fi
		run "$BB" httpd -f -p "$port" -h "$www"
		;;
	tcp)
		# Not busybox nc -ll: it listens with a backlog of one, and two
		# directors' health checks beside the client's requests overflowed
		# it under TCG ("Possible SYN flooding on port 23").
		# shellcheck disable=SC2016 # perl's variables, not the shell's
		run /usr/bin/perl -MIO::Socket::INET -e '
			my $s = IO::Socket::INET->new(LocalPort => $ARGV[0], Listen => 128, ReuseAddr => 1)
				or die "listen on $ARGV[0]: $!\n";
			chomp(my $name = `hostname`);
			while (1) { my $c = $s->accept or next; print $c "$name\n"; close $c }' "$port"
		;;
	echo)
		run "$BB" nc -ll -p "$port" -e /bin/cat
		;;
	*)
		echo "lvsforge-testsvc: unknown kind $kind" >&2
		exit 2
		;;
	esac
	# At least a minute: perl starts in seconds on an emulated CPU shared
	# with the other VMs, and a bound that is only a few times the usual
	# start failed runs on a loaded machine.
	i=0
	until ss -Hltn "sport = :$port" | grep -q .; do
		i=$((i + 1))
		if [ $i -gt 600 ]; then
			echo "lvsforge-testsvc: nothing listens on $port" >&2
			if [ -d /run/systemd/system ]; then
				systemctl status "$unit" >&2 || true
			else
				start-stop-daemon --status --pidfile "$pidfile" >&2 || echo "$unit is not running" >&2
			fi
			exit 1
		fi
		sleep 0.1
	done
	;;
stop)
	halt
	;;
*)
	echo "usage: lvsforge-testsvc start|stop http|tcp|echo PORT [PATH TEXT]" >&2
	exit 2
	;;
esac
