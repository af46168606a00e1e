r"""The paper's CC12M pairs at scale: each base method and its AB version, ViT-S/16.

Ghosh & Levine 2025 ([PRE] Table 7; docs/paper.md §5). Variant `:METHOD[,scenes]`; the targets
are ImageNet decoder-probe accuracies after ~800M views on CC12M (arXiv version, §6.1):

  simclr     SimCLR                                  67.3
  ab_simclr  AB_SimCLR (the default)                 68.0
  dino       DINO                                    68.9
  ab_dino    AB_DINO                                 70.6
  clip       plain CLIP                              69.5
  clip_aug   CLIP +Aug (the arXiv version's fair baseline: CLIP also on RRC(0.05, 1) views)  72.6
  ab_clip    AB_CLIP                                 74.1

Run (on each host of a pod; see launch/):
  python -m avrl_jax.main --distributed --config configs/ab_vit_s16_cc12m.py:ab_clip \
      --workdir /mnt/BUCKET/ab_clip   # a bucket mounted on every host (gcsfuse)

What follows Table 7, per base (the AB version follows its base, plus the bootstrap batch):
  SimCLR: effective batch 8192 views = 4096 images x 2 crops; RRC(0.08, 1), flip, colour jitter
    (with hue, p 0.8), grayscale (p 0.2), blur; NT-Xent; lr 1e-3, warmup 10 ImageNet epochs,
    weight decay 0.04 -> 0.4 (cosine), no gradient clipping.
  DINO: 1024 images x 10 crops (2 global RRC(0.4, 1) at 224 px, 8 local RRC(0.05, 0.4) at
    96 px); blur 1.0 / 0.1 / 0.5 and solarisation 0.2 on the second global crop; teacher
    momentum 0.996 -> 1 (cosine); lr 1e-3, warmup 10 ImageNet epochs, weight decay 0.04 -> 0.4,
    gradient clipping 1.0; teacher temperature 0.04 -> 0.07 over 30 ImageNet epochs and the
    prototype layer frozen for the first epoch (DINO's own recipe; Table 7 is silent).
  CLIP: 8192 (image, caption) pairs, RRC(0.5, 1), no other augmentation; lr 1e-3, warmup one
    CC12M epoch, weight decay 0.1, beta2 0.98, no clipping. `clip_aug` adds one RRC(0.05, 1)
    view per image (8192 views per step at 4096 images, the AB_CLIP budget).
  AB: the annotation batch carries half the base's views per step and the bootstrap batch the
    other half, as 4 views per image (Table 7: "annotation batch = base // 2, bootstrap batch =
    base // 8" read as views, which keeps the effective batch of the base); the bootstrap views
    use RRC(0.05, 1) only; EMA target 0.996 constant for AB_CLIP, 0.996 -> 1 for the others.

Where this config deviates from the paper or is our choice (the paper is silent): 224x224
input; gamma 0.5, soft cross-entropy, next actions = the other in-batch views; 16 bins per
action coordinate; a 4-layer value head of ViT-S width; a 6-layer 512-wide text encoder;
blur sigma (0.1, 2.0) px on global and local crops alike (DINO's blur is fixed in pixels);
SimCLR's and CLIP's temperatures are learned (init 10); DINO's prototypes are 65,536 unit
vectors (its weight-normalised last layer) behind a 3-layer head; the number of steps is the
view budget over the views per step.

Data: CC12M as img2dataset shards, converted once to ArrayRecord with
  python -m avrl_jax.ingest shards /data/cc12m/shards /data/cc12m/arrayrecord --workers 32
and read with `data.name = "array_record"` (`data.source_kwargs.path`). Add `,scenes` to run the
same model and step on the embedded scenes instead.
"""

import ml_collections

from avrl_jax.config_files import sibling

default = sibling(__file__, "default")

VIEWS_SEEN = 800_000_000
IMAGENET_EPOCH = 1_281_167
# Table 7 per base: images per step, crops per image, lr, weight decay (start, end; None =
# constant), gradient clipping (0 = none), warmup (in views).
METHODS = {
    "simclr": dict(
        batch=4096, crops=2, lr=1e-3, wd=(0.04, 0.4), clip=0.0, warmup=10 * IMAGENET_EPOCH
    ),
    "dino": dict(
        batch=1024, crops=10, lr=1e-3, wd=(0.04, 0.4), clip=1.0, warmup=10 * IMAGENET_EPOCH
    ),
    "clip": dict(batch=8192, crops=1, lr=1e-3, wd=(0.1, None), clip=0.0, warmup=8_700_000),
}
VARIANTS = ("simclr", "ab_simclr", "dino", "ab_dino", "clip", "clip_aug", "ab_clip")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    args = arg.split(",") if arg else ["ab_simclr"]
    method, extra = args[0], set(args[1:])
    if method not in VARIANTS or extra - {"scenes"}:
        raise ValueError(
            f"configs/ab_vit_s16_cc12m.py: unknown variant {arg!r}; valid: {list(VARIANTS)}, "
            "optionally ',scenes'"
        )
    base = method.removeprefix("ab_").removesuffix("_aug")
    spec = METHODS[base]
    bootstrapping = method.startswith("ab_")

    c = default.get_config({"simclr": None, "dino": "dino", "clip": "clip"}[base])
    c.objective.base = base
    base_views = spec["batch"] * spec["crops"]
    if bootstrapping:
        c.annotation_batch_size = base_views // 2 // spec["crops"]
        c.bootstrap_batch_size = base_views // 8
    elif method == "clip_aug":
        c.annotation_batch_size = base_views // 2  # 2 views each: the same 8192 views
        c.objective.clip.extra_views = 1
        c.objective.ab_weight = 0.0
    else:
        c.annotation_batch_size = spec["batch"]
        c.objective.ab_weight = 0.0
    views_per_step = base_views
    c.total_steps = VIEWS_SEEN // views_per_step
    c.log_every = 100
    c.checkpoint.every_steps = 2000
    c.fewshot_eval.every_steps = 5000
    c.image_summaries.every_steps = 5000
    c.fewshot_eval.task = dict(name="count", num_train=5000, num_test=2000, seed=0, canvas_size=256)

    c.data.name = "array_record"
    c.data.source_kwargs = dict(path="/data/cc12m/arrayrecord", canvas_size=256)
    c.data.worker_count = -1  # sized to the host: half its CPUs, at most 16 (none on <= 4)

    c.env.view_size = 224
    c.env.scale = (0.05, 1.0)  # unlabeled data: RRC(0.05, 1.0) only
    if base in ("simclr", "dino"):
        c.annotation_crops.augment.update(blur_sigma=(0.1, 2.0))
    if base == "simclr":
        c.annotation_crops.scale = (0.08, 1.0)
    elif base == "dino":
        c.annotation_crops.scale = (0.4, 1.0)  # DINO's global crops
        dino = c.objective.dino
        dino.local_crops, dino.local_size, dino.local_scale = 8, 96, (0.05, 0.4)
        epoch_steps = IMAGENET_EPOCH * spec["crops"] // views_per_step
        dino.teacher_warmup_steps = 30 * epoch_steps
        dino.warmup_teacher_temperature, dino.teacher_temperature = 0.04, 0.07
        dino.freeze_last_layer_steps = epoch_steps
        c.objective.num_prototypes = 65536
    else:
        c.model.text = dict(width=512, depth=6, num_heads=8, mlp_dim=2048, max_len=77)
        c.optimizer.b2 = 0.98

    c.model.encoder.update(variant="S", patch_size=16, depth=None)
    c.model.value_head = dict(width=384, depth=4, num_heads=6, mlp_dim=1536, use_action_tokens=True)
    c.model.embed_dim = 256
    c.model.head_hidden_dim = 2048

    # EMA: constant 0.996 for AB_CLIP, cosine 0.996 -> 1 for the SimCLR and DINO bases.
    c.ema.momentum = 0.996
    c.ema.final_momentum = 1.0
    c.ema.schedule = "constant" if base == "clip" else "cosine"

    c.optimizer.learning_rate = spec["lr"]
    c.optimizer.warmup_steps = spec["warmup"] // views_per_step
    c.optimizer.weight_decay, c.optimizer.final_weight_decay = spec["wd"]
    c.optimizer.grad_clip_norm = spec["clip"]

    if "scenes" in extra:
        c.data.name = "scenes"
        c.data.source_kwargs = dict(num_scenes=50_000, canvas_size=256, seed=0)
    return c
