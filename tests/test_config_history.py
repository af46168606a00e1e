"""config.json across resumes: changes kept and logged, data-order changes refused unless
permitted, and a refused run leaves config.json as it was. Smoke: 6 steps, saves at 2, 4, 6."""

import json
import os

import pytest
from conftest import SMOKE, copy_workdir, logged, run_main

from avrl_jax.config_history import (
    DataOrderChangeError,
    WorkerCountChangeError,
    changed_fields,
    check_resume,
    resolve_worker_counts,
)
from avrl_jax.data import pipeline
from configs import default


def test_changed_fields_are_dotted_and_skip_the_permission_flags():
    previous = {"a": 1, "b": {"c": [1, 2], "d": "x"}, "checkpoint": {"allow_fresh_start": False}}
    current = {"a": 1, "b": {"c": [1, 3], "e": 0}, "checkpoint": {"allow_fresh_start": True}}
    assert changed_fields(previous, current) == [
        ("b.c", [1, 2], [1, 3]),
        ("b.d", "x", "(absent)"),
        ("b.e", "(absent)", 0),
    ]


@pytest.mark.parametrize(
    "field, value",
    [
        ("seed", 1),
        ("annotation_batch_size", 24),
        ("bootstrap_batch_size", 12),
        ("data.name", "objects"),
        ("data.source_kwargs", {"canvas_size": 96}),
    ],
)
def test_every_data_order_field_is_refused_without_the_permission(tmp_path, field, value):
    config = default.get_config("smoke")
    (tmp_path / "config.json").write_text(json.dumps(config.to_dict(), default=str))
    node, name = config, field
    while "." in name:
        head, name = name.split(".", 1)
        node = node[head]
    with config.unlocked():
        node[name] = value
    with pytest.raises(DataOrderChangeError, match=field):
        check_resume(config, str(tmp_path), 6)
    with config.unlocked():
        config.checkpoint.allow_data_order_change = True
    assert [change[0] for change in check_resume(config, str(tmp_path), 6)][0].startswith(field)


@pytest.fixture(scope="module")
def trained(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("trained")
    run_main(workdir, check=True)
    return workdir


def test_a_resume_with_a_changed_learning_rate_keeps_the_previous_config(trained, tmp_path):
    workdir = copy_workdir(trained, tmp_path)
    previous = (workdir / "config.json").read_text()
    result = run_main(
        workdir, "--config.total_steps=8", "--config.optimizer.learning_rate=0.0005", check=True
    )
    assert "Resumed from step 6" in result.stderr
    kept = workdir / "config.6.json"
    assert kept.read_text() == previous
    assert "optimizer.learning_rate: 0.001 -> 0.0005" in result.stderr, result.stderr[-2000:]
    assert "total_steps: 6 -> 8" in result.stderr
    assert json.loads((workdir / "config.json").read_text())["optimizer"]["learning_rate"] == 5e-4
    assert max(logged(workdir)) == 8


def test_a_resume_with_another_batch_size_is_refused_and_changes_nothing(trained, tmp_path):
    workdir = copy_workdir(trained, tmp_path)
    previous = (workdir / "config.json").read_text()
    metrics = (workdir / "metrics.jsonl").read_text()
    result = run_main(workdir, "--config.total_steps=8", "--config.annotation_batch_size=8")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith("error: DataOrderChangeError: resuming"), result.stderr[-2000:]
    assert "annotation_batch_size 16 -> 8" in last and "allow_data_order_change" in last
    assert (workdir / "config.json").read_text() == previous
    assert (workdir / "metrics.jsonl").read_text() == metrics
    assert not os.path.exists(workdir / "config.6.json")

    # The permission, given on the command line, resumes with the new batch size.
    result = run_main(
        workdir,
        "--config.total_steps=8",
        "--config.annotation_batch_size=8",
        "--config.checkpoint.allow_data_order_change=True",
        check=True,
    )
    assert "Resumed from step 6" in result.stderr
    assert (workdir / "config.6.json").read_text() == previous
    assert json.loads((workdir / "config.json").read_text())["annotation_batch_size"] == 8


def test_smoke_is_what_the_tests_above_assume():
    config = default.get_config(SMOKE.split(":")[1])
    assert (config.total_steps, config.annotation_batch_size) == (6, 16)
    assert config.optimizer.learning_rate == 1e-3


def test_worker_count_minus_one_is_the_hosts_for_a_new_run_and_the_runs_own_on_resume(
    tmp_path, monkeypatch
):
    monkeypatch.setattr(pipeline, "host_worker_count", lambda: 3)
    config = default.get_config("smoke")
    assert config.data.worker_count == config.annotation_data.worker_count == -1
    resolve_worker_counts(config, str(tmp_path), resumes=False)  # a new run
    assert config.data.worker_count == config.annotation_data.worker_count == 3

    written = default.get_config("smoke")
    with written.unlocked():
        written.data.worker_count, written.annotation_data.worker_count = 5, -1
    (tmp_path / "config.json").write_text(json.dumps(written.to_dict(), default=str))
    config = default.get_config("smoke")
    resolve_worker_counts(config, str(tmp_path), resumes=True)
    assert (config.data.worker_count, config.annotation_data.worker_count) == (5, 3)
    config = default.get_config("smoke")
    config.data.worker_count = 5  # the same count, explicit: resumes
    resolve_worker_counts(config, str(tmp_path), resumes=True)
    config.data.worker_count = 2
    with pytest.raises(WorkerCountChangeError, match=r"data.worker_count=2: .* saved with 5 "):
        resolve_worker_counts(config, str(tmp_path), resumes=True)
    resolve_worker_counts(config, str(tmp_path), resumes=False)  # no checkpoint: a new run
    assert config.data.worker_count == 2


def test_a_resume_with_another_worker_count_is_refused_and_changes_nothing(trained, tmp_path):
    """Grain's iterator state is only valid for its own worker count: restoring the data
    position with another one would fail inside Grain, so the resume is refused first."""
    workdir = copy_workdir(trained, tmp_path)
    previous = (workdir / "config.json").read_text()
    kept = json.loads(previous)["data"]["worker_count"]
    assert kept == pipeline.host_worker_count()  # -1 was resolved and written
    other = kept + 1
    result = run_main(workdir, "--config.total_steps=8", f"--config.data.worker_count={other}")
    assert result.returncode == 1
    last = result.stderr.strip().splitlines()[-1]
    assert last.startswith(
        f"error: WorkerCountChangeError: resuming {workdir} with data.worker_count={other}"
    ), result.stderr[-2000:]
    assert f"--config.data.worker_count={kept}" in last and "Traceback" not in result.stderr
    assert (workdir / "config.json").read_text() == previous
