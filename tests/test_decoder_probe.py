"""The decoder probe (avrl_jax.evaluation.decoder_probe): text targets, greedy decoding, and a
synthetic task it must learn."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx

from avrl_jax.evaluation import decoder_probe as dp

NAMES = ("red circle", "blue square", "green", "big red triangle")


def test_vocabulary_encodes_names_and_lists_and_decodes_back():
    vocab = dp.Vocabulary(NAMES)
    assert vocab.words[:3] == dp.SPECIAL_TOKENS and len(vocab) == 3 + 7
    single = vocab.encode(np.array([0, 3]))
    assert single.shape == (2, 4)  # longest name (3 words) + EOS
    assert vocab.decode(single[0]) == "red circle" and vocab.decode(single[1]) == NAMES[3]
    assert single[0, 2] == dp.EOS and single[0, 3] == dp.PAD
    lists = vocab.encode(np.array([[1, 2, -1], [-1, -1, -1]]))
    assert lists.shape == (2, 3 * 3 + 1)
    assert vocab.decode(lists[0]) == "blue square green" == vocab.text(np.array([1, 2, -1]))
    assert lists[1, 0] == dp.EOS and vocab.decode(lists[1]) == ""
    with pytest.raises(ValueError, match="label names"):
        dp.Vocabulary(())


def test_metrics_count_only_up_to_the_first_eos():
    targets = np.array([[5, 6, dp.EOS, dp.PAD], [5, dp.EOS, dp.PAD, dp.PAD]])
    predicted = np.array([[5, 6, dp.EOS, 7], [5, 6, dp.EOS, 7]])  # after EOS: ignored
    metrics = dp.sequence_metrics(predicted, targets)
    assert metrics["accuracy"] == 0.5
    assert metrics["token_accuracy"] == pytest.approx(4 / 5)


def test_greedy_decoding_follows_a_known_sequence():
    """A causal 'model' whose next token is a fixed function of the current input token:
    BOS -> 7 -> 4 -> 9 -> EOS -> EOS ... Greedy decoding must write exactly that chain."""
    vocab_size, length = 10, 6
    successor = np.full(vocab_size, dp.EOS)
    successor[[dp.BOS, 7, 4, 9]] = [7, 4, 9, dp.EOS]
    table = jax.nn.one_hot(jnp.asarray(successor), vocab_size)

    def logits_fn(inputs):
        return table[inputs]  # position t sees only inputs[:, t]

    out = np.asarray(jax.jit(lambda: dp.greedy_decode(logits_fn, 3, length))())
    np.testing.assert_array_equal(out, np.tile([7, 4, 9, dp.EOS, dp.EOS, dp.EOS], (3, 1)))


def test_the_decoder_is_causal():
    decoder = dp.TextDecoder(12, 5, 8, width=16, depth=2, num_heads=2, mlp_dim=32, rngs=nnx.Rngs(0))
    memory = jax.random.normal(jax.random.key(0), (2, 3, 8))
    a = jnp.array([[1, 4, 5, 6, 7], [1, 8, 9, 10, 11]])
    b = a.at[:, 3:].set(3)
    la, lb = decoder(memory, a), decoder(memory, b)
    np.testing.assert_allclose(la[:, :3], lb[:, :3], atol=1e-5)
    assert not np.allclose(la[:, 3:], lb[:, 3:])


def synthetic(num, rng, lists=False):
    """Tokens [N, 4, 16] that encode the labels: class k adds a fixed direction to a token,
    plus noise. With `lists`, two labels per example (the second sometimes none)."""
    directions = np.random.default_rng(123).normal(size=(len(NAMES), 16)).astype(np.float32)
    tokens = rng.normal(scale=0.3, size=(num, 4, 16)).astype(np.float32)
    if not lists:
        labels = rng.integers(0, len(NAMES), num)
        tokens[np.arange(num), rng.integers(0, 4, num)] += 2 * directions[labels]
        return tokens, labels
    labels = np.sort(rng.integers(0, len(NAMES), (num, 2)), axis=1)
    labels[rng.random(num) < 0.3, 1] = -1
    for slot in range(2):
        present = labels[:, slot] >= 0
        tokens[present, slot] += 2 * directions[labels[present, slot]]
    return tokens, labels


# The probe's head for the synthetic tasks: small, and trained fast.
SMALL_HEAD = dict(width=32, depth=2, num_heads=2, learning_rate=3e-3, batch_size=128)


@pytest.mark.parametrize("lists", [False, True])
def test_the_probe_learns_a_synthetic_task(lists):
    rng = np.random.default_rng(0)
    train_x, train_y = synthetic(1024, rng, lists)
    test_x, test_y = synthetic(256, rng, lists)
    test = (test_x, test_y, NAMES)
    metrics = dp.decoder_probe(train_x, train_y, *test, steps=400, warmup_steps=20, **SMALL_HEAD)
    assert metrics["accuracy"] >= 0.95, metrics
    assert metrics["token_accuracy"] >= 0.97, metrics
    # Against labels the tokens do not encode, it cannot: the metric is not a constant.
    shuffled_y = rng.permutation(train_y)
    shuffled = dp.decoder_probe(
        train_x, shuffled_y, *test, steps=100, warmup_steps=10, **SMALL_HEAD
    )
    assert shuffled["accuracy"] < 0.6, shuffled


# --------------------------------------------------------------------------------------------
# Tasks, configs and the CLI.


def load_config(name, arg=None):
    import importlib.util
    import os

    from conftest import REPO

    spec = importlib.util.spec_from_file_location(name, os.path.join(REPO, "configs", name))
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module.get_config(arg)


@pytest.mark.parametrize(
    "variant, task, source, num_names",
    [
        (None, "object_in_box", ("probe_scene_object.py", None), 20),
        ("count", "count", ("probe_count.py", None), 4),
        ("background", "scene_background", ("probe_count.py", "background"), 17),
        ("objects", "objects", ("probe_objects.py", None), 20),
        ("scene_objects", "scene_objects", None, 20),
    ],
)
def test_decoder_configs_probe_the_tasks_of_the_other_probe_configs(
    variant, task, source, num_names
):
    from avrl_jax.evaluation import tasks

    config = load_config("probe_decoder.py", variant)
    assert config.decoder.enabled and config.task.name == task and config.name == task
    assert not any(config[p].enabled for p in ("linear", "map", "knn", "fewshot"))
    if source is not None:  # the same task settings: results join the same entry
        assert config.task.to_dict() == load_config(*source).task.to_dict()
    split = tasks.make_split(config.task, "train", 32)
    assert len(split.label_names) == num_names == split.num_classes
    with pytest.raises(ValueError, match="unknown variant 'nope'"):
        load_config("probe_decoder.py", "nope")


def test_scene_objects_lists_each_scenes_classes_and_only_the_decoder_reads_it():
    from avrl_jax.data import scenes
    from avrl_jax.evaluation import tasks
    from avrl_jax.evaluation.probe_runner import run_probes
    from avrl_jax.models.build import build_encoder

    task = dict(name="scene_objects", num_train=6, num_test=4, seed=0, canvas_size=32)
    split = tasks.make_split(task, "train", 16)
    _, labels = tasks.materialise(split)
    source = scenes.SceneSource("train", 6, 32, 0)
    for i in range(6):
        classes = source[i]["classes"]
        expected = sorted(classes[classes >= 0].tolist())
        assert labels[i][: len(expected)].tolist() == expected
        assert (labels[i][len(expected) :] == -1).all()
    assert split.is_list_task
    train_config = load_config("default.py", "smoke")
    probe_config = load_config("probe_count.py")
    probe_config.task.update(task)
    graphdef, params = build_encoder(train_config)
    with pytest.raises(ValueError, match="linear.enabled=False, map.enabled=False"):
        run_probes(graphdef, params, train_config, probe_config)


def test_results_of_two_probe_configs_join_for_the_same_encoder_and_task(tmp_path):
    from avrl_jax.evaluation.probe_results import merge_results

    first = {"step": 5, "encoder": "pretrained", "params": "online", "task": {"name": "count"}}
    merge_results(str(tmp_path), "count", "5", {**first, "metrics": {"linear/accuracy": 0.4}})
    merged = merge_results(
        str(tmp_path), "count", "5", {**first, "metrics": {"decoder/accuracy": 0.5}}
    )
    assert merged["count"]["5"]["metrics"] == {"linear/accuracy": 0.4, "decoder/accuracy": 0.5}
    other = {**first, "task": {"name": "count", "num_train": 9}}  # other settings: replaced
    merged = merge_results(str(tmp_path), "count", "5", {**other, "metrics": {"x": 1.0}})
    assert merged["count"]["5"]["metrics"] == {"x": 1.0}


def test_cli_decoder_column_beside_linear(tmp_path):
    """The count task probed with its own config, then with the decoder's: one entry holds
    both, and the printed table shows both rows."""
    import json
    import os

    from conftest import REPO, module_command, run_command

    from avrl_jax.config_history import write_config

    write_config(load_config("default.py", "smoke"), str(tmp_path))
    sizes = ["--config.task.num_train=200", "--config.task.num_test=100"]
    sizes.append("--config.task.canvas_size=32")
    runs = [
        ("probe_count.py", ["--config.linear.steps=50", "--config.map.enabled=False"]),
        ("probe_decoder.py:count", ["--config.decoder.steps=40", "--config.decoder.depth=1"]),
    ]
    for config, extra in runs:
        cmd = module_command(
            "avrl_jax.probe",
            *["--workdir", str(tmp_path), "--random_init"],
            *["--config", os.path.join(REPO, "configs", config), *sizes, *extra],
        )
        result = run_command(cmd, timeout=300)
        assert result.returncode == 0, result.stdout + result.stderr[-3000:]
    metrics = json.load(open(tmp_path / "probe_results.json"))["count"]["random_init"]["metrics"]
    assert 0 <= metrics["decoder/accuracy"] <= 1 and "linear/accuracy" in metrics
    assert 0 < metrics["decoder/token_accuracy"] <= 1
    assert "decoder/accuracy" in result.stdout and "linear/accuracy" in result.stdout
