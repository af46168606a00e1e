r"""Probe: the decoder probe (the paper's main evaluation; Beyer et al. 2023). A 4-layer
autoregressive Transformer decoder cross-attends to the frozen encoder's patch tokens and
writes the answer as text (avrl_jax/evaluation/decoder_probe.py); greedy decoding, exact match.

Run (after pretraining into DIR; --random_init gives the baseline column):
  .venv/bin/python -m avrl_jax.probe --workdir DIR --config configs/probe_decoder.py
  .venv/bin/python -m avrl_jax.probe --workdir DIR --config configs/probe_decoder.py:count

Variants (the task; each takes its task settings from that task's own probe config, so the
results join the same entry of probe_results.json and the decoder's rows sit beside the
linear/MAP/kNN ones):
  object_in_box  (default) the class name of the object in a box ("zebra"), as
                 configs/probe_scene_object.py;
  count          the number of objects as a word ("three"), as configs/probe_count.py;
  background     the background's name ("a tabby photo"), as configs/probe_count.py:background;
  objects        the class name of a real object image, as configs/probe_objects.py;
  scene_objects  captioning the scene's objects: their class names, sorted ("three zebra");
                 exact match of the whole list and token accuracy (the scenes of
                 configs/probe_count.py; only the decoder reads lists);
  tfds           a TFDS data set's class names, as configs/probe_tfds.py.
The other probes of these configs are off here; run the task's own config for them.

Metrics: decoder/accuracy (exact match of the decoded words), decoder/token_accuracy (target
positions decoded right, end token included), decoder/train_accuracy.

Expect: about 2-4 minutes per task on 2 CPU cores (1000 steps; 199-215 s on 2026-12-08).
Measured, configs/default.py:labels after 500 steps vs its random initialisation (test %):
count 34.6 vs 36.6 (linear 32.6 vs 32.2, MAP 32.9 vs 35.6); object_in_box 8.2 vs 12.8
(linear 8.6 vs 7.3, MAP 7.4 vs 11.0). On an encoder that has learned the classes
(configs/default.py:curated_views,gamma0, 3000 steps, README "Probes"; easy scenes):
object_in_box 48.9 vs 15.2 (linear 51.7), count 45.8 vs 41.3 (linear 45.9 vs 42.7).
"""

import ml_collections

from avrl_jax.config_files import sibling

# variant -> (the probe config the task comes from, its variant, the task's name here)
TASKS = {
    "object_in_box": ("probe_scene_object", None, "object_in_box"),
    "count": ("probe_count", None, "count"),
    "background": ("probe_count", "background", "scene_background"),
    "objects": ("probe_objects", None, "objects"),
    "scene_objects": ("probe_count", None, "scene_objects"),
    "tfds": ("probe_tfds", None, None),
}
OTHER_PROBES = ("linear", "map", "knn", "fewshot")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = arg or "object_in_box"
    if variant not in TASKS:
        raise ValueError(
            f"configs/probe_decoder.py: unknown variant {arg!r}; valid: {', '.join(TASKS)}"
        )
    source, source_variant, task = TASKS[variant]
    c = sibling(__file__, source).get_config(source_variant)
    if task is not None and c.task.name != task:  # a task on another task's scenes
        c.name = task
        c.task.name = task
    for name in OTHER_PROBES:
        c[name].enabled = False
    c.decoder.enabled = True
    return c
