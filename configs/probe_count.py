r"""Probe: Clevr/Count-style object counting. The whole scene goes through the frozen encoder;
the label is its number of objects (1-4, four classes, about uniform).

Run (after pretraining into DIR; --random_init gives the baseline column):
  .venv/bin/python -m avrl_jax.probe --workdir DIR --config configs/probe_count.py
  .venv/bin/python -m avrl_jax.probe --workdir DIR --config configs/probe_count.py --random_init

Variant `configs/probe_count.py:background`: scene classification instead (which of the 17
background photos and textures the scene was cut from), results under "scene_background".

Expect: about 1.5 minutes on 2 CPU cores. Measured test accuracy, encoder of
configs/default.py after its 500 steps vs the same run's random initialisation:
  count (chance 25%, majority class 27.1%):
    linear 40.7 vs 32.2, MAP 41.4 vs 35.6, kNN (k=20) 38.1 vs 28.2, 10-shot ridge 27.7 vs 27.6;
  background (17 classes, majority class 5.6%):
    linear 74.1 vs 74.2, MAP 77.8 vs 81.1, kNN (k=20) 60.5 vs 65.5, 10-shot 54.0 vs 53.3.
Counting is where the brief default run already beats its random start.
"""

import ml_collections

from avrl_jax.config_files import sibling

add_probe_sections = sibling(__file__, "probe_common").add_probe_sections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg not in (None, "", "background"):
        raise ValueError(f"configs/probe_count.py: unknown variant {arg!r}; valid: background")
    task = "scene_background" if arg == "background" else "count"
    c = ml_collections.ConfigDict()
    c.name = task  # the key in probe_results.json and the TensorBoard folder
    c.seed = 0
    c.batch_size = 256  # images per frozen forward pass
    c.token_dtype = "float32"  # patch tokens cached for the MAP probe: float32 or bfloat16

    c.task = ml_collections.ConfigDict()
    c.task.name = task
    c.task.num_train = 5000  # scenes
    c.task.num_test = 2000  # held-out test scenes
    c.task.seed = 0
    c.task.canvas_size = 64  # the scenes' resolution, as in pretraining
    c.task.object_scale = (0.2, 0.6)  # the scenes' object sizes, as in pretraining
    c.task.background_contrast = 1.0  # as in pretraining
    c.task.max_overlap = 1.0  # as in pretraining

    add_probe_sections(c)
    return c
