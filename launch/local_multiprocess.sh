#!/usr/bin/env bash
# Runs avrl_jax as several processes on this machine, each with simulated CPU devices: the
# multi-host code path (jax.distributed, one global mesh, per-host data) without a cluster.
# See usage().
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
PROG=launch/local_multiprocess.sh
# shellcheck source=launch/common.sh
source "$ROOT/launch/common.sh"

usage() {
  cat <<'EOF'
Usage: launch/local_multiprocess.sh [--dry-run] [OPTIONS] [-- MAIN_ARGS...]

Starts NUM_PROCESSES processes of avrl_jax.main on this machine, process i as
  JAX_PLATFORMS=cpu XLA_FLAGS=--xla_force_host_platform_device_count=K \
    .venv/bin/python -m avrl_jax.main --coordinator_address 127.0.0.1:PORT \
    --num_processes N --process_id i --config CONFIG --workdir WORKDIR
(so N*K devices in one mesh; the config's global batch sizes must divide by N*K), with the
output of process i in LOG_DIR/process_i.log. Waits for all of them; when one fails, stops
the others and exits non-zero, naming the failed process and showing the end of its log.

Options (a flag, or the environment variable in brackets; flags win):
  --config CONFIG              e.g. configs/default.py:smoke [CONFIG]               (required)
  --workdir DIR                [WORKDIR]                                            (required)
  --num-processes N            (default 2) [NUM_PROCESSES]
  --devices-per-process K      simulated CPU devices per process (default 4)
                               [DEVICES_PER_PROCESS]
  --port PORT                  the coordinator's port on 127.0.0.1 (default 12355) [PORT]
  --log-dir DIR                (default WORKDIR/logs) [LOG_DIR]
  --python PYTHON              (default .venv/bin/python of this checkout) [PYTHON]
  --extra-args ARGS            more flags for avrl_jax.main, split on spaces [EXTRA_ARGS];
                               MAIN_ARGS after -- are appended as they are
  --dry-run                    print the commands, one a line after '+ ', and run none
                               [DRY_RUN=1]
  -h, --help                   this text

Example (2 processes of 4 devices each, a few steps of a tiny model):
  launch/local_multiprocess.sh --num-processes 2 --devices-per-process 4 \
    --config configs/default.py:smoke --workdir workdir/multiprocess
EOF
}

# --- settings -----------------------------------------------------------------------------
CONFIG=${CONFIG:-}
WORKDIR=${WORKDIR:-}
NUM_PROCESSES=${NUM_PROCESSES:-2}
DEVICES_PER_PROCESS=${DEVICES_PER_PROCESS:-4}
PORT=${PORT:-12355}
LOG_DIR=${LOG_DIR:-}
PYTHON=${PYTHON:-}
EXTRA_ARGS=${EXTRA_ARGS:-}
DRY_RUN=${DRY_RUN:-0}
MAIN_ARGS=()

set_option() {
  case $1 in
    --config) CONFIG=$2 ;;
    --workdir) WORKDIR=$2 ;;
    --num-processes) NUM_PROCESSES=$2 ;;
    --devices-per-process) DEVICES_PER_PROCESS=$2 ;;
    --port) PORT=$2 ;;
    --log-dir) LOG_DIR=$2 ;;
    --python) PYTHON=$2 ;;
    --extra-args) EXTRA_ARGS=$2 ;;
    *) die_usage "unknown option: $1" ;;
  esac
}

check_settings() {
  local missing=() list
  [ -n "$CONFIG" ] || missing+=("CONFIG (--config)")
  [ -n "$WORKDIR" ] || missing+=("WORKDIR (--workdir)")
  if [ ${#missing[@]} -gt 0 ]; then
    list=$(printf ', %s' "${missing[@]}")
    die_usage "missing required settings: ${list#, }"
  fi
  [[ $NUM_PROCESSES =~ ^[1-9][0-9]*$ ]] ||
    die_usage "NUM_PROCESSES must be a positive number, not '$NUM_PROCESSES'"
  [[ $DEVICES_PER_PROCESS =~ ^[1-9][0-9]*$ ]] ||
    die_usage "DEVICES_PER_PROCESS must be a positive number, not '$DEVICES_PER_PROCESS'"
  [[ $PORT =~ ^[0-9]+$ ]] && [ "$PORT" -ge 1 ] && [ "$PORT" -le 65535 ] ||
    die_usage "PORT must be a port number, not '$PORT'"
  LOG_DIR=${LOG_DIR:-$WORKDIR/logs}
  if [ -z "$PYTHON" ]; then
    if [ "$PWD" = "$ROOT" ]; then
      PYTHON=.venv/bin/python
    else
      PYTHON=$ROOT/.venv/bin/python
    fi
  fi
}

# The command of process $1, in the array CMD.
process_command() {
  local extra=()
  if [ -n "$EXTRA_ARGS" ]; then
    read -r -a extra <<<"$EXTRA_ARGS"
  fi
  CMD=(env JAX_PLATFORMS=cpu
    "XLA_FLAGS=--xla_force_host_platform_device_count=$DEVICES_PER_PROCESS"
    "$PYTHON" -m avrl_jax.main --coordinator_address "127.0.0.1:$PORT"
    --num_processes "$NUM_PROCESSES" --process_id "$1"
    --config "$CONFIG" --workdir "$WORKDIR" "${extra[@]}" "${MAIN_ARGS[@]}")
}

PIDS=()

# Stops the processes this script started that are still running (SIGTERM, then waits).
stop_all() {
  local pid
  for pid in "${PIDS[@]}"; do
    kill -TERM "$pid" 2>/dev/null || true
  done
  for pid in "${PIDS[@]}"; do
    wait "$pid" 2>/dev/null || true
  done
}

main() {
  parse_args "$@"
  check_settings
  local i log line
  line="+ mkdir -p $(quote "$LOG_DIR")"
  if [ "$DRY_RUN" = 1 ]; then
    printf '%s\n' "$line"
  else
    printf '%s\n' "$line" >&2
    mkdir -p "$LOG_DIR"
  fi
  for ((i = 0; i < NUM_PROCESSES; i++)); do
    process_command "$i"
    log=$LOG_DIR/process_$i.log
    line="+ $(quote_words "${CMD[@]}") >$(quote "$log") 2>&1 &"
    if [ "$DRY_RUN" = 1 ]; then
      printf '%s\n' "$line"
      continue
    fi
    printf '%s\n' "$line" >&2
    "${CMD[@]}" >"$log" 2>&1 &
    PIDS+=("$!")
  done
  if [ "$DRY_RUN" = 1 ]; then
    return
  fi
  trap 'stop_all; exit 130' INT TERM

  # Waits for all; on the first failure, stops the others.
  local done_count=0 finished=() rc
  while [ "$done_count" -lt "$NUM_PROCESSES" ]; do
    for ((i = 0; i < NUM_PROCESSES; i++)); do
      if [ -n "${finished[i]:-}" ] || kill -0 "${PIDS[i]}" 2>/dev/null; then
        continue
      fi
      if wait "${PIDS[i]}"; then rc=0; else rc=$?; fi
      finished[i]=1
      done_count=$((done_count + 1))
      if [ "$rc" -ne 0 ]; then
        log=$LOG_DIR/process_$i.log
        printf '%s: process %d failed (exit status %d); the end of %s:\n' \
          "$PROG" "$i" "$rc" "$log" >&2
        tail -n 20 "$log" >&2 || true
        printf '%s: stopping the other processes\n' "$PROG" >&2
        stop_all
        exit 1
      fi
    done
    if [ "$done_count" -lt "$NUM_PROCESSES" ]; then
      sleep 1
    fi
  done
  printf '%s: all %d processes finished; logs in %s\n' "$PROG" "$NUM_PROCESSES" "$LOG_DIR" >&2
}

main "$@"
