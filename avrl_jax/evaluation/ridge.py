"""Few-shot ridge regression on frozen features: cheap enough to run during pretraining.

As big_vision's `fewshot_lsr` evaluator: pick k examples per class from the train features,
standardise them with their own mean and std, append a large constant feature (a bias that
the L2 penalty barely touches), and regress to one-hot targets in {-1, +1} in closed form;
the prediction is the arg-max output. One SVD of the k-shot matrix X = U S V^T gives the
solution for every regularisation value:

    W(l2) = V diag(s / (s^2 + l2)) U^T Y

which covers both N >= D and D > N without forming either Gram matrix. The l2 value is chosen
on held-out train examples (not among the k shots); its test accuracy is reported.

Host numpy in float64: the systems are small (k * classes rows), nothing is compiled, so a call
from the training loop costs milliseconds whatever the shapes.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

BIAS_CONSTANT = 100.0  # big_vision's value: large, so the bias is almost unregularised


def sample_shots(
    labels: np.ndarray, shots: int, num_classes: int, rng: np.random.Generator
) -> np.ndarray:
    """Indices of `shots` random examples of every class (all of a class that has fewer)."""
    picked = [rng.permutation(np.flatnonzero(labels == c))[:shots] for c in range(num_classes)]
    return np.sort(np.concatenate(picked)).astype(np.int64)


def _prepare(x: np.ndarray, mean: np.ndarray, std: np.ndarray) -> np.ndarray:
    x = (x - mean) / std
    return np.concatenate([x, np.full((x.shape[0], 1), BIAS_CONSTANT)], axis=1)


def _accuracy(weights: np.ndarray, x: np.ndarray, y: np.ndarray) -> np.ndarray:
    """weights [..., D+1, C], prepared x [n, D+1], y [n] -> accuracy [...]."""
    return np.mean(np.argmax(x @ weights, axis=-1) == y, axis=-1)


def ridge_weights(x: np.ndarray, targets: np.ndarray, l2_regs: Sequence[float]) -> np.ndarray:
    """Ridge solutions for every l2 value: x f64[n, D], targets f64[n, C] -> f64[R, D, C]."""
    u, s, vt = np.linalg.svd(x, full_matrices=False)  # u [n, r], s [r], vt [r, D]
    projected = u.T @ targets  # [r, C]
    shrink = s[None, :] / (s[None, :] ** 2 + np.asarray(l2_regs, np.float64)[:, None])  # [R, r]
    return np.einsum("rd,Rr,rc->Rdc", vt, shrink, projected)


def few_shot_accuracy(
    train_features: np.ndarray,
    train_labels: np.ndarray,
    test_features: np.ndarray,
    test_labels: np.ndarray,
    shots: int | Sequence[int] = (1, 5, 10),
    l2_regs: Sequence[float] = (2.0**-10, 2.0**-5, 1.0, 2.0**5, 2.0**10),
    seed: int = 0,
    *,
    num_classes: int | None = None,
    max_holdout: int = 1000,
) -> dict[str, float]:
    """k-shot ridge-regression accuracy on the test features, for each k in `shots`.

    Args:
      train_features: f32[N, D]; train_labels: int32[N].
      test_features: f32[M, D]; test_labels: int32[M].
      shots: k (examples per class), or several.
      l2_regs: regularisation values; the best on the held-out examples is used.
      seed: for the choice of shots and held-out examples.
      num_classes: default max(label) + 1 over both splits.
      max_holdout: held-out examples (drawn from the train examples not among the shots).

    Returns:
      {"{k}shot/accuracy": test accuracy, "{k}shot/holdout_accuracy": ...,
       "{k}shot/l2_reg": the chosen value} for each k.
    """
    shots = (shots,) if isinstance(shots, int | np.integer) else tuple(shots)
    train_x = np.asarray(train_features, np.float64)
    test_x = np.asarray(test_features, np.float64)
    train_y, test_y = np.asarray(train_labels), np.asarray(test_labels)
    if num_classes is None:
        num_classes = int(max(train_y.max(), test_y.max())) + 1
    results: dict[str, float] = {}
    for k in shots:
        rng = np.random.default_rng([seed, k])
        support = sample_shots(train_y, k, num_classes, rng)
        rest = np.setdiff1d(np.arange(train_y.size), support)
        holdout = np.sort(rng.permutation(rest)[:max_holdout])
        x = train_x[support]
        mean, std = x.mean(axis=0), x.std(axis=0) + 1e-5
        targets = 2.0 * np.eye(num_classes)[train_y[support]] - 1.0
        weights = ridge_weights(_prepare(x, mean, std), targets, l2_regs)  # [R, D+1, C]

        # Without held-out examples (a tiny train set), fall back to the middle value.
        if holdout.size:
            holdout_accuracy = _accuracy(
                weights, _prepare(train_x[holdout], mean, std), train_y[holdout]
            )
            best = int(np.argmax(holdout_accuracy))
            results[f"{k}shot/holdout_accuracy"] = float(holdout_accuracy[best])
        else:
            best = len(l2_regs) // 2
        # Only the chosen solution meets the test set: [M, C] scores, not [R, M, C].
        results[f"{k}shot/accuracy"] = float(
            _accuracy(weights[best], _prepare(test_x, mean, std), test_y)
        )
        results[f"{k}shot/l2_reg"] = float(l2_regs[best])
    return results
