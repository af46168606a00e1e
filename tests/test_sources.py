"""The real-data sources on small real files made here: an image folder (JPEG/PNG/WebP), tar
shards with captions, an MP4 encoded by PyAV, a TFDS data set (tfds.testing.mock_data) and the
ingest's ArrayRecord output; per-host sharding, resumption, and a few train steps from each."""

import os
import pickle

import numpy as np
import pytest
import tensorflow_datasets as tfds
from conftest import assert_batches_equal, take
from data_builders import (
    caption_samples,
    encode,
    gradient,
    write_class_folder,
    write_mp4,
    write_tar_shard,
)
from PIL import Image

from avrl_jax.data import pipeline
from avrl_jax.data.records import IMAGE_EXTENSIONS, MAX_CAPTION_LEN, decode_text
from avrl_jax.ingest import IngestSpec, run_local

CANVAS = 32
REAL_SOURCES = ("image_folder", "caption_shards", "video", "tfds", "array_record")


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    """Small real inputs of every kind, built once for the module; {name: path}."""
    root = tmp_path_factory.mktemp("real")
    folder = str(root / "folder")
    labels = write_class_folder(folder, per_class=6)
    tars = root / "tars"
    long_caption = "a very long caption " * 20  # > 128 bytes: cut at the limit
    write_tar_shard(
        str(tars / "00000.tar"), caption_samples(0, 5) + [("000000005", None, "no image")]
    )
    write_tar_shard(
        str(tars / "00001.tar"),
        caption_samples(6, 3) + [("000000009", encode(gradient(20, 20, 9), "PNG"), long_caption)],
    )
    videos = root / "videos"
    write_mp4(str(videos / "kitchen_a.mp4"), num_frames=30, fps=10)
    write_mp4(str(videos / "kitchen_b.mp4"), num_frames=15, fps=10)
    ingested = str(root / "ingested")
    run_local(
        IngestSpec(kind="folder", input=folder, output=ingested, records_per_shard=5),
        progress=False,
    )
    return {
        "folder": folder,
        "labels": labels,
        "tars": str(tars),
        "long_caption": long_caption,
        "videos": str(videos),
        "ingested": ingested,
    }


def source_kwargs(name: str, data: dict) -> dict:
    paths = {
        "image_folder": data["folder"],
        "caption_shards": data["tars"],
        "video": data["videos"],
        "array_record": data["ingested"],
    }
    if name == "tfds":
        return dict(dataset="imagenet2012", canvas_size=CANVAS)
    extra = dict(fps=4.0) if name == "video" else {}
    return dict(path=paths[name], canvas_size=CANVAS, **extra)


def mock_tfds():
    return tfds.testing.mock_data(num_examples=12, policy=tfds.testing.MockPolicy.USE_CODE)


def make(name: str, data: dict):
    return pipeline.make_source(name, "train", **source_kwargs(name, data))


def first_batches(source, n: int, **kwargs) -> list[dict]:
    return take(pipeline.make_dataset(source, **{"global_batch_size": 4, "seed": 0, **kwargs}), n)


def test_image_folder_labels_formats_and_order(data):
    source = make("image_folder", data)
    assert source.class_names == ("cat", "dog")
    relpaths = source.reader.relpaths
    assert relpaths == sorted(data["labels"])  # recursive (cat/deep/0.jpg), sorted
    assert {os.path.splitext(p)[1] for p in relpaths} == {".jpg", ".png", ".webp"}
    for i, rel in enumerate(relpaths):
        element = source[i]
        assert element["label"] == data["labels"][rel]
        assert element["image"].shape == (CANVAS, CANVAS, 3) and element["bad_reason"] == 0
    # A split folder is used when present; files at the root get label -1.
    unlabeled = pipeline.make_source(
        "image_folder", "train", path=data["folder"], canvas_size=8, labels_from_subfolders=False
    )
    assert {int(unlabeled[i]["label"]) for i in range(len(unlabeled))} == {-1}


def test_image_folder_reads_every_listed_format_and_names_the_files_it_skips(tmp_path, caplog):
    """One file per extension in IMAGE_EXTENSIONS (written by PIL), an animated GIF (its first
    frame is read), and files of other types: skipped, counted and named."""
    colour = np.array([200, 30, 60], np.uint8)
    image = Image.fromarray(np.tile(colour, (24, 24, 1)))
    for ext in IMAGE_EXTENSIONS:
        saved = (
            image.convert("L") if ext == ".pgm" else image.convert("1") if ext == ".pbm" else image
        )
        saved.save(tmp_path / f"image{ext}", format=Image.registered_extensions()[ext])
    frames = [Image.new("RGB", (24, 24), c) for c in ((0, 0, 255), (255, 255, 0))]
    frames[0].save(tmp_path / "animated.gif", save_all=True, append_images=frames[1:])
    for name in ("notes.txt", "photo.heic", ".DS_Store"):
        (tmp_path / name).write_bytes(b"not read")

    with caplog.at_level("WARNING"):
        source = pipeline.make_source("image_folder", "train", path=str(tmp_path), canvas_size=8)
    assert len(source) == len(IMAGE_EXTENSIONS) + 1
    warning = " ".join(record.getMessage() for record in caplog.records)
    assert "skipped 2 file(s)" in warning and "notes.txt, photo.heic" in warning
    for i, relpath in enumerate(source.reader.relpaths):
        element = source[i]
        assert element["bad_reason"] == 0, relpath
        if relpath == "animated.gif":
            np.testing.assert_array_equal(element["image"][4, 4], [0, 0, 255])
        elif not relpath.endswith((".pgm", ".pbm")):
            np.testing.assert_allclose(element["image"][4, 4], colour, atol=4, err_msg=relpath)


def test_caption_shards_read_captions_and_count_missing_images(data):
    source = make("caption_shards", data)
    assert len(source) == 10
    keys = [source.reader.key(i) for i in range(10)]
    assert keys[0] == "00000.tar/000000000" and keys[-1] == "00001.tar/000000009"
    captions = [decode_text(source[i]["caption_bytes"]) for i in range(10)]
    assert captions[:5] == [f"caption {i}" for i in range(5)]
    assert source[5]["bad_reason"] > 0  # the sample without an image
    assert decode_text(source[5]["bad_key"]) == "00000.tar/000000005"
    expected = data["long_caption"].strip().encode()[:MAX_CAPTION_LEN].decode()
    assert captions[9] == expected and len(expected.encode()) == MAX_CAPTION_LEN
    assert all(source[i]["label"] == -1 for i in range(10))


def test_video_frames_sampled_at_the_rate_with_random_access(data):
    source = make("video", data)
    reader = source.reader
    # 3 s and 1.5 s of video at 4 samples/s -> 12 and 6 frames.
    assert len(reader) == 18 and reader.relpaths == ["kitchen_a.mp4", "kitchen_b.mp4"]
    assert reader.key(1) == "kitchen_a.mp4@0.200s"  # the last frame shown at 0.25 s (10 fps)
    # Frame k of the test video has red = 8 k; sample j of kitchen_a shows frame floor(2.5 j).
    reds = [int(source[i]["image"][..., 0].mean().round()) for i in range(12)]
    frames = [int(np.floor(j * 2.5 + 1e-9)) for j in range(12)]
    np.testing.assert_allclose(reds, [8 * k for k in frames], atol=3)
    # Random access (seek) and one sequential pass decode the same frames.
    sequential = {i: r.image for i, r in reader.sequential(0)}
    for i in (11, 0, 5):
        np.testing.assert_array_equal(reader.read(i).image, sequential[i])


def test_unreadable_video_is_skipped_and_listed(tmp_path):
    write_mp4(str(tmp_path / "ok.mp4"), num_frames=10, fps=10)
    (tmp_path / "broken.mp4").write_bytes(b"\x00\x00\x00\x18ftypmp42 not really")
    source = pipeline.make_source("video", "train", path=str(tmp_path), canvas_size=8, fps=2)
    assert len(source) == 2 and [p for p, _ in source.reader.unreadable] == ["broken.mp4"]


def test_tfds_data_source_through_mock_data():
    with mock_tfds():
        source = pipeline.make_source("tfds", "train", dataset="imagenet2012", canvas_size=16)
        assert len(source) == 12 and len(source.class_names) == 1000
        (batch,) = first_batches(source, 1, fields=("image", "index", "label"))
    assert batch["image"].shape == (4, 16, 16, 3)
    assert batch["label"].dtype == np.int32 and np.all(
        (0 <= batch["label"]) & (batch["label"] < 1000)
    )
    assert not batch["bad_reason"].any()


def test_array_record_source_equals_the_folder_it_came_from(data):
    ingested, folder = make("array_record", data), make("image_folder", data)
    assert len(ingested) == len(folder) and ingested.class_names == folder.class_names
    for i in range(len(folder)):  # ingest keeps the original bytes: identical canvases
        for key in ("image", "label", "caption_bytes"):
            np.testing.assert_array_equal(ingested[i][key], folder[i][key])


def test_array_record_refuses_an_unfinished_ingest(tmp_path):
    with pytest.raises(FileNotFoundError, match="ingest has not finished"):
        pipeline.make_source("array_record", "train", path=str(tmp_path), canvas_size=8)


@pytest.mark.parametrize("name", ["image_folder", "caption_shards", "video", "array_record"])
def test_sources_pickle_for_worker_processes(data, name):
    source = make(name, data)
    clone = pickle.loads(pickle.dumps(source))
    np.testing.assert_array_equal(clone[3]["image"], source[3]["image"])


@pytest.mark.parametrize("name", REAL_SOURCES)
def test_per_host_slices_union_to_the_single_host_stream_and_resume(data, name):
    with mock_tfds():
        source = make(name, data)
        single = first_batches(source, 3, seed=5)
        hosts = [
            first_batches(source, 3, seed=5, process_index=p, process_count=2) for p in range(2)
        ]
        for k in range(3):
            for key in ("index", "image", "label", "bad_reason"):
                joined = np.concatenate([hosts[0][k][key], hosts[1][k][key]])
                np.testing.assert_array_equal(joined, single[k][key])
        # Deterministic from the seed, and resumable from an iterator state.
        ds = pipeline.make_dataset(source, global_batch_size=4, seed=5)
        it = iter(ds)
        next(it)
        state = it.get_state()
        want = next(it)
        resumed = iter(ds)
        resumed.set_state(state)
        got = next(resumed)
    assert_batches_equal(got, want)
    np.testing.assert_array_equal(single[1]["image"], want["image"])


# Training --------------------------------------------------------------------------------


@pytest.fixture(scope="module")
def smoke_config():
    from configs import default

    config = default.get_config("smoke")
    config.total_steps = 2
    config.log_every = 1
    config.data.source_kwargs = dict(canvas_size=CANVAS)
    return config


def config_for(config, name: str, data: dict):
    config = config.copy_and_resolve_references()
    config.data.name = name
    config.data.source_kwargs = source_kwargs(name, data)
    return config


def test_two_train_steps_from_each_source(data, smoke_config):
    """One compiled update step (same shapes for every source) fed by each source's streams as
    the trainer builds them; bad-record fields are removed on the host first."""
    import jax

    from avrl_jax import sharding, train
    from avrl_jax.data.bad_records import BadRecordMonitor

    pipeline.ensure_absl_flags_parsed()
    mesh = sharding.make_mesh(smoke_config.mesh)
    trainer = train.build_trainer(smoke_config, mesh)
    state = trainer.state
    for name in REAL_SOURCES:
        config = config_for(smoke_config, name, data)
        monitor = BadRecordMonitor(max_bad_fraction=0.5, min_records=0)
        with mock_tfds():
            iterators = {k: iter(ds) for k, ds in train.make_streams(config).items()}
            for _ in range(2):
                local = {k: next(it) for k, it in iterators.items()}
                for batch in local.values():
                    monitor.update(batch)
                state, metrics = trainer.update(state, sharding.global_batch(local, mesh))
                metrics = jax.device_get(metrics)
                assert np.isfinite(metrics["loss"]), (name, metrics)
        assert monitor.num_seen == 2 * (config.annotation_batch_size + config.bootstrap_batch_size)
    assert int(state.step) == 2 * len(REAL_SOURCES)


def test_train_and_evaluate_on_ingested_data(data, smoke_config, tmp_path):
    """The whole loop (metrics, checkpoints) on the recommended path: ingest, then ArrayRecord."""
    from avrl_jax import train

    pipeline.ensure_absl_flags_parsed()
    config = config_for(smoke_config, "array_record", data)
    state = train.train_and_evaluate(config, str(tmp_path))
    assert int(state.step) == 2
    assert os.path.exists(tmp_path / "metrics.jsonl")
