#!/usr/bin/env bash
# Runs avrl_jax on a Cloud TPU VM pod slice (several hosts): create the TPU VM, copy this
# repository to every worker and install the pinned set there, start the job on all workers,
# stream the logs, stop the job, delete the TPU VM. See usage() or run with --help.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROG=launch/tpu_pod.sh
# shellcheck source=launch/common.sh
source "$ROOT/launch/common.sh"

usage() {
  cat <<'EOF'
Usage: launch/tpu_pod.sh [--dry-run] [OPTIONS] SUBCOMMAND... [-- MAIN_ARGS...]

Runs avrl_jax on a Cloud TPU VM pod slice with gcloud. Subcommands run in the order given:
  create    gcloud compute tpus tpu-vm create (needs --accelerator-type, --runtime-version)
  copy      copy this checkout (tar of the working tree, or git clone of --repo-url) to every
            worker, into ~/REMOTE_DIR
  install   copy, then on every worker: launch/install.sh (the pinned set in .venv) and the
            jax[tpu] extra of the same JAX version (libtpu)
  run       start the job on every worker under nohup, logging to ~/LOG_FILE on each worker:
            .venv/bin/python -m avrl_jax.main --distributed --config CONFIG --workdir WORKDIR
  logs      stream the log of one worker (default worker 0; Ctrl-C stops streaming, not the job)
  stop      stop the job on every worker: SIGTERM (the run saves a checkpoint and exits),
            SIGKILL after --stop-timeout seconds
  delete    delete the TPU VM
  all       create install run logs

Options (a flag, or the environment variable in brackets; flags win):
  --name NAME               TPU VM name [TPU_NAME]                                  (required)
  --zone ZONE               e.g. us-central2-b [ZONE]                               (required)
  --project PROJECT         GCP project; default: gcloud's configured project [PROJECT]
  --accelerator-type TYPE   e.g. v4-32, v5p-64, v6e-16 [ACCELERATOR_TYPE]       (create)
  --runtime-version VER     e.g. tpu-ubuntu2204-base (v4), v2-alpha-tpuv5 (v5p),
                            v2-alpha-tpuv5-lite (v5e), v2-alpha-tpuv6e (v6e) [RUNTIME_VERSION]
                                                                                    (create)
  --create-args ARGS        more flags for create, e.g. '--spot' [CREATE_ARGS]
  --repo-url URL            git clone URL on every worker instead of copying this checkout
                            [REPO_URL]
  --repo-ref REF            what to check out with --repo-url (default origin/HEAD) [REPO_REF]
  --remote-dir DIR          checkout on every worker, relative to home (default avrl_jax)
                            [REMOTE_DIR]
  --python PYTHON           Python >= 3.11 on the workers, apt-installed when missing
                            (default python3.11) [PYTHON]
  --config CONFIG           config, relative to the checkout, e.g.
                            configs/ab_vit_s16_cc12m.py:ab_simclr [CONFIG]           (run)
  --workdir DIR             gs://BUCKET/PATH, or an absolute path on a filesystem mounted
                            on every worker, e.g. /mnt/nfs/ab_simclr (see below) [WORKDIR] (run)
  --shared-workdir          WORKDIR is a path on a filesystem mounted on every worker
                            (required with run for a path) [SHARED_WORKDIR=1]
  --extra-args ARGS         more flags for avrl_jax.main, split on spaces [EXTRA_ARGS];
                            MAIN_ARGS after -- are appended as they are
  --log-file FILE           log on each worker, relative to home (default avrl_jax.log) [LOG_FILE]
  --worker N                the worker that logs streams (default 0) [WORKER]
  --stop-timeout SECONDS    how long stop waits for the job to exit (default 300) [STOP_TIMEOUT]
  --dry-run                 print every command, one a line after '+ ', and run none [DRY_RUN=1]
  -h, --help                this text

WORKDIR: every worker writes its shards of each checkpoint into WORKDIR, so it must be shared
storage: a bucket, gs://BUCKET/PATH (checkpoints through Orbax, config.json, metrics.jsonl and
TensorBoard events through gcsfs and google-cloud-storage, with the workers' service account),
or an absolute path, passed with --shared-workdir, on a filesystem mounted at the same place
on every worker (NFS, Filestore). A worker-local path gives every worker its own partial
checkpoint, and the run cannot resume. In a bucket nothing locks the workdir (GCS has no
locks): start one job per workdir.

Example (a v4-32: 4 hosts of 4 chips):
  launch/tpu_pod.sh --name my-pod --zone us-central2-b --accelerator-type v4-32 \
    --runtime-version tpu-ubuntu2204-base create install
  launch/tpu_pod.sh --name my-pod --zone us-central2-b \
    --config configs/ab_vit_s16_cc12m.py:ab_simclr \
    --workdir gs://my-bucket/ab_simclr run logs
  launch/tpu_pod.sh --name my-pod --zone us-central2-b stop delete
EOF
}

# The command line, copy-pasteable: '+ ' and its quoted words.
show() {
  printf '+ %s\n' "$(quote_words "$@")"
}

# Prints the command; runs it unless this is a dry run.
run_cmd() {
  if [ "$DRY_RUN" = 1 ]; then
    show "$@"
  else
    show "$@" >&2
    "$@"
  fi
}

# --- settings -----------------------------------------------------------------------------
TPU_NAME=${TPU_NAME:-}
ZONE=${ZONE:-}
PROJECT=${PROJECT:-}
ACCELERATOR_TYPE=${ACCELERATOR_TYPE:-}
RUNTIME_VERSION=${RUNTIME_VERSION:-}
CREATE_ARGS=${CREATE_ARGS:-}
REPO_URL=${REPO_URL:-}
REPO_REF=${REPO_REF:-origin/HEAD}
REMOTE_DIR=${REMOTE_DIR:-avrl_jax}
PYTHON=${PYTHON:-python3.11}
CONFIG=${CONFIG:-}
WORKDIR=${WORKDIR:-}
SHARED_WORKDIR=${SHARED_WORKDIR:-0}
EXTRA_ARGS=${EXTRA_ARGS:-}
LOG_FILE=${LOG_FILE:-avrl_jax.log}
WORKER=${WORKER:-0}
STOP_TIMEOUT=${STOP_TIMEOUT:-300}
DRY_RUN=${DRY_RUN:-0}
SUBCOMMANDS=()
MAIN_ARGS=()

set_option() {
  case $1 in
    --name) TPU_NAME=$2 ;;
    --zone) ZONE=$2 ;;
    --project) PROJECT=$2 ;;
    --accelerator-type) ACCELERATOR_TYPE=$2 ;;
    --runtime-version) RUNTIME_VERSION=$2 ;;
    --create-args) CREATE_ARGS=$2 ;;
    --repo-url) REPO_URL=$2 ;;
    --repo-ref) REPO_REF=$2 ;;
    --remote-dir) REMOTE_DIR=$2 ;;
    --python) PYTHON=$2 ;;
    --config) CONFIG=$2 ;;
    --workdir) WORKDIR=$2 ;;
    --extra-args) EXTRA_ARGS=$2 ;;
    --log-file) LOG_FILE=$2 ;;
    --worker) WORKER=$2 ;;
    --stop-timeout) STOP_TIMEOUT=$2 ;;
    *) die_usage "unknown option: $1" ;;
  esac
}

set_switch() {
  case $1 in
    --shared-workdir) SHARED_WORKDIR=1 ;;
    *) return 1 ;;
  esac
}

# Words are subcommands.
set_word() {
  case $1 in
    -*) die_usage "unknown option: $1" ;;
    *) SUBCOMMANDS+=("$1") ;;
  esac
}

# Adds each setting in "$@" (VAR:--flag pairs) that is empty to MISSING.
MISSING=()
need() {
  local pair var entry
  for pair in "$@"; do
    var=${pair%%:*}
    entry="$var (${pair#*:})"
    if [ -z "${!var}" ] && [[ " ${MISSING[*]} " != *" $entry "* ]]; then
      MISSING+=("$entry")
    fi
  done
}

check_workdir() {
  if is_bucket_workdir; then
    return 0
  fi
  if [ "$SHARED_WORKDIR" = 1 ] && [[ $WORKDIR == /* ]]; then
    return 0
  fi
  local why="WORKDIR=$WORKDIR is not shared storage. Every worker of the pod writes its shards"
  why+=" of each checkpoint into WORKDIR, so it must be a bucket (gs://BUCKET/PATH) or an"
  why+=" absolute path on a filesystem mounted on every worker (NFS, Filestore),"
  why+=" passed with --shared-workdir (SHARED_WORKDIR=1)."
  if [ "$SHARED_WORKDIR" = 1 ]; then
    why+=" With --shared-workdir the path must be absolute."
  fi
  die_usage "$why"
}

# The start of a remote command that sets log= to the log's path on the worker (relative
# paths are relative to the home directory). The job's pid goes to "$log.pid".
# shellcheck disable=SC2016  # "$HOME" is for the worker's shell to expand.
log_assignment() {
  case $LOG_FILE in
    /*) printf 'log=%s; ' "$(quote "$LOG_FILE")" ;;
    *) printf 'log="$HOME"/%s; ' "$(quote "$LOG_FILE")" ;;
  esac
}

# --- gcloud ---------------------------------------------------------------------------------
gcloud_flags() {
  GCLOUD_FLAGS=("--zone=$ZONE")
  if [ -n "$PROJECT" ]; then
    GCLOUD_FLAGS+=("--project=$PROJECT")
  fi
}

# Runs a shell command on the workers given by $1 (all, or a number).
on_workers() {
  local workers=$1 command=$2
  run_cmd gcloud compute tpus tpu-vm ssh "$TPU_NAME" "${GCLOUD_FLAGS[@]}" \
    "--worker=$workers" "--command=$command"
}

do_create() {
  local extra=()
  if [ -n "$CREATE_ARGS" ]; then
    read -r -a extra <<<"$CREATE_ARGS"
  fi
  run_cmd gcloud compute tpus tpu-vm create "$TPU_NAME" "${GCLOUD_FLAGS[@]}" \
    "--accelerator-type=$ACCELERATOR_TYPE" "--version=$RUNTIME_VERSION" "${extra[@]}"
}

do_copy() {
  local dir
  dir=$(quote "$REMOTE_DIR")
  if [ -n "$REPO_URL" ]; then
    local url ref
    url=$(quote "$REPO_URL")
    ref=$(quote "$REPO_REF")
    on_workers all "if [ -d $dir/.git ]; then git -C $dir fetch --quiet origin;\
 else git clone --quiet $url $dir; fi && git -C $dir checkout --quiet --detach $ref"
    return
  fi
  # The working tree as it is (uncommitted edits included), without what .gitignore lists.
  local tarball=${TMPDIR:-/tmp}/avrl_jax-src-$TPU_NAME.tar.gz
  run_cmd tar -czf "$tarball" --exclude=./.git --exclude=./.venv --exclude='./workdir*' \
    --exclude=__pycache__ --exclude='*.egg-info' --exclude=./build --exclude=./dist \
    --exclude=.pytest_cache --exclude=.ruff_cache -C "$ROOT" .
  run_cmd gcloud compute tpus tpu-vm scp "$tarball" "$TPU_NAME:avrl_jax-src.tar.gz" \
    "${GCLOUD_FLAGS[@]}" --worker=all
  run_cmd rm -f "$tarball"
  on_workers all "mkdir -p $dir && tar -xzf avrl_jax-src.tar.gz -C $dir && rm avrl_jax-src.tar.gz"
}

# shellcheck disable=SC2016  # the $(...) is for the worker's shell to expand.
do_install() {
  do_copy
  local python cmd
  python=$(quote "$PYTHON")
  # TPU VM images ship Ubuntu's Python (3.10 on 22.04); the pinned set needs 3.11. Then the
  # pinned set, and libtpu through the jax[tpu] extra of the JAX version that it installed.
  cmd="cd $(quote "$REMOTE_DIR") && if ! command -v $python >/dev/null; then"
  cmd+=" sudo apt-get update -q && sudo apt-get install -y -q $python $python-venv; fi"
  cmd+=" && PYTHON=$python bash launch/install.sh"
  cmd+=' && .venv/bin/python -m pip install --quiet'
  cmd+=' "jax[tpu]==$(.venv/bin/python -c "import jax; print(jax.__version__)")"'
  on_workers all "$cmd"
}

# shellcheck disable=SC2016  # $log, $! and $(...) are for the worker's shell to expand.
do_run() {
  local extra=() words=() word cmd
  if [ -n "$EXTRA_ARGS" ]; then
    read -r -a extra <<<"$EXTRA_ARGS"
  fi
  local main=(.venv/bin/python -m avrl_jax.main --distributed --config "$CONFIG"
    --workdir "$WORKDIR" "${extra[@]}" "${MAIN_ARGS[@]}")
  for word in "${main[@]}"; do
    words+=("$(quote "$word")")
  done
  cmd="$(log_assignment)cd $(quote "$REMOTE_DIR") || exit 1;"
  # Refuses to start a second job next to a running one (it would not get the TPU chips).
  cmd+=' if [ -f "$log.pid" ] && kill -0 "$(cat "$log.pid")" 2>/dev/null; then'
  cmd+=' echo "$(hostname): a job is running (pid $(cat "$log.pid")); stop it first" >&2;'
  cmd+=' exit 1; fi;'
  # Detached (nohup, no terminal, output to the log) so that ssh returns while the job runs.
  cmd+=" nohup ${words[*]}"' >"$log" 2>&1 </dev/null & echo $! >"$log.pid"'
  on_workers all "$cmd"
}

# shellcheck disable=SC2016  # $log is for the worker's shell to expand.
do_logs() {
  on_workers "$WORKER" "$(log_assignment)"'tail -n 100 -F "$log"'
}

# shellcheck disable=SC2016  # the variables are for the worker's shell to expand.
do_stop() {
  local cmd
  # SIGTERM: the run saves a checkpoint and exits (as on preemption); wait up to STOP_TIMEOUT
  # seconds for it, then SIGKILL. Without a pid file: any avrl_jax.main of this user ([a]
  # keeps pgrep from matching this very command line).
  cmd="$(log_assignment)"
  cmd+='if [ -f "$log.pid" ]; then pids=$(cat "$log.pid");'
  cmd+=' else pids=$(pgrep -u "$USER" -f "[a]vrl_jax[.]main" || true); fi;'
  cmd+=' if [ -z "$pids" ]; then echo "$(hostname): no job running"; else'
  cmd+=' kill -TERM $pids 2>/dev/null; n=0;'
  cmd+=" while kill -0 \$pids 2>/dev/null && [ \$n -lt $STOP_TIMEOUT ]; do"
  cmd+=' sleep 1; n=$((n + 1)); done; kill -KILL $pids 2>/dev/null;'
  cmd+=' echo "$(hostname): stopped"; fi; rm -f "$log.pid"'
  on_workers all "$cmd"
}

do_delete() {
  run_cmd gcloud compute tpus tpu-vm delete "$TPU_NAME" "${GCLOUD_FLAGS[@]}" --quiet
}

main() {
  parse_args "$@"
  if [ ${#SUBCOMMANDS[@]} -eq 0 ]; then
    die_usage "no subcommand given (create, copy, install, run, logs, stop, delete, all)"
  fi
  local expanded=() sub
  for sub in "${SUBCOMMANDS[@]}"; do
    case $sub in
      all) expanded+=(create install run logs) ;;
      create | copy | install | run | logs | stop | delete) expanded+=("$sub") ;;
      *) die_usage "unknown subcommand: $sub" ;;
    esac
  done
  # Check every subcommand's settings before running the first one.
  need TPU_NAME:--name ZONE:--zone
  for sub in "${expanded[@]}"; do
    case $sub in
      create) need ACCELERATOR_TYPE:--accelerator-type RUNTIME_VERSION:--runtime-version ;;
      run) need CONFIG:--config WORKDIR:--workdir ;;
    esac
  done
  if [ ${#MISSING[@]} -gt 0 ]; then
    local list
    list=$(printf ', %s' "${MISSING[@]}")
    die_usage "missing required settings for ${SUBCOMMANDS[*]}: ${list#, }"
  fi
  if [[ " ${expanded[*]} " == *" run "* ]]; then
    check_workdir
  fi
  if [[ ! $STOP_TIMEOUT =~ ^[0-9]+$ ]]; then
    die_usage "STOP_TIMEOUT must be a number of seconds, not '$STOP_TIMEOUT'"
  fi
  if [ "$DRY_RUN" != 1 ] && ! command -v gcloud >/dev/null; then
    printf '%s: gcloud not found: install the Google Cloud CLI (or use --dry-run)\n' \
      "$PROG" >&2
    exit 1
  fi
  gcloud_flags
  for sub in "${expanded[@]}"; do
    "do_$sub"
  done
}

main "$@"
