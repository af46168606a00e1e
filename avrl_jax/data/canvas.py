"""Decoded image -> fixed-size canvas: the one resize every source shares.

numpy + PIL only (no JAX): runs inside spawned Grain worker processes.
"""

from __future__ import annotations

import numpy as np
from PIL import Image


def _to_uint8(image: np.ndarray) -> np.ndarray:
    """Any numeric dtype -> uint8, same shape.

    bool -> {0, 255}; uint16 -> top 8 bits; other ints clipped to [0, 255]; floats are taken as
    [0, 1] when their maximum is <= 1 (the PIL/scikit-image convention), else as [0, 255].
    """
    if image.dtype == np.uint8:
        return image
    if image.dtype == np.bool_:
        return image.astype(np.uint8) * np.uint8(255)
    if image.dtype == np.uint16:
        return (image >> 8).astype(np.uint8)
    if np.issubdtype(image.dtype, np.integer):
        return np.clip(image, 0, 255).astype(np.uint8)
    if np.issubdtype(image.dtype, np.floating):
        x = np.nan_to_num(image.astype(np.float64), nan=0.0, posinf=255.0, neginf=0.0)
        if x.size and x.max() <= 1.0:
            x = x * 255.0
        return np.clip(np.rint(x), 0, 255).astype(np.uint8)
    raise ValueError(f"unsupported image dtype {image.dtype}")


def _to_rgb(image: np.ndarray) -> np.ndarray:
    """uint8 [H, W] / [H, W, 1|2|3|4] -> uint8 [H, W, 3]; alpha is composited over white."""
    if image.ndim == 2:
        image = image[..., None]
    channels = image.shape[-1]
    if channels in (2, 4):  # gray+alpha, RGB+alpha
        colour = image[..., :-1].astype(np.float32)
        alpha = image[..., -1:].astype(np.float32) / 255.0
        image = np.rint(colour * alpha + 255.0 * (1.0 - alpha)).astype(np.uint8)
        channels -= 1
    if channels == 1:
        return np.repeat(image, 3, axis=-1)
    if channels == 3:
        return image
    raise ValueError(f"expected 1-4 channels, got image of shape {image.shape}")


def to_canvas(image: np.ndarray, canvas_size: int) -> np.ndarray:
    """Any decoded image -> uint8 [S, S, 3]: resize the shorter side to S, centre-crop.

    Accepts [H, W] or [H, W, C] with C in 1..4 (grayscale, gray+alpha, RGB, RGBA; alpha is
    composited over white) of any numeric dtype (see _to_uint8). The resize is PIL's bilinear
    filter, which is antialiased when shrinking; only the centre square is resampled.
    """
    image = np.asarray(image)
    if canvas_size < 1:
        raise ValueError(f"canvas_size must be >= 1, got {canvas_size}")
    if image.ndim not in (2, 3) or image.shape[0] == 0 or image.shape[1] == 0:
        raise ValueError(f"expected a non-empty [H, W] or [H, W, C] image, got {image.shape}")
    rgb = np.ascontiguousarray(_to_rgb(_to_uint8(image)))
    h, w = rgb.shape[:2]
    side = min(h, w)
    left, top = (w - side) / 2, (h - side) / 2
    out = Image.fromarray(rgb).resize(
        (canvas_size, canvas_size),
        Image.Resampling.BILINEAR,
        box=(left, top, left + side, top + side),
    )
    return np.asarray(out, dtype=np.uint8)
