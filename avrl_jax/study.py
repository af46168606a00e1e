r"""The study: AB runs against their base methods, probed, with standard errors over seeds.

Run:
  python -m avrl_jax.study --config configs/study.py:core --workdir workdir/study_core

It trains every method x seed of the study config as an ordinary run in DIR/runs/<name>
(`python -m avrl_jax.main`, output in DIR/runs/<name>/train.log), plus wall-clock-matched
base runs, probes each final encoder (and random-init encoders and pixel baselines) on the
study's probe tasks, and writes DIR/study.json, DIR/study.md and DIR/plots/*.png. Killed, it
resumes where it stopped when started again with the same command. The work is done by
`avrl_jax.evaluation.study_lib` (import that, not this module).
"""

import shlex
import sys

from absl import app, flags
from ml_collections import config_flags

from avrl_jax import cli
from avrl_jax.evaluation.study_lib import run_study
from avrl_jax.evaluation.study_runs import StudyError

_CONFIG = config_flags.DEFINE_config_file(
    "config", None, "Study config (configs/study.py:VARIANT).", lock_config=True
)
_WORKDIR = flags.DEFINE_string("workdir", None, "The study's directory (runs, results).")
flags.mark_flags_as_required(["config", "workdir"])


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    command = shlex.join(["python", "-m", "avrl_jax.study", *sys.argv[1:]])
    try:
        run_study(_CONFIG.value, _WORKDIR.value, command=command)
    except StudyError as error:
        print(error, file=sys.stderr, flush=True)
        sys.exit(1)


if __name__ == "__main__":
    cli.run(main)
