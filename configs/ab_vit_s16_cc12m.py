r"""The paper's CC12M pairs at scale: each base method and its AB version, ViT-S/16.

Ghosh & Levine 2025 ([PRE] Table 7; DESIGN §1.3). Variant `:METHOD[,scenes]`; the targets are
ImageNet decoder-probe accuracies after ~800M views on CC12M (arXiv version, PAPER.md §6.1):

  simclr     SimCLR                       67.3
  ab_simclr  AB_SimCLR (the default)      68.0
  dino       DINO                         68.9
  ab_dino    AB_DINO                      70.6
  clip       CLIP (+ the same extra aug)  72.6 (69.5 without it)
  ab_clip    AB_CLIP                      74.1

Run (on each host of a pod; see launch/):
  python -m avrl_jax.main --distributed --config configs/ab_vit_s16_cc12m.py:ab_clip \
      --workdir /mnt/BUCKET/ab_clip   # a bucket mounted on every host (gcsfuse)

Batches follow Table 7: AB uses an annotation batch of base // 2 images and a bootstrap batch
of base // 8 images x 4 views; the base-only runs use the base batch itself. Hardware is not
stated in the paper; plan for a TPU v4-64 / v5e-64 class pod.

Data: CC12M as img2dataset shards, converted once to ArrayRecord with
  python -m avrl_jax.ingest shards /data/cc12m/shards /data/cc12m/arrayrecord --workers 32
and read with `data.name = "array_record"` (`data.source_kwargs.path`). Add `,scenes` to run the
same model and step on the embedded scenes instead.

Choices of ours where the paper is silent: 224x224 input, gamma 0.5, soft cross-entropy, 16 bins
per action coordinate, a 4-layer value head of ViT-S width, a 6-layer 512-wide text encoder.
"""

import ml_collections

from configs import default

VIEWS_SEEN = 800_000_000
IMAGENET_EPOCH = 1_281_167
# Per base method: batch size, crops per image, learning rate, weight decay, warmup (views).
METHODS = {
    "simclr": dict(batch=4096, crops=2, lr=1e-3, wd=0.1, warmup=10 * IMAGENET_EPOCH),
    "dino": dict(batch=1024, crops=10, lr=1e-3, wd=0.1, warmup=10 * IMAGENET_EPOCH),
    "clip": dict(batch=8192, crops=1, lr=1e-3, wd=0.1, warmup=8_700_000),  # 1 CC12M epoch
}


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    args = arg.split(",") if arg else ["ab_simclr"]
    method, extra = args[0], set(args[1:])
    base = method.removeprefix("ab_")
    if base not in METHODS or extra - {"scenes"}:
        raise ValueError(
            f"configs/ab_vit_s16_cc12m.py: unknown variant {arg!r}; valid: "
            f"{sorted(METHODS) + ['ab_' + m for m in METHODS]}, optionally ',scenes'"
        )
    spec = METHODS[base]
    bootstrapping = method.startswith("ab_")

    c = default.get_config({"simclr": None, "dino": "dino", "clip": "clip"}[base])
    c.objective.base = base
    if bootstrapping:
        c.annotation_batch_size = spec["batch"] // 2
        c.bootstrap_batch_size = spec["batch"] // 8
    else:
        c.annotation_batch_size = spec["batch"]
        c.objective.ab_weight = 0.0
    # DINO's 10 crops are approximated by its two global crops here (multi-crop is not built).
    crops = min(spec["crops"], 2)
    views_per_step = crops * c.annotation_batch_size + (
        4 * c.bootstrap_batch_size if bootstrapping else 0
    )
    c.total_steps = VIEWS_SEEN // views_per_step
    c.log_every = 100
    c.checkpoint.every_steps = 2000
    c.fewshot_eval.every_steps = 5000
    c.fewshot_eval.task = dict(name="count", num_train=5000, num_test=2000, seed=0, canvas_size=256)

    c.data.name = "array_record"
    c.data.source_kwargs = dict(path="/data/cc12m/arrayrecord", canvas_size=256)
    c.data.worker_count = 16

    c.env.view_size = 224
    c.env.scale = (0.05, 1.0)  # unlabeled data: RRC(0.05, 1.0) only
    if base == "simclr":
        c.annotation_crops.scale = (0.08, 1.0)
        c.annotation_crops.jitter_strength = 0.8
    elif base == "dino":
        c.annotation_crops.scale = (0.4, 1.0)  # DINO's global crops
        c.annotation_crops.jitter_strength = 0.8
        c.objective.num_prototypes = 65536
    else:  # clip, with the extra augmentation of the fair "CLIP +Aug" baseline
        c.annotation_crops.scale = (0.5, 1.0)
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
    c.optimizer.weight_decay = spec["wd"]
    c.optimizer.grad_clip_norm = 1.0

    if "scenes" in extra:
        c.data.name = "scenes"
        c.data.source_kwargs = dict(num_scenes=50_000, canvas_size=256, seed=0)
    return c
