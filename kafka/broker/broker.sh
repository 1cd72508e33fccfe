#!/usr/bin/env bash
# broker.sh: a single-node KRaft Apache Kafka (broker and controller in one
# JVM) on 127.0.0.1, run from Maven Central jars, for development and tests.
#
#   kafka/broker/broker.sh start     fetch jars if not cached, format a fresh
#                                    data dir, start, wait until it serves
#   kafka/broker/broker.sh stop      stop the broker started by `start`
#   kafka/broker/broker.sh restart   stop, then start (a fresh, empty broker)
#   kafka/broker/broker.sh resume    start again on the data dir a stopped (or
#                                    killed) broker left: topics, messages and
#                                    committed offsets survive (fault tests)
#   kafka/broker/broker.sh status    exit 0 while it runs
#
# Needs only a JDK (17+), Maven and Go. Environment, all optional:
#   KAFKA_PORT             client port                  (19092)
#   KAFKA_CONTROLLER_PORT  KRaft controller port        (19093)
#   KAFKA_DATA_DIR         data, logs, pidfile; WIPED on every start
#                                                       (${TMPDIR:-/tmp}/parley-kafka-$KAFKA_PORT)
#   KAFKA_CACHE_DIR        where the jars are kept between runs
#                                                       (${XDG_CACHE_HOME:-$HOME/.cache}/parley/kafka-<version>)
#   KAFKA_HEAP_OPTS        JVM heap                     (-Xms128m -Xmx512m)
#   KAFKA_START_TIMEOUT    seconds to wait for the broker to serve   (60)
#   KAFKA_STOP_TIMEOUT     seconds between TERM and KILL             (20)
#   JAVA_HOME / MVN / GO   which java, mvn and go to use
#
# The broker is reachable at 127.0.0.1:$KAFKA_PORT (PARLEY_TEST_KAFKA for the
# kafka package's tests, PARLEY_KAFKA_BROKERS for the server).
set -euo pipefail

here="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
module_root="$(cd "$here/../.." && pwd)"
pom="$here/pom.xml"

port="${KAFKA_PORT:-19092}"
controller_port="${KAFKA_CONTROLLER_PORT:-19093}"
version="$(sed -n 's:.*<kafka.version>\(.*\)</kafka.version>.*:\1:p' "$pom" | head -n1)"
[ -n "$version" ] || { echo "broker.sh: no <kafka.version> in $pom" >&2; exit 1; }
cache="${KAFKA_CACHE_DIR:-${XDG_CACHE_HOME:-$HOME/.cache}/parley/kafka-$version}"
libs="$cache/libs"
data="${KAFKA_DATA_DIR:-${TMPDIR:-/tmp}/parley-kafka-$port}"
pidfile="$data/kafka.pid"
logfile="$data/kafka.log"
heap="${KAFKA_HEAP_OPTS:--Xms128m -Xmx512m}"
start_timeout="${KAFKA_START_TIMEOUT:-60}"
stop_timeout="${KAFKA_STOP_TIMEOUT:-20}"
mvn="${MVN:-mvn}"
go="${GO:-go}"
if [ -n "${JAVA_HOME:-}" ]; then java="$JAVA_HOME/bin/java"; else java="java"; fi

say() { echo "broker.sh: $*"; }
die() { echo "broker.sh: $*" >&2; exit 1; }

port_open() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# The PID in the pidfile, if that process still runs and is our broker (a
# recycled PID belonging to something else is never signalled).
running_pid() {
	[ -f "$pidfile" ] || return 1
	local pid
	pid="$(cat "$pidfile" 2>/dev/null)" || return 1
	[[ "$pid" =~ ^[0-9]+$ ]] || return 1
	kill -0 "$pid" 2>/dev/null || return 1
	if [ -r "/proc/$pid/cmdline" ]; then
		tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q "kafka.Kafka $data/server.properties" || return 1
	fi
	echo "$pid"
}

# fetch_jars copies the broker's jars into $libs once; later runs reuse them.
# The stamp holds the pom's checksum, so editing the pom refetches.
fetch_jars() {
	local sum
	sum="$(cksum <"$pom")"
	if [ -f "$libs/.complete" ] && [ "$(cat "$libs/.complete")" = "$sum" ]; then
		return 0
	fi
	command -v "$mvn" >/dev/null || die "Maven ($mvn) is needed to fetch Kafka $version"
	say "fetching Kafka $version jars into $libs"
	mkdir -p "$cache"
	local tmp="$cache/libs.tmp.$$"
	rm -rf "$tmp"
	if ! "$mvn" -B -Dstyle.color=never -f "$pom" dependency:copy-dependencies \
		-DincludeScope=runtime -DoutputDirectory="$tmp" >"$cache/mvn.log" 2>&1; then
		tail -n 30 "$cache/mvn.log" >&2
		rm -rf "$tmp"
		die "mvn could not fetch the Kafka jars (log: $cache/mvn.log)"
	fi
	echo "$sum" >"$tmp/.complete"
	if [ -f "$libs/.complete" ] && [ "$(cat "$libs/.complete")" = "$sum" ]; then
		rm -rf "$tmp" # a concurrent start got there first
		return 0
	fi
	rm -rf "$libs"
	mv -T "$tmp" "$libs"
}

write_config() {
	cat >"$data/server.properties" <<EOF
# Written by kafka/broker/broker.sh; rewritten on every start.
process.roles=broker,controller
node.id=1
controller.quorum.voters=1@127.0.0.1:$controller_port
listeners=PLAINTEXT://127.0.0.1:$port,CONTROLLER://127.0.0.1:$controller_port
advertised.listeners=PLAINTEXT://127.0.0.1:$port
controller.listener.names=CONTROLLER
inter.broker.listener.name=PLAINTEXT
listener.security.protocol.map=CONTROLLER:PLAINTEXT,PLAINTEXT:PLAINTEXT
log.dirs=$data/logs

# One node: every internal topic has one replica.
offsets.topic.replication.factor=1
offsets.topic.num.partitions=8
transaction.state.log.replication.factor=1
transaction.state.log.min.isr=1
share.coordinator.state.topic.replication.factor=1
share.coordinator.state.topic.min.isr=1

# A new group's first member is assigned at once instead of after 3 s.
group.initial.rebalance.delay.ms=0
# Parley creates its topics itself, with its partition count.
auto.create.topics.enable=false
num.partitions=1

# Modest: the machine is small and shared.
num.network.threads=2
num.io.threads=4
log.cleaner.dedupe.buffer.size=16777216
EOF
}

cluster_id() {
	# Kafka's Uuid: 16 random bytes, URL-safe base64 without padding, never
	# starting with '-' (what StorageTool random-uuid prints, without a JVM).
	local id
	while :; do
		id="$(head -c 16 /dev/urandom | base64 | tr '+/' '-_' | tr -d '=\n')"
		[ "${id:0:1}" != "-" ] && { echo "$id"; return; }
	done
}

# cmd_start starts the broker; with keep=1 (resume) it reuses the data dir a
# previous start formatted instead of wiping it.
cmd_start() {
	local pid keep="${1:-0}"
	if pid="$(running_pid)"; then
		say "already running (pid $pid) on 127.0.0.1:$port"
		return 0
	fi
	port_open "$port" && die "127.0.0.1:$port is in use by another process (set KAFKA_PORT)"
	port_open "$controller_port" && die "127.0.0.1:$controller_port is in use by another process (set KAFKA_CONTROLLER_PORT)"
	command -v "$java" >/dev/null || die "java not found (JDK 17+ needed)"
	command -v "$go" >/dev/null || die "go not found (needed for the readiness check)"

	fetch_jars

	if [ "$keep" = 1 ]; then
		[ -f "$data/logs/meta.properties" ] && [ -x "$data/waitkafka" ] ||
			die "nothing to resume in $data: run start first"
	else
		# Wiped on every start: refuse a directory that is not one of ours.
		if [ -d "$data" ] && [ -n "$(ls -A "$data")" ] && [ ! -f "$data/server.properties" ]; then
			die "$data is not empty and holds no server.properties: not wiping it (set KAFKA_DATA_DIR)"
		fi
		rm -rf "$data"
		mkdir -p "$data/logs"
		write_config
		# Built before the JVM starts so the build does not compete with it.
		(cd "$module_root" && "$go" build -o "$data/waitkafka" ./kafka/broker/waitkafka) ||
			die "could not build kafka/broker/waitkafka"

		"$java" -cp "$libs/*" kafka.tools.StorageTool format \
			--cluster-id "$(cluster_id)" --config "$data/server.properties" \
			>"$data/format.log" 2>&1 ||
			{ tail -n 20 "$data/format.log" >&2; die "formatting $data/logs failed"; }
	fi

	# setsid: the broker outlives the shell that started it and is not hit by
	# signals sent to that shell's process group.
	# shellcheck disable=SC2086 # $heap is a list of JVM options
	setsid "$java" $heap \
		-XX:+UseG1GC -XX:MaxGCPauseMillis=20 -Djava.awt.headless=true \
		-Dorg.slf4j.simpleLogger.showDateTime=true \
		-Dorg.slf4j.simpleLogger.dateTimeFormat="yyyy-MM-dd'T'HH:mm:ss.SSS" \
		-Dorg.slf4j.simpleLogger.log.org.apache.kafka.common.config=warn \
		-cp "$libs/*" kafka.Kafka "$data/server.properties" \
		>>"$logfile" 2>&1 </dev/null &
	pid=$!
	echo "$pid" >"$pidfile"

	if ! "$data/waitkafka" -addr "127.0.0.1:$port" -timeout "${start_timeout}s" -pid "$pid"; then
		echo "---- last lines of $logfile ----" >&2
		tail -n 40 "$logfile" >&2 || true
		if kill -0 "$pid" 2>/dev/null; then
			kill -KILL "$pid" 2>/dev/null || true
		fi
		rm -f "$pidfile"
		die "Kafka did not start"
	fi
	say "Kafka $version running (pid $pid) on 127.0.0.1:$port; log $logfile"
}

cmd_stop() {
	local pid i
	if ! pid="$(running_pid)"; then
		rm -f "$pidfile"
		say "not running"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for ((i = 0; i < stop_timeout * 10; i++)); do
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.1
	done
	if kill -0 "$pid" 2>/dev/null; then
		say "pid $pid ignored TERM for ${stop_timeout}s; killing"
		kill -KILL "$pid" 2>/dev/null || true
		for ((i = 0; i < 50; i++)); do
			kill -0 "$pid" 2>/dev/null || break
			sleep 0.1
		done
	fi
	for ((i = 0; i < 100; i++)); do
		port_open "$port" || break
		sleep 0.1
	done
	port_open "$port" && die "port $port still open after stopping pid $pid"
	rm -f "$pidfile"
	say "stopped (pid $pid)"
}

cmd_status() {
	local pid
	if pid="$(running_pid)" && port_open "$port"; then
		say "running (pid $pid) on 127.0.0.1:$port"
		return 0
	fi
	say "not running"
	return 1
}

case "${1:-}" in
start) cmd_start ;;
stop) cmd_stop ;;
restart) cmd_stop && cmd_start ;;
resume) cmd_start 1 ;;
status) cmd_status ;;
*)
	echo "usage: $0 start|stop|restart|resume|status" >&2
	exit 2
	;;
esac
