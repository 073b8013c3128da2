#!/usr/bin/env bash
# A one-node Slurm cluster on this machine, for tests: munged, slurmctld and slurmd, run as root
# without systemd, every file they write (config, key, state, spool, logs, pids, sockets) under one
# temp dir, so that nothing in /etc, /run or /var is touched and two clusters can coexist.
#
#   tests/slurm/cluster.sh start         start one; prints its dir (the only line on stdout)
#   tests/slurm/cluster.sh stop DIR      stop the daemons that `start` recorded in DIR, remove DIR
#   tests/slurm/cluster.sh stop --all    the same for every cluster dir this script left in TMPDIR
#
# Clients (sbatch, squeue, sinfo, scancel, scontrol) reach the cluster with
#   export SLURM_CONF=DIR/slurm.conf
# since the config names the munge socket too (AuthInfo), nothing else is needed.
#
# Installs Debian's slurm-wlm and munge when they are absent (needs root and the package mirror).
set -euo pipefail

readonly DIR_PREFIX="${TMPDIR:-/tmp}/resnet-audit-slurm."
# Bounded waits, in seconds: a daemon that is not up by then will not come up.
readonly STARTUP_TIMEOUT="${SLURM_TEST_STARTUP_TIMEOUT:-60}"
readonly STOP_TIMEOUT=15

log() { echo "cluster.sh: $*" >&2; }
die() { log "error: $*"; exit 1; }

# --- installation ---------------------------------------------------------------------------

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
     && command -v sbatch >/dev/null && command -v munged >/dev/null; then
    return
  fi
  [ "$(id -u)" -eq 0 ] || die "slurm-wlm and munge are not installed and installing them needs root"
  log "installing slurm-wlm and munge from Debian (once)"
  # The package scripts would start munge and slurm as services; policy-rc.d exit 101 forbids
  # that (we start our own daemons with our own config). Only a file we created is removed.
  local created_policy=""
  if [ ! -e /usr/sbin/policy-rc.d ]; then
    printf '#!/bin/sh\nexit 101\n' > /usr/sbin/policy-rc.d
    chmod 755 /usr/sbin/policy-rc.d
    created_policy=1
  fi
  local status=0
  {
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 update -qq &&
    DEBIAN_FRONTEND=noninteractive apt-get -o DPkg::Lock::Timeout=300 install -y -qq \
      --no-install-recommends slurm-wlm munge
  } >&2 || status=$?
  [ -z "$created_policy" ] || rm -f /usr/sbin/policy-rc.d
  [ "$status" -eq 0 ] || die "apt-get could not install slurm-wlm and munge (status $status)"
}

# --- pids -----------------------------------------------------------------------------------

# DIR/pids holds "NAME PID" per daemon we started. A pid is only signalled while /proc says it is
# still that program, so a pid reused by the system after a crash is never killed.
# munged is started through setpriv, which is its comm for the instant before it execs munged.
is_ours() { # NAME PID
  local comm
  comm="$(cat "/proc/$2/comm" 2>/dev/null)" || return 1
  [ "$comm" = "$1" ] || { [ "$1" = munged ] && [ "$comm" = setpriv ]; }
}

stop_dir() { # DIR
  local dir="$1"
  [ -d "$dir" ] || { log "$dir does not exist (already stopped?)"; return 0; }
  [ -f "$dir/slurm.conf" ] || [ -f "$dir/pids" ] || die "$dir is not a cluster dir of this script"
  # Cancel our jobs first, so that no slurmstepd or job script outlives the daemons.
  if [ -f "$dir/pids" ] && grep -q '^slurmctld ' "$dir/pids" && command -v scancel >/dev/null; then
    SLURM_CONF="$dir/slurm.conf" scancel --quiet --full --user=root 2>/dev/null || true
    local waited=0
    while [ "$waited" -lt "$STOP_TIMEOUT" ] \
          && [ -n "$(SLURM_CONF="$dir/slurm.conf" squeue -h -o %i 2>/dev/null)" ]; do
      sleep 1; waited=$((waited + 1))
    done
  fi
  if [ -f "$dir/pids" ]; then
    # Reverse start order: slurmd, slurmctld, then munged (the other two authenticate through it).
    local name pid
    tac "$dir/pids" | while read -r name pid; do
      is_ours "$name" "$pid" || continue
      kill -TERM "$pid" 2>/dev/null || true
      local waited=0
      while is_ours "$name" "$pid" && [ "$waited" -lt $((STOP_TIMEOUT * 10)) ]; do
        sleep 0.1; waited=$((waited + 1))
      done
      if is_ours "$name" "$pid"; then
        log "$name ($pid) ignored SIGTERM for ${STOP_TIMEOUT}s; SIGKILL"
        kill -KILL "$pid" 2>/dev/null || true
      fi
    done
  fi
  rm -rf "$dir"
  log "stopped and removed $dir"
}

# --- start ----------------------------------------------------------------------------------

port_in_use() { (exec 3<>"/dev/tcp/127.0.0.1/$1") 2>/dev/null; }

# Two consecutive free ports from 6817 (Slurm's defaults) up, so that a second cluster (or a real
# Slurm) on this machine does not collide with ours.
free_port_pair() {
  local port
  for port in $(seq 6817 2 6897); do
    if ! port_in_use "$port" && ! port_in_use $((port + 1)); then echo "$port"; return; fi
  done
  die "no free port pair between 6817 and 6898"
}

print_logs() { # DIR
  local file
  for file in "$1"/log/*; do
    [ -f "$file" ] || continue
    echo "----- $file (last 40 lines) -----" >&2
    tail -n 40 "$file" >&2
  done
}

start() {
  install_packages
  id munge >/dev/null 2>&1 || die "user 'munge' is missing (the munge package creates it)"

  local dir
  dir="$(mktemp -d "${DIR_PREFIX}XXXXXX")"
  CLUSTER_DIR="$dir"
  # From here on, a failure stops whatever was started and removes the dir.
  trap 'status=$?; if [ "$status" -ne 0 ]; then print_logs "'"$dir"'"; stop_dir "'"$dir"'"; fi' EXIT
  # munged runs as munge and checks its paths: the dir above its own must be traversable and
  # writable by root only; its own dir (key and socket) must belong to munge, and every client
  # must be able to traverse it to reach the socket (0711: not listable, not writable).
  chmod 755 "$dir"
  mkdir -p "$dir"/{munge,state,spool,log,run,jobs}
  chown munge:munge "$dir/munge"
  chmod 711 "$dir/munge"
  touch "$dir/log/munged.log"
  chown munge:munge "$dir/log/munged.log"

  # --- munge
  dd if=/dev/urandom of="$dir/munge/munge.key" bs=1024 count=1 status=none
  chown munge:munge "$dir/munge/munge.key"
  chmod 400 "$dir/munge/munge.key"
  local socket="$dir/munge/munge.socket"
  setpriv --reuid=munge --regid=munge --init-groups \
    munged --foreground --key-file="$dir/munge/munge.key" --socket="$socket" \
      --log-file="$dir/log/munged.log" --pid-file="$dir/munge/munged.pid" \
      --seed-file="$dir/munge/munged.seed" \
    </dev/null >>"$dir/log/munged.out" 2>&1 &
  echo "munged $!" >> "$dir/pids"
  wait_for "munged's socket" "$STARTUP_TIMEOUT" test -S "$socket"
  munge --socket="$socket" -n </dev/null | unmunge --socket="$socket" >/dev/null \
    || die "munge cannot encode/decode a credential on $socket"

  # --- slurm.conf
  local host ctld_port
  host="$(hostname -s)"
  ctld_port="$(free_port_pair)"
  # slurmd -C reports this machine's CPUs, sockets, cores, threads and memory exactly as slurmd will
  # see them: a node configured with more than that is drained at registration.
  local node_line
  node_line="$(slurmd -C 2>/dev/null | grep -m1 '^NodeName=')" \
    || die "slurmd -C did not describe this machine"
  cat > "$dir/slurm.conf" <<EOF
# Written by tests/slurm/cluster.sh: a one-node test cluster, everything under $dir.
ClusterName=resnetaudittest
SlurmctldHost=$host(127.0.0.1)
SlurmctldPort=$ctld_port
SlurmdPort=$((ctld_port + 1))
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=socket=$socket
StateSaveLocation=$dir/state
SlurmdSpoolDir=$dir/spool
SlurmctldPidFile=$dir/run/slurmctld.pid
SlurmdPidFile=$dir/run/slurmd.pid
SlurmctldLogFile=$dir/log/slurmctld.log
SlurmdLogFile=$dir/log/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
# No cgroups: the linuxproc tracker and no task plugin run without systemd or a cgroup mount.
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
MpiDefault=none
SelectType=select/cons_tres
SelectTypeParameters=CR_CPU
SchedulerType=sched/backfill
# Schedule every second, not every minute: a dependent job starts as soon as its array is done.
SchedulerParameters=sched_interval=1,bf_interval=1
# A cancelled job gets SIGKILL 2 s after SIGTERM (default 30 s).
KillWait=2
# Finished jobs stay visible to scontrol for 10 minutes (no accounting database here).
MinJobAge=600
ReturnToService=2
$node_line NodeAddr=127.0.0.1 State=UNKNOWN
PartitionName=test Nodes=$host Default=YES MaxTime=INFINITE State=UP
EOF
  export SLURM_CONF="$dir/slurm.conf"

  # --- slurmctld, slurmd (foreground, so that $! is the daemon's own pid)
  slurmctld -D -i -f "$SLURM_CONF" </dev/null >>"$dir/log/slurmctld.out" 2>&1 &
  echo "slurmctld $!" >> "$dir/pids"
  slurmd -D -f "$SLURM_CONF" </dev/null >>"$dir/log/slurmd.out" 2>&1 &
  echo "slurmd $!" >> "$dir/pids"

  wait_for "node $host to be idle in sinfo" "$STARTUP_TIMEOUT" node_idle "$host"
  log "cluster up in $dir (node $host: ${node_line#NodeName=* }; ports $ctld_port/$((ctld_port + 1)))"
  trap - EXIT
  echo "$dir"
}

node_idle() { [ "$(sinfo -h -n "$1" -o %T 2>/dev/null)" = "idle" ]; }

wait_for() { # WHAT SECONDS COMMAND...
  local what="$1" seconds="$2"; shift 2
  local tenths=0
  until "$@"; do
    # A daemon that died will not bring the condition about: say so now, not at the timeout.
    local name pid
    while read -r name pid; do
      kill -0 "$pid" 2>/dev/null || die "$name ($pid) exited while waiting for $what"
    done < "$CLUSTER_DIR/pids"
    [ "$tenths" -lt $((seconds * 10)) ] || die "timed out after ${seconds}s waiting for $what"
    sleep 0.1; tenths=$((tenths + 1))
  done
}

case "${1:-}" in
  start)
    [ $# -eq 1 ] || die "usage: $0 start"
    start
    ;;
  stop)
    [ $# -eq 2 ] || die "usage: $0 stop DIR | $0 stop --all"
    if [ "$2" = "--all" ]; then
      for dir in "$DIR_PREFIX"*; do
        if [ -d "$dir" ]; then stop_dir "$dir"; fi
      done
    else
      stop_dir "$2"
    fi
    ;;
  *)
    die "usage: $0 start | $0 stop DIR | $0 stop --all"
    ;;
esac
