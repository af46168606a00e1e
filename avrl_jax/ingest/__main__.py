"""The ingest command line. `python -m avrl_jax.ingest --help` lists the options.

  python -m avrl_jax.ingest KIND INPUT OUTPUT [options] [--beam [-- BEAM_PIPELINE_OPTIONS]]

KIND is folder, shards or videos. Re-running the same command resumes: finished shards are
skipped. Exit status 1 (with the examples named) when too many records are bad.
"""

from __future__ import annotations

import argparse
import os
import sys
import time
from collections.abc import Sequence

from avrl_jax.data.bad_records import TooManyBadRecordsError
from avrl_jax.ingest.tasks import KINDS, IngestSpec


def parse_args(argv: Sequence[str]) -> tuple[argparse.Namespace, list[str]]:
    """Our arguments, and the Beam pipeline options given after `--`."""
    argv = list(argv)
    beam_args: list[str] = []
    if "--" in argv:
        split_at = argv.index("--")
        argv, beam_args = argv[:split_at], argv[split_at + 1 :]
    defaults = IngestSpec(kind="folder", input="", output="")
    p = argparse.ArgumentParser(
        prog="python -m avrl_jax.ingest",
        description="Convert images, caption shards or videos into ArrayRecord shards.",
    )
    p.add_argument("kind", choices=KINDS)
    p.add_argument("input", help="input folder (folder, videos) or folder/glob of .tar shards")
    p.add_argument("output", help="output folder")
    p.add_argument("--split", default=defaults.split)
    p.add_argument("--records_per_shard", type=int, default=defaults.records_per_shard)
    p.add_argument(
        "--labels_from_subfolders",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="class labels from the first folder level (default: on for folder, off for videos)",
    )
    p.add_argument("--fps", type=float, default=defaults.fps, help="video frames per second")
    p.add_argument("--jpeg_quality", type=int, default=defaults.jpeg_quality)
    p.add_argument("--max_pixels", type=int, default=defaults.max_pixels)
    p.add_argument("--max_aspect_ratio", type=float, default=defaults.max_aspect_ratio)
    p.add_argument("--max_bad_fraction", type=float, default=defaults.max_bad_fraction)
    p.add_argument("--min_records", type=int, default=defaults.min_records)
    p.add_argument("--workers", type=int, default=os.cpu_count() or 1, help="0: no pool")
    p.add_argument("--beam", action="store_true", help="run as an Apache Beam pipeline")
    p.add_argument("--verify_only", action="store_true", help="check a finished output")
    p.add_argument("--no_progress", action="store_true")
    return p.parse_args(argv), beam_args


def spec_from_args(args: argparse.Namespace) -> IngestSpec:
    labels = args.labels_from_subfolders
    return IngestSpec(
        kind=args.kind,
        input=args.input,
        output=args.output,
        split=args.split,
        records_per_shard=args.records_per_shard,
        labels_from_subfolders=(args.kind == "folder") if labels is None else labels,
        fps=args.fps,
        jpeg_quality=args.jpeg_quality,
        max_pixels=args.max_pixels,
        max_aspect_ratio=args.max_aspect_ratio,
        max_bad_fraction=args.max_bad_fraction,
        min_records=args.min_records,
    )


def main(argv: Sequence[str] | None = None) -> int:
    args, beam_args = parse_args(sys.argv[1:] if argv is None else argv)
    spec = spec_from_args(args)
    from avrl_jax.ingest import writer

    start = time.perf_counter()
    try:
        if args.verify_only:
            metadata = writer.verify_output(spec.output, spec.split)
        elif args.beam:
            from avrl_jax.ingest.beam import run_beam

            metadata = run_beam(spec, beam_args)
        else:
            from avrl_jax.ingest.local import run_local

            metadata = run_local(spec, workers=args.workers, progress=not args.no_progress)
    except TooManyBadRecordsError as e:
        print(f"ingest stopped: {e}", file=sys.stderr)
        return 1
    if not args.verify_only:
        writer.verify_output(spec.output, spec.split)
    bad = ", ".join(f"{k}={v}" for k, v in metadata["bad_counts"].items()) or "none"
    print(
        f"{spec.output}: {metadata['num_records']} records in {len(metadata['shards'])} shards "
        f"(split {spec.split!r}), verified; skipped bad records: {metadata['num_bad']} ({bad}); "
        f"{time.perf_counter() - start:.1f}s"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
