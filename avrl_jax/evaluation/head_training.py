"""What the probes that train a head on cached tokens share (the MAP and decoder probes): the
training loop (AdamW with warmup and cosine decay, mini-batches drawn without replacement each
epoch), the train examples they report accuracy on, and inference in fixed-size padded batches
(one compilation whatever the number of examples)."""

from __future__ import annotations

from collections.abc import Callable, Iterator

import jax
import numpy as np
import optax
from flax import nnx

from avrl_jax.models.params import from_plain_params

TRAIN_ACCURACY_EXAMPLES = 2000


def warmup_cosine_adamw(
    learning_rate: float, weight_decay: float, steps: int, warmup_steps: int
) -> optax.GradientTransformation:
    """AdamW with linear warmup from 0 and cosine decay to 0 over `steps`."""
    schedule = optax.warmup_cosine_decay_schedule(
        0.0, learning_rate, min(warmup_steps, steps - 1), steps
    )
    return optax.adamw(schedule, weight_decay=weight_decay)


def epoch_batches(
    num_examples: int, batch_size: int, rng: np.random.Generator
) -> Iterator[np.ndarray]:
    """Endless mini-batch indices: a fresh permutation each epoch, batches never cross epochs
    (each has exactly min(batch_size, N) rows, so the update compiles once)."""
    batch_size = min(batch_size, num_examples)
    while True:
        order = rng.permutation(num_examples)
        for start in range(0, num_examples - batch_size + 1, batch_size):
            yield order[start : start + batch_size]


def padded_map(fn: Callable[[np.ndarray], object], inputs: np.ndarray, batch_size: int):
    """np.concatenate of `fn(batch)` over `inputs` [N, ...] in batches of exactly
    `batch_size` rows (the last zero-padded; its padded rows' outputs are dropped)."""
    out = []
    for start in range(0, inputs.shape[0], batch_size):
        batch = inputs[start : start + batch_size]
        n = batch.shape[0]
        pad = np.zeros((batch_size - n, *batch.shape[1:]), batch.dtype)
        out.append(np.asarray(fn(np.concatenate([batch, pad])))[:n])
    return np.concatenate(out)


def train_head(
    graphdef: nnx.GraphDef,
    params: dict,
    loss_fn: Callable[[nnx.Module, jax.Array, jax.Array], jax.Array],
    inputs: np.ndarray,
    targets: np.ndarray,
    *,
    steps: int,
    batch_size: int,
    learning_rate: float,
    weight_decay: float,
    warmup_steps: int,
    seed: int,
) -> dict:
    """The head's trained plain params: `steps` AdamW updates of `loss_fn(head, inputs[b],
    targets[b])` on mini-batches `b` (see `epoch_batches`, seeded by `seed`)."""
    optimizer = warmup_cosine_adamw(learning_rate, weight_decay, steps, warmup_steps)
    opt_state = optimizer.init(params)

    @jax.jit
    def update(params, opt_state, x, y):
        grads = jax.grad(lambda p: loss_fn(from_plain_params(graphdef, p), x, y))(params)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state

    batches = epoch_batches(inputs.shape[0], batch_size, np.random.default_rng(seed))
    for _ in range(steps):
        idx = next(batches)
        params, opt_state = update(params, opt_state, inputs[idx], targets[idx])
    return params


def train_subset(num_examples: int, seed: int) -> np.ndarray:
    """Sorted indices of the (up to TRAIN_ACCURACY_EXAMPLES) train examples a probe reports
    its train accuracy on."""
    order = np.random.default_rng(seed).permutation(num_examples)
    return np.sort(order[:TRAIN_ACCURACY_EXAMPLES])
