"""Scale-out on simulated CPU devices: FSDP equals data parallelism, and 2 processes x 4 devices
equal 1 process x 8 devices (JAX multi-controller runtime, CPU collectives over gloo)."""

import textwrap

import numpy as np
from conftest import cpu_env, free_port, losses, run_main, run_python, start_main

STEPS = ("--config.total_steps=6", "--config.log_every=1")


def test_two_processes_match_one_process_and_checkpoints_cross_over(tmp_path):
    single, multi = tmp_path / "single", tmp_path / "multi"
    result = run_main(single, *STEPS, env=cpu_env(8))
    assert result.returncode == 0, result.stderr[-3000:]

    port = free_port()
    processes = [
        start_main(
            multi,
            *STEPS,
            f"--coordinator_address=127.0.0.1:{port}",
            "--num_processes=2",
            f"--process_id={i}",
            env=cpu_env(4),
        )
        for i in range(2)
    ]
    outputs = [p.communicate(timeout=600) for p in processes]
    for p, (_, err) in zip(processes, outputs, strict=True):
        assert p.returncode == 0, err[-3000:]
    # Only process 0 writes metrics; both took part in every step and save.
    assert "step 6/6" in outputs[0][0] and "step 6/6" not in outputs[1][0]
    np.testing.assert_allclose(losses(multi), losses(single), rtol=2e-4, atol=1e-5)

    # The 2-process checkpoint restores in a 1-process run, data position included.
    resumed = run_main(multi, *STEPS, "--config.total_steps=8", env=cpu_env(8))
    assert resumed.returncode == 0, resumed.stderr[-3000:]
    assert "Resumed from step 6" in resumed.stderr
    continued = run_main(single, *STEPS, "--config.total_steps=8", env=cpu_env(8))
    assert continued.returncode == 0, continued.stderr[-3000:]
    np.testing.assert_allclose(losses(multi), losses(single), rtol=2e-4, atol=1e-5)


FSDP_SCRIPT = textwrap.dedent(
    """
    import jax
    import numpy as np
    from avrl_jax import sharding
    from avrl_jax.train import build_trainer, make_streams
    from configs import default

    def run(data, fsdp):
        config = default.get_config("smoke")
        config.mesh.data, config.mesh.fsdp, config.mesh.fsdp_min_size = data, fsdp, 1024
        mesh = sharding.make_mesh(config.mesh)
        trainer = build_trainer(config, mesh)
        its = {k: iter(ds) for k, ds in make_streams(config).items()}
        state, out = trainer.state, []
        for _ in range(3):
            batch = sharding.global_batch({k: next(it) for k, it in its.items()}, mesh)
            state, metrics = trainer.update(state, batch)
            out.append([float(metrics[k]) for k in ("loss", "base/loss", "ab/loss")])
        return np.array(out), state

    dp_losses, dp_state = run(8, 1)
    fsdp_losses, fsdp_state = run(2, 4)
    np.testing.assert_allclose(fsdp_losses, dp_losses, rtol=2e-4, atol=1e-5)
    kernel = fsdp_state.params["value_head"]["head"]["kernel"]
    assert "fsdp" in str(kernel.sharding.spec), kernel.sharding
    assert kernel.addressable_shards[0].data.size * 4 == kernel.size
    mu = fsdp_state.opt_state[1][0].mu["value_head"]["head"]["kernel"]
    target = fsdp_state.target_params["value_head"]["head"]["kernel"]
    assert mu.sharding.spec == kernel.sharding.spec == target.sharding.spec
    small = fsdp_state.params["value_head"]["head"]["bias"]  # 32 < fsdp_min_size
    assert small.sharding.is_fully_replicated
    dp_kernel = dp_state.params["value_head"]["head"]["kernel"]
    assert dp_kernel.sharding.is_fully_replicated
    np.testing.assert_allclose(np.asarray(kernel), np.asarray(dp_kernel), rtol=2e-3, atol=2e-5)
    print("FSDP OK", dp_losses.tolist())
    """
)


def test_fsdp_matches_data_parallel_and_shards_parameters():
    result = run_python(FSDP_SCRIPT, env=cpu_env(8))
    assert result.returncode == 0, result.stdout[-2000:] + result.stderr[-3000:]
    assert "FSDP OK" in result.stdout
