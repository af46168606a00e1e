"""metrics.jsonl on resume: one consistent history, even after a record was cut short."""

import importlib.util
import json
import logging
import os

import pytest
from conftest import cpu_env, read_metrics, run_python

from avrl_jax.metrics_writer import MetricWriter, drop_records_after


def write_lines(path, lines):
    path.write_text("".join(line + "\n" for line in lines))


def test_resume_drops_records_past_the_restored_step(tmp_path):
    path = tmp_path / "metrics.jsonl"
    write_lines(path, [json.dumps({"step": s, "loss": 1.0 / s}) for s in (2, 4, 6)])
    drop_records_after(str(path), 4)
    assert [record["step"] for record in read_metrics(tmp_path)] == [2, 4]


def test_a_record_cut_short_is_dropped_with_a_warning_not_a_crash(tmp_path, caplog):
    path = tmp_path / "metrics.jsonl"
    whole = [json.dumps({"step": s, "loss": 0.5}) for s in (2, 4)]
    write_lines(path, [*whole, '{"step": 6, "lo'])  # the machine went down mid-write
    with caplog.at_level(logging.WARNING):
        writer = MetricWriter(str(tmp_path), resume_step=4)
    writer.write_scalars(6, {"loss": 0.25})
    writer.close()
    records = read_metrics(tmp_path)
    assert [r["step"] for r in records] == [2, 4, 6] and records[-1]["loss"] == 0.25
    assert "dropping lines [3]" in caplog.text and str(path) in caplog.text
    assert not (tmp_path / "metrics.jsonl.tmp").exists()


TENSORBOARD_WITHOUT_TORCH = """
import glob, sys
from avrl_jax.metrics_writer import MetricWriter
writer = MetricWriter(sys.argv[1])
writer.write_scalars(1, {"loss": 0.5})
writer.close()
assert glob.glob(sys.argv[1] + "/tensorboard/train/events.out.tfevents.*")
print("torch imported:", "torch" in sys.modules)
import torch  # still importable afterwards
print("torch after:", torch.__name__)
"""


@pytest.mark.skipif(
    importlib.util.find_spec("torch") is None, reason="torch is not installed (test extra)"
)
def test_tensorboard_events_are_written_without_importing_torch(tmp_path):
    # tensorboardX imports torch whenever it is installed; a run must not pay for it.
    result = run_python(TENSORBOARD_WITHOUT_TORCH, str(tmp_path), env=cpu_env(1))
    assert result.returncode == 0, result.stderr[-3000:]
    assert "torch imported: False" in result.stdout
    assert "torch after: torch" in result.stdout


WANDB_STUB = """
import json, os
LOG = os.environ["WANDB_STUB_LOG"]
def _write(kind, **data):
    with open(LOG, "a") as f:
        f.write(json.dumps({"kind": kind, **data}, default=str) + "\\n")
class Image:
    def __init__(self, array):
        self.shape = list(array.shape)
class _Run:
    def log(self, data, step):
        _write("log", step=step, keys=sorted(data))
    def finish(self):
        _write("finish")
def init(**kwargs):
    config = kwargs.pop("config")
    _write("init", **kwargs, has_config=bool(config))
    return _Run()
"""


def test_wandb_flag_logs_every_record_to_a_run_named_by_the_workdir(tmp_path):
    """--wandb through a stand-in `wandb` module (the real one is not a dependency); without
    the package the run stops with one line saying how to install it."""
    from conftest import run_main

    from avrl_jax.metrics_writer import wandb_run_id

    stub = tmp_path / "stub"
    stub.mkdir()
    (stub / "wandb.py").write_text(WANDB_STUB)
    log = tmp_path / "wandb_calls.jsonl"
    env = dict(os.environ, PYTHONPATH=str(stub), WANDB_STUB_LOG=str(log))
    workdir = tmp_path / "run"
    run_main(workdir, "--wandb", "--config.image_summaries.every_steps=4", env=env, check=True)
    calls = [json.loads(line) for line in log.read_text().splitlines()]
    init = calls[0]
    assert init["kind"] == "init" and init["id"] == wandb_run_id(str(workdir))
    assert init["resume"] == "allow" and init["project"] == "avrl_jax" and init["has_config"]
    logs = [c for c in calls if c["kind"] == "log"]
    assert [c["step"] for c in logs if "loss" in c["keys"]] == [2, 4, 6]
    assert any("values/probe_scene" in c["keys"] for c in logs)
    assert calls[-1]["kind"] == "finish"
    saved = json.load(open(workdir / "config.json"))
    assert saved["wandb"]["enabled"] is True

    result = run_main(tmp_path / "no_wandb", "--wandb")
    assert result.returncode == 1 and "pip install wandb" in result.stderr
    assert "Traceback" not in result.stderr
