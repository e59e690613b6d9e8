#!/usr/bin/env bash
# A one-node SLURM cluster on 127.0.0.1 for tests/test_slurm.py (and for trying
# `snakemake --profile profiles/slurm` on one machine):
#
#   .ci/slurm.sh start    write /etc/slurm/slurm.conf, start munged, slurmctld and slurmd, wait until
#                         the node is idle (SLURM_START_TIMEOUT seconds, default 60)
#   .ci/slurm.sh stop     stop the daemons this script started (slurmd, slurmctld, munged)
#   .ci/slurm.sh status   the daemons and `sinfo`; exit 0 only when the node takes jobs
#
# Needs root and Debian's slurmctld, slurmd, slurm-client and munge packages (.ci/run installs them
# on CI); it installs nothing itself. Every command is idempotent. Exit status of `start`: 0 node
# idle, 1 it did not come up (the logs' tails are printed), 2 packages missing, 3 an /etc/slurm/slurm.conf
# that this script did not write is there (a real cluster's: left alone).
#
# The configuration must live at /etc/slurm/slurm.conf: the Snakemake job-step plugin drops SLURM_*
# variables (SLURM_CONF included) before it calls `srun` inside a job. No accounting database
# (sacct has nothing to say): the slurm profile reads job states with `squeue`, which shows
# finished jobs for MinJobAge seconds. The node advertises one `gpu` GRES with no device file, so
# the training rule's real request (`--gpus=1`) schedules here too; the GRES binds nothing and
# changes nothing for CPU-only code (SLURM_FAKE_GPUS=0 gives a GRES-free node).
set -euo pipefail
export PATH=$PATH:/usr/sbin:/sbin  # the daemons live in sbin, which a non-login PATH may lack

CONF_DIR=/etc/slurm
CONF=$CONF_DIR/slurm.conf
GRES_CONF=$CONF_DIR/gres.conf
MARK="# written by seqpipe .ci/slurm.sh"
RUN_DIR=/run/seqpipe-slurm          # what this script started (so `stop` leaves other daemons alone)
CTLD_PID=/run/slurmctld.pid
SLURMD_PID=/run/slurmd.pid
MUNGE_PID=/run/munge/munged.pid
LOG_DIR=/var/log/slurm
TIMEOUT=${SLURM_START_TIMEOUT:-60}
FAKE_GPUS=${SLURM_FAKE_GPUS:-1}

say() { echo "slurm.sh: $*"; }
die() { echo "slurm.sh: error: $*" >&2; exit 1; }

# alive PIDFILE NAME: the pid file names a running NAME (slurmctld runs as SlurmUser and cannot remove
# its pid file from /run, so a stale one may name some other process by now)
alive() {
    local pid
    pid=$(cat "$1" 2>/dev/null) || return 1
    [[ $pid =~ ^[0-9]+$ && $(cat "/proc/$pid/comm" 2>/dev/null) == "$2"* ]] && running "$pid"
}

# running PID: the process exists and is no zombie (in a container, PID 1 may never reap the daemons)
running() { [[ -r /proc/$1/stat ]] && [[ $(awk '{print $3}' "/proc/$1/stat" 2>/dev/null) != Z ]]; }

need() {
    [[ $(id -u) -eq 0 ]] || die "must run as root (it writes $CONF and starts system daemons)"
    local missing=()
    for cmd in munged slurmctld slurmd sinfo sbatch squeue scontrol; do
        command -v "$cmd" >/dev/null || missing+=("$cmd")
    done
    if ((${#missing[@]})); then
        echo "slurm.sh: missing ${missing[*]}: install Debian's slurmctld slurmd slurm-client munge" >&2
        exit 2
    fi
}

node_name() { hostname -s; }

node_state() { sinfo -h -N -n "$(node_name)" -o %T 2>/dev/null | head -n1; }

write_config() {
    if [[ -f $CONF ]] && ! grep -qF "$MARK" "$CONF"; then
        echo "slurm.sh: $CONF exists and was not written by this script: refusing to replace a real cluster's configuration" >&2
        exit 3
    fi
    local node hw cpus boards sockets cores threads mem gres="" slurm_user=root
    node=$(node_name)
    # slurmd -C prints what slurmd will register with; configuring more would drain the node.
    hw=$(slurmd -C | head -n1)
    field() { sed -n "s/.* $1=\([0-9]*\).*/\1/p" <<<"$hw"; }
    cpus=$(field CPUs) boards=$(field Boards) sockets=$(field SocketsPerBoard)
    cores=$(field CoresPerSocket) threads=$(field ThreadsPerCore) mem=$(field RealMemory)
    [[ -n $cpus && -n $mem ]] || die "cannot read the hardware from 'slurmd -C': $hw"
    id slurm >/dev/null 2>&1 && slurm_user=slurm
    mkdir -p "$CONF_DIR" /var/spool/slurmctld /var/spool/slurmd "$LOG_DIR"
    chown "$slurm_user": /var/spool/slurmctld "$LOG_DIR"
    if [[ $FAKE_GPUS -gt 0 ]]; then
        gres="Gres=gpu:$FAKE_GPUS"
        {
            echo "$MARK"
            echo "# Stand-in GPUs for scheduling tests: /dev/null, nothing to bind (TaskPlugin=task/none)."
            echo "AutoDetect=off"
            for ((i = 0; i < FAKE_GPUS; i++)); do echo "NodeName=$node Name=gpu File=/dev/null"; done
        } >"$GRES_CONF"
    else
        rm -f "$GRES_CONF"
    fi
    cat >"$CONF.new" <<EOF
$MARK ($(date -u +%FT%TZ)); \`.ci/slurm.sh stop\` leaves it in place.
# One node on 127.0.0.1, no accounting database.
ClusterName=seqpipe
SlurmctldHost=$node(127.0.0.1)
SlurmUser=$slurm_user
SlurmctldPort=6817
SlurmdPort=6818
AuthType=auth/munge
StateSaveLocation=/var/spool/slurmctld
SlurmdSpoolDir=/var/spool/slurmd
SlurmctldPidFile=$CTLD_PID
SlurmdPidFile=$SLURMD_PID
SlurmctldLogFile=$LOG_DIR/slurmctld.log
SlurmdLogFile=$LOG_DIR/slurmd.log
SlurmctldDebug=info
SlurmdDebug=info
ProctrackType=proctrack/linuxproc
TaskPlugin=task/none
MpiDefault=none
SwitchType=switch/none
SelectType=select/cons_tres
SelectTypeParameters=CR_Core_Memory
AccountingStorageType=accounting_storage/none
JobAcctGatherType=jobacct_gather/none
JobCompType=jobcomp/none
ReturnToService=2
# squeue reports a finished job for MinJobAge seconds: the Snakemake slurm plugin polls with squeue
# only when this is at least 3x its first status-check delay (otherwise it falls back to sacct).
MinJobAge=300
SchedulerType=sched/backfill
SlurmdTimeout=120
InactiveLimit=0
KillWait=10
Waittime=0
GresTypes=gpu
NodeName=$node NodeAddr=127.0.0.1 CPUs=$cpus Boards=$boards SocketsPerBoard=$sockets CoresPerSocket=$cores ThreadsPerCore=$threads RealMemory=$mem $gres State=UNKNOWN
PartitionName=debug Nodes=$node Default=YES MaxTime=INFINITE State=UP
EOF
    mv "$CONF.new" "$CONF"
}

start_munge() {
    if munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1; then
        return  # a munged is already answering
    fi
    if [[ ! -s /etc/munge/munge.key ]]; then
        say "creating /etc/munge/munge.key"
        mkdir -p /etc/munge
        if command -v mungekey >/dev/null; then
            mungekey --create --keyfile=/etc/munge/munge.key --force
        else
            dd if=/dev/urandom of=/etc/munge/munge.key bs=1 count=1024 status=none
        fi
    fi
    mkdir -p /run/munge /var/log/munge /var/lib/munge
    chown munge: /etc/munge /etc/munge/munge.key /run/munge /var/log/munge /var/lib/munge
    chmod 0700 /etc/munge && chmod 0400 /etc/munge/munge.key && chmod 0755 /run/munge
    runuser -u munge -- munged
    touch "$RUN_DIR/munged"
    for _ in $(seq 50); do
        munge -n </dev/null 2>/dev/null | unmunge >/dev/null 2>&1 && return
        sleep 0.1
    done
    die "munged does not answer (see /var/log/munge/munged.log)"
}

start() {
    need
    mkdir -p "$RUN_DIR"
    if alive "$CTLD_PID" slurmctld && alive "$SLURMD_PID" slurmd && [[ $(node_state) == idle* || $(node_state) == mix* || $(node_state) == alloc* ]]; then
        say "already running: node $(node_name) $(node_state)"
        return
    fi
    write_config
    start_munge
    if ! alive "$CTLD_PID" slurmctld; then
        # -c: start from a clean state (no jobs left over from an earlier test cluster)
        slurmctld -c
        touch "$RUN_DIR/slurmctld"
    fi
    if ! alive "$SLURMD_PID" slurmd; then
        slurmd -N "$(node_name)"
        touch "$RUN_DIR/slurmd"
    fi
    local state="" deadline=$((SECONDS + TIMEOUT))
    while ((SECONDS < deadline)); do
        state=$(node_state)
        case $state in
            idle*|mix*|alloc*) say "node $(node_name) $state after ${SECONDS}s"; return ;;
            drain*|down*) scontrol update NodeName="$(node_name)" State=RESUME 2>/dev/null || true ;;
        esac
        sleep 0.5
    done
    echo "slurm.sh: node not idle after ${TIMEOUT}s (state: '${state:-no answer}')" >&2
    sinfo -N -l >&2 || true
    tail -n 20 "$LOG_DIR/slurmctld.log" "$LOG_DIR/slurmd.log" >&2 || true
    exit 1
}

stop_pid() {  # name pidfile: SIGTERM, SIGKILL after 10 s; the pid file goes too
    if alive "$2" "$1"; then
        local pid
        pid=$(cat "$2")
        kill -TERM "$pid" 2>/dev/null || true
        for _ in $(seq 100); do
            running "$pid" || break
            sleep 0.1
        done
        if running "$pid"; then
            say "$1 ($pid) ignored SIGTERM for 10 s: SIGKILL"
            kill -KILL "$pid" 2>/dev/null || true
        fi
    fi
    rm -f "$2" "$RUN_DIR/$1"
}

stop() {
    [[ $(id -u) -eq 0 ]] || die "must run as root"
    if alive "$CTLD_PID" slurmctld; then  # cancel what is left, so no job step outlives its slurmd
        local jobs
        jobs=$(squeue -h -o %i 2>/dev/null || true)
        if [[ -n $jobs ]]; then
            # shellcheck disable=SC2086
            scancel $jobs 2>/dev/null || true
            for _ in $(seq 30); do
                [[ -z $(squeue -h -t RUNNING,COMPLETING -o %i 2>/dev/null) ]] && break
                sleep 0.5
            done
        fi
    fi
    stop_pid slurmd "$SLURMD_PID"
    stop_pid slurmctld "$CTLD_PID"
    # munged only when this script started it: another service may use it
    if [[ -f $RUN_DIR/munged ]]; then stop_pid munged "$MUNGE_PID"; fi
    # Remove the configuration this script wrote: with a slurm.conf naming a controller that is
    # not running, `scontrol` waits ~9 s, and the SLURM executor plugin runs it whenever
    # Snakemake loads its plugins, i.e. on every `snakemake` call on this machine.
    if [[ -f $CONF ]] && grep -qF "$MARK" "$CONF"; then rm -f "$CONF" "$GRES_CONF"; fi
    say "stopped"
}

status() {
    local rc=0 name pidfile
    for name in munged slurmctld slurmd; do
        case $name in munged) pidfile=$MUNGE_PID ;; slurmctld) pidfile=$CTLD_PID ;; *) pidfile=$SLURMD_PID ;; esac
        if alive "$pidfile" "$name"; then echo "$name: running (pid $(cat "$pidfile"))"; else echo "$name: stopped"; rc=1; fi
    done
    if command -v sinfo >/dev/null && ((rc == 0)); then
        sinfo -N -o "%N %T %c %m %G" || rc=1
        case $(node_state) in idle*|mix*|alloc*) ;; *) rc=1 ;; esac
    fi
    return $rc
}

case ${1:-} in
    start) start ;;
    stop) stop ;;
    status) status ;;
    *) echo "usage: $0 start|stop|status" >&2; exit 64 ;;
esac
