#!/usr/bin/env bash
# ferretdb.sh: a local MongoDB wire server (embedded FerretDB on SQLite) for
# Parley's tests and local cluster. Needs only Go.
#
#   repository/ferretdb/ferretdb.sh start    build once (cached), start in the background, wait for a MongoDB ping
#   repository/ferretdb/ferretdb.sh stop     stop the server started by `start` (only the PID in its pidfile)
#   repository/ferretdb/ferretdb.sh resume   start again on the data dir a stopped (or killed) server left (fault tests)
#   repository/ferretdb/ferretdb.sh status   running and answering? (exit 0), else exit 1
#   repository/ferretdb/ferretdb.sh build    only build (or find) the cached binary and print its path
#   repository/ferretdb/ferretdb.sh uri      print the connection string
#
# Environment:
#   PARLEY_FERRETDB_PORT      TCP port on 127.0.0.1 (default 27018); --port N does the same
#   PARLEY_FERRETDB_DATA_DIR  SQLite data dir (default ${TMPDIR:-/tmp}/parley-ferretdb-$PORT), wiped on start
#   PARLEY_FERRETDB_WAIT      seconds `start` waits for the first ping (default 60)
#
# The binary is built once into ${XDG_CACHE_HOME:-$HOME/.cache}/parley/bin/
# under a name holding FerretDB's version and a hash of go.mod, go.sum and
# main.go, so it is rebuilt only when one of them changes.
set -euo pipefail

here=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
tmp=${TMPDIR:-/tmp}
tmp=${tmp%/}

cmd=${1:-}
shift || true
port=${PARLEY_FERRETDB_PORT:-27018}
while [ $# -gt 0 ]; do
	case $1 in
	--port) port=${2:?--port needs a value}; shift 2 ;;
	--port=*) port=${1#--port=}; shift ;;
	*) echo "ferretdb.sh: unknown argument $1" >&2; exit 2 ;;
	esac
done
case $port in
'' | *[!0-9]*) echo "ferretdb.sh: port must be a number, got '$port'" >&2; exit 2 ;;
esac

data_dir=${PARLEY_FERRETDB_DATA_DIR:-$tmp/parley-ferretdb-$port}
pidfile=$tmp/parley-ferretdb-$port.pid
logfile=$tmp/parley-ferretdb-$port.log
readyfile=$tmp/parley-ferretdb-$port.ready # written by the server once it has bound the port
wait_s=${PARLEY_FERRETDB_WAIT:-60}
uri="mongodb://127.0.0.1:$port/"
marker=.parley-ferretdb # marks a data dir this script made, so only such a dir is ever wiped

log() { echo "ferretdb.sh: $*" >&2; }

# binary prints the cached binary's path, building it first if it is missing.
binary() {
	local version hash cache bin part
	version=$(awk '$1 == "github.com/FerretDB/FerretDB" { print $2 }' "$here/go.mod")
	[ -n "$version" ] || { log "no FerretDB version in $here/go.mod"; exit 1; }
	hash=$(cat "$here/go.mod" "$here/go.sum" "$here/main.go" | sha256sum | cut -c1-12)
	cache=${XDG_CACHE_HOME:-$HOME/.cache}/parley/bin
	bin=$cache/ferretdb-$version-$hash
	if [ ! -x "$bin" ]; then
		mkdir -p "$cache"
		log "building FerretDB $version into $bin (once; takes a few minutes on a cold cache)"
		local start=$SECONDS
		part=$(mktemp "$cache/.ferretdb-build.XXXXXX")
		# The PostgreSQL backend is left out: Parley only uses the SQLite one.
		# GOWORK=off: build this module alone, whatever go.work may lie above it.
		if ! (cd "$here" && GOWORK=off GOFLAGS="${GOFLAGS:-} -mod=readonly" \
			go build -trimpath -tags ferretdb_no_postgresql -o "$part" .); then
			rm -f "$part"
			log "build failed"
			exit 1
		fi
		chmod 755 "$part"
		mv -f "$part" "$bin" # atomic: a concurrent start sees either no binary or a whole one
		log "built in $((SECONDS - start))s"
		# Older builds are ~30 MB each; a server still running one keeps its
		# open file, so removing them is safe.
		find "$cache" -maxdepth 1 -name 'ferretdb-v*' ! -name "$(basename "$bin")" -type f -delete 2>/dev/null || true
	fi
	echo "$bin"
}

# running prints the pid from the pidfile if that process is alive and is ours.
running() {
	local pid
	[ -f "$pidfile" ] || return 1
	pid=$(cat "$pidfile" 2>/dev/null || true)
	case $pid in '' | *[!0-9]*) return 1 ;; esac
	kill -0 "$pid" 2>/dev/null || return 1
	# Guard against a recycled pid: the process must be one of our binaries.
	if [ -r "/proc/$pid/cmdline" ] && ! tr '\0' ' ' <"/proc/$pid/cmdline" | grep -q 'parley/bin/ferretdb-'; then
		return 1
	fi
	echo "$pid"
}

ping() { "$1" -ping -port "$port" -timeout "${2:-2s}" 2>/dev/null; }

# start starts the server; with keep=1 (resume) it reuses the data dir of the
# previous start instead of wiping it.
start() {
	local bin pid deadline keep=${1:-0}
	bin=$(binary)
	if pid=$(running); then
		log "already running (pid $pid) on $uri"
		echo "$uri"
		return 0
	fi
	rm -f "$pidfile" "$readyfile"
	if ping "$bin" 300ms; then # refused at once when the port is free
		log "something else already answers on $uri (not started by this script with this TMPDIR); not starting"
		exit 1
	fi

	# A fresh data dir on every start (but resume); never wipe a directory this script did not make.
	if [ "$keep" = 1 ]; then
		[ -f "$data_dir/$marker" ] || { log "nothing to resume in $data_dir: run start first"; exit 1; }
	elif [ -e "$data_dir" ]; then
		if [ -f "$data_dir/$marker" ] || [ -z "$(ls -A "$data_dir" 2>/dev/null)" ]; then
			rm -rf "$data_dir"
		else
			log "$data_dir exists and was not made by this script; not wiping it (remove it or set PARLEY_FERRETDB_DATA_DIR)"
			exit 1
		fi
	fi
	mkdir -p "$data_dir"
	: >"$data_dir/$marker"

	[ "$keep" = 1 ] || : >"$logfile"
	# setsid: the server outlives the shell that started it and is not hit by
	# signals sent to that shell's process group (as broker.sh does).
	setsid "$bin" -port "$port" -data-dir "$data_dir" -ready-file "$readyfile" </dev/null >>"$logfile" 2>&1 &
	pid=$!
	echo "$pid" >"$pidfile"

	deadline=$((SECONDS + wait_s))
	# Ready once our process has bound the port (its ready file) and a real
	# MongoDB ping through the driver is answered.
	until [ -f "$readyfile" ] && kill -0 "$pid" 2>/dev/null && ping "$bin" 1s; do
		if ! kill -0 "$pid" 2>/dev/null; then
			log "server exited during start; log tail ($logfile):"
			tail -n 30 "$logfile" >&2
			rm -f "$pidfile"
			exit 1
		fi
		if [ "$SECONDS" -ge "$deadline" ]; then
			log "no ping answer within ${wait_s}s; log tail ($logfile):"
			tail -n 30 "$logfile" >&2
			stop >/dev/null 2>&1 || true
			exit 1
		fi
		sleep 0.2
	done
	log "running (pid $pid) on $uri, data $data_dir, log $logfile"
	echo "$uri"
}

stop() {
	local pid i
	if ! pid=$(running); then
		rm -f "$pidfile"
		log "not running"
		return 0
	fi
	kill -TERM "$pid" 2>/dev/null || true
	for i in $(seq 1 50); do # 10 s for a clean shutdown
		kill -0 "$pid" 2>/dev/null || break
		sleep 0.2
	done
	if kill -0 "$pid" 2>/dev/null; then
		log "pid $pid ignored SIGTERM for 10s; sending SIGKILL"
		kill -KILL "$pid" 2>/dev/null || true
	fi
	rm -f "$pidfile" "$readyfile"
	log "stopped (pid $pid)"
}

status() {
	local pid bin
	if ! pid=$(running); then
		echo "stopped"
		return 1
	fi
	bin=$(tr '\0' '\n' <"/proc/$pid/cmdline" 2>/dev/null | head -n1)
	[ -x "$bin" ] || bin=$(binary)
	if ping "$bin"; then
		echo "running (pid $pid) on $uri"
		return 0
	fi
	echo "pid $pid alive but not answering on $uri (log: $logfile)"
	return 1
}

case $cmd in
start) start ;;
resume) start 1 ;;
stop) stop ;;
status) status ;;
build) binary ;;
uri) echo "$uri" ;;
*)
	echo "usage: $0 start|resume|stop|status|build|uri [--port N]" >&2
	exit 2
	;;
esac
