"""Bad config values fail at start with a message naming the field and the valid choices."""

import pytest

from avrl_jax.config_validation import validate_config
from configs import ab_vit_s16_cc12m, default


def check(config, batch_shards=1, process_count=1):
    validate_config(config, batch_shards=batch_shards, process_count=process_count)


def test_default_configs_are_valid():
    for arg in (None, *default.VARIANTS, "smoke,dino", "dino,base_only", "smoke,clip_aug"):
        check(default.get_config(arg), batch_shards=8)
    for arg in ab_vit_s16_cc12m.VARIANTS:
        check(ab_vit_s16_cc12m.get_config(arg + ",scenes"), batch_shards=64)


def test_batch_not_divisible_by_devices():
    config = default.get_config("smoke")
    config.bootstrap_batch_size = 12
    with pytest.raises(ValueError, match=r"bootstrap_batch_size=12 is not divisible by the 8"):
        check(config, batch_shards=8)


def test_batch_not_divisible_by_processes():
    config = default.get_config("smoke")
    config.annotation_batch_size = 15
    with pytest.raises(ValueError, match=r"annotation_batch_size=15 .* 2 processes"):
        check(config, process_count=2)


@pytest.mark.parametrize(
    "field, value, message",
    [
        ("model.encoder.variant", "XL", r"model.encoder.variant='XL'.*'mu', 'Ti', 'S'"),
        ("model.encoder.dtype", "float16", r"model.encoder.dtype='float16'.*'bfloat16'"),
        ("objective.base", "mae", r"objective.base='mae'.*'simclr', 'labels'"),
        ("objective.divergence", "kl", r"objective.divergence='kl'.*'softmax', 'bce'"),
        ("ema.schedule", "linear", r"ema.schedule='linear'.*'constant', 'cosine'"),
        ("data.name", "nope", r"data.name='nope'.*'scenes'"),
        ("objective.gamma", 1.5, r"objective.gamma=1.5 must lie in \[0, 1\)"),
        ("objective.gamma", 1.0, r"objective.gamma=1.0 must lie in \[0, 1\)"),
        ("objective.next_actions", "all", r"objective.next_actions='all' is not valid"),
        ("objective.simclr.loss", "byol", r"objective.simclr.loss='byol' is not valid"),
        ("annotation_crops.augment.hue", 0.7, r"hue must be in \[0.0, 0.5\], got 0.7"),
        ("objective.grid.sizes", (0.1, 1.0), r"objective.grid.sizes=\(0.1, 1.0\) leaves"),
        ("env.num_views", 1, r"env.num_views=1 must be at least 2"),
        ("env.view_size", 20, r"env.view_size=20 is not divisible by model.encoder.patch_size=8"),
    ],
)
def test_bad_values_name_field_and_choices(field, value, message):
    config = default.get_config("smoke")
    node = config
    *parents, leaf = field.split(".")
    for name in parents:
        node = node[name]
    node[leaf] = value
    with pytest.raises(ValueError, match=message):
        check(config)


def test_paper_configs_are_valid():
    for method in ("simclr", "ab_simclr", "dino", "ab_dino", "clip", "ab_clip"):
        config = ab_vit_s16_cc12m.get_config(method)
        check(config, batch_shards=64)
        assert config.data.name == "array_record"
        assert (config.objective.ab_weight > 0) == method.startswith("ab_")
    with pytest.raises(ValueError, match="unknown variant 'mae'"):
        ab_vit_s16_cc12m.get_config("mae")
