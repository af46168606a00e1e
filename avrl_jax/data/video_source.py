"""Video files sampled to frames at a fixed rate (EpicKitchens-style), decoded with PyAV.

At construction every video is demuxed once (packets only, no decoding) to list its frame
timestamps; sample k of a video is the last frame shown at time start + k / fps. This frame
table makes random access exact: reading sample i seeks to the keyframe before its frame and
decodes forward to it. Seeking costs up to a GOP of decoding per frame, so for long training
runs convert once with `python -m avrl_jax.ingest videos ...` (one sequential pass per video)
and train from the ArrayRecord output.

Videos that cannot be opened or hold no video stream are skipped at construction and listed in
`reader.unreadable` (logged); frames that fail to decode later are counted as bad records.
"""

from __future__ import annotations

import logging
import os
from collections.abc import Iterator, Sequence

import av
import numpy as np

from avrl_jax.data.records import (
    VIDEO_EXTENSIONS,
    Record,
    labels_from_folders,
    list_files,
    resolve_split_root,
)
from avrl_jax.data.robust_source import RobustSource

DEFAULT_FPS = 1.0


def frame_timestamps(path: str) -> tuple[np.ndarray, float]:
    """Sorted presentation timestamps (stream ticks) of a file's first video stream, and the
    seconds per tick. Demuxes packets without decoding them."""
    with av.open(path) as container:
        if not container.streams.video:
            raise ValueError("no video stream")
        stream = container.streams.video[0]
        pts = [p.pts for p in container.demux(stream) if p.pts is not None and p.size > 0]
        seconds_per_tick = float(stream.time_base)
    if not pts:
        raise ValueError("no video frames")
    return np.unique(np.asarray(pts, np.int64)), seconds_per_tick


def sample_frames(pts: np.ndarray, seconds_per_tick: float, fps: float) -> np.ndarray:
    """The frames (pts) shown at times start + k / fps, k = 0, 1, ... (no repeats), int64 [K]."""
    times = (pts - pts[0]) * seconds_per_tick
    wanted = np.arange(0.0, times[-1] + 1e-9, 1.0 / fps)
    chosen = np.searchsorted(times, wanted + 1e-9, side="right") - 1
    return pts[np.unique(chosen)]


class VideoReader:
    """Random access to frames sampled at `fps` from video files.

    Attributes:
      relpaths: the readable videos, relative to root, sorted.
      video: int32 [N], the video of each sample; pts: int64 [N], its frame's timestamp.
      unreadable: [(relpath, reason)] of videos skipped at construction.
    """

    def __init__(
        self,
        root: str,
        *,
        fps: float = DEFAULT_FPS,
        relpaths: Sequence[str] | None = None,
        labels_from_subfolders: bool = False,
        extensions: tuple[str, ...] = VIDEO_EXTENSIONS,
    ):
        if fps <= 0:
            raise ValueError(f"fps must be > 0, got {fps}")
        self.root, self.fps = root, fps
        candidates = list_files(root, extensions) if relpaths is None else list(relpaths)
        self.relpaths: list[str] = []
        self.unreadable: list[tuple[str, str]] = []
        self.seconds_per_tick: list[float] = []
        videos, frames = [], []
        for relpath in candidates:
            try:
                pts, tick = frame_timestamps(os.path.join(root, relpath))
            except Exception as e:  # broken container, no stream, unsupported codec
                self.unreadable.append((relpath, f"{type(e).__name__}: {e}"))
                logging.warning("skipping unreadable video %s: %s", relpath, e)
                continue
            chosen = sample_frames(pts, tick, fps)
            videos.append(np.full(len(chosen), len(self.relpaths), np.int32))
            frames.append(chosen)
            self.relpaths.append(relpath)
            self.seconds_per_tick.append(tick)
        self.video = np.concatenate(videos) if videos else np.zeros(0, np.int32)
        self.pts = np.concatenate(frames) if frames else np.zeros(0, np.int64)
        if labels_from_subfolders:
            self.video_labels, self.class_names = labels_from_folders(self.relpaths)
        else:
            self.video_labels = np.full(len(self.relpaths), -1, np.int32)
            self.class_names = ()

    def __len__(self) -> int:
        return len(self.pts)

    def __repr__(self) -> str:
        return (
            f"VideoReader({self.root!r}, {len(self.relpaths)} videos, {len(self)} frames at "
            f"{self.fps} fps, {len(self.unreadable)} unreadable)"
        )

    def _frame_key(self, video: int, pts: int) -> str:
        start = self.pts[np.searchsorted(self.video, video)]
        seconds = (pts - start) * self.seconds_per_tick[video]
        return f"{self.relpaths[video]}@{seconds:.3f}s"

    def key(self, index: int) -> str:
        return self._frame_key(int(self.video[index]), int(self.pts[index]))

    def read(self, index: int) -> Record:
        video, target = int(self.video[index]), int(self.pts[index])
        with av.open(os.path.join(self.root, self.relpaths[video])) as container:
            stream = container.streams.video[0]
            container.seek(target, stream=stream, backward=True, any_frame=False)
            for frame in container.decode(stream):
                if frame.pts is not None and frame.pts >= target:
                    image = frame.to_ndarray(format="rgb24")
                    break
            else:
                raise EOFError(f"frame pts={target} not found after seeking")
        return Record(key=self.key(index), image=image, label=int(self.video_labels[video]))

    def sequential(self, video: int) -> Iterator[tuple[int, Record | Exception]]:
        """All samples of one video in one decoding pass: (index, record or the error).

        Ingest uses this: decoding every frame once is far cheaper than seeking per sample.
        """
        indices = np.flatnonzero(self.video == video)
        wanted = {int(self.pts[i]): int(i) for i in indices}
        found: set[int] = set()
        try:
            with av.open(os.path.join(self.root, self.relpaths[video])) as container:
                stream = container.streams.video[0]
                stream.thread_type = "AUTO"  # frame threads: several cores per video
                for frame in container.decode(stream):
                    index = wanted.get(frame.pts) if frame.pts is not None else None
                    if index is None or frame.pts in found:
                        continue
                    found.add(frame.pts)
                    yield (
                        index,
                        Record(
                            key=self.key(index),
                            image=frame.to_ndarray(format="rgb24"),
                            label=int(self.video_labels[video]),
                        ),
                    )
        except Exception as e:  # a decode error ends the pass; the rest are bad records
            error: Exception = e
        else:
            error = EOFError("frame not decoded")
        for pts, index in sorted(wanted.items(), key=lambda kv: kv[1]):
            if pts not in found:
                yield index, error


def video_source(
    split: str,
    *,
    path: str,
    canvas_size: int,
    fps: float = DEFAULT_FPS,
    labels_from_subfolders: bool = False,
    **robust_kwargs,
) -> RobustSource:
    """Registered as "video": source_kwargs = dict(path=..., canvas_size=..., fps=...).

    `path/<split>/` is used when it exists. robust_kwargs go to RobustSource.
    """
    reader = VideoReader(
        resolve_split_root(path, split), fps=fps, labels_from_subfolders=labels_from_subfolders
    )
    return RobustSource(
        reader, canvas_size=canvas_size, class_names=reader.class_names, **robust_kwargs
    )
