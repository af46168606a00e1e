"""Running a study (`python -m avrl_jax.study`): the grid of pretraining runs, the probes of
every encoder, the pixel and random-init baselines, then the report. Resumable.

Order: the pixel baselines, then seed by seed: the random-init encoder, each method's run
(trained, then probed), then the wall-clock-matched runs of the seed (which need their base
and AB runs' step times). Every result is stored in DIR/study.json as soon as it exists
(atomic replace), keyed by run and task; a restarted study skips what is stored, finishes an
interrupted training run from its checkpoints (the same command again), and ends with the
same study.json, apart from `timings` (and the wall-clock-matched runs, whose length is a
measured time). DIR/study.lock keeps a second study off the same DIR.
"""

from __future__ import annotations

import contextlib
import fcntl
import json
import math
import os
import tempfile
import time
from collections.abc import Callable, Mapping
from typing import Any

from avrl_jax.evaluation import study_probes, study_report, study_runs
from avrl_jax.evaluation.study_runs import RunSpec, StudyError

STUDY_FILE = "study.json"
LOCK_FILE = "study.lock"


def study_spec(config) -> dict:
    """The study config as plain JSON data (what study.json records under "config")."""
    return json.loads(json.dumps(config.to_dict(), sort_keys=True))


def _json_safe(value):
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, Mapping):
        return {k: _json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_json_safe(v) for v in value]
    return value


def write_json_atomic(path: str, data: Mapping[str, Any]) -> None:
    """Replaces `path` by `data` atomically: a temporary file in the same folder, then
    os.replace, so a crash leaves the old file or the new one, never half of one."""
    directory = os.path.dirname(os.path.abspath(path))
    fd, temporary = tempfile.mkstemp(dir=directory, prefix=os.path.basename(path), suffix=".tmp")
    try:
        with os.fdopen(fd, "w") as f:
            json.dump(_json_safe(data), f, indent=1, sort_keys=True)
            f.flush()
            os.fsync(f.fileno())
        os.replace(temporary, path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            os.unlink(temporary)
        raise


class StudyStore:
    """DIR/study.json in memory; every change is written through."""

    def __init__(self, workdir: str, spec: dict):
        self.path = os.path.join(workdir, STUDY_FILE)
        self.data = {
            "config": spec,
            "runs": {},
            "probes": {},
            "curves": {},
            "timings": {"runs": {}, "probes": {}},
        }
        if os.path.exists(self.path):
            with open(self.path) as f:
                stored = json.load(f)
            if stored.get("config") != spec:
                raise StudyError(
                    f"{self.path} was written by another study config; resume with that "
                    "config, or use a new --workdir (or delete the file to re-probe)"
                )
            self.data.update(stored)

    def save(self) -> None:
        write_json_atomic(self.path, self.data)

    def has_probe(self, key: str, task: str) -> bool:
        return task in self.data["probes"].get(key, {})

    def set_probe(self, key: str, task: str, metrics: dict, timings: dict) -> None:
        self.data["probes"].setdefault(key, {})[task] = metrics
        self.data["timings"]["probes"].setdefault(key, {})[task] = timings
        self.save()

    def set_run(self, name: str, entry: dict, curves: dict, timings: dict) -> None:
        self.data["runs"][name] = entry
        self.data["curves"][name] = curves
        self.data["timings"]["runs"][name] = timings
        self.save()


class StudyProgress:
    """`study: 5/13 runs done, 2/13 probed, elapsed 12.3 min, ETA 20.1 min`; the ETA from the
    mean time of the items (runs, probed encoders) this process finished, per kind."""

    def __init__(self, total: dict[str, int], done: dict[str, int]):
        self.total, self.done = total, dict(done)
        self.seconds: dict[str, list[float]] = {"run": [], "probe": []}
        self.start = time.perf_counter()

    def finished(self, kind: str, seconds: float | None) -> None:
        self.done[kind] += 1
        if seconds is not None:
            self.seconds[kind].append(seconds)
        print(self.line(), flush=True)

    def eta(self) -> float | None:
        every = [s for times in self.seconds.values() for s in times]
        if not every:
            return None
        eta = 0.0
        for kind, times in self.seconds.items():
            mean = sum(times or every) / len(times or every)
            eta += max(self.total[kind] - self.done[kind], 0) * mean
        return eta

    def line(self) -> str:
        eta = self.eta()
        return (
            f"study: {self.done['run']}/{self.total['run']} runs done, "
            f"{self.done['probe']}/{self.total['probe']} probed, elapsed "
            f"{(time.perf_counter() - self.start) / 60:.1f} min, ETA "
            + ("?" if eta is None else f"{eta / 60:.1f} min")
        )


@contextlib.contextmanager
def study_lock(workdir: str):
    with open(os.path.join(workdir, LOCK_FILE), "w") as lock:
        try:
            fcntl.flock(lock, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            raise StudyError(
                f"another study is running in {workdir} ({workdir}/{LOCK_FILE} is locked)"
            ) from None
        yield


class _Study:
    """One study's state while it runs (see `run_study`)."""

    def __init__(self, spec: dict, workdir: str, env: Mapping[str, str] | None):
        self.spec, self.workdir, self.env = spec, workdir, env
        self.store = StudyStore(workdir, spec)
        self.plans = study_runs.plan_runs(spec)
        # Resolving every config first rejects an unknown override field before any training.
        self.configs = {p.name: self._resolve(p) for p in self.plans}
        self.tasks = study_probes.ProbeTasks(spec["probes"])
        seeds = spec["seeds"]
        num_runs = len(self.plans) + len(spec["wallclock_matched"]) * len(seeds)
        self.probe_keys = num_runs + len(spec["pixel_baselines"])
        self.probe_keys += len(seeds) if spec["random_init"] else 0
        done_probes = sum(
            all(task in probes for task in self.tasks.names)
            for probes in self.store.data["probes"].values()
        )
        self.progress = StudyProgress(
            {"run": num_runs, "probe": self.probe_keys},
            {"run": len(self.store.data["runs"]), "probe": done_probes},
        )

    def _resolve(self, plan: RunSpec):
        return study_runs.resolve_train_config(self.spec["train_config"], plan.args, plan.overrides)

    # --- Probes ------------------------------------------------------------------------
    def probe(self, key: str, train_config, encoder: Callable | None = None, pixels: str = ""):
        """Probes one encoder (built by `encoder()`) or pixel baseline on every task not yet
        stored under `key`."""
        missing = [t for t in self.tasks.names if not self.store.has_probe(key, t)]
        if not missing:
            return
        start = time.perf_counter()
        built = encoder() if encoder else None
        for task in missing:
            if pixels:
                results = study_probes.probe_pixel_baseline(pixels, train_config, self.tasks, task)
            else:
                results = study_probes.probe_encoder(built, train_config, self.tasks, task)
            self.store.set_probe(key, task, *results)
        self.progress.finished("probe", time.perf_counter() - start)

    # --- Runs --------------------------------------------------------------------------
    def run(self, plan: RunSpec, config) -> None:
        """Trains the run unless it is stored, records it, probes its final encoder."""
        run_dir = plan.workdir(self.workdir)
        difference = study_runs.config_difference(config, run_dir)
        if difference:
            raise StudyError(
                f"study: run {plan.name} in {run_dir} was started with another training config "
                f"({'; '.join(difference[:5])}). Delete {run_dir} to train it anew, or run the "
                "study config it was started with."
            )
        total_steps = int(config.total_steps)
        if plan.name not in self.store.data["runs"]:
            seconds = study_runs.train(
                plan, self.spec["train_config"], self.workdir, total_steps, env=self.env
            )
            difference = study_runs.config_difference(config, run_dir)
            if difference:  # an override flag parsed differently from the in-process config
                raise StudyError(
                    f"study: run {plan.name}: its config.json differs from the study's "
                    f"resolution of its overrides: {'; '.join(difference[:5])}"
                )
            records = study_runs.read_records(run_dir)
            entry = {
                "method": plan.method,
                "seed": plan.seed,
                "args": plan.args,
                "pair": plan.pair,
                "total_steps": total_steps,
                "views_per_step": study_runs.views_per_step(config),
            }
            timings = {"step_time_s": study_runs.step_time(records), "wall_s": seconds}
            self.store.set_run(plan.name, entry, study_runs.curves(records), timings)
            self.progress.finished("run", seconds)
        self.probe(
            plan.name,
            config,
            encoder=lambda: study_probes.pretrained_encoder(run_dir, config, total_steps),
        )

    def wallclock_run(self, base_plan: RunSpec, ab_plan: RunSpec) -> None:
        """`<base>_wallclock` of the seed: the base method for the AB run's training time."""
        name = study_runs.wallclock_spec(base_plan, 1).name
        stored = self.store.data["runs"].get(name)
        if stored:
            steps = stored["total_steps"]
        else:
            times = {
                plan.name: study_runs.step_time(study_runs.read_records(plan.workdir(self.workdir)))
                for plan in (base_plan, ab_plan)
            }
            steps = study_runs.wallclock_steps(
                int(self.configs[ab_plan.name].total_steps),
                times[ab_plan.name],
                times[base_plan.name],
            )
        plan = study_runs.wallclock_spec(base_plan, steps)
        self.run(plan, self._resolve(plan))

    def __call__(self) -> dict:
        print(self.progress.line(), flush=True)
        first = self.configs[self.plans[0].name]
        for kind in self.spec["pixel_baselines"]:
            self.probe(study_report.pixel_key(kind), first, pixels=kind)
        for seed in self.spec["seeds"]:
            plans = {p.method: p for p in self.plans if p.seed == seed}
            if self.spec["random_init"]:
                config = self.configs[next(iter(plans.values())).name]
                self.probe(
                    study_report.random_init_key(seed),
                    config,
                    encoder=lambda config=config, seed=seed: study_probes.random_encoder(
                        config, seed
                    ),
                )
            for plan in plans.values():
                self.run(plan, self.configs[plan.name])
            for base in self.spec["wallclock_matched"]:
                ab = study_runs.ab_partner(self.spec, base)
                self.wallclock_run(plans[base], plans[ab])
        return self.store.data


def run_study(config, workdir: str, command: str = "", env=None) -> dict:
    """Runs (or resumes) the study of `config` (configs/study.py) in `workdir`; writes
    study.json, study.md and plots/; returns the study.json data.

    env: the training subprocesses' environment (None: this process's).
    Raises StudyError (a failed run, a config clash) with a message saying what to do.
    """
    spec = study_spec(config)
    os.makedirs(workdir, exist_ok=True)
    with study_lock(workdir):
        study = _Study(spec, workdir, env)()
        paths = study_report.write_report(study, workdir, command)
    print(f"study: done; tables in {paths[0]}, plots in {os.path.dirname(paths[1])}", flush=True)
    return study
