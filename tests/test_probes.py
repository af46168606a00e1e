"""Frozen-feature probes: tasks, feature extraction, linear / MAP / kNN / ridge, and the CLI."""

import importlib.util
import json
import os

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest import REPO, module_command, run_command
from flax import nnx

from avrl_jax.data import scenes
from avrl_jax.env.render import normalize, render
from avrl_jax.evaluation import features, knn, linear_probe, map_probe, ridge, tasks
from avrl_jax.models.params import from_plain_params, to_plain_params
from avrl_jax.models.vit import ViT


def load_config(name: str, arg: str | None = None):
    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "configs", name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


def tiny_encoder(image_size: int = 16, seed: int = 0):
    return to_plain_params(
        ViT(variant="mu", patch_size=8, image_size=image_size, depth=1, rngs=nnx.Rngs(seed))
    )


def clusters(rng, n, num_classes, dim, spread=0.3):
    """Well separated Gaussian clusters: (x f32[n, dim], y int32[n], centres)."""
    centres = rng.normal(size=(num_classes, dim)) * 3.0
    y = rng.integers(0, num_classes, n).astype(np.int32)
    return (centres[y] + spread * rng.normal(size=(n, dim))).astype(np.float32), y


# --------------------------------------------------------------------------------------------
# kNN.


def knn_reference(train_x, train_y, test_x, num_classes, k, temperature):
    """The whole [N_test, N_train] similarity matrix at once, in numpy."""
    normalise = lambda x: x / np.linalg.norm(x, axis=1, keepdims=True)
    sim = normalise(test_x) @ normalise(train_x).T
    idx = np.argsort(-sim, axis=1)[:, :k]
    weights = np.exp(np.take_along_axis(sim, idx, 1) / temperature)
    votes = np.zeros((test_x.shape[0], num_classes))
    for c in range(num_classes):
        votes[:, c] = (weights * (train_y[idx] == c)).sum(1)
    return votes.argmax(1)


def test_knn_chunked_equals_unchunked_and_reference():
    rng = np.random.default_rng(0)
    train_x, test_x = rng.normal(size=(300, 16)), rng.normal(size=(101, 16))
    train_y = rng.integers(0, 5, 300)
    kw = dict(ks=(1, 5, 20), temperature=0.07)
    chunked = knn.knn_predict(train_x, train_y, test_x, 5, test_chunk=7, train_chunk=13, **kw)
    whole = knn.knn_predict(train_x, train_y, test_x, 5, test_chunk=512, train_chunk=512, **kw)
    for k in (1, 5, 20):
        np.testing.assert_array_equal(chunked[k], whole[k])
        np.testing.assert_array_equal(whole[k], knn_reference(train_x, train_y, test_x, 5, k, 0.07))
    # Random labels: the predictions are not all one class (the votes do something).
    assert len(np.unique(whole[20])) > 1


def test_knn_exact_on_separable_clusters():
    rng = np.random.default_rng(1)
    x, y = clusters(rng, 400, 8, 12, spread=0.05)
    acc = knn.knn_accuracy(x[:300], y[:300], x[300:], y[300:], 8, ks=(1, 20), train_chunk=64)
    assert acc == {"accuracy_k1": 1.0, "accuracy_k20": 1.0}


# --------------------------------------------------------------------------------------------
# Linear probe.


def test_linear_probe_near_perfect_on_separable_features():
    rng = np.random.default_rng(2)
    x, y = clusters(rng, 1200, 10, 32)
    out = linear_probe.linear_probe(
        x[:1000], y[:1000], x[1000:], y[1000:], 10, steps=200, batch_size=256
    )
    assert out["accuracy"] >= 0.99 and out["holdout_accuracy"] >= 0.99, out


def correlated_noise_task(rng, n):
    """Two classes separated along dim 0, with a large noise shared by dims 0 and 1.

    The class means differ only along dim 0, so a nearly untrained classifier (weights along
    the class means) sees the shared noise (std 10) and is near chance; the trained one learns
    w ~ (1, -1), which cancels the noise. Standardisation scales both dims alike and cannot
    remove it.
    """
    y = rng.integers(0, 2, n).astype(np.int32)
    shared = 10.0 * rng.normal(size=n)
    x = np.stack([2.0 * y - 1.0 + shared, shared], axis=1) + 0.05 * rng.normal(size=(n, 2))
    return x.astype(np.float32), y


def test_linear_sweep_does_not_pick_a_far_too_small_learning_rate():
    rng = np.random.default_rng(3)
    x, y = correlated_noise_task(rng, 1500)
    result = linear_probe.linear_sweep(
        x[:1000],
        y[:1000],
        x[1000:],
        y[1000:],
        2,
        learning_rates=(1e-7, 1e-2, 1e-1),
        weight_decays=(0.0, 1e-4),
        steps=300,
        batch_size=256,
        holdout_fraction=0.2,
    )
    tiny = result.learning_rates == np.float32(1e-7)
    assert result.holdout_accuracy[tiny].max() < 0.75, result.holdout_accuracy
    best = result.metrics()
    assert best["learning_rate"] > 1e-3 and best["accuracy"] > 0.97, best
    # Every grid point was evaluated on the test split too.
    assert result.test_accuracy.shape == (6,)


def test_linear_sweep_sgd_and_full_batch():
    rng = np.random.default_rng(4)
    x, y = clusters(rng, 300, 3, 8)
    out = linear_probe.linear_probe(
        x[:200], y[:200], x[200:], y[200:], 3, optimizer="sgd", steps=50, batch_size=1000
    )
    assert out["accuracy"] == 1.0, out
    with pytest.raises(ValueError, match="linear.optimizer='lbfgs'"):
        linear_probe.linear_probe(x, y, x, y, 3, optimizer="lbfgs")


# --------------------------------------------------------------------------------------------
# Few-shot ridge regression.


def test_few_shot_ridge_perfect_on_separable_and_chance_on_random_labels():
    rng = np.random.default_rng(5)
    x, y = clusters(rng, 2000, 10, 64)
    out = ridge.few_shot_accuracy(x[:1000], y[:1000], x[1000:], y[1000:], (1, 5), (1e-3, 1.0), 0)
    assert out["1shot/accuracy"] == 1.0 and out["5shot/accuracy"] == 1.0, out
    assert out["5shot/l2_reg"] in (1e-3, 1.0)

    random_labels = rng.integers(0, 10, 2000)
    out = ridge.few_shot_accuracy(
        x[:1000], random_labels[:1000], x[1000:], random_labels[1000:], 10
    )
    assert abs(out["10shot/accuracy"] - 0.1) < 0.05, out


def test_ridge_weights_match_the_normal_equations():
    rng = np.random.default_rng(6)
    for n, d in ((50, 8), (8, 50)):  # N >= D and D > N
        x, t = rng.normal(size=(n, d)), rng.normal(size=(n, 3))
        w = ridge.ridge_weights(x, t, [0.5])[0]
        np.testing.assert_allclose(w, np.linalg.solve(x.T @ x + 0.5 * np.eye(d), x.T @ t), 1e-8)


# --------------------------------------------------------------------------------------------
# MAP probe.


def which_token_task(rng, n, positions, num_classes=4, width=32):
    """Label = which of the first `num_classes` tokens carries a signal vector. Tokens also carry
    fixed position embeddings (as a ViT's do). Their mean holds the signal whatever its position,
    so a linear probe on the mean is at chance; attention can find the token and read its
    position."""
    signal = 3.0 * rng.normal(size=width)
    y = rng.integers(0, num_classes, n).astype(np.int32)
    tokens = positions[None] + 0.5 * rng.normal(size=(n, *positions.shape))
    tokens[np.arange(n), y] += signal
    return tokens.astype(np.float32), y


def test_map_probe_reads_which_token_carries_the_signal():
    rng = np.random.default_rng(7)
    positions = rng.normal(size=(8, 32))
    x, y = which_token_task(rng, 1500, positions)  # one set (one signal vector), split
    train, test = slice(0, 1200), slice(1200, None)
    out = map_probe.map_probe(
        x[train],
        y[train],
        x[test],
        y[test],
        4,
        num_heads=2,
        steps=80,
        batch_size=64,
        learning_rate=3e-3,
        warmup_steps=10,
    )
    assert out["accuracy"] > 0.9, out
    pooled = linear_probe.linear_probe(
        x[train].mean(1), y[train], x[test].mean(1), y[test], 4, steps=100
    )
    assert pooled["accuracy"] < 0.45, pooled  # chance is 0.25


# --------------------------------------------------------------------------------------------
# Tasks.


def test_context_box_geometry():
    box = np.array([0.2, 0.4, 0.4, 0.5], np.float32)  # 0.2 high, 0.1 wide
    np.testing.assert_allclose(scenes.context_box(box, 1.0, False), box, atol=1e-7)
    np.testing.assert_allclose(scenes.context_box(box, 1.5, False), [0.15, 0.375, 0.45, 0.525])
    np.testing.assert_allclose(scenes.context_box(box, 1.0, True), [0.2, 0.35, 0.4, 0.55])


def test_object_in_box_renders_each_objects_box_with_its_class():
    task = dict(name="object_in_box", num_train=12, num_test=4, seed=0, context=1.0, square=False)
    split = tasks.make_split(task, "train", 32)
    images, labels = tasks.materialise(split)
    assert images.shape == (12, 32, 32, 3) and images.dtype == np.float32
    assert split.num_examples == 12 and split.num_classes == 20

    source = scenes.SceneSource("train", 12, 64, 0)
    expected_labels, n = [], 0
    for i in range(12):
        scene = source[i]
        for k in range(int(scene["num_objects"])):
            if n == 12:
                break
            expected_labels.append(int(scene["classes"][k]))
            box = scene["boxes"][k]
            view = np.asarray(normalize(render(scene["image"], box, 32)))
            np.testing.assert_allclose(images[n], view, atol=1e-5)
            # The object is there: its tight box differs from the bare background's box.
            bare = np.asarray(normalize(render(source.background(i), box, 32)))
            changed = np.abs(view - bare).max(-1) > 0.2  # 0.05 in [0, 1] intensity
            assert changed.mean() > 0.15, (i, k, changed.mean())
            n += 1
    np.testing.assert_array_equal(labels, expected_labels)


def test_count_and_background_labels():
    task = dict(name="count", num_train=20, num_test=10, seed=3, canvas_size=32)
    images, labels = tasks.materialise(tasks.make_split(task, "test", 16))
    source = scenes.SceneSource("test", 10, 32, 3)
    assert images.shape == (10, 16, 16, 3)
    np.testing.assert_array_equal(labels, [int(source[i]["num_objects"]) - 1 for i in range(10)])
    # The whole scene, resized.
    expected = normalize(render(source[0]["image"], jnp.array([0.0, 0.0, 1.0, 1.0]), 16))
    np.testing.assert_allclose(images[0], expected, atol=1e-5)

    task = dict(task, name="scene_background")
    split = tasks.make_split(task, "test", 16)
    _, labels = tasks.materialise(split)
    assert split.num_classes == 17
    np.testing.assert_array_equal(labels, [int(source[i]["background"]) for i in range(10)])


SCENE_OPTIONS = dict(object_scale=(0.3, 0.5), background_contrast=0.5, max_overlap=0.1)


@pytest.mark.parametrize("name", ["object_in_box", "count", "scene_background"])
def test_scene_tasks_render_the_scenes_options(name):
    """A task's scene options reach its scenes (the probe must see the pretraining scenes)."""
    task = dict(name=name, num_train=6, num_test=6, seed=0, canvas_size=32)
    plain, _ = tasks.materialise(tasks.make_split(task, "test", 16))
    images, _ = tasks.materialise(tasks.make_split(dict(task, **SCENE_OPTIONS), "test", 16))
    assert np.abs(images - plain).max() > 0.5
    # Exactly the views of the source's scenes with the options (scene 0; the first object's
    # box with the task's default context for object_in_box, else the whole scene).
    scene = scenes.SceneSource("test", 6, 32, 0, **SCENE_OPTIONS)[0]
    box = np.array([0.0, 0.0, 1.0, 1.0], np.float32)
    if name == "object_in_box":
        box = scenes.context_box(scene["boxes"][0], 1.25, True)
    expected = normalize(render(scene["image"], jnp.asarray(box), 16))
    np.testing.assert_allclose(images[0], expected, atol=1e-5)


def test_objects_task_is_a_class_balanced_random_subset():
    task = dict(name="objects", num_train=400, num_test=100, seed=0, canvas_size=32)
    images, labels = tasks.materialise(tasks.make_split(task, "train", 16))
    assert images.shape == (400, 16, 16, 3) and -2.0 <= images.min() < images.max() <= 2.0
    assert len(np.unique(labels)) == 20  # the source is ordered by class


def test_make_split_errors_name_the_valid_choices():
    with pytest.raises(ValueError, match="task.name='coco'.*'objects'"):
        tasks.make_split(dict(name="coco", num_train=1, num_test=1, seed=0), "train", 16)
    with pytest.raises(ValueError, match=r"unknown option\(s\) \['context'\].*canvas_size"):
        tasks.make_split(
            dict(name="count", num_train=1, num_test=1, seed=0, context=1.0), "train", 16
        )


def test_tfds_task_on_mock_data():
    tfds = pytest.importorskip("tensorflow_datasets")
    task = dict(name="tfds", num_train=6, num_test=5, seed=0, dataset="imagenet2012")
    with tfds.testing.mock_data(num_examples=9):
        train = tasks.make_split(task, "train", 16)
        images, labels = tasks.materialise(train)
        test_images, _ = tasks.materialise(tasks.make_split(task, "test", 16))
    assert train.num_classes == 1000 and train.num_examples == 6
    assert len(train.label_names) == 1000  # the decoder probe's text targets
    assert images.shape == (6, 16, 16, 3) and test_images.shape == (5, 16, 16, 3)
    assert images.dtype == np.float32 and -2.0 <= images.min() < images.max() <= 2.0
    assert labels.dtype == np.int32 and ((0 <= labels) & (labels < 1000)).all()


@pytest.mark.parametrize(
    "name, arg, task, num_classes",
    [
        ("probe_objects.py", None, "objects", 20),
        ("probe_scene_object.py", None, "object_in_box", 20),
        ("probe_count.py", None, "count", 4),
        ("probe_count.py", "background", "scene_background", 17),
        ("probe_tfds.py", None, "tfds", 1000),
    ],
)
def test_probe_configs_build_their_tasks(name, arg, task, num_classes):
    """Every config's task options are valid (splits are built lazily: nothing is rendered)."""
    tfds = pytest.importorskip("tensorflow_datasets")
    config = load_config(name, arg)
    assert config.task.name == task and config.name.startswith(task.split("_")[0])
    with tfds.testing.mock_data(num_examples=3):
        split = tasks.make_split(config.task, "train", 32)
    assert split.num_classes == num_classes


# --------------------------------------------------------------------------------------------
# Feature extraction.


def test_rebatch_pads_only_the_last_batch():
    chunks = [np.arange(5), np.arange(5, 6), np.arange(6, 13)]
    out = list(features.rebatch(chunks, 4))
    assert [n for _, n in out] == [4, 4, 4, 1]
    np.testing.assert_array_equal(np.concatenate([b[:n] for b, n in out]), np.arange(13))
    assert all(b.shape == (4,) for b, _ in out) and out[-1][0][1:].sum() == 0


def test_padded_extraction_matches_unpadded():
    graphdef, params = tiny_encoder()
    images = np.random.default_rng(8).normal(size=(11, 16, 16, 3)).astype(np.float32)
    tokens_ref, pooled_ref = jax.jit(lambda p, x: from_plain_params(graphdef, p)(x))(params, images)
    # Uneven chunks, batch 4: three batches, the last padded with one zero image.
    out = features.extract_labelled(
        (graphdef, params),
        [(images[:3], np.zeros(3)), (images[3:], np.ones(8))],
        batch_size=4,
        keep_tokens=True,
    )
    np.testing.assert_allclose(out.pooled, pooled_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(out.tokens, tokens_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_array_equal(out.labels, [0] * 3 + [1] * 8)
    # A module works too; bfloat16 tokens; no tokens unless asked for.
    module = from_plain_params(graphdef, params)
    half = features.extract_features(
        module, images, batch_size=8, keep_tokens=True, token_dtype="bfloat16"
    )
    assert half.tokens.dtype == jnp.bfloat16 and half.tokens.shape == (11, 4, 64)
    np.testing.assert_allclose(half.tokens.astype(np.float32), tokens_ref, atol=0.05)
    assert features.extract_features(module, images).tokens is None


# --------------------------------------------------------------------------------------------
# Probes on the embedded tasks, end to end.


def tiny_probe_config(task_config: str, arg=None, num_train=500, num_test=300):
    config = load_config(task_config, arg)
    config.task.num_train, config.task.num_test = num_train, num_test
    config.task.canvas_size = 32
    config.linear.steps = 200
    config.linear.learning_rates = (1e-3, 1e-2)
    config.linear.weight_decays = (0.0,)
    config.map.steps = 30
    config.map.batch_size = 64
    config.fewshot.shots = (5,)
    return config


def tiny_train_config():
    config = load_config("default.py", "smoke")  # mu ViT, depth 1, 16 px views
    return config


@pytest.mark.parametrize(
    "task_config, min_linear, min_knn",
    [("probe_objects.py", 0.25, 0.15), ("probe_scene_object.py", 0.09, 0.0)],
)
def test_random_encoder_features_beat_chance(task_config, min_linear, min_knn):
    """Even random ViT features carry the objects' shapes: a linear probe beats chance (5%).

    Measured with this 1-layer, 16 px encoder: objects 50% linear, 42% kNN; object_in_box
    12% linear (clutter, occlusion and 16 px make it hard; 300 test objects, so 9% is more than
    3 standard deviations above chance). MAP and few-shot run in the CLI test.
    """
    from avrl_jax.evaluation.probe_runner import build_encoder, run_probes, task_data

    train_config = tiny_train_config()
    graphdef, params = build_encoder(train_config)
    config = tiny_probe_config(task_config)
    config.map.enabled = config.fewshot.enabled = False
    # Both input paths: images rendered once up front (objects), streamed (object_in_box).
    data = task_data(train_config, config) if task_config == "probe_objects.py" else None
    metrics = run_probes(graphdef, params, train_config, config, data=data)
    assert metrics["num_classes"] == 20 and metrics["num_test"] == 300
    assert metrics["majority_baseline"] < 0.08
    assert metrics["linear/accuracy"] > min_linear, metrics
    assert metrics["knn/accuracy_k20"] > min_knn, metrics
    assert "map/accuracy" not in metrics and "time/linear_s" in metrics


def test_build_encoder_is_the_runs_initial_encoder():
    from avrl_jax.models.bootstrapper import build_model
    from avrl_jax.models.build import build_encoder

    config = tiny_train_config()
    _, params = build_encoder(config)
    _, full = to_plain_params(build_model(config, nnx.Rngs(config.seed)))
    jax.tree.map(np.testing.assert_array_equal, params, full["encoder"])


def test_merge_results_keeps_other_entries(tmp_path):
    from avrl_jax.evaluation.probe_results import format_table, merge_results

    merge_results(str(tmp_path), "objects", "random_init", {"metrics": {"linear/accuracy": 0.3}})
    merge_results(str(tmp_path), "count", "100", {"metrics": {"linear/accuracy": 0.5}})
    merged = merge_results(str(tmp_path), "objects", "100", {"metrics": {"linear/accuracy": 0.6}})
    assert json.load(open(tmp_path / "probe_results.json")) == merged
    assert set(merged) == {"objects", "count"} and set(merged["objects"]) == {"random_init", "100"}
    assert [p for p in os.listdir(tmp_path) if p.endswith(".tmp")] == []
    table = format_table({k: v["metrics"] for k, v in merged["objects"].items()})
    assert "random_init" in table and "0.3" in table and "0.6" in table


def test_probe_restores_a_checkpoint(tmp_path):
    """Through the lead's checkpointing: save a train state, probe it by step."""
    import flax.struct

    from avrl_jax.checkpointing import Checkpointer
    from avrl_jax.config_history import write_config
    from avrl_jax.evaluation.probe_runner import build_encoder, probe_workdir

    train_config = tiny_train_config()
    write_config(train_config, str(tmp_path))
    _, encoder = build_encoder(train_config, seed=1)  # not the random-init seed

    _, ema_encoder = build_encoder(train_config, seed=2)  # the EMA network: other weights

    @flax.struct.dataclass
    class State:
        step: jax.Array
        params: dict
        target_params: dict

    state = State(
        step=jnp.int32(7),
        params={"encoder": encoder, "head": {"w": jnp.ones(3)}},
        target_params={"encoder": ema_encoder, "head": {"w": jnp.ones(3)}},
    )
    checkpointer = Checkpointer(str(tmp_path), every_steps=1, keep=1, async_save=False)
    checkpointer.save(7, state, {}, force=True)
    checkpointer.close()

    config = tiny_probe_config("probe_objects.py", num_train=100, num_test=50)
    config.map.enabled = config.knn.enabled = config.fewshot.enabled = False
    entry = probe_workdir(str(tmp_path), config)
    assert entry["step"] == 7 and entry["encoder"] == "pretrained"
    results = json.load(open(tmp_path / "probe_results.json"))
    assert results["objects"]["7"]["metrics"]["linear/accuracy"] > 0.1
    assert os.listdir(tmp_path / "tensorboard" / "probe_objects")
    # --params ema probes the EMA network's encoder, recorded beside the online one.
    ema = probe_workdir(str(tmp_path), config, params_kind="ema")
    assert ema["params"] == "ema" and entry["params"] == "online"
    results = json.load(open(tmp_path / "probe_results.json"))
    assert set(results["objects"]) == {"7", "7_ema"}
    assert ema["metrics"]["linear/accuracy"] != entry["metrics"]["linear/accuracy"]
    assert os.listdir(tmp_path / "tensorboard" / "probe_objects_ema")
    with pytest.raises(ValueError, match="--params='teacher'.*online, ema"):
        probe_workdir(str(tmp_path), config, params_kind="teacher")


def test_cli_random_init_end_to_end(tmp_path):
    from avrl_jax.config_history import write_config

    write_config(tiny_train_config(), str(tmp_path))
    overrides = [
        "--config.task.num_train=200",
        "--config.task.num_test=100",
        "--config.task.canvas_size=32",
        "--config.linear.steps=50",
        "--config.map.steps=10",
        "--config.fewshot.shots=(2,)",
    ]
    cmd = module_command(
        "avrl_jax.probe",
        *["--workdir", str(tmp_path), "--random_init"],
        *["--config", os.path.join(REPO, "configs", "probe_count.py"), *overrides],
    )
    result = run_command(cmd, timeout=300)
    assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    results = json.load(open(tmp_path / "probe_results.json"))
    entry = results["count"]["random_init"]
    assert entry["encoder"] == "random_init" and entry["step"] is None
    metrics = entry["metrics"]
    for key in (
        "linear/accuracy",
        "map/accuracy",
        "knn/accuracy_k20",
        "fewshot/2shot/accuracy",
        "num_train",
        "num_classes",
        "majority_baseline",
        "time/features_s",
    ):
        assert key in metrics, key
    assert metrics["num_train"] == 200 and metrics["num_classes"] == 4
    assert 0.0 <= metrics["linear/accuracy"] <= 1.0
    assert os.listdir(tmp_path / "tensorboard" / "probe_count_random_init")
    assert "linear/accuracy" in result.stdout and "random_init" in result.stdout
    assert "Probing the randomly initialised encoder of" in result.stderr


def test_probe_without_a_checkpoint_names_the_workdir(tmp_path):
    from avrl_jax.config_history import write_config
    from avrl_jax.evaluation.probe_runner import probe_workdir

    write_config(tiny_train_config(), str(tmp_path))
    with pytest.raises(FileNotFoundError, match=str(tmp_path)):
        probe_workdir(str(tmp_path), load_config("probe_objects.py"))
    with pytest.raises(FileNotFoundError, match="config.json"):
        probe_workdir(str(tmp_path / "elsewhere"), load_config("probe_objects.py"))


def test_tfds_task_never_downloads_and_names_the_missing_data(tmp_path, monkeypatch):
    tfds = pytest.importorskip("tensorflow_datasets")
    calls = []
    real = tfds.data_source

    def spy(*args, **kwargs):
        calls.append(kwargs)
        return real(*args, **kwargs)

    monkeypatch.setattr(tfds, "data_source", spy)
    task = dict(name="tfds", num_train=6, num_test=5, seed=0, dataset="mnist")
    task["data_dir"] = str(tmp_path)  # empty: nothing prepared there
    with pytest.raises(
        FileNotFoundError, match=r"task.dataset='mnist' split 'train'.*" + str(tmp_path)
    ):
        tasks.make_split(task, "train", 16)
    assert calls and all(kw.get("download") is False for kw in calls)


def test_keep_period_keeps_checkpoints_and_all_steps_probes_them(tmp_path):
    """keep=1 alone keeps the last checkpoint; keep_period=2 keeps 2 and 4 as well, and
    --all_steps probes each and plots accuracy against step."""
    from conftest import run_main
    from PIL import Image

    from avrl_jax.checkpointing import saved_steps

    run_main(tmp_path / "plain", "--config.checkpoint.keep=1", check=True)  # saves at 2, 4, 6
    assert saved_steps(str(tmp_path / "plain")) == [6]
    workdir = tmp_path / "kept"
    run_main(workdir, "--config.checkpoint.keep=1", "--config.checkpoint.keep_period=2", check=True)
    assert saved_steps(str(workdir)) == [2, 4, 6]
    overrides = ["--config.task.num_train=100", "--config.task.num_test=50"]
    overrides += ["--config.task.canvas_size=32", "--config.linear.steps=20"]
    overrides += [f"--config.{p}.enabled=False" for p in ("map", "knn", "fewshot")]
    cmd = module_command(
        "avrl_jax.probe",
        *["--workdir", str(workdir), "--all_steps"],
        *["--config", os.path.join(REPO, "configs", "probe_objects.py"), *overrides],
    )
    result = run_command(cmd, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    results = json.load(open(workdir / "probe_results.json"))["objects"]
    assert set(results) == {"2", "4", "6"}
    plot = workdir / "plots" / "probe_objects_steps.png"
    assert f"wrote {plot}" in result.stdout
    assert np.asarray(Image.open(plot).convert("L")).std() > 5
