r"""What a run's value function knows, drawn: value maps and value-guided view searches.

Run:
  python -m avrl_jax.visualize values --workdir DIR --scene 0 --scene 1 --annotation zebra \
      --out values.png
  python -m avrl_jax.visualize search --workdir DIR --scene 0 --scene 1 --out search.png

`values`: for each (image, annotation) a row: the image with the best box of the grid outlined,
and Q(l | whole image, move to box) over a grid of square boxes (--num_centres x --num_centres
centres, one heat map per side in --sides). `search`: for each (image, annotation) the path of
greedy (or --beam) value-guided search from the whole image, its boxes numbered; with
--scene and no --annotation, one search per object of the scene, for the object's class, its
box drawn in white.

Images: --scene I (scene I of the embedded test split, at the run's canvas size) or
--image FILE (resized and centre-cropped to the canvas), each repeatable. Annotations
(repeatable): a class name (`zebra`, `three`) or an index (`17`) for runs with a class or
prototype table (labels, curated sets, dino); `crop:FILE` or `crop:scene:I` (the whole of
another image) for simclr; `caption:TEXT` for clip. --step N (default: the newest),
--random_init (the run's initial network, for comparison).
The work is done by avrl_jax.evaluation.value_search / value_network / value_plots.
"""

from __future__ import annotations

import numpy as np
from absl import app, flags

from avrl_jax import cli, console

COMMANDS = ("values", "search")


def define_flags() -> dict[str, flags.FlagHolder]:
    holders = {
        "workdir": flags.DEFINE_string("workdir", None, "The pretraining run's workdir."),
        "step": flags.DEFINE_integer("step", None, "Checkpoint step (default: the newest)."),
        "random_init": flags.DEFINE_bool("random_init", False, "The run's initial network."),
        "scene": flags.DEFINE_multi_integer("scene", [], "A test scene of the embedded data."),
        "image": flags.DEFINE_multi_string("image", [], "An image file."),
        "annotation": flags.DEFINE_multi_string("annotation", [], "What to look for."),
        "out": flags.DEFINE_string("out", None, "The PNG to write."),
        "num_centres": flags.DEFINE_integer("num_centres", 16, "Box centres per axis (values)."),
        "sides": flags.DEFINE_list("sides", ["0.25", "0.4", "0.6"], "Box sides (values)."),
        "max_steps": flags.DEFINE_integer("max_steps", 10, "Moves at most (search)."),
        "beam": flags.DEFINE_integer("beam", 1, "Boxes kept per step; 1 = greedy (search)."),
    }
    flags.mark_flags_as_required(["workdir", "out"])
    return holders


def _canvas_size(run) -> int:
    return int(run.config.data.source_kwargs.get("canvas_size", 64))


def load_images(run, scene_ids, files) -> list[tuple[str, np.ndarray, dict | None]]:
    """(title, canvas uint8 [S, S, 3], the scene dict or None) for each --scene and --image."""
    from PIL import Image

    from avrl_jax.data import scenes
    from avrl_jax.data.canvas import to_canvas

    size = _canvas_size(run)
    images = []
    if scene_ids:
        source = scenes.SceneSource("test", max(scene_ids) + 1, size, 0)
        images += [(f"scene {i}", source[i]["image"], source[i]) for i in scene_ids]
    for path in files:
        try:
            with Image.open(path) as image:
                images.append((path, to_canvas(np.asarray(image.convert("RGB")), size), None))
        except OSError as error:
            raise FileNotFoundError(
                f"--image={path}: cannot be read as an image ({error})"
            ) from None
    if not images:
        raise ValueError("give at least one image: --scene I or --image FILE")
    return images


def annotation_kwargs(run, name: str) -> tuple[str, dict]:
    """A --annotation value -> (its label, RunValue.bind keyword arguments)."""
    from avrl_jax.data import scenes

    if name.startswith("caption:"):
        return name, {"caption": name[len("caption:") :]}
    if name.startswith("crop:"):
        what = name[len("crop:") :]
        if what.startswith("scene:"):
            ((_, crop, _),) = load_images(run, [int(what[len("scene:") :])], [])
        else:
            ((_, crop, _),) = load_images(run, [], [what])
        return name, {"crop": crop}
    if name.isdigit():
        return name, {"index": int(name)}
    if name in scenes.OBJECT_CLASSES and run.num_annotations() == scenes.NUM_CLASSES:
        return name, {"index": scenes.OBJECT_CLASSES.index(name)}
    raise ValueError(
        f"--annotation={name!r}: not a class of this run (objective.base={run.base!r}); give a "
        f"class name ({', '.join(scenes.OBJECT_CLASSES[:3])}, ...) or an index for labels/dino "
        "runs, crop:FILE or crop:scene:I for simclr, caption:TEXT for clip"
    )


def _rows(run, images, annotations):
    """(image title, canvas, annotation label, bind kwargs, truth box or None) to draw."""
    from avrl_jax.data import scenes

    rows = []
    for title, canvas, scene in images:
        if annotations:
            for name in annotations:
                label, kwargs = annotation_kwargs(run, name)
                rows.append((title, canvas, label, kwargs, None))
        elif scene is not None and run.num_annotations() == scenes.NUM_CLASSES:
            for k in range(int(scene["num_objects"])):  # each object, by its class
                cls = int(scene["classes"][k])
                rows.append(
                    (title, canvas, scenes.OBJECT_CLASSES[cls], {"index": cls}, scene["boxes"][k])
                )
        else:
            raise ValueError("name what to look for with --annotation (see --help)")
    return rows


def main(argv):
    if len(argv) != 2 or argv[1] not in COMMANDS:
        raise app.UsageError(f"give one command, {' or '.join(COMMANDS)}; got {argv[1:]}")
    from avrl_jax.evaluation import value_plots, value_search
    from avrl_jax.evaluation.value_network import RunValue

    console.quiet_console()
    f = {name: holder.value for name, holder in _FLAGS.items()}
    run = RunValue(f["workdir"], f["step"], random_init=f["random_init"])
    rows = _rows(run, load_images(run, f["scene"], f["image"]), f["annotation"])
    which = "random init" if f["random_init"] else f"step {run.step}"
    if argv[1] == "values":
        sides = [float(s) for s in f["sides"]]
        grid = value_search.box_grid(f["num_centres"], sides)
        drawn = []
        for title, canvas, label, kwargs, _ in rows:
            values = value_search.value_map(run.bind(canvas, **kwargs), grid)
            best = grid.reshape(-1, 4)[int(np.argmax(values))]
            drawn.append(
                dict(
                    image=canvas, title=f"{title}: {label} ({which})", values=values, best_box=best
                )
            )
        value_plots.plot_value_maps(drawn, sides, f["out"])
    else:
        drawn = []
        for title, canvas, label, kwargs, truth in rows:
            result = value_search.search(
                run.bind(canvas, **kwargs), max_steps=f["max_steps"], beam=f["beam"]
            )
            drawn.append(dict(image=canvas, title=f"{title}: {label}", result=result, truth=truth))
        value_plots.plot_search_paths(drawn, f["out"])
    print(f"wrote {f['out']} ({len(rows)} rows, {which} of {f['workdir']})")


if __name__ == "__main__":
    _FLAGS = define_flags()
    cli.run(main)
