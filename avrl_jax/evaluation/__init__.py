"""Frozen-feature evaluation of a pretrained encoder (used by the `avrl_jax.probe` CLI).

- `tasks`: probe tasks (labelled images at the encoder's input size, streamed in chunks).
- `features`: one frozen forward pass over a task, cached (pooled features, patch tokens).
- `linear_probe`: softmax regression with a learning-rate x weight-decay sweep in one pass.
- `map_probe`: attention-pooling (MAP) head on the patch tokens.
- `knn`: cosine-similarity weighted kNN with chunked similarities.
- `ridge`: closed-form few-shot ridge regression (cheap; for use during pretraining).

Import from the modules (`from avrl_jax.evaluation.ridge import few_shot_accuracy`): nothing is
re-exported here, because `linear_probe` and `map_probe` name both a module and its function.
"""
