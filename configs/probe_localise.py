r"""Probe: `localise`. For each object of the embedded test scenes, value-guided view search
(greedy, or a beam) for the object's class from the whole image; the final box's IoU with the
object's box, against a random box, the centre box, the whole image and the same search with
the run's random-init network (avrl_jax/evaluation/localise.py). Needs a run whose annotations
are the 20 object classes: configs/default.py:labels, :curated or :curated_views.

Run (after pretraining into DIR):
  .venv/bin/python -m avrl_jax.probe --workdir DIR --config configs/probe_localise.py
Draw some searches: python -m avrl_jax.visualize search --workdir DIR --scene 0 --out PNG

Metrics: localise/mean_iou, localise/iou50 (fraction with IoU >= 0.5), localise/steps, and
<baseline>/mean_iou, <baseline>/iou50 for random_box, centre_box, whole_image,
random_init_search; diagnostics value_map/*, reward_map/*, reward/box_accuracy, grid_best/*
(avrl_jax/evaluation/localise.py says what each measures).
"""

import ml_collections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg:
        raise ValueError(f"configs/probe_localise.py takes no variants, got {arg!r}")
    c = ml_collections.ConfigDict()
    c.name = "localise"  # the key in probe_results.json and the TensorBoard folder
    c.seed = 0

    c.task = ml_collections.ConfigDict()
    c.task.name = "localise"
    c.task.num_test = 300  # objects of the held-out test scenes
    c.task.seed = 0
    c.task.canvas_size = 64  # the scenes as in pretraining
    c.task.object_scale = (0.2, 0.6)
    c.task.background_contrast = 1.0
    c.task.max_overlap = 1.0

    c.search = ml_collections.ConfigDict()
    c.search.max_steps = 10  # moves at most (it stops earlier when no move raises the value)
    c.search.beam = 1  # 1: greedy; > 1: beam search keeping this many boxes per step
    return c
