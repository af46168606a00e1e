#!/usr/bin/env bash
# Submits avrl_jax to a GPU cluster under SLURM: writes an sbatch script that starts one
# process per node (each driving all of its node's GPUs) and submits it. See usage().
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROG=launch/slurm.sh
# shellcheck source=launch/common.sh
source "$ROOT/launch/common.sh"

usage() {
  cat <<'EOF'
Usage: launch/slurm.sh [--dry-run] [OPTIONS] [-- MAIN_ARGS...]

Writes an sbatch script for a multi-node GPU job and submits it with sbatch. The job runs
  srun .venv/bin/python -m avrl_jax.main --distributed --config CONFIG --workdir WORKDIR
with one task (process) per node, each driving all GPUS_PER_NODE GPUs of its node: JAX wants
one process per host with all of its local devices (or one per GPU); one per node keeps the
data loading (Grain workers) per host, as on TPU pods. --distributed makes
jax.distributed.initialize() read the coordinator (the first node), the process count and the
process id from SLURM's environment; JAX_LOCAL_DEVICE_IDS=0,...,GPUS_PER_NODE-1 in the script
overrides JAX's SLURM default of one GPU per process.

Options (a flag, or the environment variable in brackets; flags win):
  --nodes N               nodes, one process each [NODES]                          (required)
  --config CONFIG         e.g. configs/ab_vit_s16_cc12m.py:ab_simclr [CONFIG]       (required)
  --workdir DIR           shared storage that every node reaches [WORKDIR]          (required)
  --gpus-per-node G       GPUs per node (default 8) [GPUS_PER_NODE]
  --cpus-per-task C       CPU cores per process, for decoding [CPUS_PER_TASK]
  --time TIME             time limit, e.g. 2-00:00:00 [TIME]
  --partition P           [PARTITION]
  --account A             [ACCOUNT]
  --job-name NAME         (default avrl_jax) [JOB_NAME]
  --sbatch-args ARGS      more sbatch options, split on spaces, each written as an #SBATCH
                          line, e.g. '--qos=high --exclusive --mem=0' [SBATCH_ARGS]
  --log-dir DIR           where the script and SLURM's output go (default slurm_logs in this
                          checkout) [LOG_DIR]
  --extra-args ARGS       more flags for avrl_jax.main, split on spaces [EXTRA_ARGS];
                          MAIN_ARGS after -- are appended as they are
  --dry-run               print the sbatch script and the sbatch command; submit nothing
                          [DRY_RUN=1]
  -h, --help              this text

Before the first job, on a login node (this checkout must be on a filesystem that every node
mounts at the same path): the pinned set and the CUDA build of the same JAX version:
  bash launch/install.sh
  .venv/bin/python -m pip install "jax[cuda12]==$(.venv/bin/python -c 'import jax; print(jax.__version__)')"

WORKDIR: every process writes its shards of each checkpoint into WORKDIR, so it must be on a
filesystem that every node mounts (NFS, Lustre, GPFS), or a bucket, gs://BUCKET/PATH; a
node-local path (/tmp, local scratch) gives every node its own partial checkpoint and the run
cannot resume. A relative WORKDIR is taken relative to the current directory.

Example (2 nodes of 8 GPUs):
  launch/slurm.sh --nodes 2 --gpus-per-node 8 --partition gpu --time 2-00:00:00 \
    --config configs/ab_vit_s16_cc12m.py:ab_simclr --workdir /shared/runs/ab_simclr
EOF
}

# --- settings -----------------------------------------------------------------------------
NODES=${NODES:-}
CONFIG=${CONFIG:-}
WORKDIR=${WORKDIR:-}
GPUS_PER_NODE=${GPUS_PER_NODE:-8}
CPUS_PER_TASK=${CPUS_PER_TASK:-}
TIME=${TIME:-}
PARTITION=${PARTITION:-}
ACCOUNT=${ACCOUNT:-}
JOB_NAME=${JOB_NAME:-avrl_jax}
SBATCH_ARGS=${SBATCH_ARGS:-}
LOG_DIR=${LOG_DIR:-$ROOT/slurm_logs}
EXTRA_ARGS=${EXTRA_ARGS:-}
DRY_RUN=${DRY_RUN:-0}
MAIN_ARGS=()

set_option() {
  case $1 in
    --nodes) NODES=$2 ;;
    --config) CONFIG=$2 ;;
    --workdir) WORKDIR=$2 ;;
    --gpus-per-node) GPUS_PER_NODE=$2 ;;
    --cpus-per-task) CPUS_PER_TASK=$2 ;;
    --time) TIME=$2 ;;
    --partition) PARTITION=$2 ;;
    --account) ACCOUNT=$2 ;;
    --job-name) JOB_NAME=$2 ;;
    --sbatch-args) SBATCH_ARGS=$2 ;;
    --log-dir) LOG_DIR=$2 ;;
    --extra-args) EXTRA_ARGS=$2 ;;
    *) die_usage "unknown option: $1" ;;
  esac
}

check_settings() {
  local missing=() list
  [ -n "$NODES" ] || missing+=("NODES (--nodes)")
  [ -n "$CONFIG" ] || missing+=("CONFIG (--config)")
  [ -n "$WORKDIR" ] || missing+=("WORKDIR (--workdir)")
  if [ ${#missing[@]} -gt 0 ]; then
    list=$(printf ', %s' "${missing[@]}")
    die_usage "missing required settings: ${list#, }"
  fi
  [[ $NODES =~ ^[1-9][0-9]*$ ]] || die_usage "NODES must be a positive number, not '$NODES'"
  [[ $GPUS_PER_NODE =~ ^[1-9][0-9]*$ ]] ||
    die_usage "GPUS_PER_NODE must be a positive number, not '$GPUS_PER_NODE'"
  if ! is_bucket_workdir; then
    case $WORKDIR in
      /*) ;;
      *) WORKDIR=$PWD/$WORKDIR ;;
    esac
  fi
  case $LOG_DIR in
    /*) ;;
    *) LOG_DIR=$PWD/$LOG_DIR ;;
  esac
}

# The sbatch script, on stdout.
sbatch_script() {
  local extra=() sbatch_extra=() option ids
  if [ -n "$EXTRA_ARGS" ]; then
    read -r -a extra <<<"$EXTRA_ARGS"
  fi
  if [ -n "$SBATCH_ARGS" ]; then
    read -r -a sbatch_extra <<<"$SBATCH_ARGS"
  fi
  ids=$(seq -s, 0 $((GPUS_PER_NODE - 1)))
  printf '#!/usr/bin/env bash\n'
  printf '#SBATCH --job-name=%s\n' "$JOB_NAME"
  printf '#SBATCH --nodes=%s\n' "$NODES"
  printf '#SBATCH --ntasks-per-node=1\n'
  printf '#SBATCH --gpus-per-node=%s\n' "$GPUS_PER_NODE"
  [ -z "$CPUS_PER_TASK" ] || printf '#SBATCH --cpus-per-task=%s\n' "$CPUS_PER_TASK"
  [ -z "$TIME" ] || printf '#SBATCH --time=%s\n' "$TIME"
  [ -z "$PARTITION" ] || printf '#SBATCH --partition=%s\n' "$PARTITION"
  [ -z "$ACCOUNT" ] || printf '#SBATCH --account=%s\n' "$ACCOUNT"
  printf '#SBATCH --output=%s/%%x-%%j.out\n' "$LOG_DIR"
  # SIGTERM two minutes before the time limit: the run saves a checkpoint and exits.
  printf '#SBATCH --signal=TERM@120\n'
  for option in "${sbatch_extra[@]}"; do
    printf '#SBATCH %s\n' "$option"
  done
  cat <<EOF
# Written by launch/slurm.sh. One process per node, each driving all of its node's GPUs:
# --distributed makes jax.distributed.initialize() read the coordinator (the first node), the
# process count and this process's id from SLURM's environment; JAX_LOCAL_DEVICE_IDS overrides
# JAX's SLURM default of one GPU per process. WORKDIR must be on storage every node reaches.
set -euo pipefail
cd $(quote "$ROOT")
export JAX_LOCAL_DEVICE_IDS=$ids
srun --ntasks-per-node=1 --kill-on-bad-exit=1 $(quote_words .venv/bin/python -m avrl_jax.main \
    --distributed --config "$CONFIG" --workdir "$WORKDIR" "${extra[@]}" "${MAIN_ARGS[@]}")
EOF
}

main() {
  parse_args "$@"
  check_settings
  local script
  script=$LOG_DIR/$JOB_NAME.sbatch
  if [ "$DRY_RUN" = 1 ]; then
    sbatch_script
    printf '+ sbatch %s\n' "$(quote "$script")"
    return
  fi
  if ! command -v sbatch >/dev/null; then
    printf '%s: sbatch not found: run this on a SLURM login node (or use --dry-run)\n' \
      "$PROG" >&2
    exit 1
  fi
  if [ ! -x "$ROOT/.venv/bin/python" ]; then
    printf '%s: %s/.venv is missing: run bash launch/install.sh first (see --help)\n' \
      "$PROG" "$ROOT" >&2
    exit 1
  fi
  mkdir -p "$LOG_DIR"
  sbatch_script >"$script"
  printf '+ sbatch %s\n' "$(quote "$script")" >&2
  sbatch "$script"
}

main "$@"
