"""Probe tasks: labelled images at the encoder's input size, streamed in chunks.

Each task turns a data source into `(images f32[b, s, s, 3] normalised, labels int32[b])`
chunks for one split, where s is the encoder's input size (the training config's
`env.view_size`) and "normalised" means `avrl_jax.env.render.normalize` has been applied, as
for every image that enters the network. Tasks mirror the paper's probes on the embedded data:

| task               | input                                  | label                    | classes |
|--------------------|----------------------------------------|--------------------------|---------|
| `object_in_box`    | the view of one object's box (context) | the object's class       | 20      |
| `count`            | the whole scene                        | number of objects - 1    | 4       |
| `scene_background` | the whole scene                        | background photo/texture | 17      |
| `scene_objects`    | the whole scene                        | its objects' classes     | 20, list|
| `objects`          | the real object image alone            | its class                | 20      |
| `tfds`             | a TFDS image (e.g. `imagenet2012`)     | its label feature        | dataset |

Sizes come from the probe config (`task.num_train`, `task.num_test`); a source smaller than
that gives all it has. Sources ordered by class (`objects`, most TFDS sets) are subsampled
with a seeded permutation, so every class is represented; scene sources are already random
and take scenes 0, 1, 2, ... Everything is deterministic given the task config. Every task
names its classes (`ProbeSplit.label_names`, the decoder probe's text targets; TFDS sets when
their label feature has names); `scene_objects` has a list of labels per example, which only
the decoder probe reads.
"""

from __future__ import annotations

import concurrent.futures
import dataclasses
import functools
import inspect
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import numpy as np

from avrl_jax.data import scenes
from avrl_jax.data.canvas import to_canvas
from avrl_jax.env.render import NORM_MEAN, NORM_STD, normalize, render

SPLITS = ("train", "test")
# Fields of a task config that every task has; the rest are passed to the task's builder.
COMMON_FIELDS = ("name", "num_train", "num_test", "seed")
# The positional arguments of every task builder (the rest are its options).
_BUILDER_ARGS = ("split", "num_examples", "image_size", "seed")
# Count task: label = count - 1, named as words for the decoder probe.
COUNT_NAMES = ("one", "two", "three", "four")
# Tasks whose examples have a list of labels (see ProbeSplit).
LIST_TASKS = ("scene_objects",)
# Canvases rendered per device call: fixed, so the render compiles once per task.
RENDER_CHUNK = 256

Chunk = tuple[np.ndarray, np.ndarray]


@dataclasses.dataclass(frozen=True)
class ProbeSplit:
    """One split of a probe task.

    Attributes:
      task: the task's name.
      split: "train" or "test".
      num_classes: labels lie in [0, num_classes).
      num_examples: how many examples `chunks()` yields in total.
      chunks: a fresh iterator over `(images f32[b, s, s, 3] normalised, labels int32[b])`
        each call (b varies; the feature extractor re-batches). A list task's labels are
        int32[b, K] instead: each example's labels, -1 where it has fewer than K.
      label_names: the name of each class (the decoder probe's text targets), or () when
        the task does not name its classes.
    """

    task: str
    split: str
    num_classes: int
    num_examples: int
    chunks: Callable[[], Iterator[Chunk]]
    label_names: tuple[str, ...] = ()

    @property
    def is_list_task(self) -> bool:
        """Whether each example has a list of labels (only the decoder probe reads those)."""
        return self.task in LIST_TASKS


# --------------------------------------------------------------------------------------------
# Rendering helpers.


@functools.partial(jax.jit, static_argnums=2)
def _render_views(canvases: jax.Array, boxes: jax.Array, out_size: int) -> jax.Array:
    """uint8[b, S, S, 3], f32[b, 4] -> normalised f32[b, out, out, 3]."""
    views = jax.vmap(lambda image, box: render(image, box, out_size))(canvases, boxes)
    return normalize(views)


FULL_BOX = np.array([0.0, 0.0, 1.0, 1.0], np.float32)


def _rendered_chunks(
    items: Iterator[tuple[np.ndarray, np.ndarray, int]], out_size: int
) -> Iterator[Chunk]:
    """(canvas uint8[S, S, 3], box f32[4], label) items -> rendered chunks of RENDER_CHUNK.

    The last chunk is padded to RENDER_CHUNK for the device call and cut back after it.
    """
    canvases, boxes, labels = [], [], []

    def flush() -> Chunk:
        n = len(labels)
        pad = RENDER_CHUNK - n
        c = np.stack(canvases + [np.zeros_like(canvases[0])] * pad)
        b = np.stack(boxes + [FULL_BOX] * pad)
        views = np.asarray(_render_views(c, b, out_size))[:n]
        return views, np.asarray(labels, np.int32)

    for canvas, box, label in items:
        canvases.append(canvas)
        boxes.append(box)
        labels.append(label)
        if len(labels) == RENDER_CHUNK:
            yield flush()
            canvases, boxes, labels = [], [], []
    if labels:
        yield flush()


def _subset(length: int, count: int, seed: int) -> np.ndarray:
    """A seeded random subset of min(count, length) indices of [0, length), in sorted order
    (sorted: sequential reads of file-backed sources)."""
    count = min(count, length)
    return np.sort(np.random.default_rng(seed).permutation(length)[:count])


# --------------------------------------------------------------------------------------------
# Tasks. Each builder: (split, num_examples, image_size, seed, **options) -> ProbeSplit.


def object_in_box_task(
    split: str,
    num_examples: int,
    image_size: int,
    seed: int,
    canvas_size: int = 64,
    context: float = 1.25,
    square: bool = True,
    object_scale: tuple[float, float] = scenes.OBJECT_SCALE,
    background_contrast: float = 1.0,
    max_overlap: float = 1.0,
) -> ProbeSplit:
    """COCO-style: the view of each object's box (enlarged by `context`) -> its class (20).

    Objects are taken scene by scene (scenes 0, 1, ... of `SceneSource(split, seed=seed)`),
    in the scene's slot order, until `num_examples`. Objects pasted later may partly cover
    earlier ones, as in real scenes.
    """
    source = scenes.SceneSource(
        split,
        num_examples,
        canvas_size,
        seed,
        object_scale=object_scale,
        background_contrast=background_contrast,
        max_overlap=max_overlap,
    )
    # Layouts are cheap (no rendering): count objects per scene to know the scenes needed.
    counts, total = [], 0
    while total < num_examples and len(counts) < len(source):
        counts.append(min(len(source.layout(len(counts)).objects), num_examples - total))
        total += counts[-1]

    def items() -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        for i, count in enumerate(counts):
            scene = source[i]
            boxes = scenes.context_box(scene["boxes"][:count], context, square)
            for k in range(count):
                yield scene["image"], boxes[k], int(scene["classes"][k])

    return ProbeSplit(
        task="object_in_box",
        split=split,
        num_classes=scenes.NUM_CLASSES,
        num_examples=total,
        chunks=lambda: _rendered_chunks(items(), image_size),
        label_names=scenes.OBJECT_CLASSES,
    )


def _whole_scene_task(
    name: str,
    label_of: Callable[[dict], int | np.ndarray],
    label_names: tuple[str, ...],
    doc: str,
) -> Callable[..., ProbeSplit]:
    """The builder of a task on whole scenes of `SceneSource(split, num_examples, seed=seed,
    **scene options)`, each labelled `label_of(scene)`. Its keyword arguments are the scene
    options a probe config's `task` may set (`make_split` reads them from the signature)."""

    def build(
        split: str,
        num_examples: int,
        image_size: int,
        seed: int,
        canvas_size: int = 64,
        object_scale: tuple[float, float] = scenes.OBJECT_SCALE,
        background_contrast: float = 1.0,
        max_overlap: float = 1.0,
    ) -> ProbeSplit:
        source = scenes.SceneSource(
            split,
            num_examples,
            canvas_size,
            seed,
            object_scale=object_scale,
            background_contrast=background_contrast,
            max_overlap=max_overlap,
        )

        def items() -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
            for i in range(num_examples):
                scene = source[i]
                yield scene["image"], FULL_BOX, label_of(scene)

        return ProbeSplit(
            task=name,
            split=split,
            num_classes=len(label_names),
            num_examples=num_examples,
            chunks=lambda: _rendered_chunks(items(), image_size),
            label_names=label_names,
        )

    build.__name__ = build.__qualname__ = f"{name}_task"
    build.__doc__ = doc
    return build


def _object_list(scene: dict) -> np.ndarray:
    """The scene's objects' classes, sorted, then -1 up to the source's max_objects."""
    present = np.sort(scene["classes"][scene["classes"] >= 0])
    labels = np.full(scene["classes"].size, -1, np.int32)
    labels[: present.size] = present
    return labels


count_task = _whole_scene_task(
    "count",
    lambda scene: int(scene["num_objects"]) - 1,
    COUNT_NAMES,
    "Clevr/Count-style: the whole scene -> number of objects; label = count - 1 (1..4 -> 0..3).",
)
scene_background_task = _whole_scene_task(
    "scene_background",
    lambda scene: int(scene["background"]),
    scenes.BACKGROUND_NAMES,
    "Scene classification: the whole scene -> which background photo or texture (17).",
)
scene_objects_task = _whole_scene_task(
    "scene_objects",
    _object_list,
    scenes.OBJECT_CLASSES,
    """Captioning the scene's objects: the whole scene -> the list of its objects' classes,
    sorted by class index (so the target is the set, with repeats): labels int32[N, K] (K the
    source's max_objects), -1 after the last. Only the decoder probe reads list labels
    (its text: "three zebra zebra").""",
)


def objects_task(
    split: str, num_examples: int, image_size: int, seed: int, canvas_size: int = 64
) -> ProbeSplit:
    """The real object images alone (MNIST digits, animal silhouettes) -> class (20).

    A seeded subset of the split (the source is ordered by class). The 28x28 images are
    upsampled to `canvas_size` by the source, then rendered to the encoder's input size.
    """
    source = scenes.ObjectSource(split, canvas_size)
    indices = _subset(len(source), num_examples, seed)

    def items() -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
        for i in indices:
            item = source[int(i)]
            yield item["image"], FULL_BOX, int(item["label"])

    return ProbeSplit(
        task="objects",
        split=split,
        num_classes=scenes.NUM_CLASSES,
        num_examples=int(indices.size),
        chunks=lambda: _rendered_chunks(items(), image_size),
        label_names=scenes.OBJECT_CLASSES,
    )


def tfds_task(
    split: str,
    num_examples: int,
    image_size: int,
    seed: int,
    dataset: str = "imagenet2012",
    train_split: str = "train",
    test_split: str = "validation",
    image_key: str = "image",
    label_key: str = "label",
    data_dir: str | None = None,
    num_classes: int | None = None,
    num_threads: int = 8,
) -> ProbeSplit:
    """A TFDS data set prepared as ArrayRecord, read with `tfds.data_source` (no TensorFlow).

    Images go through `to_canvas` (shorter side resized to the encoder's input size,
    centre-cropped); labels come from `label_key`. `num_classes` defaults to the label
    feature's `num_classes` in the data set's info. Records are decoded by `num_threads`
    threads (PIL releases the GIL while decoding).
    """
    import tensorflow_datasets as tfds  # local: only this task needs it

    tfds_split = {"train": train_split, "test": test_split}[split]
    try:  # never download at run time: the data must be prepared (as ArrayRecord) already
        source = tfds.data_source(dataset, split=tfds_split, data_dir=data_dir, download=False)
    except Exception as error:  # noqa: BLE001 - tfds raises several kinds for missing data
        where = data_dir or "the default TFDS data_dir (~/tensorflow_datasets or $TFDS_DATA_DIR)"
        raise FileNotFoundError(
            f"task.dataset={dataset!r} split {tfds_split!r} is not prepared in {where}: prepare "
            f"it there first (e.g. `tfds build {dataset} --file_format=array_record`, or "
            "tfds.builder(...).download_and_prepare on a machine with the data) or set "
            f"task.data_dir ({type(error).__name__}: {error})"
        ) from error
    label_feature = source.dataset_info.features[label_key]
    if num_classes is None:
        num_classes = int(label_feature.num_classes)
    names = tuple(getattr(label_feature, "names", None) or ())
    # TFDS names are identifiers ("golden_retriever", "n01440764"): words for the decoder.
    label_names = tuple(n.replace("_", " ") for n in names) if len(names) == num_classes else ()
    indices = _subset(len(source), num_examples, seed)

    def decode(index: int) -> tuple[np.ndarray, int]:
        record = source[int(index)]
        return to_canvas(record[image_key], image_size), int(record[label_key])

    def chunks() -> Iterator[Chunk]:
        with concurrent.futures.ThreadPoolExecutor(num_threads) as pool:
            for start in range(0, indices.size, RENDER_CHUNK):
                decoded = list(pool.map(decode, indices[start : start + RENDER_CHUNK]))
                images = np.stack([image for image, _ in decoded]).astype(np.float32)
                images = (images / 255.0 - NORM_MEAN) / NORM_STD  # = normalize, on the host
                yield images, np.asarray([label for _, label in decoded], np.int32)

    return ProbeSplit(
        task="tfds",
        split=split,
        num_classes=num_classes,
        num_examples=int(indices.size),
        chunks=chunks,
        label_names=label_names,
    )


# Explicit registry: probe configs name a task in `task.name`.
TASKS: dict[str, Callable[..., ProbeSplit]] = {
    "object_in_box": object_in_box_task,
    "count": count_task,
    "scene_background": scene_background_task,
    "scene_objects": scene_objects_task,
    "objects": objects_task,
    "tfds": tfds_task,
}


def make_split(task_config: Mapping[str, Any], split: str, image_size: int) -> ProbeSplit:
    """The `split` ("train"/"test") of the task that a probe config's `task` field describes.

    `task_config` holds `name`, `num_train`, `num_test`, `seed` and the task's own options
    (see each builder's keyword arguments). Raises ValueError naming the valid task names, or
    the task's valid options, for an unknown name or option.
    """
    if split not in SPLITS:
        raise ValueError(f"split must be one of {SPLITS}, got {split!r}")
    name = task_config["name"]
    if name not in TASKS:
        raise ValueError(f"task.name={name!r} is not a known probe task; valid: {sorted(TASKS)}")
    builder = TASKS[name]
    options = {k: v for k, v in dict(task_config).items() if k not in COMMON_FIELDS}
    valid = [p for p in inspect.signature(builder).parameters if p not in _BUILDER_ARGS]
    unknown = sorted(set(options) - set(valid))
    if unknown:
        raise ValueError(f"unknown option(s) {unknown} for task {name!r}; valid options: {valid}")
    num_examples = int(task_config["num_train" if split == "train" else "num_test"])
    if num_examples < 1:
        raise ValueError(f"task.num_{split} must be >= 1, got {num_examples}")
    return builder(split, num_examples, image_size, int(task_config["seed"]), **options)


def materialise(split: ProbeSplit) -> Chunk:
    """All of a split at once: (images f32[N, s, s, 3] normalised, labels int32[N]).

    For tests and small tasks; probes stream `split.chunks()` instead.
    """
    images, labels = zip(*split.chunks(), strict=True)
    return np.concatenate(images), np.concatenate(labels)
