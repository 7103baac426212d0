#!/usr/bin/env bash
# A real one-node Slurm cluster on localhost, for the Slurm tests (tests/test_slurm.py).
#
# usage: scripts/slurm-local.sh {start|stop|status|env}
#   start   install slurmctld/slurmd/slurm-client/munge if missing (apt-get update first), write
#           slurm.conf into the scratch dir, start munged, slurmctld, slurmd, wait until the node
#           is idle. Idempotent: daemons already running (ours) are left alone.
#   stop    stop only the daemons this script started (recorded pidfiles); never others.
#   status  print the node state; exit 0 if the cluster answers, 1 otherwise.
#   env     print the export lines a shell needs to use the cluster with submitit:
#             eval "$(scripts/slurm-local.sh env)"
#
# Scratch dir: ${SLURM_LOCAL_DIR:-/tmp/scaling-slurm} (config, state, spool, logs, pidfiles,
# bin/sacct). Slurm clients find the config through SLURM_CONF; if /etc/slurm/slurm.conf does
# not exist (or is our own symlink) it is also linked there, so a plain `sbatch` works.
#
# sacct: without slurmdbd the real sacct fails, and submitit then never learns that a job died
# (result() hangs). scripts/sacct is a stand-in answering from squeue (MinJobAge=3600 keeps
# finished jobs visible). It must come first on PATH for the process that runs submitit:
# tests/test_slurm.py prepends scripts/ to PATH itself; interactive shells use the `env` line.
# Recipe and pitfalls: docs/slurm-local.md (cred_expire=5, batch_sched_delay=0, bf_interval=1).
set -euo pipefail

HERE="$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)"
D="${SLURM_LOCAL_DIR:-/tmp/scaling-slurm}"
CONF="$D/etc/slurm.conf"
export SLURM_CONF="$CONF"

log() { echo "[slurm-local] $*" >&2; }

alive() { # alive PIDFILE: the pid in the file is a live process
  [ -f "$1" ] && kill -0 "$(cat "$1")" 2>/dev/null
}

install_packages() {
  if command -v slurmctld >/dev/null && command -v slurmd >/dev/null \
     && command -v sbatch >/dev/null && command -v munged >/dev/null; then
    return 0
  fi
  if [ "$(id -u)" != 0 ]; then
    log "Slurm is not installed and this is not root: cannot apt-get install"; return 1
  fi
  log "installing slurmctld slurmd slurm-client munge (apt-get)"
  export DEBIAN_FRONTEND=noninteractive
  apt-get update -qq >&2
  apt-get install -y -qq --no-install-recommends slurmctld slurmd slurm-client munge >&2
}

write_conf() {
  mkdir -p "$D"/{etc,state,spool,run,log,bin}
  local cpus mem
  cpus="$(nproc)"
  [ "$cpus" -lt 4 ] && cpus=4   # oversubscribe small machines (SlurmdParameters=config_overrides)
  mem="$(awk '/MemTotal/ {printf "%d", $2 * 0.8 / 1024}' /proc/meminfo)"
  cat > "$CONF.tmp" <<EOF
ClusterName=localci
SlurmctldHost=localhost
SlurmUser=root
SlurmdUser=root
AuthType=auth/munge
CredType=cred/munge
AuthInfo=cred_expire=5
MpiDefault=none
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
JobAcctGatherType=jobacct_gather/none
AccountingStorageType=accounting_storage/none
JobCompType=jobcomp/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core
SchedulerType=sched/backfill
SchedulerParameters=batch_sched_delay=0,bf_interval=1,sched_interval=2
ReturnToService=2
SlurmdParameters=config_overrides
MinJobAge=3600
KillWait=5
MailProg=/bin/true
StateSaveLocation=$D/state
SlurmdSpoolDir=$D/spool
SlurmctldPidFile=$D/run/slurmctld.pid
SlurmdPidFile=$D/run/slurmd.pid
SlurmctldLogFile=$D/log/slurmctld.log
SlurmdLogFile=$D/log/slurmd.log
NodeName=localhost NodeAddr=127.0.0.1 CPUs=$cpus RealMemory=$mem State=UNKNOWN
PartitionName=debug Nodes=ALL Default=YES MaxTime=INFINITE State=UP
EOF
  mv "$CONF.tmp" "$CONF"
  install -m 755 "$HERE/sacct" "$D/bin/sacct"
  # let plain clients (no SLURM_CONF) find it, unless someone else owns /etc/slurm/slurm.conf
  if [ "$(id -u)" = 0 ]; then
    mkdir -p /etc/slurm
    if [ ! -e /etc/slurm/slurm.conf ] || [ "$(readlink /etc/slurm/slurm.conf)" = "$CONF" ]; then
      ln -sfn "$CONF" /etc/slurm/slurm.conf
    fi
  fi
}

start_munge() {
  if munge -n >/dev/null 2>&1 </dev/null; then return 0; fi   # a munged answers already
  [ -f /etc/munge/munge.key ] || { mkdir -p /etc/munge; mungekey -c; chown munge:munge /etc/munge/munge.key; }
  mkdir -p /run/munge /var/log/munge /var/lib/munge
  chown munge:munge /run/munge /var/log/munge /var/lib/munge
  runuser -u munge -- /usr/sbin/munged
  for _ in $(seq 50); do [ -f /run/munge/munged.pid ] && break; sleep 0.1; done
  cp /run/munge/munged.pid "$D/run/munged.started"   # we started it: stop may kill it
}

wait_idle() {
  for _ in $(seq 120); do
    state="$(sinfo -h -o %T 2>/dev/null | head -1 || true)"
    case "$state" in
      idle*|mix*|alloc*) log "node is $state"; return 0 ;;
      down*|drain*) scontrol update nodename=localhost state=resume >/dev/null 2>&1 || true ;;
    esac
    sleep 0.5
  done
  log "node never became idle (last state: ${state:-none}); logs in $D/log"; return 1
}

start() {
  install_packages
  write_conf
  start_munge
  if ! alive "$D/run/slurmctld.pid"; then
    slurmctld -f "$CONF"
    for _ in $(seq 50); do alive "$D/run/slurmctld.pid" && break; sleep 0.1; done
    cp "$D/run/slurmctld.pid" "$D/run/slurmctld.started"
  fi
  if ! alive "$D/run/slurmd.pid"; then
    slurmd -f "$CONF" -N localhost
    for _ in $(seq 50); do alive "$D/run/slurmd.pid" && break; sleep 0.1; done
    cp "$D/run/slurmd.pid" "$D/run/slurmd.started"
  fi
  wait_idle
  echo "export SLURM_CONF=$CONF PATH=$D/bin:\$PATH"
}

stop_pid() { # stop_pid NAME: SIGTERM the pid we recorded for NAME, if it is still that daemon
  local f="$D/run/$1.started"
  [ -f "$f" ] || return 0
  local pid; pid="$(cat "$f")"
  if kill -0 "$pid" 2>/dev/null && grep -q "$1" "/proc/$pid/comm" 2>/dev/null; then
    kill "$pid" 2>/dev/null || true
    for _ in $(seq 50); do kill -0 "$pid" 2>/dev/null || break; sleep 0.1; done
  fi
  rm -f "$f"
}

stop() {
  if [ -f "$D/run/slurmctld.started" ] && alive "$D/run/slurmctld.pid"; then
    scontrol shutdown >/dev/null 2>&1 || true   # stops slurmctld and slurmd
    sleep 1
  fi
  stop_pid slurmd
  stop_pid slurmctld
  stop_pid munged
  log "stopped"
}

status() {
  if [ -f "$CONF" ] && sinfo -h -o '%P %T %C' 2>/dev/null; then return 0; fi
  log "no cluster answering (config $CONF)"; return 1
}

case "${1:-}" in
  start) start ;;
  stop) stop ;;
  status) status ;;
  env) echo "export SLURM_CONF=$CONF PATH=$HERE:\$PATH" ;;
  *) echo "usage: $0 {start|stop|status|env}" >&2; exit 2 ;;
esac
