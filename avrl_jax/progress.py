"""The console progress line: step, steps/s, images/s and ETA."""

import time


def format_duration(seconds: float) -> str:
    seconds = int(max(seconds, 0))
    hours, rest = divmod(seconds, 3600)
    minutes, secs = divmod(rest, 60)
    return f"{hours}:{minutes:02d}:{secs:02d}" if hours else f"{minutes}:{secs:02d}"


class Progress:
    """Throughput per logging window, and an ETA that leaves compilation out.

    `perf/steps_per_sec` is the window's own rate (the first window holds compilation). The
    ETA uses the mean rate since `started` (the first step of this process, compiled and
    finished): the steps since then over the time since then, so it excludes compilation and
    is smoothed over every window so far. Before `started`, or with no step since it, the
    window's rate stands in.
    """

    def __init__(self, total_steps: int, images_per_step: int, start_step: int = 0):
        self.total_steps = total_steps
        self.images_per_step = images_per_step
        self._last_step = start_step
        self._last_time = time.perf_counter()
        self._reference: tuple[int, float] | None = None

    def started(self, step: int) -> None:
        """Marks `step` as done (compiled and computed: block on its outputs first)."""
        self._reference = (step, time.perf_counter())

    def update(self, step: int) -> dict[str, float]:
        now = time.perf_counter()
        steps = step - self._last_step
        elapsed = max(now - self._last_time, 1e-9)
        self._last_step, self._last_time = step, now
        steps_per_sec = steps / elapsed
        rate = steps_per_sec
        if self._reference is not None and step > self._reference[0]:
            rate = (step - self._reference[0]) / max(now - self._reference[1], 1e-9)
        return {
            "perf/steps_per_sec": steps_per_sec,
            "perf/images_per_sec": steps_per_sec * self.images_per_step,
            "perf/eta_sec": (self.total_steps - step) / max(rate, 1e-9),
        }

    def line(self, step: int, perf: dict[str, float], metrics: dict[str, float]) -> str:
        shown = " ".join(f"{k}={v:.4g}" for k, v in metrics.items())
        return (
            f"step {step}/{self.total_steps} | {perf['perf/steps_per_sec']:.2f} steps/s "
            f"{perf['perf/images_per_sec']:.0f} img/s | ETA "
            f"{format_duration(perf['perf/eta_sec'])} | {shown}"
        )
