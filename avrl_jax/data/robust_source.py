"""Any record reader -> a Grain source of canvases that never fails on a bad record.

A Grain source must return an element for every index, and the batch shape must not change,
so a bad record cannot simply be dropped. Instead, element i is the first good record among
i, p(i, 1), p(i, 2), ... where p is a fixed hash of (i, attempt) (not i + 1: a run of bad files,
such as a corrupt shard, would otherwise repeat the same neighbour). The element carries
`bad_reason` > 0 when record i itself was bad, and its key in `bad_key`. So:

- every element is a pure function of its index: order, resumption from a Grain checkpoint and
  multi-host slicing stay exact, and batches stay full;
- each bad record is counted exactly once per epoch (by the element of its own index, not by
  the elements that probed it), so summing `bad_reason > 0` over a stream counts bad records.

numpy + PIL only (no JAX): runs inside spawned Grain worker processes.
"""

from __future__ import annotations

import logging

import numpy as np

from avrl_jax.data import decode
from avrl_jax.data.records import (
    MAX_CAPTION_LEN,
    MAX_KEY_LEN,
    Record,
    RecordReader,
    encode_text,
)
from avrl_jax.errors import UserError

# Probes beyond the record itself. 16 consecutive bad probes of independent hashed positions
# happen only when most of the data set is bad; the error then says so.
DEFAULT_MAX_PROBES = 16
# PIL decodes without the GIL, so read threads overlap decoding: 1 / 2 / 4 threads gave about
# 450 / 470 / 820 JPEG images/s on 2 shared cores (canvas 64, batch 48; the embedded scenes keep
# 1 thread: they are Python-bound). Each thread builds whole batches and as many are buffered.
DEFAULT_READ_THREADS = 4

_MASK64 = (1 << 64) - 1


def probe_index(index: int, attempt: int, size: int) -> int:
    """The attempt-th substitute for record `index` in [0, size): a splitmix64 hash."""
    z = (index * 0x9E3779B97F4A7C15 + attempt * 0xBF58476D1CE4E5B9 + 0x94D049BB133111EB) & _MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & _MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & _MASK64
    return (z ^ (z >> 31)) % size


class AllProbesBadError(UserError, RuntimeError):
    """Record i and all its substitutes were bad: most of the data set cannot be decoded."""


class RobustSource:
    """A random-access Grain source of decoded, fixed-size examples.

    Element i (a dict of numpy arrays):
      image: uint8 [S, S, 3], the canvas (shorter side resized to S, centre crop).
      label: int32 [], class index or -1.
      caption_bytes: uint8 [MAX_CAPTION_LEN], UTF-8 caption, zero padded (decode_text).
      bad_reason: int32 [], 0 if record i decoded, else its decode.REASONS code; the other
        fields then come from the substitute record.
      bad_key: uint8 [MAX_KEY_LEN], record i's key (zero when good), the tail of the path kept.
    """

    def __init__(
        self,
        reader: RecordReader,
        *,
        canvas_size: int,
        max_pixels: int = decode.DEFAULT_MAX_PIXELS,
        max_aspect_ratio: float = decode.DEFAULT_MAX_ASPECT_RATIO,
        max_probes: int = DEFAULT_MAX_PROBES,
        read_threads: int = DEFAULT_READ_THREADS,
        class_names: tuple[str, ...] = (),
    ):
        if len(reader) == 0:
            raise ValueError(f"{reader!r} holds no records")
        self.reader = reader
        self.options = decode.DecodeOptions(
            canvas_size=canvas_size, max_pixels=max_pixels, max_aspect_ratio=max_aspect_ratio
        )
        self.max_probes = max_probes
        self.read_threads = read_threads
        self.class_names = tuple(class_names)

    @property
    def read_options(self):
        """grain.ReadOptions; make_dataset uses them when its caller passes none."""
        import grain  # here, not at the top: grain imports JAX (2 s), which ingest never needs

        return grain.ReadOptions(
            num_threads=self.read_threads, prefetch_buffer_size=max(2, self.read_threads)
        )

    def __len__(self) -> int:
        return len(self.reader)

    def __repr__(self) -> str:
        return f"RobustSource({self.reader!r}, canvas_size={self.options.canvas_size})"

    def decode(self, index: int) -> tuple[Record, np.ndarray]:
        """Record `index` and its canvas uint8 [S, S, 3]; raises decode.BadRecordError."""
        try:
            record = self.reader.read(index)
        except decode.BadRecordError:
            raise
        except Exception as e:  # a reader's I/O or container error: count it, never crash
            raise decode.BadRecordError("read_error", f"{type(e).__name__}: {e}") from None
        if isinstance(record.image, bytes | bytearray | memoryview):
            canvas = decode.decode_image(bytes(record.image), self.options)
        else:
            canvas = decode.array_to_canvas(record.image, self.options)
        return record, canvas

    def __getitem__(self, index: int) -> dict[str, np.ndarray]:
        index = int(index)
        n = len(self)
        if not 0 <= index < n:
            raise IndexError(f"index {index} out of range for {n} records")
        failures: list[str] = []  # "key: reason" of each candidate tried
        bad: decode.BadRecordError | None = None
        for attempt in range(self.max_probes + 1):
            candidate = index if attempt == 0 else probe_index(index, attempt, n)
            try:
                record, canvas = self.decode(candidate)
            except decode.BadRecordError as e:
                if attempt == 0:
                    bad = e
                    logging.debug("bad record %s: %s", self.reader.key(index), e)
                failures.append(f"{self.reader.key(candidate)}: {e}")
                continue
            return self._element(record, canvas, bad, index)
        shown = "; ".join(failures[:4]) + (
            f"; and {len(failures) - 4} more" if len(failures) > 4 else ""
        )
        raise AllProbesBadError(
            f"record {index} and its {self.max_probes} substitutes are all bad ({shown}) in "
            f"{self.reader!r}: the data set looks mostly unreadable. Check those files; if this "
            "many bad records are expected, raise data.source_kwargs.max_probes (substitutes "
            f"tried per bad record, now {self.max_probes}) and data.max_bad_fraction (the share "
            "of bad records a run accepts)"
        )

    def _element(
        self, record: Record, canvas: np.ndarray, bad: decode.BadRecordError | None, index: int
    ) -> dict[str, np.ndarray]:
        return {
            "image": canvas,
            "label": np.int32(record.label),
            "caption_bytes": encode_text(record.caption, MAX_CAPTION_LEN),
            "bad_reason": np.int32(0 if bad is None else bad.code),
            "bad_key": encode_text(
                "" if bad is None else self.reader.key(index), MAX_KEY_LEN, keep="tail"
            ),
        }
