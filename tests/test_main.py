"""End to end: the real program runs a few steps and writes its metrics, config and events."""

import json
import os
import subprocess
import sys

import pytest

REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def run_main(workdir, *overrides):
    cmd = [
        sys.executable,
        "-m",
        "avrl_jax.main",
        "--config",
        "configs/default.py:smoke",
        "--workdir",
        str(workdir),
        *overrides,
    ]
    return subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)


def test_main_runs_a_few_steps(tmp_path):
    result = run_main(tmp_path)
    assert result.returncode == 0, result.stdout + result.stderr
    records = [json.loads(line) for line in open(tmp_path / "metrics.jsonl")]
    assert [r["step"] for r in records] == [2, 4, 6]
    for record in records:
        for key in ("loss", "base/loss", "ab/loss", "perf/images_per_sec", "learning_rate"):
            assert key in record and isinstance(record[key], float), key
    assert 0.0 <= records[-1]["fewshot/count/2shot"] <= 1.0  # the in-loop few-shot signal
    config = json.load(open(tmp_path / "config.json"))
    assert config["objective"]["base"] == "simclr" and config["total_steps"] == 6
    assert os.listdir(tmp_path / "tensorboard"), "no TensorBoard event file"
    assert "step 6/6" in result.stdout and "img/s" in result.stdout and "ETA" in result.stdout
    assert "Total:" in result.stderr  # the parameter overview


@pytest.mark.parametrize(
    "override, message",
    [
        ("--config.model.encoder.variant=XL", "model.encoder.variant='XL'.*'Ti'"),
        ("--config.objective.base=mae", "objective.base='mae'.*'simclr'"),
        ("--config.data.name=imagenet", "data.name='imagenet'.*'scenes'"),
        ("--workdir=gs://bucket/run", "workdir='gs://bucket/run': remote URLs are not supported"),
    ],
)
def test_bad_config_fails_at_start_naming_the_field(tmp_path, override, message):
    import re

    result = run_main(tmp_path, override)
    assert result.returncode != 0
    assert re.search(message, result.stderr), result.stderr[-2000:]
