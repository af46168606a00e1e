#!/usr/bin/env bash
# Installs the pinned, tested dependency set into ./.venv (idempotent).
# Used by the README commands, by CI and on every worker of a pod.
set -euo pipefail
if [ "${1:-}" = "--help" ] || [ "${1:-}" = "-h" ]; then
  cat <<'USAGE'
Usage: bash launch/install.sh

Creates ./.venv (with $PYTHON, default python3) if it does not exist and installs into it the
pinned, tested set: the package in editable mode with its test extra (pytest, ruff, Beam, and
torch/timm for the export tests), the TensorBoard viewer, and the animal-mnist images of the
embedded scenes. Idempotent: run it again after pulling. Needs only the package registries.
Then: .venv/bin/python -m avrl_jax.main --config configs/default.py --workdir workdir/default
USAGE
  exit 0
fi
if [ "$#" -gt 0 ]; then
  echo "launch/install.sh takes no arguments (got: $*); see bash launch/install.sh --help" >&2
  exit 2
fi
cd "$(dirname "$0")/.."
PYTHON=${PYTHON:-python3}
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
.venv/bin/python -m pip install --quiet --upgrade pip
.venv/bin/python -m pip install --quiet -e '.[test]'
# animal-mnist carries 10,000 real animal silhouettes (MIT) for the embedded scenes; its metadata
# declares TensorFlow, which it needs only for an optional loader we do not use.
.venv/bin/python -m pip install --quiet --no-deps 'animal-mnist==0.4'
