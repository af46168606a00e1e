r"""configs/default.py on your own data, with no config file to write:

  .venv/bin/python -m avrl_jax.main --config configs/real_data.py:image_folder=/data/photos \
      --workdir DIR
  .venv/bin/python -m avrl_jax.main --config configs/real_data.py:array_record=/data/cc12m/ar,dino \
      --workdir DIR
  .venv/bin/python -m avrl_jax.main --config configs/real_data.py:tfds=imagenet2012 --workdir DIR

The argument is SOURCE=PATH (`image_folder`, `array_record`, `caption_shards`, `video`: a
folder or file; `tfds`: a data set name, prepared in TFDS_DATA_DIR), then, after commas, any
variants of configs/default.py (`dino`, `clip`, `base_only`, ...; `clip` needs captions:
`caption_shards` or an `array_record` ingested from them). A path may not contain a comma.
Everything else is configs/default.py's and can be overridden as usual, e.g.
`--config.data.source_kwargs.canvas_size=128 --config.env.view_size=64`,
`--config.data.worker_count=8`.
"""

import ml_collections

from avrl_jax.config_files import sibling

default = sibling(__file__, "default")
PATH_SOURCES = ("image_folder", "array_record", "caption_shards", "video")
SOURCES = (*PATH_SOURCES, "tfds")


def get_config(arg: str | None = None) -> ml_collections.ConfigDict:
    source, _, rest = (arg or "").partition(",")
    name, _, where = source.partition("=")
    if name not in SOURCES or not where:
        raise ValueError(
            f"configs/real_data.py:{arg or ''}: give SOURCE=PATH first, SOURCE one of "
            f"{', '.join(SOURCES)} (e.g. configs/real_data.py:image_folder=/data/photos)"
        )
    c = default.get_config(rest or None)
    canvas_size = c.data.source_kwargs.canvas_size
    c.data.name = name
    key = "dataset" if name == "tfds" else "path"
    c.data.source_kwargs = {key: where, "canvas_size": canvas_size}
    return c
