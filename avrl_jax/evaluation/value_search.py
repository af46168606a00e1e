"""What a value function Q(l | view, a) says about where an annotation is: value maps over
candidate boxes, and value-guided view search.

Everything here works on a `ValueFn`: `q(sources f32[N, 4], targets f32[N, G, 4]) -> f32[N, G]`,
the value of one annotation for moving from each source box to each of its G target boxes, on
one image (bound in the closure). `avrl_jax.evaluation.value_network` builds one from a
pretraining run; tests build one whose answer is known.

- `value_map`: the value of every box of a dense grid (centre y, centre x, side) from one
  source view: f32[scales, K, K].
- `search`: from a start box, follow the move of highest value, re-evaluating from each new
  view, until no move raises the value or a step limit; `beam` > 1 keeps the best `beam` boxes
  at each step (beam search). Returns the final box, its value and the path.
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Callable, Sequence

import numpy as np

from avrl_jax.env.boxes import apply_action, candidate_grid

ValueFn = Callable[[np.ndarray, np.ndarray], np.ndarray]
FULL_BOX = np.array([0.0, 0.0, 1.0, 1.0], np.float32)
# Relative moves tried from each view (env.boxes actions: centre in the view's frame, log size
# ratios): the 27 zoom-ins of the candidate grid, shifts by a third and a sixth of the view at
# the same size, zooming about the centre (x0.9 in, x1.25 and x1.5 out), and changing the
# aspect (height or width x0.8 or x1.25; objects are rarely square).
_OFFSETS = [
    (dy, dx) for step in (1 / 3, 1 / 6) for dy in (-step, 0, step) for dx in (-step, 0, step)
]
MOVES = np.concatenate(
    [
        candidate_grid(sizes=(1 / 2, 2 / 3, 5 / 6)),
        np.asarray([(0.5 + dy, 0.5 + dx, 0.0, 0.0) for dy, dx in _OFFSETS if dy or dx]),
        np.asarray([(0.5, 0.5, math.log(z), math.log(z)) for z in (0.9, 1.25, 1.5)]),
        np.asarray([(0.5, 0.5, math.log(z), 0.0) for z in (0.8, 1.25)]),
        np.asarray([(0.5, 0.5, 0.0, math.log(z)) for z in (0.8, 1.25)]),
    ]
).astype(np.float32)


def box_grid(num_centres: int, sides: Sequence[float]) -> np.ndarray:
    """Square boxes f32[len(sides), K, K, 4]: centres on a K x K grid spanning [0, 1]
    (cell centres), each side in `sides` (fractions of the image side), clipped to the image."""
    centres = (np.arange(num_centres) + 0.5) / num_centres
    boxes = np.zeros((len(sides), num_centres, num_centres, 4), np.float32)
    for s, side in enumerate(sides):
        cy, cx = np.meshgrid(centres, centres, indexing="ij")
        boxes[s] = np.stack([cy - side / 2, cx - side / 2, cy + side / 2, cx + side / 2], -1)
    return clip_boxes(boxes)


def clip_boxes(boxes: np.ndarray, min_side: float = 1 / 16) -> np.ndarray:
    """Boxes moved (not shrunk) to lie inside [0, 1], sides clipped to [min_side, 1]."""
    boxes = np.asarray(boxes, np.float32)
    size = np.clip(boxes[..., 2:] - boxes[..., :2], min_side, 1.0)
    start = np.clip(boxes[..., :2], 0.0, 1.0 - size)
    return np.concatenate([start, start + size], axis=-1).astype(np.float32)


def value_map(q: ValueFn, grid: np.ndarray, source: np.ndarray = FULL_BOX) -> np.ndarray:
    """Q from `source` to every box of `grid` f32[..., 4] -> values f32[...] (grid's shape)."""
    flat = grid.reshape(1, -1, 4)
    return np.asarray(q(np.asarray(source, np.float32)[None], flat)).reshape(grid.shape[:-1])


@dataclasses.dataclass(frozen=True)
class SearchResult:
    """A search's end: the final box f32[4] and its value; the path of boxes f32[T + 1, 4]
    from the start and their values f32[T + 1] (the start's value is Q(start -> start))."""

    box: np.ndarray
    value: float
    path: np.ndarray
    values: np.ndarray


def search(
    q: ValueFn,
    start: np.ndarray = FULL_BOX,
    *,
    max_steps: int = 10,
    beam: int = 1,
    moves: np.ndarray = MOVES,
) -> SearchResult:
    """Value-guided view search (see the module). Stops when the best move does not raise the
    value of the best box kept so far, or after `max_steps` moves."""
    start = np.asarray(start, np.float32)
    start_value = float(np.asarray(q(start[None], start[None, None]))[0, 0])
    # Each beam entry: (path of boxes, path of values).
    beams = [([start], [start_value])]
    best = beams[0]
    for _ in range(max_steps):
        sources = np.stack([path[-1] for path, _ in beams])  # [B, 4]
        targets = clip_boxes(apply_action(sources[:, None, :], moves[None]))  # [B, M, 4]
        values = np.asarray(q(sources, targets))  # [B, M]
        order = np.argsort(-values, axis=None)[:beam]
        candidates = []
        for flat in order:
            b, m = divmod(int(flat), moves.shape[0])
            path, path_values = beams[b]
            candidates.append((path + [targets[b, m]], path_values + [float(values[b, m])]))
        if candidates[0][1][-1] <= best[1][-1]:
            break
        beams = candidates
        best = candidates[0]
    path, path_values = best
    return SearchResult(
        box=path[-1], value=path_values[-1], path=np.stack(path), values=np.asarray(path_values)
    )
