"""A cheap signal during pretraining: closed-form few-shot ridge on frozen features.

Every `fewshot_eval.every_steps` the loop encodes a small fixed probe set with the current
online encoder and reports k-shot ridge accuracy (`evaluation.ridge`), logged beside the
training metrics as `fewshot/<task>/<k>shot`. The images are rendered once, at start.
"""

import numpy as np
from jax.experimental import multihost_utils

from avrl_jax.evaluation import features as features_lib
from avrl_jax.evaluation import tasks
from avrl_jax.evaluation.ridge import few_shot_accuracy
from avrl_jax.models.build import build_encoder


def _render(split: tasks.ProbeSplit) -> tuple[np.ndarray, np.ndarray]:
    images, labels = zip(*split.chunks(), strict=True)
    return np.concatenate(images), np.concatenate(labels)


class FewShotEvaluator:
    def __init__(self, train_config):
        eval_config = train_config.fewshot_eval
        self.task = eval_config.task.name
        self.shots = tuple(eval_config.shots)
        self.batch_size = eval_config.batch_size
        task = eval_config.task.to_dict()
        size = int(train_config.env.view_size)
        self.train = _render(tasks.make_split(task, "train", size))
        self.test = _render(tasks.make_split(task, "test", size))
        self.num_classes = tasks.make_split(task, "train", size).num_classes
        self.graphdef, _ = build_encoder(train_config)

    def __call__(self, encoder_params) -> dict[str, float]:
        """Collective on multi-host runs: every process calls it at the same step."""
        # Global (replicated or FSDP-sharded) arrays to whole host copies: each process then
        # encodes the probe set on its own devices.
        host_params = multihost_utils.process_allgather(encoder_params, tiled=True)
        encoder = (self.graphdef, host_params)
        train = features_lib.extract_features(encoder, self.train[0], batch_size=self.batch_size)
        test = features_lib.extract_features(encoder, self.test[0], batch_size=self.batch_size)
        results = few_shot_accuracy(
            np.asarray(train.pooled),
            self.train[1],
            np.asarray(test.pooled),
            self.test[1],
            shots=self.shots,
            num_classes=self.num_classes,
        )
        return {f"fewshot/{self.task}/{k}shot": results[f"{k}shot/accuracy"] for k in self.shots}
