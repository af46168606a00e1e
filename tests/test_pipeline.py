"""Tests of the Grain input pipeline (avrl_jax.data.pipeline)."""

import numpy as np
import pytest
from conftest import assert_batches_equal, take

from avrl_jax.data import pipeline, scenes


class IdSource:
    """A cheap source: element i is a tiny image filled with i % 256 and its id."""

    def __init__(self, n: int):
        self.n = n

    def __len__(self) -> int:
        return self.n

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        return {"image": np.full((2, 2, 3), i % 256, np.uint8), "id": np.int64(i)}


def cat(batches, key: str) -> np.ndarray:
    return np.concatenate([b[key] for b in batches])


def test_scene_batches_shapes_and_dtypes():
    src = pipeline.make_source("scenes", "train", num_scenes=50, canvas_size=32)
    ds = pipeline.make_dataset(src, global_batch_size=6, seed=0, shuffle=False)
    (batch,) = take(ds, 1)
    expected = {
        "image": ((6, 32, 32, 3), np.uint8),
        "boxes": ((6, 4, 4), np.float32),
        "classes": ((6, 4), np.int32),
        "num_objects": ((6,), np.int32),
        "label": ((6,), np.int32),
        "background": ((6,), np.int32),
        "caption_bytes": ((6, scenes.MAX_CAPTION_LEN), np.uint8),
        "index": ((6,), np.int64),
    }
    assert {k: (v.shape, v.dtype) for k, v in batch.items()} == expected
    for j in range(6):  # unshuffled: batch row j is scene j, every field of it
        for key, value in src[j].items():
            np.testing.assert_array_equal(batch[key][j], value)


def test_objects_source_and_fields():
    src = pipeline.make_source("objects", "test", canvas_size=28)
    (batch,) = take(pipeline.make_dataset(src, global_batch_size=4, seed=0, fields=["label"]), 1)
    assert set(batch) == {"image", "index", "label"}
    assert batch["image"].shape == (4, 28, 28, 3)
    with pytest.raises(KeyError, match="nope"):
        take(pipeline.make_dataset(src, global_batch_size=4, seed=0, fields=["nope"]), 1)


def test_index_is_stream_position_and_epochs_are_permutations():
    n, g = 12, 4
    batches = take(pipeline.make_dataset(IdSource(n), global_batch_size=g, seed=3), 9)
    index, ids = cat(batches, "index"), cat(batches, "id")
    np.testing.assert_array_equal(index, np.arange(9 * g))
    epochs = ids.reshape(3, n)
    for epoch in epochs:
        np.testing.assert_array_equal(np.sort(epoch), np.arange(n))
    assert not np.array_equal(epochs[0], epochs[1])  # reshuffled each epoch
    assert not np.array_equal(epochs[0], np.arange(n))
    # The image is the element's own (the fields stay together).
    np.testing.assert_array_equal(cat(batches, "image")[:, 0, 0, 0], ids % 256)


def test_no_shuffle_and_finite_epochs():
    ds = pipeline.make_dataset(
        IdSource(10), global_batch_size=4, seed=0, shuffle=False, num_epochs=2
    )
    batches = list(ds)
    assert len(batches) == 5  # 20 stream positions, 5 full global batches
    np.testing.assert_array_equal(cat(batches, "id"), np.arange(20) % 10)
    np.testing.assert_array_equal(cat(batches, "index"), np.arange(20))
    # Same seed, same stream.
    again = list(
        pipeline.make_dataset(
            IdSource(10), global_batch_size=4, seed=0, shuffle=False, num_epochs=2
        )
    )
    np.testing.assert_array_equal(cat(again, "id"), cat(batches, "id"))


def test_union_over_hosts_is_the_single_host_stream():
    n, g, steps = 30, 8, 6
    single = take(pipeline.make_dataset(IdSource(n), global_batch_size=g, seed=7), steps)
    hosts = [
        take(
            pipeline.make_dataset(
                IdSource(n), global_batch_size=g, seed=7, process_index=p, process_count=2
            ),
            steps,
        )
        for p in range(2)
    ]
    for k in range(steps):
        assert hosts[0][k]["index"].shape == (g // 2,)
        for key in ("index", "id", "image"):
            joined = np.concatenate([hosts[0][k][key], hosts[1][k][key]])
            np.testing.assert_array_equal(joined, single[k][key])
    # Host p holds the p-th contiguous half of every global batch.
    np.testing.assert_array_equal(hosts[1][2]["index"], 2 * g + g // 2 + np.arange(g // 2))


def test_finite_stream_drops_partial_global_batch_on_every_host():
    kw = dict(global_batch_size=4, seed=0, num_epochs=1, process_count=2)
    lengths = [
        len(list(pipeline.make_dataset(IdSource(10), process_index=p, **kw))) for p in range(2)
    ]
    assert lengths == [2, 2]


def test_resume_from_state_gives_identical_batches():
    ds = pipeline.make_dataset(IdSource(20), global_batch_size=4, seed=1)
    it = iter(ds)
    for _ in range(7):  # past the first epoch boundary
        next(it)
    state = it.get_state()
    expected = [next(it) for _ in range(4)]
    resumed = iter(ds)
    resumed.set_state(state)
    for want in expected:
        assert_batches_equal(next(resumed), want)


def test_workers_resume_and_match_in_process_stream():
    # One multi-process run (spawned workers; tens of seconds on a busy 2-core machine).
    src = scenes.SceneSource("train", num_scenes=40, canvas_size=16)
    kw = dict(global_batch_size=4, seed=2, fields=["label"])
    reference = take(pipeline.make_dataset(src, **kw), 6)
    ds = pipeline.make_dataset(src, worker_count=2, **kw)
    it = iter(ds)
    first = [next(it) for _ in range(3)]
    state = it.get_state()
    rest = [next(it) for _ in range(3)]
    it.close()
    resumed = iter(ds)
    resumed.set_state(state)
    again = [next(resumed) for _ in range(3)]
    resumed.close()
    for got, want in zip(first + rest, reference, strict=True):
        assert_batches_equal(got, want)
    for got, want in zip(again, rest, strict=True):
        assert_batches_equal(got, want)


def test_worker_count_minus_one_is_sized_to_the_host():
    assert [pipeline.host_worker_count(n) for n in (1, 2, 4, 8, 12, 64, 240)] == [
        *(0, 0, 0, 4, 6),
        *(pipeline.MAX_AUTO_WORKERS,) * 2,
    ]
    assert pipeline.host_worker_count() >= 0
    src = IdSource(8)
    auto = take(pipeline.make_dataset(src, global_batch_size=4, seed=0, worker_count=-1), 2)
    plain = take(pipeline.make_dataset(src, global_batch_size=4, seed=0), 2)
    for got, want in zip(auto, plain, strict=True):
        assert_batches_equal(got, want)
    with pytest.raises(ValueError, match=r"worker_count must be >= 0 \(or -1: sized to the host"):
        pipeline.make_dataset(src, global_batch_size=4, seed=0, worker_count=-2)


def test_errors():
    with pytest.raises(ValueError, match=r"unknown source 'imagenet'.*'objects', 'scenes'"):
        pipeline.make_source("imagenet", "train")
    with pytest.raises(ValueError, match=r"global_batch_size \(6\).*process_count \(4\)"):
        pipeline.make_dataset(IdSource(10), global_batch_size=6, seed=0, process_count=4)
    with pytest.raises(ValueError, match="process_index"):
        pipeline.make_dataset(
            IdSource(10), global_batch_size=4, seed=0, process_index=2, process_count=2
        )


def test_absl_flags_marked_parsed_only_when_unparsed():
    from absl import flags

    pipeline.ensure_absl_flags_parsed()
    assert flags.FLAGS.is_parsed()
    pipeline.ensure_absl_flags_parsed()  # a no-op now, as under an absl app
    assert flags.FLAGS.is_parsed()


# to_canvas ---------------------------------------------------------------------------------


def test_to_canvas_centre_crops_the_shorter_side():
    wide = np.zeros((10, 30), np.uint8)
    wide[:, 10:20] = 200  # the centre square
    wide[:, 20:] = 50
    out = pipeline.to_canvas(wide, 10)
    assert out.shape == (10, 10, 3) and out.dtype == np.uint8
    assert np.all(out == 200)
    tall = np.zeros((40, 20, 3), np.uint8)
    tall[10:30] = (10, 20, 30)  # the centre square
    out = pipeline.to_canvas(tall, 5)
    np.testing.assert_array_equal(out[1:-1], np.broadcast_to((10, 20, 30), (3, 5, 3)))
    # As "resize, then crop": the antialiasing filter of the edge rows reaches just past the
    # square, into the black rows.
    assert np.all(out[0] < (10, 20, 30)) and np.all(out[0] > 0)


def test_to_canvas_antialiases_when_shrinking():
    checker = (np.indices((64, 64)).sum(0) % 2 * 255).astype(np.uint8)
    out = pipeline.to_canvas(checker, 8)
    assert np.all(np.abs(out.astype(int) - 127) <= 2)  # averaged, not aliased to 0 or 255


def test_to_canvas_converts_dtypes_and_channels():
    np.testing.assert_array_equal(pipeline.to_canvas(np.full((4, 4), 0.5), 2), 128)
    np.testing.assert_array_equal(pipeline.to_canvas(np.full((4, 4), 100.0), 2), 100)
    np.testing.assert_array_equal(pipeline.to_canvas(np.full((4, 4), 65535, np.uint16), 2), 255)
    np.testing.assert_array_equal(pipeline.to_canvas(np.ones((4, 4), bool), 2), 255)
    np.testing.assert_array_equal(pipeline.to_canvas(np.full((4, 4, 1), 7, np.int32), 3), 7)
    rgba = np.zeros((4, 4, 4), np.uint8)
    rgba[..., :3] = (0, 100, 200)
    np.testing.assert_array_equal(pipeline.to_canvas(rgba, 2), 255)  # transparent -> white
    rgba[..., 3] = 255
    np.testing.assert_array_equal(pipeline.to_canvas(rgba, 2)[0, 0], (0, 100, 200))
    gray_alpha = np.stack([np.full((3, 3), 40, np.uint8), np.full((3, 3), 255, np.uint8)], -1)
    np.testing.assert_array_equal(pipeline.to_canvas(gray_alpha, 4), 40)
    np.testing.assert_array_equal(pipeline.to_canvas(np.full((1, 1, 3), 9, np.uint8), 6), 9)


def test_to_canvas_rejects_bad_shapes():
    for bad in (np.zeros((0, 5), np.uint8), np.zeros((4, 4, 5), np.uint8), np.zeros(4)):
        with pytest.raises(ValueError):
            pipeline.to_canvas(bad, 8)


def test_curated_views_reads_labelled_object_views_of_the_training_scenes():
    from avrl_jax.train import stream_configs
    from configs import default

    config = default.get_config("curated_views")
    # As --config.data.source_kwargs.background_contrast=0.3 does: the annotation set follows.
    config.data.source_kwargs.background_contrast = 0.3
    data, _, fields = stream_configs(config)["annotation"]
    assert data.name == "object_views" and "label" in fields
    assert dict(data.source_kwargs) == dict(config.data.source_kwargs)
    views = pipeline.make_source(data.name, "train", **data.source_kwargs)
    train_scenes = pipeline.make_source(config.data.name, "train", **config.data.source_kwargs)
    assert isinstance(views, scenes.ObjectViewSource) and len(views) == len(train_scenes)
    for i in range(8):  # element i: one of scene i's objects, with its class
        scene = train_scenes[i]
        assert views[i]["label"] in scene["classes"][: int(scene["num_objects"])]
        assert views[i]["image"].shape == scene["image"].shape
