"""The AB update through the whole step: stop-gradients, where rewards come from, gamma and
lambda, the action dependence of Q, DINO's teacher and multi-crop, BCE, the candidate grid,
and the value head's calibration at initialisation. Real values on the smoke configs."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avrl_jax import sharding
from avrl_jax.objectives import bootstrap
from avrl_jax.train import build_trainer, make_streams, window_means
from avrl_jax.train_step import (
    compute_losses,
    forward,
    grid_tokens,
    run_networks,
    value_targets,
)
from configs import default


def setup(config):
    mesh = sharding.make_mesh(config.mesh)
    trainer = build_trainer(config, mesh)
    iterators = {name: iter(ds) for name, ds in make_streams(config).items()}
    batch = jax.device_get(
        sharding.global_batch({k: next(it) for k, it in iterators.items()}, mesh)
    )
    state = trainer.state  # jax arrays (eager modules need them); never donated here
    return trainer.graphdef, state, batch


def perturb(params, scale=0.05, seed=1):
    leaves, tree = jax.tree.flatten(params)
    keys = jax.random.split(jax.random.key(seed), len(leaves))
    noisy = [x + scale * jax.random.normal(k, x.shape) for x, k in zip(leaves, keys, strict=True)]
    return jax.tree.unflatten(tree, noisy)


def rewards_and_targets(graphdef, config, params, target_params, extras, batch):
    nets = run_networks(graphdef, config, params, target_params, batch)
    rewards, targets, _ = value_targets(
        config, nets.objective, nets.target, nets.target_out, extras, 0
    )
    return np.asarray(rewards), np.asarray(targets)


def loss_of(graphdef, config, state, batch, params=None, target_params=None):
    params = state.params if params is None else params
    target_params = state.target_params if target_params is None else target_params
    _, (metrics, *_) = compute_losses(graphdef, config, params, target_params, state.extras, batch)
    return jax.device_get(metrics)


@pytest.mark.parametrize("variant", ["smoke", "smoke,dino"])
def test_no_gradient_reaches_the_target_network_and_the_check_catches_a_missing_stop(
    variant, monkeypatch
):
    config = default.get_config(variant)
    graphdef, state, batch = setup(config)
    target_params = perturb(state.target_params)  # target != online, as after training

    def target_gradient():
        # Jitted (one compile instead of op-by-op dispatch); a new function each call, so the
        # second call is traced again and sees the patched stop_gradient.
        grad = jax.jit(
            jax.grad(
                lambda t: compute_losses(graphdef, config, state.params, t, state.extras, batch)[0]
            )
        )(target_params)
        return max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(grad))

    assert target_gradient() == 0.0
    # The same check on a step whose stop-gradients are removed sees the gradient.
    monkeypatch.setattr(jax.lax, "stop_gradient", lambda x: x)
    assert target_gradient() > 1e-6


def test_rewards_come_from_the_target_network_once_it_differs_from_the_online_one():
    config = default.get_config("smoke")
    graphdef, state, batch = setup(config)
    target = perturb(state.target_params, seed=2)
    args = (state.extras, batch)
    rewards, _ = rewards_and_targets(graphdef, config, state.params, target, *args)
    online_moved, _ = rewards_and_targets(graphdef, config, perturb(state.params), target, *args)
    np.testing.assert_array_equal(rewards, online_moved)
    target_moved, _ = rewards_and_targets(
        graphdef, config, state.params, perturb(target, seed=3), *args
    )
    assert np.abs(rewards - target_moved).max() > 1e-4
    # Without the target network (the ablation) the rewards follow the online network.
    config.ema.enabled = False
    ablated, _ = rewards_and_targets(graphdef, config, state.params, target, *args)
    ablated_moved, _ = rewards_and_targets(graphdef, config, perturb(state.params), target, *args)
    assert np.abs(ablated - ablated_moved).max() > 1e-4


def test_gamma_zero_targets_are_exactly_the_next_views_rewards():
    config = default.get_config("smoke,gamma0")
    graphdef, state, batch = setup(config)
    target = perturb(state.target_params)
    rewards, targets = rewards_and_targets(
        graphdef, config, state.params, target, *(state.extras, batch)
    )
    n = config.env.num_views
    np.testing.assert_array_equal(targets, rewards[:, bootstrap.other_view_index(n)])


@pytest.mark.parametrize("weight", [0.3, 2.0])
def test_lambda_scales_the_bootstrap_loss(weight):
    config = default.get_config("smoke")
    config.objective.ab_weight = weight
    graphdef, state, batch = setup(config)
    metrics = loss_of(graphdef, config, state, batch)
    np.testing.assert_allclose(
        metrics["loss"], metrics["base/loss"] + weight * metrics["ab/loss"], rtol=1e-6
    )
    config.objective.ab_weight = 1.0
    unit = loss_of(graphdef, config, state, batch)
    np.testing.assert_allclose(metrics["ab/loss"], unit["ab/loss"], rtol=1e-6)


def test_q_changes_with_the_action_in_the_full_forward_pass():
    config = default.get_config("smoke")
    graphdef, state, batch = setup(config)
    nets = run_networks(graphdef, config, state.params, state.target_params, batch)
    q = np.asarray(nets.online.q_logits)  # [B, n, n-1, A]: the actions of one view differ
    assert np.abs(q[:, :, 0] - q[:, :, 1]).max() > 1e-3
    metrics = loss_of(graphdef, config, state, batch)
    assert metrics["ab/action_sensitivity"] > 0.01


@pytest.mark.parametrize("ab_target", [True, False])
def test_dino_teacher_is_the_ema_network_whatever_the_ab_target(ab_target):
    config = default.get_config("smoke,dino")
    config.ema.enabled = ab_target  # AB's target network; DINO's teacher is its own switch
    graphdef, state, batch = setup(config)
    base = loss_of(graphdef, config, state, batch)["base/loss"]
    moved_target = loss_of(
        graphdef, config, state, batch, target_params=perturb(state.target_params)
    )["base/loss"]
    assert abs(base - moved_target) > 1e-4
    config.objective.dino.ema_teacher = False  # now the teacher is the online network
    online_teacher = loss_of(graphdef, config, state, batch)["base/loss"]
    moved = loss_of(graphdef, config, state, batch, target_params=perturb(state.target_params))
    np.testing.assert_allclose(moved["base/loss"], online_teacher, rtol=1e-6)


def test_dino_multi_crop_shapes_and_the_teacher_sees_global_crops_only():
    config = default.get_config("smoke,dino")
    graphdef, state, batch = setup(config)
    nets = run_networks(graphdef, config, state.params, state.target_params, batch)
    ba, size = config.annotation_batch_size, config.env.view_size
    local, local_size = config.objective.dino.local_crops, config.objective.dino.local_size
    shapes = [c.shape for c in nets.inputs.crops]
    assert shapes == [(ba, 1, size, size, 3), (ba, 1, size, size, 3)] + [
        (ba, local, local_size, local_size, 3)
    ]
    assert nets.online.crop_queries.shape[:2] == (2 + local, ba)
    assert nets.objective.teacher_crops() == 2
    teacher = np.asarray(nets.objective.teacher_scores(nets.teacher))
    assert teacher.shape[0] == 2

    # Changing the local crops changes the student's loss but not the teacher.
    def with_local_crops(fill):
        inputs = nets.inputs.replace(
            crops=(*nets.inputs.crops[:2], jnp.full_like(nets.inputs.crops[2], fill))
        )
        ema = forward(
            nets.target if nets.target is not None else nets.model,
            nets.objective,
            inputs,
            batch["annotation"],
        )
        return np.asarray(nets.objective.teacher_scores(ema)), np.asarray(
            forward(nets.model, nets.objective, inputs, batch["annotation"]).crop_queries
        )

    teacher_a, student_a = with_local_crops(0.0)
    teacher_b, student_b = with_local_crops(1.0)
    np.testing.assert_allclose(teacher_a, teacher_b, rtol=1e-6)
    assert np.abs(student_a[2:] - student_b[2:]).max() > 1e-4


def test_dino_schedules_temperature_warmup_and_frozen_prototypes():
    config = default.get_config("smoke,dino")
    config.objective.dino.update(
        warmup_teacher_temperature=0.04,
        teacher_temperature=0.07,
        teacher_warmup_steps=10,
        freeze_last_layer_steps=3,
    )
    graphdef, state, batch = setup(config)
    objective = run_networks(graphdef, config, state.params, state.target_params, batch).objective
    np.testing.assert_allclose(objective.teacher_temperature(jnp.asarray(0)), 0.04, rtol=1e-6)
    np.testing.assert_allclose(objective.teacher_temperature(jnp.asarray(5)), 0.055, rtol=1e-6)
    np.testing.assert_allclose(objective.teacher_temperature(jnp.asarray(50)), 0.07, rtol=1e-6)
    mesh = sharding.make_mesh(config.mesh)
    trainer = build_trainer(config, mesh)
    s = trainer.state
    before = jax.device_get(s.params["heads"]["base_annotations"])
    for _ in range(3):
        s, _ = trainer.update(s, batch)
    frozen = jax.device_get(s.params["heads"]["base_annotations"])
    jax.tree.map(np.testing.assert_array_equal, before, frozen)
    s, _ = trainer.update(s, batch)  # step 3: the prototypes train
    moved = jax.device_get(s.params["heads"]["base_annotations"])
    assert np.abs(moved["embedding"] - frozen["embedding"]).max() > 0


def test_bce_rewards_are_per_annotation_sigmoids_through_the_whole_step():
    config = default.get_config("smoke")
    config.objective.divergence = "bce"
    graphdef, state, batch = setup(config)
    nets = run_networks(graphdef, config, state.params, state.target_params, batch)
    rewards, targets, _ = value_targets(
        config, nets.objective, nets.target, nets.target_out, state.extras, 0
    )
    logits = nets.objective.reward_logits(
        nets.target, nets.target_out.view_queries, nets.target_out.base_psi, state.extras, 0
    )
    np.testing.assert_allclose(rewards, jax.nn.sigmoid(logits), rtol=1e-6)
    assert np.abs(np.sum(rewards, axis=-1) - 1.0).max() > 0.1  # not a softmax
    assert np.all((np.asarray(targets) >= 0) & (np.asarray(targets) <= 1))
    mesh = sharding.make_mesh(config.mesh)
    trainer = build_trainer(config, mesh)
    s, history = trainer.state, []
    for _ in range(3):
        s, metrics = trainer.update(s, batch)
        history.append(float(metrics["ab/loss"]))
    assert all(np.isfinite(history)) and history[-1] < history[0]


@pytest.mark.parametrize("next_actions", ["grid", "both"])
def test_the_candidate_grid_is_scored_by_the_target_value_head(next_actions):
    config = default.get_config("smoke")
    config.objective.next_actions = next_actions
    config.env.flip_prob = 0.5
    tokens = grid_tokens(config)
    assert tokens.shape == (27, 5)
    bins = config.env.bins["num_bins"]
    assert np.all(tokens[:, :4] % bins > 0) and np.all(tokens[:, :4] % bins < bins - 1)
    np.testing.assert_array_equal(tokens[:, 4], 4 * bins)  # "not flipped"
    graphdef, state, batch = setup(config)
    nets = run_networks(graphdef, config, state.params, state.target_params, batch)
    b, n = config.bootstrap_batch_size, config.env.num_views
    assert nets.target_out.grid_q_logits.shape[:3] == (b, n, 27)
    assert nets.online.grid_q_logits is None  # the online network never scores the grid
    views_only = config.copy_and_resolve_references()
    views_only.objective.next_actions = "views"
    a = loss_of(graphdef, config, state, batch)
    v = loss_of(graphdef, views_only, state, batch)
    assert abs(a["ab/loss"] - v["ab/loss"]) > 1e-5


def test_value_head_starts_calibrated_on_the_default_config():
    # Cosine logits with a learned temperature: at initialisation Q is near uniform.
    config = default.get_config()
    graphdef, state, batch = setup(config)
    q_logits = jax.jit(lambda p, t, b: run_networks(graphdef, config, p, t, b).online.q_logits)(
        state.params, state.target_params, batch
    )
    q = jax.nn.softmax(q_logits, axis=-1)
    entropy = -np.sum(np.asarray(q) * np.log(np.asarray(q)), axis=-1).mean()
    num = q.shape[-1]
    assert num == config.annotation_batch_size
    print(f"Q entropy at initialisation: {entropy:.3f} = {entropy / np.log(num):.3f} ln {num}")
    assert entropy >= 0.9 * np.log(num)


def test_window_means_average_the_logging_window_and_skip_empty_bins():
    window = [{"loss": 1.0, "bin": float("nan")}, {"loss": 3.0, "bin": 0.5}]
    assert window_means(window) == {"loss": 2.0, "bin": 0.5}
    assert np.isnan(window_means([{"bin": float("nan")}])["bin"])
