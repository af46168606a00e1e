"""Small real files built on the fly for the real-data tests: PIL-encoded JPEG/PNG/WebP images
(good and every kind of bad), img2dataset-style tar shards, and an MP4 encoded with PyAV."""

from __future__ import annotations

import functools
import io
import os
import tarfile

import numpy as np
from PIL import Image


def gradient(height: int, width: int, seed: int) -> np.ndarray:
    """A smooth, distinct uint8 [H, W, 3] test picture (compresses well, survives JPEG)."""
    y, x = np.mgrid[0:height, 0:width].astype(np.float32)
    rng = np.random.default_rng(seed)
    a, b, c = rng.uniform(0.2, 1.0, 3)
    image = np.stack(
        [x / max(width - 1, 1) * 255 * a, y / max(height - 1, 1) * 255 * b, (x + y) % 64 * 4 * c],
        -1,
    )
    return image.astype(np.uint8)


def encode(image: Image.Image | np.ndarray, fmt: str, **kwargs) -> bytes:
    if isinstance(image, np.ndarray):
        image = Image.fromarray(image)
    buffer = io.BytesIO()
    image.save(buffer, format=fmt, **kwargs)
    return buffer.getvalue()


def good_images() -> dict[str, bytes]:
    """Well-formed images of the kinds real corpora hold; all must decode."""
    rgb = gradient(40, 56, 0)
    cmyk = Image.fromarray(gradient(32, 32, 1)).convert("CMYK")
    gray16 = (np.arange(24 * 24, dtype=np.uint16).reshape(24, 24) * 100).astype(np.uint16)
    palette = Image.fromarray(gradient(30, 30, 2)).convert("P", palette=Image.Palette.ADAPTIVE)
    rgba = np.dstack([gradient(20, 20, 3), np.full((20, 20), 128, np.uint8)])
    return {
        "rgb.jpg": encode(rgb, "JPEG", quality=90),
        "rgb.png": encode(rgb, "PNG"),
        "rgb.webp": encode(rgb, "WEBP", quality=90),
        "cmyk.jpg": encode(cmyk, "JPEG"),
        "gray16.png": encode(Image.fromarray(gray16), "PNG"),
        "palette.png": encode(palette, "PNG"),
        "rgba.png": encode(rgba, "PNG"),
        "gray.jpg": encode(gradient(24, 24, 4)[..., 0], "JPEG"),
        "one_pixel.png": encode(np.full((1, 1, 3), 200, np.uint8), "PNG"),
        "wide.png": encode(gradient(8, 240, 5), "PNG"),  # 30:1, within the aspect limit
    }


@functools.lru_cache(maxsize=1)
def bomb_png(side: int = 14_000) -> bytes:
    """A 1-bit PNG declaring side x side pixels (196 MP, past PIL's own 179 MP bomb limit) in
    about 25 kB: a decompression bomb."""
    return encode(Image.new("1", (side, side)), "PNG", compress_level=9)


# Each bad file and the reason it must be counted under.
BAD_REASONS = {
    "truncated.jpg": "truncated",
    "truncated_scan.jpg": "truncated",
    "truncated.png": "truncated",
    "html.jpg": "not_image",
    "empty.png": "empty",
    "bomb.png": "too_many_pixels",
    "banner.png": "extreme_aspect",
}


def bad_images() -> dict[str, bytes]:
    full = encode(gradient(64, 64, 6), "JPEG", quality=90)
    png = encode(gradient(64, 64, 7), "PNG")
    return {
        "truncated.jpg": full[: len(full) // 2],
        "truncated_scan.jpg": full[: len(full) * 9 // 10],  # headers intact, scan data cut
        "truncated.png": png[: len(png) // 2],
        "html.jpg": b"<html><body>404 Not Found</body></html>",
        "empty.png": b"",
        "bomb.png": bomb_png(),
        "banner.png": encode(np.zeros((2, 600, 3), np.uint8), "PNG"),  # 300:1
    }


def write_files(folder: str, files: dict[str, bytes]) -> list[str]:
    os.makedirs(folder, exist_ok=True)
    for name, data in files.items():
        path = os.path.join(folder, name)
        os.makedirs(os.path.dirname(path), exist_ok=True)
        with open(path, "wb") as f:
            f.write(data)
    return sorted(files)


def write_class_folder(root: str, per_class: int = 4, size: int = 24) -> dict[str, int]:
    """root/{cat,dog}/*.{jpg,png,webp} plus a nested file; returns {relpath: label}."""
    labels = {}
    formats = (("jpg", "JPEG"), ("png", "PNG"), ("webp", "WEBP"))
    for label, name in enumerate(("cat", "dog")):
        for i in range(per_class):
            ext, fmt = formats[i % 3]
            rel = os.path.join(name, "deep" if i == 0 else "", f"{i}.{ext}")
            rel = os.path.normpath(rel)
            write_files(root, {rel: encode(gradient(size, size + i, 10 * label + i), fmt)})
            labels[rel] = label
    return labels


def write_tar_shard(
    path: str, samples: list[tuple[str, bytes | None, str]], ext: str = "jpg"
) -> None:
    """An img2dataset-style shard: per sample key.<ext> (if bytes given), key.txt, key.json."""
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with tarfile.open(path, "w", format=tarfile.USTAR_FORMAT) as tar:
        for key, image, caption in samples:
            parts = [(f"{key}.txt", caption.encode()), (f"{key}.json", b'{"status": "success"}')]
            if image is not None:
                parts.insert(0, (f"{key}.{ext}", image))
            for name, data in parts:
                info = tarfile.TarInfo(name)
                info.size = len(data)
                info.mtime = 0  # reproducible bytes
                tar.addfile(info, io.BytesIO(data))


def caption_samples(start: int, count: int, size: int = 32) -> list[tuple[str, bytes, str]]:
    return [
        (f"{i:09d}", encode(gradient(size, size + 8, i), "JPEG", quality=90), f"caption {i}")
        for i in range(start, start + count)
    ]


def write_mp4(path: str, num_frames: int, fps: int = 10, size: tuple[int, int] = (48, 64)):
    """An H.264 MP4 whose frame k is a flat colour with red = 8 k (so frames are identifiable).

    Returns the uint8 [num_frames, H, W, 3] frames as encoded (before compression).
    """
    import av

    height, width = size
    frames = np.zeros((num_frames, height, width, 3), np.uint8)
    frames[..., 0] = (np.arange(num_frames) * 8 % 256)[:, None, None]
    frames[..., 1] = 60
    os.makedirs(os.path.dirname(path), exist_ok=True)
    with av.open(path, "w") as container:
        stream = container.add_stream("libx264", rate=fps)
        stream.width, stream.height, stream.pix_fmt = width, height, "yuv420p"
        stream.options = {"g": "5", "crf": "10"}  # keyframe every 5 frames: seeks are tested
        for frame in frames:
            for packet in stream.encode(av.VideoFrame.from_ndarray(frame, format="rgb24")):
                container.mux(packet)
        for packet in stream.encode():
            container.mux(packet)
    return frames
