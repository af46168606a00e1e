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
  linear 7.0 vs 7.3, MAP 8.9 vs 11.0, kNN (k=20) 6.7 vs 5.7 (chance level).
The hardest task here: coloured, overlapping objects on textured photos. For scale, a linear
probe on the raw 32x32 pixels reaches 14% and on colour-invariant pixels (|x - mean|) 34%, so
these encoders have not yet learned shape under clutter; this probe is the one to watch.
Options: --config.task.context=1.0 (the tight box), --config.task.square=False (stretch the box
to the square view).
"""

import ml_collections
from ml_collections import config_dict


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
    c.task.context = 1.25  # box side multiplier (1.0: the tight box)
    c.task.square = True

    c.linear = ml_collections.ConfigDict()
    c.linear.enabled = True
    c.linear.learning_rates = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1)
    c.linear.weight_decays = (0.0, 1e-3, 1e-1)
    c.linear.steps = 1000
    c.linear.batch_size = 512
    c.linear.holdout_fraction = 0.1
    c.linear.standardize = True
    c.linear.optimizer = "adamw"

    c.map = ml_collections.ConfigDict()
    c.map.enabled = True
    c.map.num_heads = config_dict.placeholder(int)  # None: the encoder's
    c.map.mlp_dim = config_dict.placeholder(int)  # None: the encoder's
    c.map.learning_rate = 1e-3
    c.map.weight_decay = 1e-4
    c.map.steps = 500
    c.map.warmup_steps = 50
    c.map.batch_size = 256

    c.knn = ml_collections.ConfigDict()
    c.knn.enabled = True
    c.knn.k = (10, 20)
    c.knn.temperature = 0.07
    c.knn.test_chunk = 256
    c.knn.train_chunk = 8192

    c.fewshot = ml_collections.ConfigDict()
    c.fewshot.enabled = True
    c.fewshot.shots = (1, 5, 10)
    c.fewshot.l2_regs = (2.0**-10, 2.0**-5, 1.0, 2.0**5, 2.0**10)
    return c
