"""Robust decoding, bad-record substitution and accounting (avrl_jax.data.decode, robust_source,
bad_records): every kind of bad input is skipped and counted, the run goes on, and the threshold
stops it with an error naming examples."""

import collections
import io
import re

import numpy as np
import pytest
from data_builders import BAD_REASONS, bad_images, encode, good_images, gradient, write_files
from PIL import Image

from avrl_jax.data import bad_records, decode, pipeline
from avrl_jax.data.canvas import to_canvas
from avrl_jax.data.records import Record, decode_text
from avrl_jax.data.robust_source import AllProbesBadError, RobustSource, probe_index

OPTIONS = decode.DecodeOptions(canvas_size=16)


def test_every_good_kind_decodes_to_the_right_canvas():
    images = good_images()
    canvases = {name: decode.decode_image(data, OPTIONS) for name, data in images.items()}
    for name, canvas in canvases.items():
        assert canvas.shape == (16, 16, 3) and canvas.dtype == np.uint8, name
    # Lossless formats match the resize of the original pixels exactly.
    np.testing.assert_array_equal(canvases["rgb.png"], to_canvas(gradient(40, 56, 0), 16))
    # Lossy ones come close.
    for lossy in ("rgb.jpg", "rgb.webp"):
        diff = np.abs(canvases[lossy].astype(int) - canvases["rgb.png"]).mean()
        assert diff < 4, (lossy, diff)
    # CMYK is converted back to (nearly) the RGB it came from.
    diff = np.abs(canvases["cmyk.jpg"].astype(int) - to_canvas(gradient(32, 32, 1), 16)).mean()
    assert diff < 6, diff
    # 16-bit grayscale keeps its top 8 bits, as gray RGB.
    gray16 = (np.arange(24 * 24, dtype=np.uint16).reshape(24, 24) * 100) >> 8
    np.testing.assert_array_equal(canvases["gray16.png"], to_canvas(gray16.astype(np.uint8), 16))
    # Half-transparent RGBA is composited over white: brighter than the colour alone.
    assert canvases["rgba.png"].mean() > to_canvas(gradient(20, 20, 3), 16).mean() + 40
    gray = canvases["gray.jpg"]
    np.testing.assert_array_equal(gray[..., 0], gray[..., 2])
    np.testing.assert_array_equal(canvases["one_pixel.png"], 200)
    np.testing.assert_array_equal(canvases["wide.png"], to_canvas(gradient(8, 240, 5), 16))
    # Palette images decode to their palette colours (close to the source).
    palette = canvases["palette.png"].astype(int)
    assert np.abs(palette - to_canvas(gradient(30, 30, 2), 16)).mean() < 12


@pytest.mark.parametrize("name", sorted(BAD_REASONS))
def test_every_bad_kind_is_rejected_with_its_reason(name):
    with pytest.raises(decode.BadRecordError) as info:
        decode.decode_image(bad_images()[name], OPTIONS)
    assert info.value.reason == BAD_REASONS[name]
    assert info.value.code == decode.REASON_CODES[BAD_REASONS[name]] > 0


def test_limits_are_configurable():
    data = encode(gradient(40, 50, 0), "PNG")
    with pytest.raises(decode.BadRecordError, match="too_many_pixels"):
        decode.decode_image(data, decode.DecodeOptions(canvas_size=8, max_pixels=1999))
    with pytest.raises(decode.BadRecordError, match="extreme_aspect"):
        decode.decode_image(data, decode.DecodeOptions(canvas_size=8, max_aspect_ratio=1.2))
    assert decode.decode_image(data, decode.DecodeOptions(canvas_size=8, max_pixels=2000)).shape


def test_arrays_get_the_same_checks():
    assert decode.array_to_canvas(np.zeros((5, 7), np.uint16), OPTIONS).shape == (16, 16, 3)
    for bad, reason in [
        (np.zeros((4, 4, 5), np.uint8), "bad_shape"),
        (np.zeros((0, 4, 3), np.uint8), "bad_shape"),
        (np.zeros(7, np.uint8), "bad_shape"),
        (np.zeros((1, 500), np.uint8), "extreme_aspect"),
        (np.zeros((4, 4), np.complex64), "bad_shape"),
    ]:
        with pytest.raises(decode.BadRecordError) as info:
            decode.array_to_canvas(bad, OPTIONS)
        assert info.value.reason == reason, bad.shape


def test_jpeg_draft_decoding_matches_the_full_decode():
    big = encode(np.kron(gradient(60, 80, 3), np.ones((8, 8, 1), np.uint8)), "JPEG", quality=95)
    fast = decode.decode_image(big, decode.DecodeOptions(canvas_size=32))
    full = decode.decode_image(big, decode.DecodeOptions(canvas_size=32, draft=False))
    assert np.abs(fast.astype(int) - full).mean() < 3


def test_exif_orientation_is_applied():
    image = Image.fromarray(gradient(20, 40, 1))
    exif = Image.Exif()
    exif[0x0112] = 6  # rotate 90 degrees clockwise when shown
    buffer = io.BytesIO()
    image.save(buffer, format="PNG", exif=exif)
    canvas = decode.decode_image(buffer.getvalue(), decode.DecodeOptions(canvas_size=20))
    rotated = to_canvas(np.asarray(image.transpose(Image.Transpose.ROTATE_270)), 20)
    np.testing.assert_array_equal(canvas, rotated)


# RobustSource ------------------------------------------------------------------------------


class BytesReader:
    """Records from a list of (key, bytes)."""

    def __init__(self, items):
        self.items = list(items)

    def __len__(self):
        return len(self.items)

    def key(self, i):
        return self.items[i][0]

    def read(self, i):
        key, data = self.items[i]
        if data is None:
            raise OSError("disk on fire")
        return Record(key=key, image=data, label=i, caption=f"caption {i}")


def mixed_items():
    """Good and bad records interleaved, with every bad kind plus a read error."""
    goods = [(f"good/{i}.png", encode(gradient(12, 12, i), "PNG")) for i in range(12)]
    bads = [(f"bad/{name}", data) for name, data in sorted(bad_images().items())]
    bads.append(("bad/unreadable.jpg", None))
    items = []
    for i, good in enumerate(goods):
        items.append(good)
        if i < len(bads):
            items.append(bads[i])
    return items


def expected_reasons(items):
    reasons = collections.Counter(
        BAD_REASONS[k.split("/")[1]] for k, d in items if "bad" in k and d is not None
    )
    reasons["read_error"] += sum(d is None for _, d in items)
    return reasons


def test_bad_records_are_substituted_deterministically_and_counted_once():
    items = mixed_items()
    source = RobustSource(BytesReader(items), canvas_size=8)
    elements = [source[i] for i in range(len(source))]
    for i, (key, _) in enumerate(items):
        e = elements[i]
        assert e["image"].shape == (8, 8, 3)
        if key.startswith("good"):
            assert e["bad_reason"] == 0 and not e["bad_key"].any()
            assert e["label"] == i and decode_text(e["caption_bytes"]) == f"caption {i}"
        else:
            assert e["bad_reason"] > 0 and decode_text(e["bad_key"]) == key
            # The substitute is a good record, the first good one of the fixed probe order.
            assert items[int(e["label"])][0].startswith("good")
    again = RobustSource(BytesReader(items), canvas_size=8)
    for i in range(len(items)):
        for k in elements[i]:
            np.testing.assert_array_equal(again[i][k], elements[i][k])
    counts = collections.Counter(decode.REASONS[int(e["bad_reason"])] for e in elements)
    del counts["ok"]
    assert counts == expected_reasons(items)


def test_probe_order_is_spread_out():
    # Hashed, not i + 1, i + 2, ...: a run of bad neighbours (a corrupt shard) is jumped over.
    probes = [probe_index(5, k, 1000) for k in range(1, 17)]
    assert all(0 <= p < 1000 for p in probes)
    assert len(set(probes)) >= 14  # a few hash collisions are fine
    assert sum(abs(p - 5) < 20 for p in probes) <= 2


def test_all_bad_raises_a_clear_error_naming_several_examples_and_the_settings():
    items = [(f"x{i}.jpg", b"junk") for i in range(40)]
    source = RobustSource(BytesReader(items), canvas_size=8, max_probes=6)
    with pytest.raises(AllProbesBadError) as raised:
        source[2]
    message = str(raised.value)
    assert message.startswith("record 2 and its 6 substitutes are all bad (x2.jpg: not_image")
    assert len(re.findall(r"x\d+\.jpg: not_image", message)) == 4 and "; and 3 more" in message
    assert "data.source_kwargs.max_probes" in message and "now 6" in message
    assert "data.max_bad_fraction" in message


def test_pipeline_run_continues_with_the_right_counts_then_stops_at_the_threshold(tmp_path):
    """Every bad kind in a real folder, through the Grain pipeline (two shuffled epochs)."""
    num_good = 20 - len(BAD_REASONS)  # 20 files: whole batches of 4, nothing dropped
    write_files(
        tmp_path, {f"good/{i}.png": encode(gradient(10, 14, i), "PNG") for i in range(num_good)}
    )
    write_files(tmp_path, {f"bad/{k}": v for k, v in bad_images().items()})
    source = pipeline.make_source("image_folder", "train", path=str(tmp_path), canvas_size=8)
    assert len(source) == 20
    ds = pipeline.make_dataset(
        source, global_batch_size=4, seed=3, num_epochs=2, fields=("image", "index", "label")
    )
    monitor = bad_records.BadRecordMonitor(max_bad_fraction=0.5, min_records=0)
    num_batches = 0
    for batch in ds:
        assert batch["image"].shape == (4, 8, 8, 3)  # batches stay full
        monitor.update(batch)
        assert "bad_reason" not in batch and "bad_key" not in batch  # removed for the device
        num_batches += 1
    assert num_batches == 10 and monitor.num_seen == 40
    metrics = monitor.metrics()
    expected = collections.Counter(BAD_REASONS.values())
    for reason in decode.REASONS[1:]:
        assert metrics[f"data/bad/{reason}"] == 2 * expected[reason], reason  # once per epoch
    assert metrics["data/bad_records"] == 2 * len(BAD_REASONS)
    assert metrics["data/bad_fraction"] == len(BAD_REASONS) / 20
    # Over the same stream, a stricter limit stops the run, naming examples.
    strict = bad_records.BadRecordMonitor(max_bad_fraction=0.1, min_records=8)
    with pytest.raises(bad_records.TooManyBadRecordsError) as info:
        for batch in ds:
            strict.update(batch)
    message = str(info.value)
    assert "above max_bad_fraction=10.00%" in message and "data.max_bad_fraction" in message
    named = [k for k in BAD_REASONS if f"bad/{k}: {BAD_REASONS[k]}" in message]
    assert named, message


def test_monitor_counts_and_min_records():
    monitor = bad_records.BadRecordMonitor(max_bad_fraction=0.2, min_records=12)
    key = np.zeros((4, 128), np.uint8)
    key[1, :5] = np.frombuffer(b"a.jpg", np.uint8)
    code = decode.REASON_CODES["truncated"]
    batch = {"image": 0, "bad_reason": np.array([0, code, 0, 0], np.int32), "bad_key": key}
    monitor.update(batch)
    assert set(batch) == {"image"}
    assert monitor.metrics()["data/bad/truncated"] == 1.0
    assert monitor.metrics()["data/bad_fraction"] == 0.25
    # 2 of 8 is above 20%, but fewer than min_records seen: not judged yet.
    monitor.update({"bad_reason": np.array([code, 0, 0, 0], np.int32), "bad_key": key})
    with pytest.raises(bad_records.TooManyBadRecordsError, match=r"3 of 12 .*a\.jpg: truncated"):
        monitor.update({"bad_reason": np.array([code, 0, 0, 0], np.int32), "bad_key": key})
    untouched = {"image": 1}
    monitor.update(untouched)  # embedded sources have no bad fields: a no-op
    assert untouched == {"image": 1}
