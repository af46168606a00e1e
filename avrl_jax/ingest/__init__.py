"""Ingest: folders of images, img2dataset caption shards or videos -> ArrayRecord shards.

  python -m avrl_jax.ingest folder  /data/photos  /data/photos_ar  [--workers 8]
  python -m avrl_jax.ingest shards  /data/cc12m   /data/cc12m_ar   [--beam -- BEAM_OPTIONS]
  python -m avrl_jax.ingest videos  /data/epic    /data/epic_ar    --fps 2

Then train with `config.data.name = "array_record"` and
`config.data.source_kwargs = dict(path="/data/photos_ar", canvas_size=...)`.

Modules: tasks (what to convert, split into output shards), writer (write, verify, resume,
metadata), local (process pool + progress bar), beam (Apache Beam pipeline), __main__ (CLI).
"""

from avrl_jax.ingest.local import run_local
from avrl_jax.ingest.tasks import IngestSpec, ShardTask, plan
from avrl_jax.ingest.writer import IngestVerificationError, verify_output

__all__ = [
    "IngestSpec",
    "IngestVerificationError",
    "ShardTask",
    "plan",
    "run_local",
    "verify_output",
]
