r"""Frozen-feature probes of a pretrained encoder: linear (with an LR x WD sweep), attention
pooling (MAP), weighted kNN and few-shot ridge regression, on one probe task.

Run:
  python -m avrl_jax.probe --workdir DIR --config configs/probe_objects.py [--step N]
  python -m avrl_jax.probe --workdir DIR --config configs/probe_objects.py --random_init
  python -m avrl_jax.probe --workdir DIR --config configs/probe_objects.py --params ema
  python -m avrl_jax.probe --workdir DIR --config configs/probe_objects.py --all_steps

It reads DIR/config.json (the pretraining run's config) to rebuild the encoder, restores only
the encoder's parameters from the latest (or step N's) checkpoint, extracts frozen features
once, runs the enabled probes and writes:
- DIR/probe_results.json: {task name: {"<step>" or "random_init": {"step", "encoder", "time",
  "metrics": {...}}}}, merged with what is there (written atomically, under a file lock);
- TensorBoard scalars `probe/<metric>` under DIR/tensorboard/probe_<task> (the random-init
  baseline under DIR/tensorboard/probe_<task>_random_init, at step 0);
and prints every run of the task recorded in the results file side by side.

`--all_steps` probes every saved checkpoint (keep them along training with
`checkpoint.keep_period`) and plots each accuracy against the step in
DIR/plots/probe_<task>_steps.png.
`--random_init` probes the same architecture randomly initialised with the run's own seed
(`nnx.Rngs(config.seed)`, which is how the pretraining encoder starts): the baseline column.
The work is done by `avrl_jax.evaluation.probe_runner` (import that, never this module);
the encoder is rebuilt by `avrl_jax.models.build`, results kept by
`avrl_jax.evaluation.probe_results`.
"""

from __future__ import annotations

from absl import app, flags
from ml_collections import config_flags

from avrl_jax import cli, console
from avrl_jax.evaluation.probe_runner import probe_all_steps, probe_workdir


def define_flags() -> dict[str, flags.FlagHolder]:
    """The CLI's flags. Defined only when this module runs as the program, so that the training
    job can import `run_probes` without clashing with its own --config and --workdir."""
    holders = {
        "config": config_flags.DEFINE_config_file(
            "config", None, "Probe config file (configs/probe_*.py).", lock_config=True
        ),
        "workdir": flags.DEFINE_string("workdir", None, "The pretraining run's workdir."),
        "step": flags.DEFINE_integer("step", None, "Checkpoint step (default: the latest)."),
        "params": flags.DEFINE_enum(
            "params", "online", ["online", "ema"], "The online encoder or the EMA/target one."
        ),
        "random_init": flags.DEFINE_bool(
            "random_init", False, "Probe a randomly initialised encoder of the same architecture."
        ),
        "all_steps": flags.DEFINE_bool(
            "all_steps", False, "Probe every saved checkpoint; plot accuracy against step."
        ),
    }
    flags.mark_flags_as_required(["config", "workdir"])
    return holders


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    console.quiet_console()
    console.log_to_file(_FLAGS["workdir"].value, "probe")
    if _FLAGS["all_steps"].value:
        if _FLAGS["step"].value is not None or _FLAGS["random_init"].value:
            raise app.UsageError("--all_steps probes every checkpoint: drop --step/--random_init")
        probe_all_steps(
            _FLAGS["workdir"].value, _FLAGS["config"].value, params_kind=_FLAGS["params"].value
        )
        return
    probe_workdir(
        _FLAGS["workdir"].value,
        _FLAGS["config"].value,
        step=_FLAGS["step"].value,
        random_init=_FLAGS["random_init"].value,
        params_kind=_FLAGS["params"].value,
    )


if __name__ == "__main__":
    _FLAGS = define_flags()
    cli.run(main)
