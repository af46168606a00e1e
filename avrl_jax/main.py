"""Entry point: python -m avrl_jax.main --config configs/<name>.py[:arg] --workdir DIR."""

from absl import app, flags
from ml_collections import config_flags

from avrl_jax import cli

_CONFIG = config_flags.DEFINE_config_file("config", None, "Training config file.", lock_config=True)
_PROBE = config_flags.DEFINE_config_file(
    "probe_config",
    None,
    "Optional probe (configs/probe_*.py) run after pretraining: the "
    "pretrained encoder beside a randomly initialised one.",
)
_WORKDIR = flags.DEFINE_string("workdir", None, "Directory for metrics, config and checkpoints.")
_DISTRIBUTED = flags.DEFINE_bool(
    "distributed",
    False,
    "Multi-host: call jax.distributed.initialize() (auto-detected on "
    "Cloud TPU pods and under SLURM).",
)
_COORDINATOR = flags.DEFINE_string(
    "coordinator_address",
    None,
    "Multi-process without a cluster manager: HOST:PORT of "
    "process 0 (with --num_processes and --process_id).",
)
_WANDB = flags.DEFINE_bool(
    "wandb", False, "Also log to Weights & Biases (wandb.* config fields; pip install wandb)."
)
_NUM_PROCESSES = flags.DEFINE_integer("num_processes", None, "Processes in the job.")
_PROCESS_ID = flags.DEFINE_integer("process_id", None, "This process's index.")
flags.mark_flags_as_required(["config", "workdir"])


def initialize_distributed() -> None:
    """Joins the multi-controller runtime before any other JAX call (never at import)."""
    import jax

    if _COORDINATOR.value is not None:
        if jax.config.jax_platforms == "cpu" or jax.config.jax_platforms is None:
            # CPU collectives between processes (the local multi-process simulation).
            jax.config.update("jax_cpu_collectives_implementation", "gloo")
        jax.distributed.initialize(
            coordinator_address=_COORDINATOR.value,
            num_processes=_NUM_PROCESSES.value,
            process_id=_PROCESS_ID.value,
        )
    elif _DISTRIBUTED.value:
        jax.distributed.initialize()  # Cloud TPU and SLURM: everything is auto-detected.


def main(argv):
    if len(argv) > 1:
        raise app.UsageError(f"Unexpected arguments: {argv[1:]}")
    from avrl_jax import console, stop_signals

    stop_signals.install()  # first: a SIGTERM/SIGINT at any moment from here stops cleanly
    console.quiet_console()
    initialize_distributed()
    from avrl_jax.workdir_check import check_layout

    check_layout(_WORKDIR.value)  # before the log file is opened in it
    console.log_to_file(_WORKDIR.value, "train")
    # Imported here, not at module level: Grain's spawned workers re-import __main__.
    from avrl_jax.train import train_and_evaluate

    config = _CONFIG.value
    if _WANDB.value:
        if "wandb" not in config:
            raise ValueError("--wandb: this config has no `wandb` section (see configs/default.py)")
        config.wandb.enabled = True
    train_and_evaluate(config, _WORKDIR.value)
    if _PROBE.value is not None:
        from avrl_jax.evaluation.probe_runner import probe_workdir

        probe_workdir(_WORKDIR.value, _PROBE.value, random_init=True)
        probe_workdir(_WORKDIR.value, _PROBE.value)  # prints both columns


if __name__ == "__main__":
    cli.run(main)
