"""The `localise` probe: can the value function find an object by its class?

For each object of the embedded test scenes, value-guided view search (`value_search.search`)
for the object's class starts from the whole image; the final box is scored by its IoU with
the object's tight box. Reported beside the same measure for baselines that know nothing:
a random box (random-resized-crop statistics), the centre box (half the image's side), the
whole image, and the same search with the run's random-init network.

Metrics (prefix "localise/" for the run's search): mean_iou, iou50 (fraction with IoU >= 0.5),
steps (mean moves taken); "<baseline>/mean_iou" and "<baseline>/iou50" for each baseline.
Needs a run whose annotations are the object classes (`labels` on the scenes or a curated set).

Diagnostics, which tell a search that strays from a value function that does not know, and
that from a base head that does not know (the same two IoU metrics each, over `GRID`):
- "value_map/": the box of highest Q(class | whole image -> box), one step, no search;
- "reward_map/": the box whose own view the base head finds most likely to show the class
  (p(class | view), what Q's rewards are made of); "reward/box_accuracy": how often the base
  head's top class on the object's tight box is the object's class (chance 1/20);
- "grid_best/": the grid box nearest the object, the ceiling of both maps.
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
# The diagnostics' candidate boxes: square, 8 x 8 centres, sides spanning the objects' scales.
GRID = value_search.box_grid(8, (0.2, 0.3, 0.4, 0.5, 0.6, 0.8)).reshape(-1, 4)
RewardFn = Callable[[np.ndarray, np.ndarray], np.ndarray]  # (canvas, boxes [N, 4]) -> [N, A]


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
    bind: Callable[[np.ndarray, int], ValueFn], objects, value_map: bool = False, **search_options
) -> dict[str, np.ndarray]:
    """Per object: "search" (the searched box's IoU with the object's box), "steps" (moves
    taken) and, with `value_map`, "value_map" (the IoU of the argmax box of Q over `GRID`)."""
    out = {"search": [], "steps": [], **({"value_map": []} if value_map else {})}
    for canvas, box, cls in objects:
        q = bind(canvas, cls)
        result = value_search.search(q, FULL_BOX, **search_options)
        out["search"].append(float(box_iou(result.box, box)))
        out["steps"].append(len(result.path) - 1)
        if value_map:
            best = GRID[np.argmax(value_search.value_map(q, GRID))]
            out["value_map"].append(float(box_iou(best, box)))
    return {name: np.asarray(values) for name, values in out.items()}


def reward_diagnostics(rewards: RewardFn, objects) -> dict[str, float]:
    """The base head's own localisation ("reward_map/") and its accuracy on the objects' tight
    boxes ("reward/box_accuracy"); see the module."""
    ious, correct = [], []
    for canvas, box, cls in objects:
        probs = rewards(canvas, np.concatenate([GRID, box[None]]))
        ious.append(float(box_iou(GRID[np.argmax(probs[:-1, cls])], box)))
        correct.append(int(np.argmax(probs[-1])) == cls)
    return {
        **iou_metrics(np.asarray(ious), "reward_map"),
        "reward/box_accuracy": float(np.mean(correct)),
    }


def baseline_ious(boxes: np.ndarray, seed: int) -> dict[str, np.ndarray]:
    """The IoUs with the objects' boxes f32[N, 4] of the fixed and random baselines, and of
    the grid box nearest each object ("grid_best")."""
    import jax

    n = boxes.shape[0]
    random = np.asarray(sample_views(jax.random.key(seed), n, scale=(0.05, 1.0)))
    return {
        "random_box": np.asarray(box_iou(random, boxes)),
        "centre_box": np.asarray(box_iou(CENTRE_BOX[None], boxes)),
        "whole_image": np.asarray(box_iou(FULL_BOX[None], boxes)),
        "grid_best": np.max(np.asarray(box_iou(GRID[None], boxes[:, None])), axis=1),
    }


def localise(
    trained: Callable[[np.ndarray, int], ValueFn],
    random_init: Callable[[np.ndarray, int], ValueFn] | None,
    objects: list,
    seed: int = 0,
    rewards: RewardFn | None = None,
    **search_options,
) -> dict[str, float]:
    """The probe's metrics (see the module) for value functions `trained` and `random_init`,
    each `bind(canvas, class) -> ValueFn`, on `objects` [(canvas, box, class)]; the reward
    diagnostics too when the run's `rewards` are given."""
    ious = search_ious(trained, objects, value_map=True, **search_options)
    metrics = {
        **iou_metrics(ious["search"], "localise"),
        "localise/steps": float(np.mean(ious["steps"])),
        **iou_metrics(ious["value_map"], "value_map"),
    }
    boxes = np.stack([box for _, box, _ in objects])
    for name, values in baseline_ious(boxes, seed).items():
        metrics.update(iou_metrics(values, name))
    if random_init is not None:
        random_ious = search_ious(random_init, objects, **search_options)["search"]
        metrics.update(iou_metrics(random_ious, "random_init_search"))
    if rewards is not None:
        metrics.update(reward_diagnostics(rewards, objects))
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
    metrics = localise(
        bind(run),
        bind(baseline),
        objects,
        seed=probe_config.seed,
        rewards=run.reward_probabilities if run.base == "labels" else None,
        **search,
    )
    return run.step, metrics
