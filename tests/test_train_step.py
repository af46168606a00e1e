"""The update step on one device: losses fall on a fixed batch; ablation switches take effect."""

import functools

import jax
import numpy as np
import pytest

from avrl_jax import sharding
from avrl_jax.models.heads import use_batch_statistics
from avrl_jax.models.params import batch_stats, from_plain_params
from avrl_jax.objectives.registry import make_objective
from avrl_jax.train import build_trainer, make_streams
from avrl_jax.train_step import compute_losses, forward, render_inputs
from configs import default


def fixed_batch(config, mesh):
    iterators = {name: iter(ds) for name, ds in make_streams(config).items()}
    return sharding.global_batch({k: next(it) for k, it in iterators.items()}, mesh)


def run_steps(config, steps: int):
    mesh = sharding.make_mesh(config.mesh)
    trainer = build_trainer(config, mesh)
    batch = fixed_batch(config, mesh)
    state, history = trainer.state, []
    for _ in range(steps):
        state, metrics = trainer.update(state, batch)
        history.append(jax.device_get(metrics))
    return state, history


@pytest.mark.parametrize(
    "variant", ["smoke", "smoke,labels", "smoke,dino", "smoke,clip", "smoke,curated"]
)
def test_losses_fall_on_a_fixed_batch(variant):
    config = default.get_config(variant)
    config.total_steps = 40
    config.optimizer.warmup_steps = 5
    state, history = run_steps(config, 40)
    assert int(state.step) == 40
    first, last = history[0], history[-1]
    for name in ("loss", "base/loss", "ab/loss"):
        assert np.isfinite(last[name]), name
    assert last["base/loss"] < 0.7 * first["base/loss"], (first["base/loss"], last["base/loss"])
    assert last["loss"] < first["loss"]
    # The EMA target moves towards the online network but lags behind it.
    online = jax.tree.leaves(state.params)
    target = jax.tree.leaves(state.target_params)
    assert any(not np.allclose(o, t) for o, t in zip(online, target, strict=False))


def test_head_batch_norm_statistics_are_set_by_the_forward_pass_not_the_optimizer():
    config = default.get_config("smoke")
    config.model.head_batch_norm = True
    mesh = sharding.make_mesh(config.mesh)
    trainer = build_trainer(config, mesh)
    batch = fixed_batch(config, mesh)
    state = trainer.state
    init = jax.device_get(state.params)
    losses = functools.partial(compute_losses, trainer.graphdef, config)
    _, (_, _, stats) = jax.jit(losses)(state.params, state.target_params, state.extras, batch)
    state, metrics = trainer.update(state, batch)
    params, target = jax.device_get((state.params, state.target_params))
    momentum = float(metrics["ema/momentum"])
    for path in (("base_query", "norm"), ("heads", "ab_annotations", "norm")):
        get = lambda tree, path=path: functools.reduce(lambda t, k: t[k], path, tree)  # noqa: E731
        np.testing.assert_array_equal(get(init)["mean"], 0.0)
        np.testing.assert_array_equal(get(init)["var"], 1.0)
        for name in ("mean", "var"):
            new = get(jax.device_get(stats))[name]
            assert np.abs(new - get(init)[name]).max() > 1e-2, (path, name)  # the batch's
            # The state holds what the forward pass wrote (not an optimizer update of it) ...
            np.testing.assert_allclose(get(params)[name], new, rtol=1e-4, atol=1e-6)
            # ... and the target network the EMA of it.
            ema = momentum * get(init)[name] + (1 - momentum) * new
            np.testing.assert_allclose(get(target)[name], ema, rtol=1e-4, atol=1e-6)


def test_head_batch_norm_normalises_crops_and_views_together_once_per_forward():
    # g embeds the annotation crops and the bootstrap views in one call, so the rewards compare
    # view and annotation queries normalised alike, and the running statistics take one
    # momentum step per forward pass; SimCLR's annotation is the crop query NT-Xent uses.
    config = default.get_config("smoke")
    config.model.head_batch_norm = True
    mesh = sharding.make_mesh(config.mesh)
    trainer = build_trainer(config, mesh)
    batch = jax.device_get(fixed_batch(config, mesh))
    objective = make_objective(config)
    model = use_batch_statistics(from_plain_params(trainer.graphdef, trainer.state.params))
    inputs = render_inputs(config, objective, batch)
    out = forward(model, objective, inputs, batch["annotation"])
    np.testing.assert_array_equal(out.base_psi, out.crop_queries[1])
    _, pooled_views = model.encoder(inputs.views.reshape(-1, *inputs.views.shape[2:]))
    width = out.crop_features.shape[-1]
    features = np.concatenate([out.crop_features.reshape(-1, width), pooled_views])
    running = batch_stats(model)["base_query"]["norm"]
    momentum = model.base_query.norm.momentum
    np.testing.assert_allclose(
        running["mean"], (1 - momentum) * features.mean(0), rtol=1e-3, atol=1e-5
    )
    np.testing.assert_allclose(
        running["var"], momentum + (1 - momentum) * features.var(0), rtol=1e-3, atol=1e-5
    )


def test_base_only_step_has_no_bootstrap_terms():
    config = default.get_config("smoke")
    config.objective.ab_weight = 0.0
    _, history = run_steps(config, 2)
    assert "ab/loss" not in history[0]
    assert np.isfinite(history[-1]["base/loss"])


def losses(config):
    mesh = sharding.make_mesh(config.mesh)
    trainer = build_trainer(config, mesh)
    batch = fixed_batch(config, mesh)
    state = trainer.state
    _, (metrics, *_) = compute_losses(
        trainer.graphdef, config, state.params, state.target_params, state.extras, batch
    )
    return jax.device_get(metrics)


def test_gamma_zero_targets_ignore_next_values_and_no_target_network_matches_at_init():
    # At initialisation the target network equals the online one, so switching the target
    # network off must not change the loss; gamma changes it.
    config = default.get_config("smoke")
    with_target = losses(config)
    config.ema.enabled = False
    without_target = losses(config)
    np.testing.assert_allclose(with_target["ab/loss"], without_target["ab/loss"], rtol=1e-5)
    config.objective.gamma = 0.0
    one_step = losses(config)
    assert abs(one_step["ab/loss"] - with_target["ab/loss"]) > 1e-6


@pytest.mark.parametrize("variant", ["smoke", "smoke,dino", "smoke,clip"])
def test_base_only_variant_shares_everything_but_the_ab_term(variant):
    with_ab = default.get_config(variant)
    base_only = default.get_config(variant + ",base_only")
    mesh = sharding.make_mesh(with_ab.mesh)
    trainer = build_trainer(with_ab, mesh)
    trainer_base = build_trainer(base_only, mesh)
    # Same model, same parameters at initialisation.
    for a, b in zip(
        jax.tree.leaves(trainer.state.params),
        jax.tree.leaves(trainer_base.state.params),
        strict=True,
    ):
        np.testing.assert_array_equal(a, b)
    batch = fixed_batch(with_ab, mesh)
    state = trainer.state
    args = (state.params, state.target_params, state.extras, batch)
    _, (ab_metrics, *_) = compute_losses(trainer.graphdef, with_ab, *args)
    _, (base_metrics, *_) = compute_losses(trainer.graphdef, base_only, *args)
    np.testing.assert_allclose(ab_metrics["base/loss"], base_metrics["base/loss"], rtol=1e-5)
    np.testing.assert_allclose(base_metrics["loss"], base_metrics["base/loss"], rtol=1e-6)
    np.testing.assert_allclose(
        ab_metrics["loss"], ab_metrics["base/loss"] + ab_metrics["ab/loss"], rtol=1e-5
    )


def test_no_action_tokens_makes_values_invariant_to_the_action():
    config = default.get_config("smoke")
    config.model.value_head.use_action_tokens = False
    mesh = sharding.make_mesh(config.mesh)
    trainer = build_trainer(config, mesh)
    from avrl_jax.models.params import from_plain_params
    from avrl_jax.objectives.registry import make_objective
    from avrl_jax.train_step import forward, render_inputs

    batch = jax.device_get(fixed_batch(config, mesh))
    objective = make_objective(config)
    inputs = render_inputs(config, objective, batch)
    model = from_plain_params(trainer.graphdef, trainer.state.params)
    out = forward(model, objective, inputs, batch["annotation"])
    q = np.asarray(out.q_logits)  # [B, n, n-1, A]
    np.testing.assert_allclose(q[:, :, 0], q[:, :, 1], rtol=1e-5, atol=1e-6)
    assert np.abs(q[:, 0] - q[:, 1]).max() > 1e-4  # still depends on the view


@pytest.mark.parametrize("variant", ["smoke,labels", "smoke,dino,base_only"])
def test_gradient_accumulation_equals_the_whole_batch_for_per_example_losses(variant):
    """labels (with AB) and DINO are means over examples (DINO's given the step's centre, which
    is then updated linearly): two micro-batches give the whole batch's update and centre."""
    states = {}
    for accumulate in (1, 2):
        config = default.get_config(variant)
        config.optimizer.accumulate_steps = accumulate
        states[accumulate], history = run_steps(config, 2)
        assert np.isfinite(history[-1]["loss"])
    whole, micro = states[1], states[2]
    for a, b in zip(jax.tree.leaves(whole.params), jax.tree.leaves(micro.params), strict=True):
        np.testing.assert_allclose(a, b, atol=2e-5, rtol=1e-4)
    for a, b in zip(jax.tree.leaves(whole.extras), jax.tree.leaves(micro.extras), strict=True):
        np.testing.assert_allclose(a, b, atol=1e-6)
    start = jax.tree.leaves(run_steps(default.get_config(variant), 0)[0].params)
    moved = [
        not np.allclose(a, b) for a, b in zip(start, jax.tree.leaves(whole.params), strict=True)
    ]
    assert any(moved)  # the two updates did change the parameters


def test_accumulate_steps_must_divide_the_batches():
    from avrl_jax.config_validation import validate_config

    config = default.get_config("smoke")
    config.optimizer.accumulate_steps = 3  # batches of 16 and 8
    with pytest.raises(ValueError, match="micro-batches"):
        validate_config(config, batch_shards=1)
    config.optimizer.accumulate_steps = 0
    with pytest.raises(ValueError, match="optimizer.accumulate_steps=0"):
        validate_config(config, batch_shards=1)
