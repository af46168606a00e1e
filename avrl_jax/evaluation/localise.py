"""The `localise` probe: can the value function find an object by its class?

For each object of the embedded test scenes, value-guided view search (`value_search.search`)
for the object's class starts from the whole image; the final box is scored by its IoU with
the object's tight box. Reported beside the same measure for baselines that know nothing:
a random box (random-resized-crop statistics), the centre box (half the image's side), the
whole image, and the same search with the run's random-init network.

Metrics (prefix "localise/" for the run's search): mean_iou, iou50 (fraction with IoU >= 0.5),
steps (mean moves taken); "<baseline>/mean_iou" and "<baseline>/iou50" for each baseline.
Needs a run whose annotations are the object classes (`labels` on the scenes or a curated set).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import numpy as np

from avrl_jax.data import scenes
from avrl_jax.env.boxes import box_iou, sample_views
from avrl_jax.evaluation import value_search
from avrl_jax.evaluation.value_search import FULL_BOX, ValueFn

CENTRE_BOX = np.array([0.25, 0.25, 0.75, 0.75], np.float32)
BASELINES = ("random_box", "centre_box", "whole_image", "random_init_search")


def scene_objects(
    num_objects: int, canvas_size: int, seed: int, **scene_options
) -> Iterator[tuple[np.ndarray, np.ndarray, int]]:
    """(canvas uint8 [S, S, 3], tight box f32[4], class) of the test scenes' objects, scene by
    scene, in slot order, until `num_objects`."""
    source = scenes.SceneSource("test", 10**6, canvas_size, seed, **scene_options)
    count, i = 0, 0
    while count < num_objects:
        scene = source[i]
        for k in range(int(scene["num_objects"])):
            if count == num_objects:
                return
            yield scene["image"], scene["boxes"][k], int(scene["classes"][k])
            count += 1
        i += 1


def iou_metrics(ious: np.ndarray, prefix: str) -> dict[str, float]:
    return {
        f"{prefix}/mean_iou": float(np.mean(ious)),
        f"{prefix}/iou50": float(np.mean(ious >= 0.5)),
    }


def search_ious(
    bind: Callable[[np.ndarray, int], ValueFn], objects, **search_options
) -> tuple[np.ndarray, np.ndarray]:
    """IoUs of the searched boxes with the objects' boxes, and the moves each search took."""
    ious, steps = [], []
    for canvas, box, cls in objects:
        result = value_search.search(bind(canvas, cls), FULL_BOX, **search_options)
        ious.append(float(box_iou(result.box, box)))
        steps.append(len(result.path) - 1)
    return np.asarray(ious), np.asarray(steps)


def baseline_ious(boxes: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """The IoUs of the fixed and random baselines with the objects' boxes f32[N, 4]."""
    import jax

    n = boxes.shape[0]
    random = np.asarray(sample_views(jax.random.key(seed), n, scale=(0.05, 1.0)))
    return {
        "random_box": np.asarray(box_iou(random, boxes)),
        "centre_box": np.asarray(box_iou(CENTRE_BOX[None], boxes)),
        "whole_image": np.asarray(box_iou(FULL_BOX[None], boxes)),
    }


def localise(
    trained: Callable[[np.ndarray, int], ValueFn],
    random_init: Callable[[np.ndarray, int], ValueFn] | None,
    objects: list,
    seed: int = 0,
    **search_options,
) -> dict[str, float]:
    """The probe's metrics (see the module) for value functions `trained` and `random_init`,
    each `bind(canvas, class) -> ValueFn`, on `objects` [(canvas, box, class)]."""
    ious, steps = search_ious(trained, objects, **search_options)
    metrics = {**iou_metrics(ious, "localise"), "localise/steps": float(np.mean(steps))}
    boxes = np.stack([box for _, box, _ in objects])
    for name, values in baseline_ious(boxes, seed).items():
        metrics.update(iou_metrics(values, name))
    if random_init is not None:
        random_ious, _ = search_ious(random_init, objects, **search_options)
        metrics.update(iou_metrics(random_ious, "random_init_search"))
    metrics["num_test"] = len(objects)
    return metrics


def localise_workdir(workdir: str, probe_config, step: int | None = None) -> tuple[int, dict]:
    """The probe on a run's checkpoint (newest without `step`): (step, metrics)."""
    from avrl_jax.evaluation.value_network import RunValue

    task = probe_config.task
    run = RunValue(workdir, step)
    if run.num_annotations() != scenes.NUM_CLASSES:
        raise ValueError(
            f"the localise probe searches for object classes; the run in {workdir} has "
            f"objective.base={run.base!r} with {run.num_annotations()} annotations, not the "
            f"{scenes.NUM_CLASSES} classes: probe a `labels` run (configs/default.py:labels "
            "or :curated)"
        )
    baseline = RunValue(workdir, random_init=True)
    options = dict(
        object_scale=tuple(task.object_scale),
        background_contrast=task.background_contrast,
        max_overlap=task.max_overlap,
    )
    objects = list(scene_objects(task.num_test, task.canvas_size, task.seed, **options))
    search = dict(max_steps=probe_config.search.max_steps, beam=probe_config.search.beam)
    bind = lambda value: lambda canvas, cls: value.bind(canvas, index=cls)  # noqa: E731
    metrics = localise(bind(run), bind(baseline), objects, seed=probe_config.seed, **search)
    return run.step, metrics
