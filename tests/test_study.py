"""The study runner (`python -m avrl_jax.study`) on configs/study.py:smoke: end to end, killed
and restarted, and its pure parts (statistics, pixel features, wall-clock step count)."""

import json
import math
import os
import signal
import subprocess
import time

import numpy as np
import pytest
from conftest import REPO, cpu_env, module_command, run_command
from PIL import Image

from avrl_jax.env.render import normalize
from avrl_jax.evaluation import pixels, study_report, study_runs

SMOKE = "configs/study.py:smoke"
ROWS = (
    "pixels: raw",
    "pixels: colour-invariant",
    "random init",
    "simclr",
    "ab_simclr",
    "simclr_wallclock",
)
RUNS = ("simclr_s0", "ab_simclr_s0", "simclr_wallclock_s0")
PROBE_KEYS = (*RUNS, "pixels_raw", "pixels_colour_invariant", "random_init_s0")
TASKS = ("object_in_box", "count", "objects")
PLOTS = ("probe_accuracy.png", "value_accuracy_by_iou.png", "training_curves.png")


def study_command(workdir, *overrides: str) -> list[str]:
    return module_command(
        "avrl_jax.study", "--config", SMOKE, "--workdir", str(workdir), *overrides
    )


# The killed study's grid: the smoke study's two trained runs and their probes, without the
# wall-clock-matched run and the random-init and pixel baselines (the end-to-end test covers
# those; a restart treats every run and probe alike).
REDUCED = (
    "--config.wallclock_matched=()",
    "--config.random_init=False",
    "--config.pixel_baselines=()",
)


def load_study(workdir) -> dict:
    with open(os.path.join(workdir, "study.json")) as f:
        return json.load(f)


def comparable(study: dict, keys=None) -> dict:
    """The results of study.json (runs, probes, curves) without the wall-clock-matched run,
    whose length is a measured time ratio (so it differs between two studies); with `keys`,
    only theirs."""
    out = {}
    for section in ("runs", "probes", "curves"):
        out[section] = {
            k: v
            for k, v in study[section].items()
            if "_wallclock" not in k and (keys is None or k in keys)
        }
    return out


@pytest.fixture(scope="module")
def smoke_study(tmp_path_factory):
    """One uninterrupted smoke study: (workdir, completed process, wall seconds)."""
    workdir = tmp_path_factory.mktemp("study")
    start = time.perf_counter()
    result = run_command(study_command(workdir), env=cpu_env(1), timeout=600)
    seconds = time.perf_counter() - start
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    print(f"smoke study: {seconds:.0f} s")
    return workdir, result, seconds


# --------------------------------------------------------------------------------------------
# End to end.


def test_smoke_study_end_to_end(smoke_study):
    workdir, result, _ = smoke_study
    study = load_study(workdir)
    assert set(study["runs"]) == set(RUNS)
    for name in RUNS:
        run = study["runs"][name]
        assert os.path.exists(workdir / "runs" / name / "train.log")
        assert run["total_steps"] >= 1 and run["views_per_step"] > 0
        assert study["timings"]["runs"][name]["step_time_s"] > 0
    # Equal views per step: base-only SimCLR 16 images x 2 crops; AB 8 x 2 annotation crops
    # plus 4 bootstrap images x 4 views (configs/study.py:AB_SMOKE_VIEWS).
    assert study["runs"]["simclr_s0"]["views_per_step"] == 16 * 2
    assert study["runs"]["ab_simclr_s0"]["views_per_step"] == 8 * 2 + 4 * 4
    timings = study["timings"]["runs"]
    expected = study_runs.wallclock_steps(
        6, timings["ab_simclr_s0"]["step_time_s"], timings["simclr_s0"]["step_time_s"]
    )
    assert study["runs"]["simclr_wallclock_s0"]["total_steps"] == expected
    assert set(study["probes"]) == set(PROBE_KEYS)
    for key in PROBE_KEYS:
        assert set(study["probes"][key]) == set(TASKS), key
        for task in TASKS:
            metrics = study["probes"][key][task]
            assert 0 <= metrics["linear/accuracy"] <= 1 and 0 <= metrics["knn/accuracy_k20"] <= 1
            assert ("map/accuracy" in metrics) == (not key.startswith("pixels_")), key
            assert ("decoder/accuracy" in metrics) == (not key.startswith("pixels_")), key
            assert not any(k.startswith("time/") for k in metrics)  # timings are apart
    assert any(k.startswith("ab/value_accuracy/iou_") for k in study["curves"]["ab_simclr_s0"])

    table = (workdir / "study.md").read_text()
    assert "equal views seen: every view counts (annotation crops + bootstrap views)" in table
    assert "python -m avrl_jax.study --config configs/study.py:smoke" in table
    sections = table.split("\n## ")
    for task in TASKS:
        (section,) = [s for s in sections if s.startswith(f"Task `{task}`")]
        for row in ROWS:
            (line,) = [line for line in section.splitlines() if line.startswith(f"| {row} |")]
            assert "±" in line, (task, row)
    assert "| ab_simclr − simclr |" in table and "| ab_simclr − simclr_wallclock |" in table
    for name in PLOTS:
        image = np.asarray(Image.open(workdir / "plots" / name).convert("L"))
        assert image.shape[0] > 100 and image.std() > 1, name
    assert "3/3 runs done, 6/6 probed" in result.stdout and "ETA" in result.stdout


def test_killed_study_restarts_to_the_same_results(smoke_study, tmp_path):
    """SIGKILL (the study and its trainer) once the first run has a checkpoint; started
    again, the study finishes that run from its checkpoint and ends with the same results as
    the uninterrupted smoke study (on the reduced grid's runs and probes)."""
    reference, _, _ = smoke_study
    first_run = tmp_path / "runs" / "simclr_s0"
    process = subprocess.Popen(
        study_command(tmp_path, *REDUCED),
        cwd=REPO,
        env=cpu_env(1),
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
        start_new_session=True,  # its own process group: the trainer dies with it
    )
    try:
        deadline = time.time() + 300
        while not study_runs.checkpoint_steps(first_run):
            assert process.poll() is None, "the study ended before the first checkpoint"
            assert time.time() < deadline, "no checkpoint in 300 s"
            time.sleep(0.02)
    finally:
        os.killpg(process.pid, signal.SIGKILL)
        process.wait()
    finished_before_kill = study_runs.is_done(first_run, 6)
    result = run_command(study_command(tmp_path, *REDUCED), env=cpu_env(1), timeout=600)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    if not finished_before_kill:
        assert "Resumed from step" in (first_run / "train.log").read_text()
    print(f"killed {'after' if finished_before_kill else 'during'} the first run")
    restarted = load_study(tmp_path)
    assert set(restarted["runs"]) == {"simclr_s0", "ab_simclr_s0"}
    assert set(restarted["probes"]) == {"simclr_s0", "ab_simclr_s0"}
    assert comparable(restarted) == comparable(load_study(reference), keys=restarted["runs"])


def test_failed_run_names_the_run_its_log_and_its_last_lines(tmp_path):
    spec = study_runs.RunSpec(
        name="broken_s0",
        method="broken",
        seed=0,
        args="smoke",
        overrides={"env.num_views": 1, "fewshot_eval.every_steps": 0},
    )
    with pytest.raises(study_runs.StudyError) as error:
        study_runs.train(spec, "configs/default.py", str(tmp_path), 6, env=cpu_env(1))
    message = str(error.value)
    log = tmp_path / "runs" / "broken_s0" / "train.log"
    assert "run broken_s0 exited with status" in message and str(log) in message
    assert "num_views" in message  # the trainer's own error, from the log's last lines
    assert len(message.split("Last 20 lines:\n")[1].splitlines()) <= 20


def test_cli_reports_a_config_error_and_exits_non_zero(tmp_path):
    result = run_command(
        study_command(tmp_path) + ["--config.train_config=configs/missing.py"], env=cpu_env(1)
    )
    assert result.returncode == 1
    assert "configs/missing.py not found" in result.stderr
    assert "Traceback" not in result.stderr  # one clear message


# --------------------------------------------------------------------------------------------
# Pure functions.


def test_mean_and_standard_error_formatting():
    assert study_report.mean_se([1.0, 3.0]) == (2.0, 1.0)  # std(ddof=1) = sqrt(2), / sqrt(2)
    assert study_report.format_mean_se([1.0, 3.0]) == "2.0 ± 1.0"
    assert study_report.format_mean_se([0.5, 0.7], scale=100) == "60.0 ± 10.0"
    assert study_report.format_mean_se([0.25]) == "0.2 ± –"  # one seed: no s.e.
    assert study_report.format_mean_se([None, float("nan"), 4.0]) == "4.0 ± –"
    assert study_report.format_mean_se([]) == "–"
    mean, se = study_report.mean_se([1.0, 2.0, 6.0])
    assert mean == 3.0 and math.isclose(se, math.sqrt(7) / math.sqrt(3))


def test_paired_differences_over_the_seeds_both_runs_have():
    ab = {0: 3.0, 1: 5.0, 2: None, 3: 1.0}
    base = {0: 1.0, 1: 4.0, 2: 2.0}
    differences = study_report.paired_differences(ab, base)
    assert differences == [2.0, 1.0]
    assert study_report.format_mean_se(differences) == "1.5 ± 0.5"


def test_colour_invariant_pixels_of_hand_made_images():
    size = 8
    uniform = normalize(np.full((1, size, size, 3), [0.2, 0.6, 0.9], np.float32))
    np.testing.assert_allclose(pixels.colour_invariant(uniform), 0.0, atol=1e-6)

    gray = np.full((size, size, 3), 0.5, np.float32)
    red, green = gray.copy(), gray.copy()
    red[2:4, 3:5] = [1.0, 0.0, 0.0]
    green[2:4, 3:5] = [0.0, 1.0, 0.0]
    features = pixels.colour_invariant(normalize(np.stack([red, green])))
    assert features.shape == (2, size * size)
    on_object = np.zeros((size, size), bool)
    on_object[2:4, 3:5] = True
    # The mean colour is gray moved towards the object by its area share f, so the object
    # lies (1 - f) d from it and the background f d (d = |red - gray|), equal across pixels.
    f, d = on_object.mean(), math.sqrt(3 * 0.5**2)
    np.testing.assert_allclose(features[0].reshape(size, size)[on_object], (1 - f) * d, rtol=1e-5)
    np.testing.assert_allclose(features[0].reshape(size, size)[~on_object], f * d, rtol=1e-5)
    # Another hue at the same distance from the background gives the same features.
    np.testing.assert_allclose(features[0], features[1], rtol=1e-6)
    assert pixels.raw(np.stack([red, green])).shape == (2, size * size * 3)


def test_wallclock_step_count():
    assert study_runs.wallclock_steps(500, 0.3, 0.2) == 750
    assert study_runs.wallclock_steps(6, 0.14, 0.1138) == 7  # round(7.38)
    assert study_runs.wallclock_steps(10, 0.01, 1.0) == 1  # at least one step
    with pytest.raises(ValueError):
        study_runs.wallclock_steps(10, 0.0, 1.0)


def test_step_time_is_the_median_after_the_first_window():
    records = [{"step": s, "perf/steps_per_sec": r} for s, r in ((2, 0.1), (4, 2), (6, 4), (8, 5))]
    assert study_runs.step_time(records) == 0.25  # median of 1/2, 1/4, 1/5


def test_override_flags_as_the_command_line_takes_them():
    flags = study_runs.override_flags(
        {"objective.gamma": 0.0, "ema.enabled": False, "env.scale": (0.1, 1.0), "x": "grid"}
    )
    assert flags == [
        "--config.objective.gamma=0.0",
        "--config.ema.enabled=False",
        "--config.env.scale=(0.1, 1.0, )",
        "--config.x=grid",
    ]
