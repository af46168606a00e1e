"""avrl_jax: visual pre-training with reinforcement learning (annotation bootstrapping) in JAX.

`avrl_jax.load_encoder(workdir, step=None, params="online")` loads a run's pretrained encoder
(`avrl_jax.models.pretrained`); it is imported on first use, so `import avrl_jax` stays cheap
(no JAX).
"""

__all__ = ["load_encoder"]


def __getattr__(name: str):
    if name == "load_encoder":
        from avrl_jax.models.pretrained import load_encoder

        return load_encoder
    raise AttributeError(f"module 'avrl_jax' has no attribute {name!r}")


def __dir__() -> list[str]:
    return sorted([*globals(), *__all__])
