"""Host-side accounting of skipped records: metrics and the `max_bad_fraction` stop.

Real-data batches carry `bad_reason` int32 [b] (0: the record decoded; else a decode.REASONS
code) and `bad_key` uint8 [b, MAX_KEY_LEN] (the skipped record's key). The train loop hands each
local batch to `BadRecordMonitor.update`, which removes those two fields (the update step does
not need them), counts, and raises `TooManyBadRecordsError` naming examples once the fraction
of bad records passes the limit. Counts are per host: every host reads its own slice of every
global batch, so each host's fraction estimates the global one.
"""

from __future__ import annotations

import collections
from collections.abc import Mapping, MutableMapping, Sequence

import numpy as np

from avrl_jax.data.decode import REASONS
from avrl_jax.data.records import decode_text

BAD_FIELDS = ("bad_reason", "bad_key")
# Do not judge the fraction on a handful of records: 1 bad file among the first 10 is 10%.
DEFAULT_MIN_RECORDS = 1000
MAX_EXAMPLES = 5


class TooManyBadRecordsError(RuntimeError):
    """More than max_bad_fraction of the records read could not be decoded."""


def check_bad_fraction(
    num_bad: int,
    num_seen: int,
    max_bad_fraction: float,
    examples: Sequence[str] = (),
    *,
    min_records: int = DEFAULT_MIN_RECORDS,
    counts: Mapping[str, int] | None = None,
    limit_name: str = "data.max_bad_fraction",
) -> None:
    """Raises TooManyBadRecordsError if num_bad / num_seen > max_bad_fraction.

    Not checked before `min_records` records have been seen (pass 0 for a final count).
    `examples` ("key: reason" strings) and per-reason `counts` go into the message.
    """
    if num_seen == 0 or num_bad <= max_bad_fraction * num_seen:
        return
    if num_seen < min_records:
        return
    by_reason = ", ".join(f"{k}={v}" for k, v in sorted((counts or {}).items()) if v)
    shown = "; ".join(examples[:MAX_EXAMPLES]) or "(no keys recorded)"
    raise TooManyBadRecordsError(
        f"{num_bad} of {num_seen} records ({num_bad / num_seen:.2%}) could not be decoded, "
        f"above max_bad_fraction={max_bad_fraction:.2%}"
        + (f" [{by_reason}]" if by_reason else "")
        + f". Examples: {shown}. Fix or remove these files, or raise {limit_name}."
    )


class BadRecordMonitor:
    """Counts bad records over the batches of one or more streams and enforces the limit.

    Usage (the train loop, per step, before the batch goes to the device):
      monitor = BadRecordMonitor(config.data.max_bad_fraction)
      for each stream's local batch: monitor.update(batch)  # removes bad_reason, bad_key
      at log time: scalars.update(monitor.metrics())
    """

    def __init__(
        self,
        max_bad_fraction: float,
        *,
        min_records: int = DEFAULT_MIN_RECORDS,
        prefix: str = "data",
    ):
        if not 0.0 <= max_bad_fraction <= 1.0:
            raise ValueError(f"max_bad_fraction={max_bad_fraction!r} must lie in [0, 1]")
        self.max_bad_fraction = max_bad_fraction
        self.min_records = min_records
        self.prefix = prefix
        self.num_seen = 0
        self.counts: collections.Counter[str] = collections.Counter()
        self.examples: list[str] = []

    @property
    def num_bad(self) -> int:
        return sum(self.counts.values())

    def update(self, batch: MutableMapping[str, np.ndarray]) -> None:
        """Counts one local batch and removes its bad-record fields (a no-op without them).

        Raises:
          TooManyBadRecordsError: the running fraction passed max_bad_fraction.
        """
        if "bad_reason" not in batch:
            return
        reasons = np.asarray(batch.pop("bad_reason")).reshape(-1)
        keys = batch.pop("bad_key", None)
        self.num_seen += reasons.size
        for row in np.flatnonzero(reasons):
            reason = REASONS[int(reasons[row])]
            self.counts[reason] += 1
            if len(self.examples) < MAX_EXAMPLES:
                key = decode_text(keys[row]) if keys is not None else "?"
                self.examples.append(f"{key}: {reason}")
        check_bad_fraction(
            self.num_bad,
            self.num_seen,
            self.max_bad_fraction,
            self.examples,
            min_records=self.min_records,
            counts=self.counts,
        )

    def metrics(self) -> dict[str, float]:
        """Running totals since this monitor was made: <prefix>/records_seen,
        <prefix>/bad_records, <prefix>/bad_fraction and <prefix>/bad/<reason> for every reason
        in decode.REASONS (prefix "data" by default)."""
        p = self.prefix
        out = {
            f"{p}/records_seen": float(self.num_seen),
            f"{p}/bad_records": float(self.num_bad),
            f"{p}/bad_fraction": self.num_bad / self.num_seen if self.num_seen else 0.0,
        }
        out.update({f"{p}/bad/{reason}": float(self.counts[reason]) for reason in REASONS[1:]})
        return out
