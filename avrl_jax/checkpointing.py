"""Orbax checkpoints of the train state and the input pipelines' positions, saved together.

Layout: `WORKDIR/checkpoints/<step>/{state,data}`; `state` holds the train state as plain
dicts (step, params, target_params, opt_state, rng), `data` the Grain iterators' states (JSON).
Saves are asynchronous; Orbax writes each step to a temporary directory and renames it when
complete, so a killed save never looks complete. A complete checkpoint that cannot be read is
reported and moved to `checkpoints/unreadable/`, never deleted, and the previous one is used.
A readable checkpoint whose arrays or data streams do not fit the run (another config pointed
at the workdir) stops the run with an error naming the difference; nothing is moved.

Every process must call `save` and `restore` (they are collective on multi-host runs).
"""

import dataclasses
import logging
import os
import shutil
import time

import jax
import orbax.checkpoint as ocp

STATE, DATA = "state", "data"
UNREADABLE_DIR = "unreadable"


# The encoder trees a checkpoint holds, by the name users pick them with: the trained network
# and the EMA/target network (updated every step, `target_params`, whether or not the
# objective reads it).
PARAMS_CHOICES = {"online": "params", "ema": "target_params"}


class CheckpointMismatchError(ValueError):
    """A readable checkpoint of another config: its arrays or data streams differ from the run's."""


def checkpoint_dir(workdir: str) -> str:
    return os.path.join(os.path.abspath(workdir), "checkpoints")


def _abstract(tree):
    """Shape/dtype/sharding skeleton of a tree of arrays: tells Orbax where arrays land."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def _state_dict(state) -> dict:
    return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}


class Checkpointer:
    """Periodic, keep-N, asynchronous checkpoints of (train state, data iterators)."""

    def __init__(self, workdir: str, *, every_steps: int, keep: int, async_save: bool = True):
        self.directory = checkpoint_dir(workdir)
        self.every_steps = every_steps
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=1,  # The schedule is ours (see `save`), not Orbax's.
            max_to_keep=keep,
            enable_async_checkpointing=async_save,
            create=True,
        )
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=(STATE, DATA)
        )

    def due(self, step: int) -> bool:
        """Whether `save` saves at `step` on schedule (a multiple of `every_steps`)."""
        return step % self.every_steps == 0

    def save(self, step: int, state, iterators: dict, *, force: bool = False) -> bool:
        """Saves if `step` is due (or `force`); returns whether it did."""
        if not (force or self.due(step)):
            return False
        data = {name: it.get_state() for name, it in iterators.items()}
        return self.manager.save(
            step,
            args=ocp.args.Composite(
                **{STATE: ocp.args.StandardSave(_state_dict(state)), DATA: ocp.args.JsonSave(data)}
            ),
            force=force,
        )

    def reached_preemption(self, step: int) -> bool:
        """True on every process once a JAX preemption notice has reached this step."""
        return self.manager.reached_preemption(step)

    def restore_latest(self, state, iterators: dict):
        """Restores the newest readable checkpoint into `state`'s structure and shardings.

        Iterators are positioned in place. Returns the restored state, or None when there is no
        checkpoint. Unreadable checkpoints are moved aside with a warning naming them.
        """
        for step in sorted(self.manager.all_steps(), reverse=True):
            try:
                restored = self.manager.restore(
                    step,
                    args=ocp.args.Composite(
                        **{
                            STATE: ocp.args.StandardRestore(_abstract(_state_dict(state))),
                            DATA: ocp.args.JsonRestore(),
                        }
                    ),
                )
            except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is skipped
                difference = state_difference(self.directory, step, _state_dict(state))
                if difference:
                    raise self._mismatch(step, difference) from error
                self._move_aside(step, error)
                continue
            missing = set(iterators) - set(restored[DATA])
            if missing:
                raise self._mismatch(step, f"no saved position for data streams {sorted(missing)}")
            for name, it in iterators.items():
                it.set_state(restored[DATA][name])
            return type(state)(**restored[STATE])
        return None

    def _mismatch(self, step: int, difference: str) -> CheckpointMismatchError:
        path = os.path.join(self.directory, str(step))
        workdir = os.path.dirname(self.directory)
        return CheckpointMismatchError(
            f"Checkpoint {path} was written by a run with another config ({difference}). "
            "Resume with the config it was written with (the workdir's config.json): "
            f"python -m avrl_jax.main --config configs/from_workdir.py:{workdir} "
            f"--workdir {workdir}; or start this config in a new workdir. Nothing was moved "
            "or deleted."
        )

    def _move_aside(self, step: int, error: Exception) -> None:
        path = os.path.join(self.directory, str(step))
        logging.warning(
            "Checkpoint %s is unreadable (%s: %s); skipping it for the previous one.",
            path,
            type(error).__name__,
            error,
        )
        if jax.process_index() == 0 and os.path.isdir(path):
            aside = os.path.join(self.directory, UNREADABLE_DIR, f"{step}-{int(time.time())}")
            os.makedirs(os.path.dirname(aside), exist_ok=True)
            shutil.move(path, aside)
            logging.warning("Moved unreadable checkpoint %s to %s (not deleted).", path, aside)
        self.manager.reload()

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        self.manager.wait_until_finished()
        self.manager.close()


def _read_only_manager(directory: str) -> ocp.CheckpointManager:
    return ocp.CheckpointManager(
        directory,
        options=ocp.CheckpointManagerOptions(read_only=True),
        item_handlers={STATE: ocp.PyTreeCheckpointHandler(), DATA: ocp.JsonCheckpointHandler()},
    )


def _state_metadata(manager: ocp.CheckpointManager, step: int):
    metadata = manager.item_metadata(step)[STATE]
    return metadata.tree if hasattr(metadata, "tree") else metadata


def _flat_shapes(tree) -> dict[str, tuple[int, ...]]:
    """'params/encoder/norm/scale' -> shape, for every array of a train state or its metadata
    (namedtuples and tuples flattened the way Orbax names what it saved)."""
    flat = ocp.tree.to_flat_dict(tree)
    return {"/".join(map(str, k)): tuple(v.shape) for k, v in flat.items() if hasattr(v, "shape")}


def state_difference(directory: str, step: int, state_dict: dict) -> str:
    """How the train state saved at `step` differs in array paths or shapes from `state_dict`
    (parameters listed first); "" when they match or when the checkpoint's metadata cannot be
    read (then it is damaged, not another config's)."""
    manager = _read_only_manager(directory)
    try:
        saved = _flat_shapes(_state_metadata(manager, step))
    except Exception:  # noqa: BLE001 - unreadable metadata: a damaged checkpoint
        return ""
    finally:
        manager.close()
    wanted = _flat_shapes(ocp.tree.serialize_tree(state_dict, keep_empty_nodes=True))
    paths = sorted(set(saved) | set(wanted), key=lambda p: (not p.startswith("params/"), p))
    differences = [
        f"{path}: saved {saved.get(path, 'nothing')}, this run {wanted.get(path, 'nothing')}"
        for path in paths
        if saved.get(path) != wanted.get(path)
    ]
    more = f"; and {len(differences) - 3} more" if len(differences) > 3 else ""
    return "; ".join(differences[:3]) + more


def restore_params(
    workdir: str, step: int | None = None, subtree: tuple[str, ...] = ("params", "encoder")
) -> tuple[int, dict]:
    """Partial restore for probes: only `state/<subtree>` of a checkpoint, no optimizer state.

    Returns (step, plain dict of numpy-backed arrays). Raises FileNotFoundError naming the
    workdir when it has no checkpoint.
    """
    directory = checkpoint_dir(workdir)
    if not os.path.isdir(directory):
        raise FileNotFoundError(f"no checkpoints in {directory}")
    manager = _read_only_manager(directory)
    step = manager.latest_step() if step is None else step
    if step is None or step not in manager.all_steps():
        raise FileNotFoundError(
            f"no checkpoint for step {step} in {directory}; available: {manager.all_steps()}"
        )
    node = _state_metadata(manager, step)
    for key in subtree:
        node = node[key]
    item = _nest(subtree, jax.tree.map(_on_one_device, node))
    restore_args = ocp.checkpoint_utils.construct_restore_args(item)
    args = ocp.args.PyTreeRestore(item=item, restore_args=restore_args, partial_restore=True)
    restored = manager.restore(step, args=ocp.args.Composite(**{STATE: args}))[STATE]
    manager.close()
    for key in subtree:
        restored = restored[key]
    return step, restored


def _on_one_device(meta):
    """Probes run on one device: every restored array lands there."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.ShapeDtypeStruct(meta.shape, meta.dtype, sharding=device)


def _nest(keys: tuple[str, ...], leaf):
    for key in reversed(keys):
        leaf = {key: leaf}
    return leaf
