"""The local runner: shards written in parallel worker processes, with a progress bar.

Stops early (cancelling the shards not started) once the bad-record fraction over the finished
shards passes `spec.max_bad_fraction`; finished shards stay, so a re-run resumes.
"""

from __future__ import annotations

import concurrent.futures
import multiprocessing

from tqdm import tqdm

from avrl_jax.ingest import writer
from avrl_jax.ingest.tasks import IngestSpec, plan


def run_local(spec: IngestSpec, workers: int = 0, progress: bool = True) -> dict:
    """Converts spec.input into ArrayRecord shards under spec.output. Returns the metadata.

    workers: processes (0: in this process, no pool). Skips shards an earlier run finished.

    Raises:
      TooManyBadRecordsError: more than spec.max_bad_fraction of the records were bad.
    """
    tasks, class_names = plan(spec)
    results: list[dict] = []
    bar = tqdm(total=len(tasks), unit="shard", disable=not progress, desc=f"ingest {spec.split}")

    def done(result: dict) -> None:
        results.append(result)
        records = sum(r["num_records"] for r in results)
        bad = sum(r["num_bad"] for r in results)
        skipped = sum(r["skipped"] for r in results)
        bar.set_postfix(records=records, bad=bad, resumed=skipped, refresh=False)
        bar.update(1)
        writer.check_results(spec, results)

    try:
        if workers <= 0:
            for task in tasks:
                done(writer.write_shard(spec, task))
        else:
            # Spawned (not forked) workers: the caller may hold threads (Grain, JAX).
            context = multiprocessing.get_context("spawn")
            with concurrent.futures.ProcessPoolExecutor(workers, mp_context=context) as pool:
                futures = [pool.submit(writer.write_shard, spec, task) for task in tasks]
                try:
                    for future in concurrent.futures.as_completed(futures):
                        done(future.result())
                except BaseException:
                    for future in futures:
                        future.cancel()
                    raise
    finally:
        bar.close()
    return writer.finalize(spec, results, class_names)
