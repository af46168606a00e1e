"""Linear probe: softmax regression on frozen pooled features, with a hyper-parameter sweep.

The whole (learning rate x weight decay) grid trains in one pass: the grid's G classifiers are
stacked on a leading axis and one `vmap`ped optimizer step updates all of them, on the same
mini-batch, inside one `lax.scan`. Features are standardised with the train split's statistics
(optional); classifiers start at zero (the problem is convex, so the start only matters
through early stopping). A seeded held-out slice of the train split picks the best grid point
(highest held-out accuracy, ties broken by lower held-out loss); its test accuracy is reported.

Mini-batches are drawn uniformly with replacement, shared by all grid points; with
`batch_size >= N` every step is full-batch. Optimizers: AdamW (decoupled weight decay) or SGD
with momentum 0.9 and L2 weight decay; both with a cosine learning-rate decay to 0.
"""

from __future__ import annotations

import dataclasses
import functools
import itertools
import math
from collections.abc import Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax

OPTIMIZERS = ("adamw", "sgd")


@dataclasses.dataclass(frozen=True)
class SweepResult:
    """The grid's outcome; arrays are [G] over grid points in `itertools.product(lrs, wds)`
    order."""

    learning_rates: np.ndarray
    weight_decays: np.ndarray
    holdout_accuracy: np.ndarray
    holdout_loss: np.ndarray
    test_accuracy: np.ndarray
    best: int

    def metrics(self) -> dict[str, float]:
        """The best grid point: test and held-out accuracy and its hyper-parameters."""
        b = self.best
        return {
            "accuracy": float(self.test_accuracy[b]),
            "holdout_accuracy": float(self.holdout_accuracy[b]),
            "learning_rate": float(self.learning_rates[b]),
            "weight_decay": float(self.weight_decays[b]),
        }


def standardise(
    train: np.ndarray, *others: np.ndarray, eps: float = 1e-6
) -> tuple[np.ndarray, ...]:
    """Zero mean, unit variance per feature, with the statistics of `train` (f32[N, D])."""
    mean = train.mean(axis=0, keepdims=True)
    std = train.std(axis=0, keepdims=True) + eps
    return tuple(((x - mean) / std).astype(np.float32) for x in (train, *others))


def holdout_split(num_examples: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Seeded (fit, holdout) index arrays; the holdout has round(fraction * N) examples, at
    least 1, and the fit part at least 1."""
    if not 0 < fraction < 1:
        raise ValueError(f"holdout_fraction must be in (0, 1), got {fraction}")
    if num_examples < 2:
        raise ValueError(f"need at least 2 train examples to hold one out, got {num_examples}")
    order = np.random.default_rng(seed).permutation(num_examples)
    n_holdout = min(max(1, round(fraction * num_examples)), num_examples - 1)
    return np.sort(order[n_holdout:]), np.sort(order[:n_holdout])


def _optimizer(name: str, learning_rate, weight_decay, steps: int) -> optax.GradientTransformation:
    # Built inside the vmapped functions: learning_rate and weight_decay are per-grid-point
    # tracers there, which optax accepts as plain scalars.
    schedule = lambda count: learning_rate * 0.5 * (1 + jnp.cos(jnp.pi * count / steps))
    if name == "adamw":
        return optax.adamw(schedule, weight_decay=weight_decay)
    return optax.chain(optax.add_decayed_weights(weight_decay), optax.sgd(schedule, momentum=0.9))


def _loss(params: dict, x: jax.Array, y: jax.Array) -> jax.Array:
    """Mean softmax cross-entropy of `x f32[n, D]` with labels `y int32[n]`."""
    logits = x @ params["w"] + params["b"]
    return optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()


@functools.partial(jax.jit, static_argnames=("num_classes", "steps", "batch_size", "optimizer"))
def train_grid(
    x: jax.Array,
    y: jax.Array,
    learning_rates: jax.Array,
    weight_decays: jax.Array,
    key: jax.Array,
    *,
    num_classes: int,
    steps: int,
    batch_size: int,
    optimizer: str,
) -> dict:
    """Trains G softmax classifiers at once.

    Args:
      x: f32[N, D] features; y: int32[N] labels.
      learning_rates, weight_decays: f32[G], one pair per grid point.
      key: PRNG key for the mini-batches.

    Returns:
      {"w": f32[G, D, C], "b": f32[G, C]}.
    """
    n, d = x.shape
    grid = learning_rates.shape[0]
    params = {"w": jnp.zeros((grid, d, num_classes)), "b": jnp.zeros((grid, num_classes))}
    init = lambda lr, wd, p: _optimizer(optimizer, lr, wd, steps).init(p)
    opt_state = jax.vmap(init)(learning_rates, weight_decays, params)

    def update(lr, wd, grads, state, p):
        updates, state = _optimizer(optimizer, lr, wd, steps).update(grads, state, p)
        return optax.apply_updates(p, updates), state

    def step(carry, step_key):
        params, opt_state = carry
        if batch_size >= n:
            xb, yb = x, y
        else:
            idx = jax.random.randint(step_key, (batch_size,), 0, n)
            xb, yb = x[idx], y[idx]
        grads = jax.vmap(jax.grad(_loss), in_axes=(0, None, None))(params, xb, yb)
        params, opt_state = jax.vmap(update)(
            learning_rates, weight_decays, grads, opt_state, params
        )
        return (params, opt_state), None

    (params, _), _ = jax.lax.scan(step, (params, opt_state), jax.random.split(key, steps))
    return params


@jax.jit
def evaluate_grid(params: dict, x: jax.Array, y: jax.Array) -> tuple[jax.Array, jax.Array]:
    """(accuracy f32[G], loss f32[G]) of the G classifiers on `x f32[N, D]`, `y int32[N]`.

    One grid point at a time (`lax.map`): logits [N, C] per point, never [G, N, C].
    """

    def one(p):
        logits = x @ p["w"] + p["b"]
        accuracy = jnp.mean(jnp.argmax(logits, axis=-1) == y)
        return accuracy, optax.softmax_cross_entropy_with_integer_labels(logits, y).mean()

    return jax.lax.map(one, params)


def linear_sweep(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    num_classes: int,
    *,
    learning_rates: Sequence[float] = (3e-4, 1e-3, 3e-3, 1e-2, 3e-2, 1e-1, 3e-1),
    weight_decays: Sequence[float] = (0.0, 1e-3, 1e-1),
    steps: int = 1000,
    batch_size: int = 512,
    holdout_fraction: float = 0.1,
    standardize: bool = True,
    optimizer: str = "adamw",
    seed: int = 0,
) -> SweepResult:
    """Trains the grid on the train split minus a held-out slice, evaluates every grid point
    on the held-out slice and on the test split, and picks the best on the held-out slice.

    Args:
      train_features: f32[N, D]; train_labels: int32[N] in [0, num_classes).
      test_features: f32[M, D]; test_labels: int32[M].
      learning_rates, weight_decays: the grid is their product.
      steps, batch_size: optimizer steps and mini-batch size (>= N: full batch).
      holdout_fraction: the share of the train split used to select hyper-parameters.
      standardize: standardise features with the train split's mean and std.
      optimizer: "adamw" or "sgd".
      seed: for the held-out split and the mini-batches.
    """
    if optimizer not in OPTIMIZERS:
        raise ValueError(f"linear.optimizer={optimizer!r} is not valid; valid: {OPTIMIZERS}")
    if steps < 1:
        raise ValueError(f"linear.steps must be >= 1, got {steps}")
    x, x_test = np.asarray(train_features, np.float32), np.asarray(test_features, np.float32)
    if standardize:
        x, x_test = standardise(x, x_test)
    y, y_test = np.asarray(train_labels, np.int32), np.asarray(test_labels, np.int32)
    fit, holdout = holdout_split(len(y), holdout_fraction, seed)
    grid = list(itertools.product(learning_rates, weight_decays))
    lrs = np.asarray([lr for lr, _ in grid], np.float32)
    wds = np.asarray([wd for _, wd in grid], np.float32)
    params = train_grid(
        x[fit],
        y[fit],
        lrs,
        wds,
        jax.random.key(seed),
        num_classes=num_classes,
        steps=steps,
        batch_size=batch_size,
        optimizer=optimizer,
    )
    holdout_accuracy, holdout_loss = map(np.asarray, evaluate_grid(params, x[holdout], y[holdout]))
    test_accuracy, _ = evaluate_grid(params, x_test, y_test)
    # Highest held-out accuracy; among equals, the lowest held-out loss (a NaN loss, from a
    # diverged point, never wins).
    loss = np.where(np.isfinite(holdout_loss), holdout_loss, math.inf)
    best = int(np.lexsort((loss, -holdout_accuracy))[0])
    return SweepResult(
        learning_rates=lrs,
        weight_decays=wds,
        holdout_accuracy=holdout_accuracy,
        holdout_loss=holdout_loss,
        test_accuracy=np.asarray(test_accuracy),
        best=best,
    )


def linear_probe(*args, **kwargs) -> dict[str, float]:
    """`linear_sweep(...)` reduced to the best grid point's metrics: accuracy (test),
    holdout_accuracy, learning_rate, weight_decay."""
    return linear_sweep(*args, **kwargs).metrics()
