"""Published peaks by device kind, MFU, and the projection of a run's cost."""

import pytest

from avrl_jax import accelerators


@pytest.mark.parametrize(
    "kind, name",
    [
        ("TPU v4", "TPU v4"),
        ("TPU v5 lite", "TPU v5e"),
        ("TPU v5", "TPU v5p"),
        ("v5p", "TPU v5p"),
        ("TPU v6 lite", "TPU v6e"),
        ("NVIDIA H100 80GB HBM3", "NVIDIA H100"),
        ("NVIDIA H100 PCIe", "NVIDIA H100 PCIe"),
        ("NVIDIA H200", "NVIDIA H200"),
        ("NVIDIA A100-SXM4-80GB", "NVIDIA A100"),
        ("h100", "NVIDIA H100"),
    ],
)
def test_device_kinds_find_their_published_peak(kind, name):
    assert accelerators.find(kind).name == name


def test_an_unknown_kind_names_the_known_ones_and_the_way_out():
    with pytest.raises(ValueError, match=r"'cpu' .*TPU v4.*--peak_tflops"):
        accelerators.find("cpu")


def test_projection_and_mfu():
    v4 = accelerators.find("v4")
    assert v4.bf16_peak == 275e12
    # 1 PFLOP per step, 1000 steps, 4 chips at half of 250 TFLOP/s: 2000 s, 8000 chip-seconds.
    run = accelerators.project_run(1e15, 1000, chips=4, peak=250e12, mfu=0.5)
    assert run.total_flops == 1e18
    assert run.seconds == pytest.approx(2000.0)
    assert run.chip_hours == pytest.approx(8000.0 / 3600)
    assert accelerators.mfu(500e12, 250e12, chips=4) == pytest.approx(0.5)
    with pytest.raises(ValueError, match="0 < mfu <= 1"):
        accelerators.project_run(1e15, 1000, chips=4, peak=250e12, mfu=1.5)
