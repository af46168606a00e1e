#!/usr/bin/env bash
# Installs the pinned, tested dependency set into ./.venv (idempotent).
# Used by the README commands, by CI and on every worker of a pod.
set -euo pipefail
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
