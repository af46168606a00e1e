"""TensorBoard images during pretraining (`config.image_summaries.every_steps`):

- `bootstrap/episodes`: the first bootstrap images of the step's batch, each canvas with its
  episode's view boxes drawn (one colour per view) and the views as the network saw them. The
  boxes are the step's own: `train_step.bootstrap_episodes` on the same images and stream
  indices.
- `values/probe_scene`: test scene `image_summaries.scene` of the embedded data, beside the value
  map Q(l | whole scene, move to box) of its annotation, one heat map per box side: the scene's
  primary class (labels), prototype 0 (dino), the scene itself as a crop (simclr), its caption
  (clip).
Images are uint8 [H, W, 3], drawn with PIL (no matplotlib in the loop).
"""

from __future__ import annotations

import numpy as np
from PIL import Image, ImageDraw

from avrl_jax.env.render import denormalize
from avrl_jax.evaluation import value_search

COLOURS = (
    (255, 220, 0),
    (0, 200, 255),
    (255, 60, 60),
    (80, 255, 80),
    (255, 0, 255),
    (255, 255, 255),
)
UPSCALE = 4
VALUE_SIDES = (0.25, 0.4, 0.6)
VALUE_CENTRES = 12


def _big(image: np.ndarray, size: int) -> Image.Image:
    return Image.fromarray(np.asarray(image, np.uint8)).resize((size, size), Image.NEAREST)


def _row(images: list[Image.Image], gap: int = 4) -> Image.Image:
    width = sum(i.width for i in images) + gap * (len(images) - 1)
    row = Image.new("RGB", (width, max(i.height for i in images)), (0, 0, 0))
    x = 0
    for image in images:
        row.paste(image, (x, 0))
        x += image.width + gap
    return row


def _column(rows: list[Image.Image], gap: int = 4) -> np.ndarray:
    width = max(r.width for r in rows)
    out = Image.new("RGB", (width, sum(r.height for r in rows) + gap * (len(rows) - 1)))
    y = 0
    for row in rows:
        out.paste(row, (0, y))
        y += row.height + gap
    return np.asarray(out)


def draw_boxes(canvas: np.ndarray, boxes: np.ndarray) -> Image.Image:
    """The canvas, upscaled, with each box f32[4] (normalised y0, x0, y1, x1) outlined."""
    size = canvas.shape[0] * UPSCALE
    image = _big(canvas, size)
    draw = ImageDraw.Draw(image)
    for k, (y0, x0, y1, x1) in enumerate(np.asarray(boxes) * size):
        draw.rectangle([x0, y0, x1 - 1, y1 - 1], outline=COLOURS[k % len(COLOURS)], width=2)
    return image


def episodes_image(canvases: np.ndarray, boxes: np.ndarray, views: np.ndarray) -> np.ndarray:
    """canvases uint8 [B, S, S, 3], boxes f32[B, n, 4], views f32[B, n, v, v, 3] (normalised)
    -> one image: a row per episode, the canvas with its boxes, then its views."""
    size = canvases.shape[1] * UPSCALE
    pixels = np.clip(np.asarray(denormalize(views)) * 255, 0, 255).astype(np.uint8)
    rows = []
    for canvas, episode_boxes, episode_views in zip(canvases, boxes, pixels, strict=True):
        shown = [_big(view, size // 2) for view in episode_views]
        for k, view in enumerate(shown):  # each view framed in its box's colour
            ImageDraw.Draw(view).rectangle(
                [0, 0, view.width - 1, view.height - 1], outline=COLOURS[k % len(COLOURS)], width=2
            )
        rows.append(_row([draw_boxes(canvas, episode_boxes), *shown]))
    return _column(rows)


def heat(values: np.ndarray, vmin: float, vmax: float) -> np.ndarray:
    """f32[K, K] -> uint8 [K, K, 3]: dark blue (vmin) through green to yellow (vmax)."""
    t = np.clip((values - vmin) / max(vmax - vmin, 1e-12), 0.0, 1.0)[..., None]
    low, mid, high = np.array([30, 20, 90]), np.array([30, 160, 120]), np.array([250, 230, 30])
    colour = np.where(t < 0.5, low + (mid - low) * (2 * t), mid + (high - mid) * (2 * t - 1))
    return colour.astype(np.uint8)


def value_map_image(canvas: np.ndarray, values: np.ndarray, grid: np.ndarray) -> np.ndarray:
    """The canvas with the grid's best box outlined, then one heat map per box side (a shared
    colour scale)."""
    size = canvas.shape[0] * UPSCALE
    best = grid.reshape(-1, 4)[int(np.argmax(values))]
    maps = [_big(heat(v, float(values.min()), float(values.max())), size) for v in values]
    return _column([_row([draw_boxes(canvas, best[None]), *maps])])


def annotation_of(run, scene: dict) -> dict:
    """What the probe scene's value map looks for (see the module), as RunValue.bind kwargs."""
    if run.base == "labels":
        return {"index": int(scene["label"])}
    if run.base == "dino":
        return {"index": 0}
    if run.base == "simclr":
        return {"crop": scene["image"]}
    data = bytes(np.asarray(scene["caption_bytes"], np.uint8)).rstrip(b"\0")
    return {"caption": data.decode("utf-8")}


class TrainImages:
    """The images of one logging step (see the module); build once per run."""

    def __init__(self, config):
        from avrl_jax.data import scenes

        self.config = config
        canvas_size = int(config.data.source_kwargs.get("canvas_size", 64))
        index = int(config.image_summaries.scene)
        self.scene = scenes.SceneSource("test", index + 1, canvas_size, 0)[index]
        self.grid = value_search.box_grid(VALUE_CENTRES, VALUE_SIDES)

    def __call__(self, graphdef, params, bootstrap_batch: dict | None, step: int) -> dict:
        from avrl_jax.evaluation.value_network import RunValue
        from avrl_jax.train_step import bootstrap_episodes

        images = {}
        if bootstrap_batch is not None:
            count = int(self.config.image_summaries.num_episodes)
            canvases = np.asarray(bootstrap_batch["image"][:count])
            episodes = bootstrap_episodes(self.config, canvases, bootstrap_batch["index"][:count])
            images["bootstrap/episodes"] = episodes_image(
                canvases, np.asarray(episodes["boxes"]), np.asarray(episodes["views"])
            )
        run = RunValue.of(self.config, graphdef, params, step)
        q = run.bind(self.scene["image"], **annotation_of(run, self.scene))
        values = value_search.value_map(q, self.grid)
        images["values/probe_scene"] = value_map_image(self.scene["image"], values, self.grid)
        return images
