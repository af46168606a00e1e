r"""The supervised bound of the object_in_box probe: the encoder trained end to end, with labels,
on the probe's own train views, then tested on its test views. If this stays at chance, no
pretraining at the same budget can be expected to do better (configs/study.py's docstring
lists what it gave).

  .venv/bin/python benchmarks/supervised_bound.py --steps 1000 --batch 32 \
      --task background_contrast=0.3 --task object_scale=0.4,0.8 --stem conv

Prints one JSON line: test accuracy (%), the mean training loss of the last 100 steps (the
class prior's entropy is 2.94), seconds. The encoder is configs/default.py's (ViT-Ti/8, depth
4, 32 px, CLS pooling) unless `--stem`, `--pool`, `--patch_size` or `--depth` say otherwise;
AdamW with warmup and cosine decay, weight decay 0.05, random flips.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
import time

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

sys.path.insert(0, os.path.dirname(os.path.dirname(os.path.abspath(__file__))))
from avrl_jax.evaluation import tasks  # noqa: E402
from avrl_jax.evaluation.head_training import epoch_batches, warmup_cosine_adamw  # noqa: E402
from avrl_jax.models.vit import ViT  # noqa: E402


def task_option(text: str) -> tuple[str, object]:
    """'object_scale=0.4,0.8' -> ('object_scale', (0.4, 0.8)); numbers as floats."""
    name, _, value = text.partition("=")
    if not value:
        raise argparse.ArgumentTypeError(f"--task {text!r}: expected NAME=VALUE")
    parts = [float(v) for v in value.split(",")]
    return name, tuple(parts) if len(parts) > 1 else parts[0]


class Classifier(nnx.Module):
    def __init__(self, encoder: dict, size: int, num_classes: int, rngs: nnx.Rngs):
        self.encoder = ViT(image_size=size, rngs=rngs, **encoder)
        self.head = nnx.Linear(self.encoder.width, num_classes, rngs=rngs)

    def __call__(self, images: jax.Array) -> jax.Array:
        return self.head(self.encoder(images)[1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--steps", type=int, default=1000)
    parser.add_argument("--batch", type=int, default=32)
    parser.add_argument("--learning_rate", type=float, default=1e-3)
    parser.add_argument("--stem", choices=("patch", "conv"), default="conv")
    parser.add_argument("--pool", choices=("cls", "gap"), default="cls")
    parser.add_argument("--patch_size", type=int, default=8)
    parser.add_argument("--depth", type=int, default=4)
    parser.add_argument("--seed", type=int, default=0, help="initialisation and batches")
    parser.add_argument("--num_train", type=int, default=5000)
    parser.add_argument("--num_test", type=int, default=1000)
    parser.add_argument("--task", type=task_option, action="append", default=[])
    args = parser.parse_args()

    start = time.time()
    task = dict(name="object_in_box", num_train=args.num_train, num_test=args.num_test, seed=0)
    task.update(dict(args.task))
    train_split = tasks.make_split(task, "train", 32)
    x_train, y_train = tasks.materialise(train_split)
    x_test, y_test = tasks.materialise(tasks.make_split(task, "test", 32))

    encoder = dict(
        variant="Ti",
        patch_size=args.patch_size,
        depth=args.depth,
        stem=args.stem,
        pool=args.pool,
    )
    model = Classifier(encoder, 32, train_split.num_classes, nnx.Rngs(args.seed))
    schedule = warmup_cosine_adamw(args.learning_rate, 0.05, args.steps, args.steps // 20)
    optimizer = nnx.Optimizer(model, schedule, wrt=nnx.Param)

    @nnx.jit
    def update(model, optimizer, images, labels):
        def loss_fn(m):
            return optax.softmax_cross_entropy_with_integer_labels(m(images), labels).mean()

        loss, grads = nnx.value_and_grad(loss_fn)(model)
        optimizer.update(model, grads)
        return loss

    predict = nnx.jit(lambda model, images: model(images).argmax(-1))
    rng = np.random.default_rng(args.seed)
    batches = epoch_batches(len(x_train), args.batch, rng)
    losses = []
    for _ in range(args.steps):
        idx = next(batches)
        images = x_train[idx]
        flip = rng.random(len(idx)) < 0.5
        images = np.where(flip[:, None, None, None], images[:, :, ::-1], images)
        losses.append(float(update(model, optimizer, jnp.asarray(images), y_train[idx])))
    predicted = np.concatenate(
        [np.asarray(predict(model, x_test[i : i + 250])) for i in range(0, len(x_test), 250)]
    )
    print(
        json.dumps(
            {
                "task": {k: v for k, v in task.items() if k not in ("name", "seed")},
                "encoder": encoder,
                "learning_rate": args.learning_rate,
                "seed": args.seed,
                "steps": args.steps,
                "batch": args.batch,
                "test_accuracy_percent": round(100 * float(np.mean(predicted == y_test)), 1),
                "train_loss_last100": round(float(np.mean(losses[-100:])), 3),
                "seconds": round(time.time() - start),
            }
        )
    )


if __name__ == "__main__":
    main()
