"""Ingest (python -m avrl_jax.ingest): folders, caption shards and videos -> ArrayRecord shards;
verified, resumable after an interruption with identical output, the bad-record threshold, and
the Beam pipeline's output equal to the local mode's."""

import dataclasses
import hashlib
import importlib.util
import os
import subprocess
import sys

import numpy as np
import pytest
from data_builders import (
    BAD_REASONS,
    bad_images,
    caption_samples,
    write_class_folder,
    write_files,
    write_mp4,
    write_tar_shard,
)

from avrl_jax.data import bad_records, pipeline, record_format
from avrl_jax.ingest import IngestSpec, IngestVerificationError, plan, run_local, verify_output
from avrl_jax.ingest import writer as ingest_writer

# The bad-input folders are 7 bad files in 17: keep the run going to check the counts.
LENIENT = dict(max_bad_fraction=0.5)
REPO = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))


def digests(folder) -> dict[str, str]:
    """SHA-256 of every file an ingest leaves (shards, markers, metadata)."""
    out = {}
    for name in sorted(os.listdir(folder)):
        with open(os.path.join(folder, name), "rb") as f:
            out[name] = hashlib.sha256(f.read()).hexdigest()
    return out


@pytest.fixture
def folder_with_bad(tmp_path):
    root = tmp_path / "in"
    labels = write_class_folder(str(root), per_class=5)
    write_files(str(root), {f"dog/{k}": v for k, v in bad_images().items()})
    return str(root), labels


def test_folder_ingest_writes_verified_shards_and_metadata(folder_with_bad, tmp_path):
    root, labels = folder_with_bad
    out = str(tmp_path / "out")
    spec = IngestSpec(kind="folder", input=root, output=out, records_per_shard=4, **LENIENT)
    metadata = run_local(spec, progress=False)
    n_in = len(labels) + len(BAD_REASONS)
    assert metadata["num_records"] == len(labels) and metadata["num_bad"] == len(BAD_REASONS)
    expected = {}
    for reason in BAD_REASONS.values():
        expected[reason] = expected.get(reason, 0) + 1
    assert metadata["bad_counts"] == expected
    assert len(metadata["shards"]) == -(-n_in // 4)
    assert metadata["class_names"] == ["cat", "dog"]
    assert all(e.startswith("dog/") for e in metadata["bad_examples"])
    assert verify_output(out) == metadata
    # Training reads it back through Grain with random access, labels intact.
    source = pipeline.make_source("array_record", "train", path=out, canvas_size=8)
    keys = [source.reader.read(i).key for i in range(len(source))]
    assert keys == sorted(labels)
    assert [int(source[i]["label"]) for i in range(len(source))] == [labels[k] for k in keys]


def test_interrupted_ingest_resumes_to_identical_shards(folder_with_bad, tmp_path, monkeypatch):
    root, _ = folder_with_bad
    spec = dict(kind="folder", input=root, records_per_shard=3, **LENIENT)
    clean = str(tmp_path / "clean")
    run_local(IngestSpec(output=clean, **spec), progress=False)

    # Interrupt the second run in the middle of its third shard (as Ctrl-C or a kill would).
    resumed = str(tmp_path / "resumed")
    real_serialize = record_format.serialize
    calls = {"n": 0}

    def interrupting_serialize(record):
        calls["n"] += 1
        if calls["n"] == 8:
            raise KeyboardInterrupt
        return real_serialize(record)

    monkeypatch.setattr(record_format, "serialize", interrupting_serialize)
    with pytest.raises(KeyboardInterrupt):
        run_local(IngestSpec(output=resumed, **spec), progress=False)
    monkeypatch.setattr(record_format, "serialize", real_serialize)
    left = sorted(os.listdir(resumed))
    done = [n for n in left if n.endswith(record_format.DONE_SUFFIX)]
    assert len(done) == 2 and any(n.endswith(".tmp") for n in left)  # a half-written shard
    assert not any(n.endswith(".metadata.json") for n in left)
    marker_times = {n: os.stat(os.path.join(resumed, n)).st_mtime_ns for n in done}

    metadata = run_local(IngestSpec(output=resumed, **spec), progress=False)
    for name, mtime in marker_times.items():  # finished shards were skipped, not rewritten
        assert os.stat(os.path.join(resumed, name)).st_mtime_ns == mtime
    assert digests(resumed) == digests(clean)
    assert metadata == verify_output(clean)


def test_damaged_or_reconfigured_shards_are_redone(folder_with_bad, tmp_path):
    root, _ = folder_with_bad
    out = str(tmp_path / "out")
    spec = IngestSpec(kind="folder", input=root, output=out, records_per_shard=4, **LENIENT)
    run_local(spec, progress=False)
    before = digests(out)
    shard = os.path.join(out, record_format.shard_name("train", 1, len(before) // 2))
    with open(shard, "r+b") as f:  # flip a byte
        f.seek(100)
        byte = f.read(1)
        f.seek(100)
        f.write(bytes([byte[0] ^ 0xFF]))
    with pytest.raises(IngestVerificationError, match="changed since ingest"):
        verify_output(out)
    results = [ingest_writer.write_shard(spec, task) for task in plan(spec)[0]]
    assert [r["skipped"] for r in results].count(False) == 1
    assert digests(out) == before
    # Another max_pixels could change which records are kept: every shard is redone.
    stricter = dataclasses.replace(spec, max_pixels=500, max_bad_fraction=1.0)
    run_local(stricter, progress=False)
    assert verify_output(out)["bad_counts"]["too_many_pixels"] > 1


def test_threshold_stops_the_ingest_naming_examples(folder_with_bad, tmp_path):
    root, _ = folder_with_bad
    spec = IngestSpec(kind="folder", input=root, output=str(tmp_path / "out"), max_bad_fraction=0.2)
    with pytest.raises(bad_records.TooManyBadRecordsError) as info:
        run_local(spec, progress=False)
    message = str(info.value)
    assert f"{len(BAD_REASONS)} of " in message and "--max_bad_fraction" in message
    assert "dog/bomb.png: too_many_pixels" in message
    assert not os.path.exists(tmp_path / "out" / "train.metadata.json")


def test_caption_shards_ingest_keeps_captions(tmp_path):
    tars = tmp_path / "tars"
    write_tar_shard(str(tars / "00000.tar"), caption_samples(0, 4) + [("000000004", b"", "x")])
    write_tar_shard(str(tars / "00001.tar"), caption_samples(5, 3))
    out = str(tmp_path / "out")
    metadata = run_local(
        IngestSpec(kind="shards", input=str(tars), output=out, max_bad_fraction=0.5),
        progress=False,
    )
    assert [s["num_records"] for s in metadata["shards"]] == [4, 3]
    assert metadata["bad_counts"] == {"empty": 1}
    source = pipeline.make_source("array_record", "train", path=out, canvas_size=8)
    records = [source.reader.read(i) for i in range(len(source))]
    assert [r.caption for r in records] == [f"caption {i}" for i in (0, 1, 2, 3, 5, 6, 7)]
    assert records[4].key == "00001.tar/000000005"


def test_video_ingest_matches_the_video_source(tmp_path):
    videos = tmp_path / "videos"
    write_mp4(str(videos / "a.mp4"), num_frames=20, fps=10)
    write_mp4(str(videos / "b.mp4"), num_frames=10, fps=10)
    (videos / "c.mp4").write_bytes(b"not a video")
    out = str(tmp_path / "out")
    spec = IngestSpec(
        kind="videos",
        input=str(videos),
        output=out,
        fps=5.0,
        labels_from_subfolders=False,
        max_bad_fraction=0.5,
    )
    metadata = run_local(spec, progress=False)
    assert metadata["num_records"] == 10 + 5 and metadata["bad_counts"] == {"read_error": 1}
    ingested = pipeline.make_source("array_record", "train", path=out, canvas_size=16)
    direct = pipeline.make_source("video", "train", path=str(videos), canvas_size=16, fps=5.0)
    assert [ingested.reader.read(i).key for i in range(15)] == [
        direct.reader.key(i) for i in range(15)
    ]
    for i in range(15):  # the same frames, up to the JPEG encoding of ingest
        diff = np.abs(ingested[i]["image"].astype(int) - direct[i]["image"]).mean()
        assert diff < 3, (i, diff)


def test_cli_runs_in_parallel_then_resumes(tmp_path):
    root = str(tmp_path / "in")
    write_class_folder(root, per_class=4)
    out = str(tmp_path / "out")
    cmd = [sys.executable, "-m", "avrl_jax.ingest", "folder", root, out, "--records_per_shard=2"]
    first = subprocess.run([*cmd, "--workers=2"], cwd=REPO, capture_output=True, text=True)
    assert first.returncode == 0, first.stderr
    assert "8 records in 4 shards" in first.stdout and "verified" in first.stdout
    assert "4/4" in first.stderr  # the progress bar
    again = subprocess.run([*cmd, "--workers=0"], cwd=REPO, capture_output=True, text=True)
    assert again.returncode == 0 and "resumed=4" in again.stderr
    bad = subprocess.run(
        [*cmd, "--workers=0", "--verify_only", "--split=validation"],
        cwd=REPO,
        capture_output=True,
        text=True,
    )
    assert bad.returncode != 0 and "validation.metadata.json not found" in bad.stderr


def beam_python() -> str | None:
    """A Python with apache-beam: this one, or $AVRL_BEAM_PYTHON (a separate Beam environment,
    see avrl_jax/ingest/beam.py), else None."""
    if importlib.util.find_spec("apache_beam") is not None:
        return sys.executable
    return os.environ.get("AVRL_BEAM_PYTHON") or None


def test_beam_pipeline_output_equals_local_mode(folder_with_bad, tmp_path):
    python = beam_python()
    if python is None:
        pytest.skip(
            "apache-beam is not installed: apache-beam 2.77.0 requires pillow<13 and this "
            "environment pins pillow==13.0.0; set AVRL_BEAM_PYTHON to a Beam environment's "
            "python (avrl_jax/ingest/beam.py says how to make one) to run this test"
        )
    root, _ = folder_with_bad
    local, beam = str(tmp_path / "local"), str(tmp_path / "beam")
    run_local(
        IngestSpec(kind="folder", input=root, output=local, records_per_shard=4, **LENIENT),
        progress=False,
    )
    cmd = [python, "-m", "avrl_jax.ingest", "folder", root, beam, "--records_per_shard=4"]
    cmd += ["--max_bad_fraction=0.5", "--beam", "--", "--runner=DirectRunner"]
    result = subprocess.run(cmd, cwd=REPO, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    assert digests(beam) == digests(local)  # shards, markers and metadata, byte for byte
