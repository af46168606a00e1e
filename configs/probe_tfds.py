r"""Probe on a real TFDS data set prepared as ArrayRecord (default `imagenet2012`: train and
validation splits), read with `tfds.data_source` (no TensorFlow). Images are resized
(shorter side) and centre-cropped to the encoder's input size.

Run (the data set must be prepared in TFDS_DATA_DIR or --config.task.data_dir):
  .venv/bin/python -m avrl_jax.probe --workdir DIR --config configs/probe_tfds.py \
      --config.task.data_dir=/path/to/tensorflow_datasets
Another data set: --config.name=tfds_cifar10 --config.task.dataset=cifar10 \
      --config.task.test_split=test
(`name` keys probe_results.json; set it per data set.)

Expect: the paper's ViT-S/16 recipes (224 px, ImageNet) reach 68-74% linear/MAP accuracy
after full pretraining; the tiny 32 px default encoder gives far less. Nothing here was
measured on ImageNet (no copy on the development machine); the task's code path is tested on
TFDS mock data.
Sizes: num_train examples drawn at random from the train split (the full ImageNet train set is
1.28M; 50k-100k is a usual quick probe), the whole validation set for 50k.
"""

import ml_collections
from ml_collections import config_dict

from avrl_jax.config_files import sibling

add_probe_sections = sibling(__file__, "probe_common").add_probe_sections


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    if arg:
        raise ValueError(f"configs/probe_tfds.py takes no variants, got {arg!r}")
    c = ml_collections.ConfigDict()
    c.name = "tfds_imagenet2012"  # the key in probe_results.json and the TensorBoard folder
    c.seed = 0
    c.batch_size = 256  # images per frozen forward pass
    c.token_dtype = "bfloat16"  # MAP probe tokens: 50k x 196 x 384 x 2 bytes = 7.5 GB at 224 px

    c.task = ml_collections.ConfigDict()
    c.task.name = "tfds"
    c.task.num_train = 50_000  # a seeded random subset of the train split
    c.task.num_test = 50_000  # imagenet2012's validation split has 50,000
    c.task.seed = 0
    c.task.dataset = "imagenet2012"
    c.task.train_split = "train"
    c.task.test_split = "validation"
    c.task.image_key = "image"
    c.task.label_key = "label"
    c.task.data_dir = config_dict.placeholder(str)  # None: TFDS's default (TFDS_DATA_DIR)
    c.task.num_classes = config_dict.placeholder(int)  # None: from the data set's info
    c.task.num_threads = 8  # decoding threads

    add_probe_sections(c)
    return c
