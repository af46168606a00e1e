r"""The study: annotation bootstrapping (AB) against its base methods, probed, over seeds.

Run:
  .venv/bin/python -m avrl_jax.study --config configs/study.py:core --workdir workdir/study_core

Variants (`--config configs/study.py:VARIANT`):
  smoke      SimCLR vs AB_SimCLR on configs/default.py:smoke, 1 seed, tiny probes (tests;
             about 2 minutes on 2 CPU cores);
  core       SimCLR and DINO, each against its AB version, 2 seeds, wall-clock-matched bases;
  full       core plus CLIP / AB_CLIP / CLIP +Aug and labels on curated data (bootstrapping
             on the scenes), 3 seeds;
  ablations  AB_SimCLR: gamma 0 / 0.5 / 0.9, no target network, no action tokens, next
             actions "views" vs "grid", return action excluded or not; 2 seeds.

What to edit:
- `common_overrides(...)`: training config fields (dotted) set in every run of a variant,
  e.g. "total_steps": 500; `method(...)`'s `overrides`: one method's own, applied after them.
  Each becomes a `--config.<field>=<value>` flag of the training command (a field whose
  default is None cannot be set that way).
- `probes`: tasks and their sizes and probe steps (`PROBE_CORE`: about 30-40 s per task per
  encoder on 2 CPU cores).
Every run trains `train_config:<args>` with seed=<seed> (the data set's seed stays fixed).
"""

import ml_collections

VARIANTS = ("smoke", "core", "full", "ablations")
TRAIN_CONFIG = "configs/default.py"

# Probe settings of the core / full / ablations studies: smaller than the probe configs'
# defaults (~1.5 min per task per encoder on 2 cores) so that ~15 encoders x 3 tasks fit.
PROBE_CORE = {
    "task.num_train": 3000,
    "task.num_test": 1000,
    "linear.steps": 500,
    "linear.learning_rates": (1e-3, 1e-2, 1e-1),
    "linear.weight_decays": (0.0, 1e-3),
    "map.steps": 300,
    "map.warmup_steps": 30,
    "fewshot.enabled": False,  # the study reports linear, MAP and kNN
}
# A few probe steps on tiny tasks: the smoke study's (tests).
PROBE_SMOKE = {
    "batch_size": 64,
    "task.num_train": 64,
    "task.num_test": 32,
    "task.canvas_size": 32,
    "linear.steps": 10,
    "linear.batch_size": 64,
    "linear.learning_rates": (1e-2,),
    "linear.weight_decays": (0.0,),
    "map.steps": 4,
    "map.warmup_steps": 1,
    "map.batch_size": 32,
    "fewshot.enabled": False,
}
PROBE_TASKS = (
    ("object_in_box", "configs/probe_scene_object.py"),
    ("count", "configs/probe_count.py"),
    ("objects", "configs/probe_objects.py"),
)


# Equal views seen (every view counts, the paper's convention): an AB run puts half of its
# base's views per step into the annotation batch and half into bootstrap views (4 per image).
# SimCLR: 32 images x 2 crops = 64 views; AB: 16 x 2 + 8 x 4 = 64. DINO: 32 x (2 global + 4
# local) = 192; AB: 16 x 6 + 24 x 4 = 192. Smoke: 16 x 2 = 32; AB: 8 x 2 + 4 x 4 = 32.
AB_SIMCLR_VIEWS = {"annotation_batch_size": 16, "bootstrap_batch_size": 8}
AB_DINO_VIEWS = {"annotation_batch_size": 16, "bootstrap_batch_size": 24}
# CLIP and labels: one crop per image, 32 views; AB: 16 + 4 x 4 = 32.
AB_ONE_CROP_VIEWS = {"annotation_batch_size": 16, "bootstrap_batch_size": 4}
AB_SMOKE_VIEWS = {"annotation_batch_size": 8, "bootstrap_batch_size": 4}


def method(name: str, args: str, pair: str = "", overrides: dict | None = None) -> dict:
    """One method: `args` are the training config's variants; `pair` names the base method an
    AB method is compared with (paired differences AB_x - x over seeds); `overrides` its own
    dotted training config fields."""
    return dict(name=name, args=args, pair=pair, overrides=dict(overrides or {}))


def common_overrides(fields: dict) -> ml_collections.ConfigDict:
    """Dotted training config field -> value, set in every run (a ConfigDict that takes dotted
    keys, so the study config stays one ConfigDict)."""
    return ml_collections.ConfigDict(fields, allow_dotted_keys=True)


def probes(overrides: dict) -> tuple[dict, ...]:
    return tuple(
        dict(name=name, config=path, overrides=dict(overrides)) for name, path in PROBE_TASKS
    )


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    variant = arg or "core"
    if variant not in VARIANTS:
        raise ValueError(f"configs/study.py: unknown variant {variant!r}; valid: {VARIANTS}")
    c = ml_collections.ConfigDict()
    c.variant = variant
    c.train_config = TRAIN_CONFIG
    c.seeds = (0, 1)
    # The in-loop few-shot signal only costs time here: the study probes the final encoders.
    c.common_overrides = common_overrides({"total_steps": 500, "fewshot_eval.every_steps": 0})
    c.methods = (
        method("simclr", "base_only", overrides={}),
        method("ab_simclr", "", pair="simclr", overrides=AB_SIMCLR_VIEWS),
        method("dino", "dino,base_only", overrides={}),
        method("ab_dino", "dino", pair="dino", overrides=AB_DINO_VIEWS),
    )
    # Base methods (with an AB pair) that also train for their AB run's wall-clock time.
    c.wallclock_matched = ("simclr", "dino")
    c.probes = probes(PROBE_CORE)
    c.pixel_baselines = ("raw", "colour_invariant")
    c.random_init = True  # probe each seed's randomly initialised encoder

    if variant == "smoke":
        c.seeds = (0,)
        c.common_overrides = common_overrides({"fewshot_eval.every_steps": 0})
        c.methods = (
            method("simclr", "smoke,base_only"),
            method("ab_simclr", "smoke", pair="simclr", overrides=AB_SMOKE_VIEWS),
        )
        c.wallclock_matched = ("simclr",)
        c.probes = probes(PROBE_SMOKE)
    elif variant == "full":
        c.seeds = (0, 1, 2)
        c.methods += (
            method("clip", "clip,base_only"),
            method("ab_clip", "clip", pair="clip", overrides=AB_ONE_CROP_VIEWS),
            method("clip_aug", "clip_aug,base_only"),  # "CLIP +Aug"
            # Labels of the curated object images; AB bootstraps on the scenes.
            method("labels", "curated,base_only"),
            method("ab_labels", "curated", pair="labels", overrides=AB_ONE_CROP_VIEWS),
        )
    elif variant == "ablations":

        def ab(name: str, overrides: dict) -> dict:
            return method(name, "", pair="simclr", overrides={**AB_SIMCLR_VIEWS, **overrides})

        c.methods = (
            method("simclr", "base_only"),
            ab("ab_simclr", {}),  # gamma 0.5, views, return kept
            ab("ab_simclr_gamma0", {"objective.gamma": 0.0}),
            ab("ab_simclr_gamma0.9", {"objective.gamma": 0.9}),
            ab("ab_simclr_no_target", {"ema.enabled": False}),
            ab("ab_simclr_no_action_tokens", {"model.value_head.use_action_tokens": False}),
            ab("ab_simclr_grid", {"objective.next_actions": "grid"}),
            ab("ab_simclr_exclude_return", {"objective.exclude_return": True}),
        )
        c.wallclock_matched = ()
    return c
