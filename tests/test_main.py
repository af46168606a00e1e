"""End to end: the real program runs a few steps and writes its metrics, config and events."""

import json
import os

import jax
import numpy as np
import pytest
from conftest import REPO, read_metrics, run_main

from avrl_jax.checkpointing import restore_params


def test_main_runs_a_few_steps(tmp_path):
    result = run_main(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [2, 4, 6]
    for record in records:
        for key in ("loss", "base/loss", "ab/loss", "perf/images_per_sec", "learning_rate"):
            assert key in record and isinstance(record[key], float), key
    assert 0.0 <= records[-1]["fewshot/count/2shot"] <= 1.0  # the in-loop few-shot signal
    config = json.load(open(tmp_path / "config.json"))
    assert config["objective"]["base"] == "simclr" and config["total_steps"] == 6
    # Training events are a TensorBoard run beside the probes' runs, not their parent folder.
    assert os.listdir(tmp_path / "tensorboard" / "train"), "no TensorBoard event file"
    assert not [f for f in os.listdir(tmp_path / "tensorboard") if f.startswith("events")]
    assert "step 6/6" in result.stdout and "img/s" in result.stdout and "ETA" in result.stdout
    assert "Total:" in result.stderr  # the parameter overview
    # A quiet console: no third-party INFO lines (Orbax's checkpoint manager, JAX's backend
    # search); they are all in the full log, WORKDIR/logs/train.log.
    info = [line for line in result.stderr.splitlines() if line.startswith("I")]
    assert info and all(" train.py:" in line for line in info), info[:5]
    full_log = (tmp_path / "logs" / "train.log").read_text()
    assert "checkpoint_manager.py" in full_log and "Parameters (" in full_log


def test_verbosity_flag_shows_every_info_line_on_the_console(tmp_path):
    result = run_main(tmp_path, "--verbosity=0", check=True)
    assert "checkpoint_manager.py" in result.stderr


def test_main_pretrains_then_probes_the_checkpoint_beside_a_random_encoder(tmp_path):
    """The README's main job: pretrain, then probe the pretrained and a random encoder."""
    from avrl_jax.models.build import build_encoder, load_train_config

    probe = [
        "--probe_config",
        os.path.join(REPO, "configs", "probe_objects.py"),
        "--probe_config.task.num_train=500",
        "--probe_config.task.num_test=300",
        "--probe_config.task.canvas_size=32",
        "--probe_config.linear.steps=200",
        "--probe_config.linear.learning_rates=(0.001,0.01)",
        "--probe_config.linear.weight_decays=(0.0,)",
        "--probe_config.map.enabled=False",
        "--probe_config.fewshot.shots=(5,)",
    ]
    result = run_main(tmp_path, *probe)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    runs = json.load(open(tmp_path / "probe_results.json"))["objects"]
    assert set(runs) == {"random_init", "6"}
    assert runs["6"]["encoder"] == "pretrained" and runs["6"]["step"] == 6
    for entry in runs.values():
        metrics = entry["metrics"]
        assert metrics["num_classes"] == 20 and metrics["num_test"] == 300
        assert metrics["majority_baseline"] < 0.1
        # Chance is 5%; even a briefly trained 1-layer encoder separates the object shapes.
        assert metrics["linear/accuracy"] > 0.25, (entry["encoder"], metrics)
        assert metrics["knn/accuracy_k20"] > 0.15, (entry["encoder"], metrics)
    # The pretrained column is the checkpoint's encoder (a partial restore), not the start.
    _, encoder = restore_params(str(tmp_path))
    _, params = restore_params(str(tmp_path), subtree=("params",))
    jax.tree.map(np.testing.assert_array_equal, encoder, params["encoder"])
    _, initial = build_encoder(load_train_config(str(tmp_path)))
    assert jax.tree.structure(encoder) == jax.tree.structure(initial)
    pairs = zip(jax.tree.leaves(encoder), jax.tree.leaves(initial), strict=True)
    changed = [not np.array_equal(a, b) for a, b in pairs]
    assert sum(changed) > len(changed) // 2, "six training steps left the encoder unchanged"
    header = [line for line in result.stdout.splitlines() if line.startswith("metric")][-1]
    assert header.split() == ["metric", "random_init", "6"]
    # The probe's read-only restore is quiet: no Orbax warnings that it is read-only.
    assert "read_only=True" not in result.stderr and "read only" not in result.stderr


@pytest.mark.parametrize(
    "override, message",
    [
        ("--config.model.encoder.variant=XL", "model.encoder.variant='XL'.*'Ti'"),
        ("--config.objective.base=mae", "objective.base='mae'.*'simclr'"),
        ("--config.data.name=imagenet", "data.name='imagenet'.*'scenes'"),
        ("--workdir=s3://bucket/run", "s3://bucket/run: a URL workdir must be gs://BUCKET/PATH"),
        ("--config.checkpoint.every_steps=0", "checkpoint.every_steps=0 must be"),
        # Command-line mistakes, caught while the flags are parsed (exit status 2).
        (
            "--config.optimizer.learnin_rate=1",
            "--config.optimizer.learnin_rate: the config has no field 'learnin_rate'; "
            'did you mean "learning_rate"',
        ),
        ("--config=configs/default.py:smok", r"unknown variants \['smok'\]; valid: smoke, "),
    ],
)
def test_bad_config_fails_at_start_naming_the_field(tmp_path, override, message):
    """One clear message on stderr, no traceback (that goes to WORKDIR/logs/ only)."""
    import re

    result = run_main(tmp_path, override)
    assert result.returncode in (1, 2)
    assert re.search(message, result.stderr), result.stderr[-2000:]
    assert "Traceback" not in result.stderr, result.stderr[-2000:]
    errors = [line for line in result.stderr.splitlines() if line.startswith("error: ")]
    assert len(errors) == 1, result.stderr[-2000:]
    assert not os.path.exists(os.path.join(REPO, "s3:")), "a URL workdir made a local folder"
