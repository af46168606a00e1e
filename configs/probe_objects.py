r"""Probe: classify the real object images alone (MNIST digits and animal silhouettes, 20
classes), from frozen encoder features.

Run (after pretraining into DIR; --random_init gives the baseline column):
  .venv/bin/python -m avrl_jax.probe --workdir DIR --config configs/probe_objects.py
  .venv/bin/python -m avrl_jax.probe --workdir DIR --config configs/probe_objects.py --random_init

Expect: about 1 minute on 2 CPU cores (features 15 s, linear sweep 9 s, MAP 27 s, kNN 1 s,
few-shot 0.2 s). Chance is 5% (majority class 6.8%). Measured test accuracy, encoder of
configs/default.py after its 500 steps vs the same run's random initialisation:
  linear 70.0 vs 70.5, MAP 76.0 vs 80.5, kNN (k=20) 60.0 vs 60.7, 10-shot ridge 43.8 vs 47.0.
Random ViT features already separate these clean, centred shapes; the brief default run does
not move them. A longer run should beat the random column.
"""

import ml_collections

from avrl_jax.config_files import sibling

add_probe_sections = sibling(__file__, "probe_common").add_probe_sections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg:
        raise ValueError(f"configs/probe_objects.py takes no variants, got {arg!r}")
    c = ml_collections.ConfigDict()
    c.name = "objects"  # the key in probe_results.json and the TensorBoard folder
    c.seed = 0
    c.batch_size = 256  # images per frozen forward pass
    c.token_dtype = "float32"  # patch tokens cached for the MAP probe: float32 or bfloat16

    c.task = ml_collections.ConfigDict()
    c.task.name = "objects"
    c.task.num_train = 5000
    c.task.num_test = 2000
    c.task.seed = 0
    c.task.canvas_size = 64

    add_probe_sections(c)
    return c
