"""The same conversion as an Apache Beam pipeline, for corpora that outgrow one machine.

  python -m avrl_jax.ingest shards /data/cc12m/tars /data/cc12m/arrayrecord --beam \\
      -- --runner=DataflowRunner --project=P --region=R --temp_location=gs://B/tmp ...

Environment: apache-beam 2.77.0 requires pillow<13, which the training set (pillow 13.0.0)
excludes, so the Beam job gets its own environment. Ingest needs no JAX, Grain or TFDS:

  python -m venv beam-env && beam-env/bin/pip install apache-beam==2.77.0 numpy==2.4.6 \\
      array-record==0.8.6 av==18.1.0 tqdm==4.70.1 && beam-env/bin/pip install --no-deps -e .

(checked: in that environment, with pillow 12.3.0, the direct runner writes the same bytes as
the local mode run with pillow 13.0.0: shards keep the original image bytes; only video frames
are JPEG-encoded by PIL, so mix PIL versions across runs of a video corpus with care).

The launcher plans the tasks (listing inputs only), Beam runs `writer.write_shard` on each task
on its workers, and one final step writes the metadata: the per-shard function is the local
runner's, so for the same input the output is byte-identical (tests/test_ingest.py checks it
with the direct runner). Input and output folders must be visible at the same path on every
worker (a shared file system or a gcsfuse mount), since shards are written with local file I/O.
Resuming works as locally: finished shards are skipped.
"""

from __future__ import annotations

from collections.abc import Sequence

from avrl_jax.ingest import writer
from avrl_jax.ingest.tasks import IngestSpec, plan


def _write(task, spec: IngestSpec) -> dict:
    return writer.write_shard(spec, task)


def _finalize(results: list[dict], spec: IngestSpec, class_names: tuple[str, ...]) -> dict:
    return writer.finalize(spec, results, class_names)


def run_beam(spec: IngestSpec, pipeline_args: Sequence[str] = ()) -> dict:
    """Runs the conversion on Beam (direct runner unless pipeline_args name another); waits for
    it and returns the metadata (read back from the output folder)."""
    import apache_beam as beam
    from apache_beam.options.pipeline_options import PipelineOptions

    from avrl_jax.data import record_format

    tasks, class_names = plan(spec)
    options = PipelineOptions(list(pipeline_args))
    with beam.Pipeline(options=options) as pipeline:
        _ = (
            pipeline
            | "Tasks" >> beam.Create(tasks)
            # Spread tasks over workers (Create alone may keep them on one).
            | "Spread" >> beam.Reshuffle()
            | "WriteShard" >> beam.Map(_write, spec)
            | "Gather" >> beam.combiners.ToList()
            | "Finalize" >> beam.Map(_finalize, spec, class_names)
        )
    return record_format.read_metadata(spec.output, spec.split)
