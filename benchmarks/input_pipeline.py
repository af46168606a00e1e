r"""Input-pipeline throughput of every source type beside the train step's consumption.

Builds small real data sets in a temporary folder (JPEG photos cut from scikit-image's real
photographs at ImageNet-like sizes, the same images as img2dataset tar shards with captions,
H.264 videos panning over a photo, the ingest's ArrayRecord output, TFDS through
tfds.testing.mock_data), then times the Grain pipeline of each at the config's canvas size,
batch (annotation + bootstrap images of one step) and worker count, and prints images/s and
its ratio to the update step's images/s measured by benchmarks/train_step.py's `measure_step`
(> 1: the pipeline keeps up with the step).

  .venv/bin/python benchmarks/input_pipeline.py --config configs/default.py [--worker_count 2]
"""

import os
import sys
import tempfile
import time

import numpy as np
from absl import app, flags

sys.path.insert(0, os.path.dirname(os.path.abspath(__file__)))
import train_step  # noqa: E402  (the trainer's benchmark; defines --config and --steps)

from avrl_jax.data import pipeline  # noqa: E402

_BATCHES = flags.DEFINE_integer("batches", 20, "Timed batches per source (after 2 warm-up).")
_WORKERS = flags.DEFINE_integer(
    "worker_count", None, "Grain workers (-1: sized to this host); default: config.data's."
)
_NUM_IMAGES = flags.DEFINE_integer("num_images", 512, "Images in each generated data set.")
_SOURCES = flags.DEFINE_list(
    "sources",
    ["scenes", "image_folder", "caption_shards", "array_record", "video", "tfds"],
    "Source types to time.",
)
_SKIP_TRAIN = flags.DEFINE_bool("skip_train", False, "Do not time the train step.")

PHOTOS = ("astronaut", "coffee", "chelsea", "rocket", "immunohistochemistry", "retina")


def photo_crops(n: int, seed: int = 0) -> list[np.ndarray]:
    """n uint8 [H, W, 3] crops of real photos, 300-500 px a side (ImageNet's typical size)."""
    import skimage.data
    from PIL import Image

    rng = np.random.default_rng(seed)
    photos = [np.asarray(getattr(skimage.data, name)())[..., :3] for name in PHOTOS]
    out = []
    for i in range(n):
        photo = photos[i % len(photos)]
        h, w = photo.shape[:2]
        ch, cw = rng.integers(min(h, w) // 2, min(h, w), 2)
        top, left = rng.integers(0, h - ch + 1), rng.integers(0, w - cw + 1)
        size = tuple(int(x) for x in rng.integers(300, 500, 2))
        crop = Image.fromarray(photo[top : top + ch, left : left + cw]).resize(size)
        out.append(np.asarray(crop))
    return out


def build_data(root: str, n: int) -> dict[str, dict]:
    """Writes every input kind under root; {source name: source_kwargs without canvas_size}."""
    from data_builders import encode, write_files, write_tar_shard

    from avrl_jax.ingest import IngestSpec, run_local

    crops = photo_crops(n)
    jpegs = [encode(c, "JPEG", quality=90) for c in crops]
    folder = os.path.join(root, "folder")
    write_files(folder, {f"class{i % 10}/{i:06d}.jpg": data for i, data in enumerate(jpegs)})
    per_tar = 256
    for s in range(0, n, per_tar):
        samples = [(f"{i:09d}", jpegs[i], f"a photo number {i}") for i in range(s, s + per_tar)]
        write_tar_shard(os.path.join(root, "tars", f"{s // per_tar:05d}.tar"), samples[: n - s])
    ingested = os.path.join(root, "ingested")
    run_local(IngestSpec(kind="folder", input=folder, output=ingested), progress=False)
    write_videos(os.path.join(root, "videos"), crops[0])
    return {
        "image_folder": dict(path=folder),
        "caption_shards": dict(path=os.path.join(root, "tars")),
        "array_record": dict(path=ingested),
        "video": dict(path=os.path.join(root, "videos"), fps=4.0),
        "tfds": dict(dataset="imagenet2012"),
    }


def write_videos(folder: str, photo: np.ndarray, seconds: int = 10, fps: int = 30) -> None:
    """Two 640x360 H.264 videos (libx264 defaults: keyframe every 250 frames) panning over an
    upscaled photo: EpicKitchens-like frame size and GOP."""
    import av
    from PIL import Image

    big = np.asarray(Image.fromarray(photo).resize((1280, 720)))
    os.makedirs(folder, exist_ok=True)
    for v in range(2):
        with av.open(os.path.join(folder, f"video{v}.mp4"), "w") as container:
            stream = container.add_stream("libx264", rate=fps)
            stream.width, stream.height, stream.pix_fmt = 640, 360, "yuv420p"
            for k in range(seconds * fps):
                x = (k * 2 + v * 100) % (1280 - 640)
                frame = av.VideoFrame.from_ndarray(np.ascontiguousarray(big[180:540, x : x + 640]))
                for packet in stream.encode(frame):
                    container.mux(packet)
            for packet in stream.encode():
                container.mux(packet)


def time_source(name: str, kwargs: dict, batch: int, workers: int, batches: int) -> float:
    """Images/s of the pipeline (shuffled, as in training) over `batches` batches."""
    source = pipeline.make_source(name, "train", **kwargs)
    ds = pipeline.make_dataset(source, global_batch_size=batch, seed=0, worker_count=workers)
    it = iter(ds)
    for _ in range(2):  # warm-up: worker start, first reads
        next(it)
    start = time.perf_counter()
    for _ in range(batches):
        next(it)
    seconds = time.perf_counter() - start
    if hasattr(it, "close"):
        it.close()
    return batches * batch / seconds


def main(argv):
    del argv
    import tensorflow_datasets as tfds

    config = train_step._CONFIG.value
    canvas = config.data.source_kwargs["canvas_size"]
    batch = config.annotation_batch_size + (
        config.bootstrap_batch_size if config.objective.ab_weight > 0 else 0
    )
    workers = config.data.worker_count if _WORKERS.value is None else _WORKERS.value
    sys.path.insert(0, os.path.join(os.path.dirname(os.path.abspath(__file__)), "..", "tests"))
    results = {}
    with tempfile.TemporaryDirectory() as root:
        kwargs = build_data(root, _NUM_IMAGES.value)
        kwargs["scenes"] = dict(config.data.source_kwargs) if config.data.name == "scenes" else {}
        for name in _SOURCES.value:
            extra = dict(kwargs.get(name, {}))
            extra["canvas_size"] = canvas
            if name == "tfds":  # mock_data: random arrays, no JPEG decoding (no real TFDS here)
                with tfds.testing.mock_data(num_examples=_NUM_IMAGES.value):
                    results["tfds (mock)"] = time_source(name, extra, batch, 0, _BATCHES.value)
            else:
                results[name] = time_source(name, extra, batch, workers, _BATCHES.value)
    train_rate = None
    if not _SKIP_TRAIN.value:
        train_rate = train_step.measure_step(config, train_step._STEPS.value)["images_per_sec"]
    print(
        f"canvas {canvas}x{canvas}, batch {batch} images per step, {workers} Grain workers "
        f"(tfds mock: in-process), {os.cpu_count()} CPUs"
    )
    if train_rate:
        print(f"train step (AB, benchmarks/train_step.py measure_step): {train_rate:.1f} img/s")
    print(f"{'source':<18}{'img/s':>10}{'/ step':>10}")
    for name, rate in results.items():
        ratio = f"{rate / train_rate:>10.2f}" if train_rate else f"{'-':>10}"
        print(f"{name:<18}{rate:>10.1f}{ratio}")


if __name__ == "__main__":
    app.run(main)
