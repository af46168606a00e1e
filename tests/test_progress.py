"""The console progress line's throughput and ETA (a fake clock)."""

from avrl_jax import progress


def test_eta_leaves_compilation_out_and_averages_since_the_first_step(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    p = progress.Progress(total_steps=102, images_per_step=8)
    clock[0] = 30.0  # step 1: 30 s of compilation, then the step
    p.started(1)
    clock[0] = 31.0  # step 2, one second later: the first window (steps 1-2) took 31 s
    first = p.update(2)
    assert abs(first["perf/steps_per_sec"] - 2 / 31) < 1e-9  # the window's own rate
    assert abs(first["perf/eta_sec"] - 100.0) < 1e-9  # 100 steps at 1 step/s, not 1550 s
    clock[0] = 31.0 + 10 * 0.5  # 10 more steps at 2 steps/s
    second = p.update(12)
    assert abs(second["perf/steps_per_sec"] - 2.0) < 1e-9
    # The mean rate since step 1 (11 steps in 6 s), not the last window's alone.
    assert abs(second["perf/eta_sec"] - 90 * 6 / 11) < 1e-9
    assert second["perf/images_per_sec"] == 16.0


def test_before_the_first_step_the_window_rate_stands_in(monkeypatch):
    clock = [0.0]
    monkeypatch.setattr(progress.time, "perf_counter", lambda: clock[0])
    p = progress.Progress(total_steps=10, images_per_step=1, start_step=4)
    clock[0] = 2.0
    out = p.update(6)
    assert out["perf/steps_per_sec"] == 1.0 and out["perf/eta_sec"] == 4.0
