"""Value maps, value-guided search, the localise probe and their drawings, on value functions
whose answer is known; then the same tools on a real (smoke) run's network."""

import io
import json
import os

import numpy as np
import pytest
from conftest import REPO, module_command, run_command
from PIL import Image

from avrl_jax.env.boxes import box_iou
from avrl_jax.evaluation import localise, value_plots, value_search

TRUE_BOX = np.array([0.50, 0.10, 0.80, 0.40], np.float32)  # lower left, side 0.3


def iou_value(truth):
    """Q(source -> target) = IoU(target, truth): a value function that knows where it is."""

    def q(sources, targets):
        assert sources.shape[0] == targets.shape[0] and targets.shape[-1] == 4
        return np.asarray(box_iou(targets, truth[None, None]))

    return q


def test_value_map_peaks_at_the_known_box():
    sides = (0.15, 0.3, 0.6)
    grid = value_search.box_grid(10, sides)
    assert grid.shape == (3, 10, 10, 4)
    assert (grid >= 0).all() and (grid <= 1).all()
    values = value_search.value_map(iou_value(TRUE_BOX), grid)
    assert values.shape == (3, 10, 10)
    s, i, j = np.unravel_index(np.argmax(values), values.shape)
    assert sides[s] == 0.3 and (i, j) == (6, 2)  # centre (0.65, 0.25) is the nearest cell
    assert float(box_iou(grid[s, i, j], TRUE_BOX)) > 0.99


@pytest.mark.parametrize("beam", [1, 3])
def test_search_reaches_the_known_box_and_stops(beam):
    result = value_search.search(iou_value(TRUE_BOX), max_steps=8, beam=beam)
    assert float(box_iou(result.box, TRUE_BOX)) > 0.7, result
    assert np.all(np.diff(result.values) > 0)  # every move raised the value
    assert result.path.shape == (len(result.values), 4)
    np.testing.assert_array_equal(result.path[0], value_search.FULL_BOX)
    assert len(result.path) <= 9
    assert (result.path >= 0).all() and (result.path <= 1).all()


def test_search_does_not_move_when_nothing_is_better():
    flat = lambda sources, targets: np.zeros(targets.shape[:2])  # noqa: E731
    result = value_search.search(flat)
    assert len(result.path) == 1 and np.array_equal(result.box, value_search.FULL_BOX)


def test_localise_scores_a_knowing_and_a_blind_value_function():
    objects = list(localise.scene_objects(12, 32, 0))
    assert len(objects) == 12
    truths = iter([box for _, box, _ in objects])  # bound once per object, in order

    def knowing(canvas, cls):  # IoU with the object's box, and nearer is better when it is 0
        truth = next(truths)

        def q(sources, targets):
            centre = lambda b: (b[..., :2] + b[..., 2:]) / 2  # noqa: E731
            distance = np.linalg.norm(centre(targets) - centre(truth), axis=-1)
            return iou_value(truth)(sources, targets) - 0.1 * distance

        return q

    def rewards(canvas, boxes):  # the object's class, likelier the more the view shows of it
        truth, cls = by_canvas[canvas.tobytes()]
        probs = np.full((len(boxes), 20), 0.01)
        probs[:, cls] = np.asarray(box_iou(boxes, truth[None]))
        probs[:, (cls + 1) % 20] = 0.5  # top class where the view misses the object
        return probs

    by_canvas = {}
    for canvas, box, cls in objects:  # an object per canvas: the first of each scene
        by_canvas.setdefault(canvas.tobytes(), (box, cls))
    firsts = [o for o in objects if by_canvas[o[0].tobytes()][0] is o[1]]
    assert len(firsts) >= 2
    blind = lambda canvas, cls: lambda s, t: np.zeros(t.shape[:2])  # noqa: E731
    metrics = localise.localise(knowing, blind, objects, max_steps=12)
    assert metrics["localise/mean_iou"] > 0.6 and metrics["localise/iou50"] > 0.8, metrics
    # One step over the grid finds the grid's best box, which no map can beat.
    assert metrics["value_map/mean_iou"] == pytest.approx(metrics["grid_best/mean_iou"])
    assert metrics["grid_best/mean_iou"] > 0.6 and "reward/box_accuracy" not in metrics
    reward_metrics = localise.reward_diagnostics(rewards, firsts)
    grid_best = localise.baseline_ious(np.stack([box for _, box, _ in firsts]), 0)["grid_best"]
    assert reward_metrics["reward_map/mean_iou"] == pytest.approx(np.mean(grid_best))
    # On the tight box the class has probability 1, above the 0.5 of the decoy class.
    assert reward_metrics["reward/box_accuracy"] == 1.0
    uniform = lambda canvas, boxes: np.ones((len(boxes), 20))  # noqa: E731  top class: 0
    accuracy = localise.reward_diagnostics(uniform, firsts)["reward/box_accuracy"]
    assert accuracy == np.mean([cls == 0 for _, _, cls in firsts]) < 1
    whole = np.mean([float(box_iou(value_search.FULL_BOX, box)) for _, box, _ in objects])
    assert metrics["random_init_search/mean_iou"] == pytest.approx(whole, abs=1e-6)
    assert metrics["whole_image/mean_iou"] == pytest.approx(whole, abs=1e-6)
    for name in localise.BASELINES:
        assert metrics[f"{name}/mean_iou"] < metrics["localise/mean_iou"]
    assert metrics["num_test"] == 12


def yellow_box(png, extent):
    """The bounding box (y0, x0, y1, x1), as fractions of the drawn image, of the yellow
    outline inside `extent` of the PNG."""
    pixels = np.asarray(Image.open(png).convert("RGB")).astype(int)
    left, top, right, bottom = (int(round(v)) for v in extent)
    panel = pixels[top:bottom, left:right]
    yellow = (panel[..., 0] > 200) & (panel[..., 1] > 200) & (panel[..., 2] < 80)
    ys, xs = np.nonzero(yellow)
    h, w = panel.shape[:2]
    return np.array([ys.min() / h, xs.min() / w, ys.max() / h, xs.max() / w])


def test_value_map_png_shows_the_argmax_box_where_it_is(tmp_path):
    sides = (0.3,)
    grid = value_search.box_grid(8, sides)
    values = value_search.value_map(iou_value(TRUE_BOX), grid)
    best = grid.reshape(-1, 4)[int(np.argmax(values))]
    image = np.zeros((64, 64, 3), np.uint8)  # black: only the outline is yellow
    path = tmp_path / "values.png"
    extents = value_plots.plot_value_maps(
        [dict(image=image, title="known", values=values, best_box=best)] * 2, sides, str(path)
    )
    png = Image.open(path)
    assert png.size[0] > 200 and png.size[1] > 200
    assert np.asarray(png.convert("L")).std() > 5  # not constant
    np.testing.assert_allclose(yellow_box(path, extents[1]), best, atol=0.05)


def test_search_png_draws_the_path(tmp_path):
    result = value_search.search(iou_value(TRUE_BOX))
    path = tmp_path / "search.png"
    image = np.full((64, 64, 3), 40, np.uint8)
    extents = value_plots.plot_search_paths(
        [dict(image=image, title="known", result=result, truth=TRUE_BOX)], str(path)
    )
    pixels = np.asarray(Image.open(path).convert("RGB")).astype(int)
    left, top, right, bottom = (int(round(v)) for v in extents[0])
    panel = pixels[top:bottom, left:right]
    assert panel.std() > 5
    white = (panel > 240).all(-1)  # the true box's outline
    ys, xs = np.nonzero(white)
    h, w = panel.shape[:2]
    found = np.array([ys.min() / h, xs.min() / w, ys.max() / h, xs.max() / w])
    np.testing.assert_allclose(found, TRUE_BOX, atol=0.05)


# --------------------------------------------------------------------------------------------
# The tools on a real network: a 6-step smoke run with class labels.


@pytest.fixture(scope="module")
def labels_workdir(tmp_path_factory):
    workdir = tmp_path_factory.mktemp("labels")
    cmd = module_command(
        "avrl_jax.main",
        *["--config", os.path.join(REPO, "configs", "default.py:labels,smoke")],
        *["--workdir", str(workdir)],
    )
    result = run_command(cmd, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    return workdir


def test_run_value_function_is_a_probability_per_box_and_independent_of_batching(
    labels_workdir,
):
    from avrl_jax.data import scenes
    from avrl_jax.evaluation.value_network import RunValue

    run = RunValue(str(labels_workdir))
    assert run.step == 6 and run.num_annotations() == scenes.NUM_CLASSES
    canvas = scenes.SceneSource("test", 1, 32, 0)[0]["image"]
    q = run.bind(canvas, index=3)
    sources = np.array([[0, 0, 1, 1], [0.2, 0.2, 0.8, 0.8]], np.float32)
    targets = value_search.box_grid(3, (0.5,)).reshape(1, -1, 4).repeat(2, 0)
    values = q(sources, targets)
    assert values.shape == (2, 9) and ((0 < values) & (values < 1)).all()
    np.testing.assert_allclose(q(sources[1:], targets[1:]), values[1:], atol=1e-5)
    assert np.ptp(values[0]) > 0  # the move matters
    # The probabilities of all classes sum to 1 for each move.
    total = sum(run.bind(canvas, index=k)(sources[:1], targets[:1]) for k in range(20))
    np.testing.assert_allclose(total, 1.0, atol=1e-4)
    # The rewards Q learns from: the base head's class probabilities of each box's own view.
    probs = run.reward_probabilities(canvas, sources)
    assert probs.shape == (2, 20) and np.ptp(probs) > 0
    np.testing.assert_allclose(probs.sum(-1), 1.0, atol=1e-5)
    np.testing.assert_allclose(run.reward_probabilities(canvas, sources[1:]), probs[1:], atol=1e-5)
    with pytest.raises(ValueError, match="outside the table"):
        run.bind(canvas, index=20)
    with pytest.raises(ValueError, match="crop names an annotation of simclr"):
        run.bind(canvas, crop=canvas)


def test_visualize_cli_writes_value_maps_and_search_paths(labels_workdir, tmp_path):
    for command, extra in [
        ("values", ["--annotation", "zebra", "--annotation", "3", "--num_centres", "6"]),
        ("search", []),  # one search per object of the scene, for its class
    ]:
        out = tmp_path / f"{command}.png"
        cmd = module_command(
            "avrl_jax.visualize",
            command,
            *["--workdir", str(labels_workdir), "--scene", "0", "--scene", "1"],
            *extra,
            *["--out", str(out)],
        )
        result = run_command(cmd, timeout=600)
        assert result.returncode == 0, result.stderr[-3000:]
        image = np.asarray(Image.open(out).convert("L"))
        assert image.shape[0] > 200 and image.std() > 5
        assert f"wrote {out}" in result.stdout
    bad = run_command(
        module_command(
            "avrl_jax.visualize",
            "values",
            "--workdir",
            str(labels_workdir),
            "--scene",
            "0",
            "--annotation",
            "unicorn",
            "--out",
            str(tmp_path / "x.png"),
        ),
        timeout=300,
    )
    assert bad.returncode == 1 and "--annotation='unicorn'" in bad.stderr
    assert "Traceback" not in bad.stderr and not (tmp_path / "x.png").exists()


def test_localise_probe_cli(labels_workdir):
    overrides = ["--config.task.num_test=6", "--config.task.canvas_size=32"]
    overrides.append("--config.search.max_steps=2")
    cmd = module_command(
        "avrl_jax.probe",
        *["--workdir", str(labels_workdir)],
        *["--config", os.path.join(REPO, "configs", "probe_localise.py"), *overrides],
    )
    result = run_command(cmd, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    metrics = json.load(open(labels_workdir / "probe_results.json"))["localise"]["6"]["metrics"]
    diagnostics = ("value_map", "reward_map", "grid_best")
    for name in ("localise", *localise.BASELINES, *diagnostics):
        assert 0 <= metrics[f"{name}/mean_iou"] <= 1 and 0 <= metrics[f"{name}/iou50"] <= 1
    assert 0 <= metrics["reward/box_accuracy"] <= 1
    assert metrics["num_test"] == 6 and "localise/mean_iou" in result.stdout


def test_training_writes_episode_and_value_map_images_to_tensorboard(tmp_path):
    from conftest import run_main
    from tensorboard.backend.event_processing import event_accumulator

    run_main(tmp_path, "--config.image_summaries.every_steps=4", check=True)  # smoke: 6 steps
    events = event_accumulator.EventAccumulator(
        str(tmp_path / "tensorboard" / "train"), size_guidance={"images": 0}
    )
    events.Reload()
    tags = events.Tags()["images"]
    assert set(tags) == {"bootstrap/episodes", "values/probe_scene"}, tags
    for tag in tags:
        (image,) = events.Images(tag)  # step 4 only (logging steps 2, 4, 6)
        assert image.step == 4
        pixels = np.asarray(Image.open(io.BytesIO(image.encoded_image_string)))
        assert pixels.ndim == 3 and pixels.shape[0] >= 64 and pixels.std() > 5, tag


@pytest.mark.parametrize(
    "variant, kwargs",
    [
        ("smoke", "crop"),  # simclr: another image's view names the annotation
        ("smoke,clip", "caption"),
        ("smoke,dino", "index"),
    ],
)
def test_every_objective_names_its_annotations(tmp_path, variant, kwargs):
    """Random-init networks of each objective: the value map of its kind of annotation is
    finite and depends on the box (logits for a crop or a caption, probabilities for a table)."""
    import importlib.util

    from avrl_jax.config_history import write_config
    from avrl_jax.data import scenes
    from avrl_jax.evaluation.value_network import RunValue

    spec = importlib.util.spec_from_file_location("d", os.path.join(REPO, "configs", "default.py"))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    write_config(module.get_config(variant), str(tmp_path))
    run = RunValue(str(tmp_path), random_init=True)
    source = scenes.SceneSource("test", 2, 32, 0)
    canvas, other = source[0]["image"], source[1]["image"]
    named = {"crop": {"crop": other}, "caption": {"caption": "a red three on grass"}}
    values = value_search.value_map(
        run.bind(canvas, **named.get(kwargs, {"index": 5})), value_search.box_grid(4, (0.5,))
    )
    assert values.shape == (1, 4, 4) and np.isfinite(values).all() and np.ptp(values) > 0
    if kwargs == "index":
        assert ((0 < values) & (values < 1)).all()
    with pytest.raises(ValueError, match="name one annotation"):
        run.bind(canvas)
