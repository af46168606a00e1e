r"""Probe: COCO-style object classification given its box. Every object of a scene is shown
to the frozen encoder as the view of its box (enlarged 1.25x, made square, so some context
and any overlapping objects are in view) and classified (20 classes).

Run (after pretraining into DIR; --random_init gives the baseline column):
  .venv/bin/python -m avrl_jax.probe --workdir DIR --config configs/probe_scene_object.py
  .venv/bin/python -m avrl_jax.probe --workdir DIR --config configs/probe_scene_object.py \
      --random_init

Expect: about 1.5 minutes on 2 CPU cores. Chance is 5% (majority class 6.25%: animals are
twice as common as digits). Measured test accuracy, encoder of configs/default.py after its 500
steps vs the same run's random initialisation:
  linear 6.5 vs 7.3, MAP 9.0 vs 11.0, kNN (k=20) 6.7 vs 5.7 (chance level).
The hardest task here: coloured, overlapping objects on textured photos. For scale, a linear
probe on the raw 32x32 pixels reaches 14% and on colour-invariant pixels (|x - mean|) 34%, so
these encoders have not yet learned shape under clutter; this probe is the one to watch.
Options: --config.task.context=1.0 (the tight box), --config.task.square=False (stretch the box
to the square view).
"""

import ml_collections

from avrl_jax.config_files import sibling

add_probe_sections = sibling(__file__, "probe_common").add_probe_sections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg:
        raise ValueError(f"configs/probe_scene_object.py takes no variants, got {arg!r}")
    c = ml_collections.ConfigDict()
    c.name = "object_in_box"  # the key in probe_results.json and the TensorBoard folder
    c.seed = 0
    c.batch_size = 256  # images per frozen forward pass
    c.token_dtype = "float32"  # patch tokens cached for the MAP probe: float32 or bfloat16

    c.task = ml_collections.ConfigDict()
    c.task.name = "object_in_box"
    c.task.num_train = 5000  # objects (from about 2,000 scenes)
    c.task.num_test = 2000  # objects of held-out test scenes (held-out object instances)
    c.task.seed = 0
    c.task.canvas_size = 64  # the scenes' resolution, as in pretraining
    c.task.object_scale = (0.2, 0.6)  # the scenes' object sizes, as in pretraining
    c.task.background_contrast = 1.0  # as in pretraining
    c.task.max_overlap = 1.0  # as in pretraining
    c.task.context = 1.25  # box side multiplier (1.0: the tight box)
    c.task.square = True

    add_probe_sections(c)
    return c
