r"""AB_SimCLR, ViT-S/16, paper scale (Ghosh & Levine 2025, [PRE] Table 7; DESIGN §1.3).

Target: 68.0 ImageNet decoder-probe accuracy (SimCLR alone: 67.3) after ~800M views on CC12M
without captions; the linear probe lands lower. Hardware is not stated in the paper; plan for a
TPU v4-64 / v5e-64 class pod (global batch 2048 + 512 images, 6144 views a step).

Run (on each host of a pod; see launch/):
  python -m avrl_jax.main --config configs/ab_vit_s16_cc12m.py --workdir gs://BUCKET/ab_s16

Data: CC12M as img2dataset shards converted to ArrayRecord. The real-data sources are not yet
registered in `avrl_jax.data.pipeline.SOURCES`; until they are, this config stops at start with an
error naming `data.name` and the registered sources. `:scenes` swaps in the embedded scenes to
check the model and step at full size.

Choices of ours where the paper is silent: 224x224 input, gamma 0.5, soft cross-entropy, action
bins (16 per coordinate), the value head's depth (4 layers of ViT-S width).
"""

import ml_collections

from configs import default

BASE_BATCH = 4096  # SimCLR's batch in [PRE] Table 7
VIEWS_SEEN = 800_000_000


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    c = default.get_config()
    c.annotation_batch_size = BASE_BATCH // 2  # x 2 crops
    c.bootstrap_batch_size = BASE_BATCH // 8  # x 4 views
    views_per_step = 2 * c.annotation_batch_size + 4 * c.bootstrap_batch_size
    c.total_steps = VIEWS_SEEN // views_per_step  # ~130k
    c.log_every = 100

    c.data.name = "cc12m"
    c.data.num_classes = 0
    c.data.source_kwargs = dict(path="/data/cc12m/arrayrecord", canvas_size=256)
    c.data.worker_count = 16

    c.env.view_size = 224
    c.env.scale = (0.05, 1.0)  # unlabeled data: RRC(0.05, 1.0) only
    c.annotation_crops.scale = (0.08, 1.0)  # SimCLR's augmentations
    c.annotation_crops.jitter_strength = 0.8

    c.model.encoder = dict(variant="S", patch_size=16, depth=None, pool="cls")
    c.model.value_head = dict(width=384, depth=4, num_heads=6, mlp_dim=1536)
    c.model.embed_dim = 256
    c.model.head_hidden_dim = 2048

    c.ema.momentum = 0.996  # 0.004 -> 0 in [PRE]'s notation
    c.ema.final_momentum = 1.0
    c.ema.schedule = "cosine"

    c.optimizer.learning_rate = 1e-3
    c.optimizer.warmup_steps = 12_811_167 * 10 // views_per_step  # 10 ImageNet epochs
    c.optimizer.weight_decay = 0.1
    c.optimizer.grad_clip_norm = 1.0

    if arg == "scenes":
        c.data.name = "scenes"
        c.data.num_classes = 20
        c.data.source_kwargs = dict(num_scenes=50_000, canvas_size=256, seed=0)
    elif arg:
        raise ValueError(f"configs/ab_vit_s16_cc12m.py: unknown variant {arg!r}; valid: 'scenes'")
    return c
