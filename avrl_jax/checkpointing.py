"""Orbax checkpoints of the train state and the input pipelines' positions, saved together.

Layout: `WORKDIR/checkpoints/<step>/{state,data,checksums.json}`; `state` holds the train
state as plain dicts (step, params, target_params, opt_state, rng), `data` the Grain iterators'
states (JSON), `checksums.json` the size and CRC-32 of every file (see checkpoint_checksums).
Saves are asynchronous; Orbax writes each step to a temporary directory and renames it when
complete, so a killed save never looks complete. The trainer polls the save every step: a save
that failed stops the run at the next step with `CheckpointWriteError` naming the root cause.

A damaged checkpoint (a file that fails its checksum, missing or unparsable metadata, arrays
that cannot be read) is reported, and the previous one is used; damaged checkpoints newer than
the one restored are moved to `checkpoints/unreadable/`, never deleted. When checkpoints exist
and none is readable the run stops with `UnreadableCheckpointsError` listing each and why, and
nothing is moved, unless `allow_fresh_start` says to move them aside and start at step 0. A
readable checkpoint whose arrays or data streams do not fit the run (another config pointed at
the workdir) stops the run with an error naming the difference; nothing is moved.

Every process must call `save` and `restore` (they are collective on multi-host runs).
"""

import dataclasses
import json
import logging
import os
import re
import time

import jax
import orbax.checkpoint as ocp

from avrl_jax import checkpoint_checksums, paths
from avrl_jax.errors import UserError

STATE, DATA = "state", "data"
UNREADABLE_DIR = "unreadable"


# The encoder trees a checkpoint holds, by the name users pick them with: the trained network
# and the EMA/target network (updated every step, `target_params`, whether or not the
# objective reads it).
PARAMS_CHOICES = {"online": "params", "ema": "target_params"}


class CheckpointMismatchError(ValueError):
    """A readable checkpoint of another config: its arrays or data streams differ from the run's."""


class DamagedCheckpointError(UserError):
    """A checkpoint that fails its own checks: checksums, metadata, or arrays Orbax cannot read."""


class UnreadableCheckpointsError(UserError):
    """Checkpoints exist and none can be read: the run stops rather than start again at step 0."""


class CheckpointWriteError(UserError):
    """An (asynchronous) save failed; the message names the step, the directory and the cause."""


def check_intact(step_dir: str) -> bool:
    """Raises DamagedCheckpointError when the checkpoint at `step_dir` fails its checksums or its
    train state's metadata (`state/_METADATA`) is missing or does not parse. Returns whether the
    checkpoint was verified (False: written before checksums existed, or killed between the
    save and its manifest; then it is only as good as Orbax's own checks)."""
    verified = checkpoint_checksums.has_manifest(step_dir)
    if verified:
        try:
            checkpoint_checksums.verify(step_dir)
        except checkpoint_checksums.ChecksumMismatch as error:
            raise DamagedCheckpointError(str(error)) from error
    try:
        json.loads(paths.read_text(paths.join(step_dir, STATE, "_METADATA")))
    except (OSError, ValueError) as error:
        raise DamagedCheckpointError(
            f"its metadata {STATE}/_METADATA is missing or unreadable ({type(error).__name__})"
        ) from error
    return verified


def root_cause(error: BaseException) -> str:
    """The operating system's words for the failure at the bottom of a (chained) save error,
    e.g. 'No space left on device', else the error's own last line."""
    seen = []
    while error is not None and error not in seen:
        seen.append(error)
        if isinstance(error, OSError) and error.strerror:
            return error.strerror
        code = re.search(r"os_error_code='?(\d+)", str(error))  # TensorStore's wording
        if code:
            return os.strerror(int(code.group(1)))
        error = error.__cause__ or error.__context__
    last = str(seen[0]).strip().splitlines()
    return last[-1] if last else type(seen[0]).__name__


def checkpoint_dir(workdir: str) -> str:
    return paths.join(paths.absolute(workdir), "checkpoints")


def _abstract(tree):
    """Shape/dtype/sharding skeleton of a tree of arrays: tells Orbax where arrays land."""
    return jax.tree.map(lambda x: jax.ShapeDtypeStruct(x.shape, x.dtype, sharding=x.sharding), tree)


def _state_dict(state) -> dict:
    return {f.name: getattr(state, f.name) for f in dataclasses.fields(state)}


class Checkpointer:
    """Periodic, keep-N, asynchronous, checksummed checkpoints of (train state, data iterators)."""

    def __init__(
        self,
        workdir: str,
        *,
        every_steps: int,
        keep: int,
        async_save: bool = True,
        keep_period: int | None = None,
    ):
        self.directory = checkpoint_dir(workdir)
        self.every_steps = every_steps
        options = ocp.CheckpointManagerOptions(
            save_interval_steps=1,  # The schedule is ours (see `save`), not Orbax's.
            max_to_keep=keep,
            # Steps divisible by keep_period are kept as well as the `keep` newest (DINO and
            # big_vision keep such checkpoints to probe a run along training).
            keep_period=keep_period or None,
            enable_async_checkpointing=async_save,
            create=True,
        )
        self.manager = ocp.CheckpointManager(
            self.directory, options=options, item_names=(STATE, DATA)
        )
        self._pending = None  # the step of a save not yet confirmed and checksummed
        self._failed = None  # the step of a save that failed (already reported)

    def due(self, step: int) -> bool:
        """Whether `save` saves at `step` on schedule (a multiple of `every_steps`)."""
        return step % self.every_steps == 0

    def save(self, step: int, state, iterators: dict, *, force: bool = False) -> bool:
        """Saves if `step` is due (or `force`); returns whether it did. The previous save is
        confirmed first (CheckpointWriteError if it failed)."""
        if not (force or self.due(step)):
            return False
        self._finish_pending()
        data = {name: it.get_state() for name, it in iterators.items()}
        saved = self.manager.save(
            step,
            args=ocp.args.Composite(
                **{STATE: ocp.args.StandardSave(_state_dict(state)), DATA: ocp.args.JsonSave(data)}
            ),
            force=force,
        )
        if saved:
            self._pending = step
            if not self.manager.is_saving_in_progress():  # synchronous saves end here
                self._finish_pending()
        return saved

    def poll(self) -> None:
        """Call once per step: when a background save has ended, confirms it (raising
        CheckpointWriteError naming the cause if it failed) and writes its checksums."""
        if self._pending is not None and not self.manager.is_saving_in_progress():
            self._finish_pending()

    def _finish_pending(self) -> None:
        step, self._pending = self._pending, None
        if step is None:
            return
        try:
            self.manager.wait_until_finished()
        except Exception as error:  # noqa: BLE001 - any failure of the save is reported as one
            self._failed = step
            raise self._write_error(step, root_cause(error)) from error
        path = paths.join(self.directory, str(step))
        if not paths.isdir(path):  # Orbax logged the failure and skipped the finalisation
            self._failed = step
            raise self._write_error(step, "the save did not complete (see WORKDIR/logs/)")
        if jax.process_index() == 0 and not paths.is_url(path):  # a bucket checks its objects
            checkpoint_checksums.write_manifest(path)

    def _write_error(self, step: int, cause: str) -> CheckpointWriteError:
        return CheckpointWriteError(
            f"checkpoint {step} could not be written to {self.directory}: {cause}"
        )

    def reached_preemption(self, step: int) -> bool:
        """True on every process once a JAX preemption notice has reached this step."""
        return self.manager.reached_preemption(step)

    def restore_latest(self, state, iterators: dict, *, allow_fresh_start: bool = False):
        """Restores the newest readable checkpoint into `state`'s structure and shardings.

        Iterators are positioned in place. Returns the restored state, or None when there is no
        checkpoint. Damaged checkpoints newer than the one restored are moved aside with a
        warning naming them and why. When none is readable: UnreadableCheckpointsError (nothing
        moved), or with `allow_fresh_start` all are moved aside and None is returned.
        """
        damaged = []  # (step, why), newest first
        for step in sorted(self.manager.all_steps(), reverse=True):
            path = paths.join(self.directory, str(step))
            try:
                verified = check_intact(path)
                restored = self.manager.restore(
                    step,
                    args=ocp.args.Composite(
                        **{
                            STATE: ocp.args.StandardRestore(_abstract(_state_dict(state))),
                            DATA: ocp.args.JsonRestore(),
                        }
                    ),
                )
            except DamagedCheckpointError as error:
                damaged.append((step, str(error)))
                continue
            except Exception as error:  # noqa: BLE001 - any unreadable checkpoint is skipped
                difference = state_difference(self.directory, step, _state_dict(state))
                if difference:
                    raise self._mismatch(step, difference) from error
                damaged.append((step, f"{type(error).__name__}: {_first_line(error)}"))
                continue
            missing = set(iterators) - set(restored[DATA])
            if missing:
                raise self._mismatch(step, f"no saved position for data streams {sorted(missing)}")
            if not verified and not paths.is_url(path):
                logging.warning(
                    "Checkpoint %s has no %s (saved before checksums, or the run stopped "
                    "between the save and its checksums); restored unverified.",
                    path,
                    checkpoint_checksums.MANIFEST,
                )
            self._move_aside(damaged)
            for name, it in iterators.items():
                it.set_state(restored[DATA][name])
            return type(state)(**restored[STATE])
        if damaged and not allow_fresh_start:
            listing = "; ".join(f"step {step}: {why}" for step, why in damaged)
            raise UnreadableCheckpointsError(
                f"no checkpoint in {self.directory} can be read ({listing}). Nothing was moved "
                "and metrics.jsonl is unchanged. If the storage was briefly unavailable, run "
                "again; to move them to checkpoints/unreadable/ and train from step 0, pass "
                "--config.checkpoint.allow_fresh_start=True"
            )
        self._move_aside(damaged)
        return None

    def _mismatch(self, step: int, difference: str) -> CheckpointMismatchError:
        path = paths.join(self.directory, str(step))
        workdir = paths.dirname(self.directory)
        return CheckpointMismatchError(
            f"Checkpoint {path} was written by a run with another config ({difference}). "
            "Resume with the config it was written with (the workdir's config.json): "
            f"python -m avrl_jax.main --config configs/from_workdir.py:{workdir} "
            f"--workdir {workdir}; or start this config in a new workdir. Nothing was moved "
            "or deleted."
        )

    def _move_aside(self, damaged: list[tuple[int, str]]) -> None:
        for step, why in damaged:
            path = paths.join(self.directory, str(step))
            logging.warning("Checkpoint %s is unreadable (%s); not used.", path, why)
            if jax.process_index() == 0 and paths.isdir(path):
                aside = paths.join(self.directory, UNREADABLE_DIR, f"{step}-{int(time.time())}")
                paths.makedirs(paths.dirname(aside))
                paths.move_tree(path, aside)
                logging.warning("Moved unreadable checkpoint %s to %s (not deleted).", path, aside)
        if damaged:
            self.manager.reload()

    def wait(self) -> None:
        self.manager.wait_until_finished()

    def close(self) -> None:
        """Confirms and checksums the last save, then stops Orbax's threads; the threads are
        stopped even when the last save failed (and that failure is raised)."""
        failure = None
        try:
            self._finish_pending()
        except CheckpointWriteError as error:
            failure = error
        try:
            self.manager.close()
        except Exception:  # noqa: BLE001 - a failed save raises again here; reported once
            if failure is None and self._failed is None:
                raise
        if failure is not None:
            raise failure


def _first_line(error: BaseException) -> str:
    lines = str(error).strip().splitlines()
    return lines[0] if lines else ""


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


def saved_steps(workdir: str) -> list[int]:
    """The steps of the workdir's checkpoints, ascending ([] without any). Read-only."""
    directory = checkpoint_dir(workdir)
    if not paths.isdir(directory):
        return []
    manager = _read_only_manager(directory)
    try:
        return sorted(manager.all_steps())
    finally:
        manager.close()


def restore_params(
    workdir: str, step: int | None = None, subtree: tuple[str, ...] = ("params", "encoder")
) -> tuple[int, dict]:
    """Partial restore for probes: only `state/<subtree>` of a checkpoint, no optimizer state.

    Returns (step, plain dict of numpy-backed arrays). Checkpoints are verified first (see
    `check_intact`): without `step`, damaged ones are reported and skipped for the newest intact
    one; a damaged `step` raises DamagedCheckpointError. Nothing is moved (a read-only tool).
    Raises FileNotFoundError naming the workdir when it has no checkpoint.
    """
    directory = checkpoint_dir(workdir)
    if not paths.isdir(directory):
        raise FileNotFoundError(f"no checkpoints in {directory}")
    manager = _read_only_manager(directory)
    try:
        return _restore_intact_params(manager, directory, step, subtree)
    finally:
        manager.close()


def _restore_intact_params(manager, directory: str, step, subtree) -> tuple[int, dict]:
    steps = sorted(manager.all_steps(), reverse=True)
    if step is not None and step not in steps or not steps:
        raise FileNotFoundError(
            f"no checkpoint for step {step} in {directory}; available: {sorted(steps)}"
        )
    damaged = []
    for candidate in [step] if step is not None else steps:
        path = paths.join(directory, str(candidate))
        try:
            check_intact(path)
        except DamagedCheckpointError as error:
            if step is not None:
                raise DamagedCheckpointError(
                    f"checkpoint {path} is damaged ({error}); choose another step (available: "
                    f"{sorted(steps)}) or leave out the step for the newest intact one"
                ) from error
            logging.warning("Checkpoint %s is damaged (%s); using an older one.", path, error)
            damaged.append(f"step {candidate}: {error}")
            continue
        node = _state_metadata(manager, candidate)
        for key in subtree:
            node = node[key]
        item = _nest(subtree, jax.tree.map(_on_one_device, node))
        restore_args = ocp.checkpoint_utils.construct_restore_args(item)
        args = ocp.args.PyTreeRestore(item=item, restore_args=restore_args, partial_restore=True)
        restored = manager.restore(candidate, args=ocp.args.Composite(**{STATE: args}))[STATE]
        for key in subtree:
            restored = restored[key]
        return candidate, restored
    raise UnreadableCheckpointsError(
        f"no checkpoint in {directory} is intact ({'; '.join(damaged)})"
    )


def _on_one_device(meta):
    """Probes run on one device: every restored array lands there."""
    device = jax.sharding.SingleDeviceSharding(jax.local_devices()[0])
    return jax.ShapeDtypeStruct(meta.shape, meta.dtype, sharding=device)


def _nest(keys: tuple[str, ...], leaf):
    for key in reversed(keys):
        leaf = {key: leaf}
    return leaf
