"""The probe settings every probe config shares (linear, MAP, kNN, few-shot, decoder sections)."""

import ml_collections
from ml_collections import config_dict


def add_probe_sections(c: ml_collections.ConfigDict) -> ml_collections.ConfigDict:
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

    # The decoder probe (configs/probe_decoder.py turns it on): text answers from patch tokens.
    c.decoder = ml_collections.ConfigDict()
    c.decoder.enabled = False
    c.decoder.width = config_dict.placeholder(int)  # None: the encoder's
    c.decoder.depth = 4
    c.decoder.num_heads = config_dict.placeholder(int)  # None: the encoder's
    c.decoder.mlp_dim = config_dict.placeholder(int)  # None: 4 x width
    c.decoder.learning_rate = 1e-3
    c.decoder.weight_decay = 1e-4
    c.decoder.steps = 1000
    c.decoder.warmup_steps = 50
    c.decoder.batch_size = 256
    return c
