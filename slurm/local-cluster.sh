#!/usr/bin/env bash
# A real one-node SLURM cluster on loopback, for trying `nasrun submit` and for the tests.
#
#   slurm/local-cluster.sh start  [DIR]   # start munged, slurmctld, slurmd; print the export line
#   slurm/local-cluster.sh status [DIR]   # exit 0 and print the export line when it answers
#   slurm/local-cluster.sh stop   [DIR]   # stop the daemons this script started (pid files)
#
# DIR (default $NASRUN_SLURM_DIR or /tmp/nasrun-slurm) holds everything: slurm.conf, a private
# munge key and socket, state, spool, logs and pid files; nothing under /etc is touched.
# `start` is idempotent: when the cluster already answers it only prints the export line; any
# leftover from an earlier run (stale pid files, old job state) is cleared first.
#
# Needs Debian's slurm-wlm and munge (scripts/install.sh --dev). Meant to run as root (CI);
# as another user slurmd starts too, but jobs may not be able to switch users.
#
# Environment: NASRUN_SLURM_PORT (slurmctld port, default 16817; slurmd uses the next one),
#              NASRUN_SLURM_CPUS (CPUs the node declares, default 16: several MPI tasks fit on
#              a small machine; SlurmdParameters=config_overrides lets the node claim more CPUs
#              than it has).
set -euo pipefail

cmd="${1:-status}"
DIR="${2:-${NASRUN_SLURM_DIR:-/tmp/nasrun-slurm}}"
PORT="${NASRUN_SLURM_PORT:-16817}"
CPUS="${NASRUN_SLURM_CPUS:-16}"
CONF="$DIR/slurm.conf"
HOST="$(hostname -s)"

say() { printf '[local-cluster] %s\n' "$*" >&2; }
die() { say "error: $*"; exit 1; }

need() {
  local missing=()
  for c in munged munge slurmctld slurmd sinfo scontrol; do
    command -v "$c" >/dev/null 2>&1 || missing+=("$c")
  done
  [ "${#missing[@]}" = 0 ] || die "not installed: ${missing[*]} (install slurm-wlm and munge: scripts/install.sh --dev)"
}

export_line() { echo "export SLURM_CONF=$CONF"; }

alive() {  # alive PIDFILE: the pid in the file is a running process
  [ -s "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

answers() {  # slurmctld responds and the node is usable
  [ -f "$CONF" ] || return 1
  alive "$DIR/run/slurmctld.pid" && alive "$DIR/run/slurmd.pid" && alive "$DIR/run/munged.pid" || return 1
  local state
  state=$(SLURM_CONF="$CONF" timeout 5 sinfo -h -n "$HOST" -o %t 2>/dev/null | head -n1) || return 1
  case "$state" in idle*|mix*|alloc*|comp*) return 0 ;; *) return 1 ;; esac
}

stop_pidfile() {  # stop_pidfile NAME: TERM, wait up to 10 s, then KILL
  local f="$DIR/run/$1.pid" pid i
  [ -s "$f" ] || return 0
  pid=$(cat "$f")
  if kill -0 "$pid" 2>/dev/null; then
    kill -TERM "$pid" 2>/dev/null || true
    for i in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.2; done
    kill -0 "$pid" 2>/dev/null && { say "$1 ($pid) did not stop; killing it"; kill -KILL "$pid" 2>/dev/null || true; }
  fi
  rm -f "$f"
}

stop() {
  stop_pidfile slurmd
  stop_pidfile slurmctld
  stop_pidfile munged
}

write_conf() {
  local user mem
  user=$(id -un)
  mem=$(awk '/MemTotal/ {print int($2 / 1024 * 0.8)}' /proc/meminfo)
  cat > "$CONF" <<EOF
# Written by nasrun's slurm/local-cluster.sh: one node on loopback, no cgroups, no systemd.
ClusterName=nasrun-local
SlurmctldHost=$HOST(127.0.0.1)
SlurmctldPort=$PORT
SlurmdPort=$((PORT + 1))
SlurmUser=$user
SlurmdUser=$user
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$DIR/munge/munge.socket
StateSaveLocation=$DIR/state
SlurmdSpoolDir=$DIR/spool
SlurmctldPidFile=$DIR/run/slurmctld.pid
SlurmdPidFile=$DIR/run/slurmd.pid
SlurmctldLogFile=$DIR/log/slurmctld.log
SlurmdLogFile=$DIR/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
ReturnToService=2
SlurmdParameters=config_overrides
SchedulerType=sched/backfill
# a finished job stays visible to scontrol for this many seconds (sacct needs accounting storage)
MinJobAge=600
KillWait=5
InactiveLimit=0
NodeName=$HOST NodeAddr=127.0.0.1 CPUs=$CPUS RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=$HOST Default=YES MaxTime=INFINITE State=UP
EOF
}

start() {
  need
  if answers; then
    say "already running ($DIR)"
    export_line
    return 0
  fi
  local t0=$SECONDS
  stop  # whatever is left of an earlier run
  rm -rf "$DIR/state" "$DIR/spool" "$DIR/run" "$DIR/log"
  mkdir -p "$DIR/munge" "$DIR/state" "$DIR/spool" "$DIR/run" "$DIR/log"
  chmod 700 "$DIR/munge"
  if [ ! -s "$DIR/munge/munge.key" ]; then
    say "creating munge key $DIR/munge/munge.key"
    dd if=/dev/urandom of="$DIR/munge/munge.key" bs=1024 count=1 status=none
  fi
  chmod 400 "$DIR/munge/munge.key"
  write_conf

  munged --force --socket="$DIR/munge/munge.socket" --key-file="$DIR/munge/munge.key" \
    --pid-file="$DIR/run/munged.pid" --log-file="$DIR/log/munged.log" \
    --seed-file="$DIR/munge/munged.seed" 2>>"$DIR/log/munged.log" \
    || die "munged did not start; see $DIR/log/munged.log"
  munge -n -S "$DIR/munge/munge.socket" | unmunge -S "$DIR/munge/munge.socket" >/dev/null \
    || die "munge does not work; see $DIR/log/munged.log"

  # -c: start without any job state (a stale one from an earlier run is not wanted)
  slurmctld -c -f "$CONF" || die "slurmctld did not start; see $DIR/log/slurmctld.log"
  slurmd -f "$CONF" || die "slurmd did not start; see $DIR/log/slurmd.log"

  local i
  for i in $(seq 150); do
    answers && break
    sleep 0.2
  done
  if ! answers; then
    say "the node did not become idle in 30 s:"
    SLURM_CONF="$CONF" sinfo -N -l >&2 || true
    tail -n 20 "$DIR/log/slurmctld.log" "$DIR/log/slurmd.log" >&2 || true
    exit 1
  fi
  say "started in $((SECONDS - t0)) s: node $HOST, $CPUS CPUs, partition debug ($DIR)"
  export_line
}

case "$cmd" in
  start) start ;;
  stop) stop; say "stopped ($DIR)" ;;
  status)
    if answers; then
      SLURM_CONF="$CONF" sinfo >&2
      export_line
    else
      say "not running ($DIR)"
      exit 1
    fi ;;
  -h|--help) sed -n '2,19p' "$0" ;;
  *) die "unknown command '$cmd' (expected start, stop or status)" ;;
esac
