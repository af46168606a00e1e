"""Robust image decoding: bytes or arrays -> uint8 [S, S, 3] canvas, or a `BadRecordError`.

Real corpora hold truncated files, HTML error pages saved as `.jpg`, zero-byte files, images
with absurd declared sizes (decompression bombs), CMYK, 16-bit, palette, alpha and grayscale
images, 1x1 pixels and long thin banners. Every input either decodes to a correct RGB canvas or
raises `BadRecordError` with one of `REASONS`, which the sources count and skip; nothing else
escapes, so one bad file never stops a run.

numpy + PIL only (no JAX): runs inside spawned Grain worker processes.
"""

from __future__ import annotations

import dataclasses
import io
import math
import warnings

import numpy as np
from PIL import Image, ImageOps, UnidentifiedImageError

from avrl_jax.data.canvas import to_canvas

# Why a record was skipped. Index 0 means "not skipped"; the others are the `bad_reason` codes
# that sources emit and the metrics count (`data/bad/<reason>`).
REASONS: tuple[str, ...] = (
    "ok",
    "read_error",  # the file or record could not be read (I/O error, missing member, ...)
    "empty",  # zero bytes
    "not_image",  # bytes PIL does not recognise as any image format
    "truncated",  # a recognised image whose data ends early
    "corrupt",  # a recognised image that fails to decode for another reason
    "too_many_pixels",  # width * height above the pixel limit (decompression bombs)
    "extreme_aspect",  # max(w, h) / min(w, h) above the aspect limit
    "bad_shape",  # a decoded array that is not an [H, W] / [H, W, 1..4] image
)
REASON_CODES: dict[str, int] = {name: code for code, name in enumerate(REASONS)}

# 2**26 = 67 MP (8192 x 8192): below PIL's own bomb warning (89 MP), far above any real photo
# in CC12M, COCO or ImageNet. PIL raises its own DecompressionBombError beyond 2 x 89 MP
# whatever this limit says; both count as `too_many_pixels`.
DEFAULT_MAX_PIXELS = 2**26
# Banners and corrupt headers (e.g. 1 x 5000) carry nothing a centre crop can use.
DEFAULT_MAX_ASPECT_RATIO = 100.0


class BadRecordError(Exception):
    """A record that cannot become a canvas. `reason` is one of REASONS (not "ok")."""

    def __init__(self, reason: str, detail: str = ""):
        if reason not in REASON_CODES or reason == "ok":
            raise ValueError(f"unknown bad-record reason {reason!r}; valid: {REASONS[1:]}")
        super().__init__(f"{reason}: {detail}" if detail else reason)
        self.reason = reason
        self.detail = detail

    @property
    def code(self) -> int:
        return REASON_CODES[self.reason]


@dataclasses.dataclass(frozen=True)
class DecodeOptions:
    """How records become canvases.

    Attributes:
      canvas_size: S, the side of the uint8 [S, S, 3] output.
      max_pixels: images with more pixels (width * height, read from the header before any
        pixel is decoded) are skipped as `too_many_pixels`.
      max_aspect_ratio: images longer than this many times their width (or wider than this many
        times their height) are skipped as `extreme_aspect`.
      draft: let the JPEG decoder downscale by 1/2, 1/4 or 1/8 while decoding (DCT scaling)
        when the result still covers the canvas; several times faster on large photos.
    """

    canvas_size: int
    max_pixels: int = DEFAULT_MAX_PIXELS
    max_aspect_ratio: float = DEFAULT_MAX_ASPECT_RATIO
    draft: bool = True

    def __post_init__(self):
        if self.canvas_size < 1:
            raise ValueError(f"canvas_size must be >= 1, got {self.canvas_size}")
        if self.max_pixels < 1 or self.max_aspect_ratio < 1:
            raise ValueError(
                f"max_pixels ({self.max_pixels}) and max_aspect_ratio "
                f"({self.max_aspect_ratio}) must be >= 1"
            )


def check_size(width: int, height: int, options: DecodeOptions) -> None:
    """Raises BadRecordError for zero-size, too-large or too-elongated dimensions."""
    if width < 1 or height < 1:
        raise BadRecordError("bad_shape", f"size {width}x{height}")
    if width * height > options.max_pixels:
        raise BadRecordError(
            "too_many_pixels", f"{width}x{height} > max_pixels={options.max_pixels}"
        )
    if max(width, height) / min(width, height) > options.max_aspect_ratio:
        raise BadRecordError(
            "extreme_aspect", f"{width}x{height} > max_aspect_ratio={options.max_aspect_ratio}"
        )


def _decode_error(error: Exception) -> BadRecordError:
    """PIL's exception -> `truncated` (data ends early) or `corrupt` (anything else)."""
    message = f"{type(error).__name__}: {error}"
    if "truncated" in str(error).lower() or isinstance(error, EOFError):
        return BadRecordError("truncated", message)
    return BadRecordError("corrupt", message)


def open_image(data: bytes, options: DecodeOptions) -> Image.Image:
    """Encoded bytes -> a PIL image whose header passed the checks (pixels not decoded yet)."""
    if len(data) == 0:
        raise BadRecordError("empty", "0 bytes")
    with warnings.catch_warnings():
        # Our own max_pixels check below decides; PIL's warning would only be noise.
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as e:
            raise BadRecordError("too_many_pixels", str(e)) from None
        except UnidentifiedImageError:
            raise BadRecordError("not_image", f"{len(data)} bytes, starts {data[:8]!r}") from None
        except Exception as e:  # PIL raises many types on malformed headers
            raise _decode_error(e) from None
    check_size(*image.size, options)
    return image


def load_image(image: Image.Image) -> Image.Image:
    """Decodes the pixels (PIL is lazy) and applies the EXIF orientation."""
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        try:
            image.load()
            return ImageOps.exif_transpose(image)
        except Image.DecompressionBombError as e:
            raise BadRecordError("too_many_pixels", str(e)) from None
        except Exception as e:
            raise _decode_error(e) from None


def pil_to_array(image: Image.Image) -> np.ndarray:
    """A loaded PIL image of any mode -> [H, W] / [H, W, 2|3|4] array that to_canvas accepts.

    CMYK, YCbCr, LAB, HSV -> RGB; palette -> RGB or RGBA (if it has transparency); 1-bit -> L;
    16-bit (I;16*) -> uint16; 32-bit int (I) holding 16-bit data -> uint16; float (F) as is.
    """
    mode = image.mode
    if mode in ("L", "LA", "RGB", "RGBA", "F") or mode.startswith("I;16"):
        return np.asarray(image)
    if mode == "I":
        values = np.asarray(image).astype(np.int64)
        # PIL reads 16-bit grayscale from some formats (TIFF, PGM) as 32-bit "I".
        return np.clip(values, 0, 65535).astype(np.uint16 if values.max() > 255 else np.uint8)
    if mode == "1":
        return np.asarray(image.convert("L"))
    if mode in ("P", "PA"):
        has_alpha = mode == "PA" or "transparency" in image.info
        return np.asarray(image.convert("RGBA" if has_alpha else "RGB"))
    if mode in ("RGBa", "La", "RGBX"):
        return np.asarray(image.convert("RGBA" if mode != "La" else "LA"))
    return np.asarray(image.convert("RGB"))  # CMYK, YCbCr, LAB, HSV


def _draft_size(width: int, height: int, canvas_size: int) -> tuple[int, int]:
    """The smallest size, same aspect, whose shorter side still covers the canvas."""
    scale = canvas_size / min(width, height)
    return math.ceil(width * scale), math.ceil(height * scale)


def decode_image(data: bytes, options: DecodeOptions) -> np.ndarray:
    """Encoded image bytes (JPEG, PNG, WebP, GIF, BMP, TIFF, ...) -> uint8 [S, S, 3].

    Raises:
      BadRecordError: the bytes are empty, not an image, truncated or corrupt, or the image is
        too large or too elongated.
    """
    image = open_image(data, options)
    width, height = image.size
    if options.draft and image.format == "JPEG" and min(width, height) >= 2 * options.canvas_size:
        # Mode None keeps the file's colour space (CMYK stays CMYK and is converted below).
        image.draft(None, _draft_size(width, height, options.canvas_size))
    image = load_image(image)
    return array_to_canvas(pil_to_array(image), options)


def array_to_canvas(image: np.ndarray, options: DecodeOptions) -> np.ndarray:
    """An already-decoded image array (TFDS features, video frames) -> uint8 [S, S, 3].

    Applies the same size and aspect checks as decode_image, so every source skips the same
    records.
    """
    image = np.asarray(image)
    if image.ndim not in (2, 3) or (image.ndim == 3 and not 1 <= image.shape[-1] <= 4):
        raise BadRecordError("bad_shape", f"array of shape {image.shape}")
    check_size(image.shape[1], image.shape[0], options)
    try:
        return to_canvas(image, options.canvas_size)
    except ValueError as e:  # unsupported dtype
        raise BadRecordError("bad_shape", str(e)) from None


def check_image(data: bytes, options: DecodeOptions) -> tuple[int, int]:
    """Decodes every pixel of `data` (no resize) and returns (width, height); ingest uses it.

    Raises:
      BadRecordError: as decode_image.
    """
    image = load_image(open_image(data, options))
    pil_to_array(image)  # the mode conversion must work too
    return image.size
