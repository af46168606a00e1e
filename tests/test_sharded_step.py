"""The update step on an 8-device mesh matches the 1-device step (simulated CPU devices)."""

import textwrap

from conftest import cpu_env, run_python

SCRIPT = textwrap.dedent(
    """
    import jax
    import numpy as np
    from avrl_jax import sharding
    from avrl_jax.train import build_trainer, make_streams
    from configs import default

    assert jax.device_count() == 8, jax.devices()
    config = default.get_config("smoke")

    def run(devices, steps=3):
        mesh = sharding.make_mesh(config.mesh, devices=devices)
        trainer = build_trainer(config, mesh)
        its = {k: iter(ds) for k, ds in make_streams(config).items()}
        state, losses = trainer.state, []
        for _ in range(steps):
            batch = sharding.global_batch({k: next(it) for k, it in its.items()}, mesh)
            if len(devices) == 8:
                assert len(batch["bootstrap"]["image"].sharding.device_set) == 8
            state, metrics = trainer.update(state, batch)
            losses.append([float(metrics[k]) for k in ("loss", "base/loss", "ab/loss")])
        return np.array(losses), jax.device_get(state.params)

    one_losses, one_params = run(jax.devices()[:1])
    eight_losses, eight_params = run(jax.devices())
    print("losses 1 device ", one_losses.tolist())
    print("losses 8 devices", eight_losses.tolist())
    np.testing.assert_allclose(eight_losses, one_losses, rtol=2e-4, atol=1e-5)
    for a, b in zip(jax.tree.leaves(one_params), jax.tree.leaves(eight_params)):
        np.testing.assert_allclose(a, b, rtol=2e-3, atol=2e-5)
    print("MATCH")
    """
)


def test_eight_device_step_matches_one_device():
    result = run_python(SCRIPT, env=cpu_env(8))
    assert result.returncode == 0, result.stdout + result.stderr
    assert "MATCH" in result.stdout
