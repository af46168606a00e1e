"""A pretraining run's value function Q(l | view, a), as `value_search.ValueFn`s on an image.

`RunValue(workdir)` restores the whole network (encoder, value head, annotation heads) of a
checkpoint (or builds its random initialisation). An annotation l is named by:
- an index into the objective's annotation table: a class (`labels`, a curated set) or a
  prototype (`dino`); the value is the probability Q(l | x, a) over the table (softmax, or the
  sigmoid of `objective.divergence="bce"`);
- `crop=image`: the full view of another image, embedded as the objective embeds its
  annotations (`simclr`: the crop's own embedding);
- `caption=text` (`clip`): the caption's text embedding.
For a crop or a caption the set has one member, so the value is the logit
t_ab <phi(x, a), psi(l)> (a cosine times the temperature), which ranks boxes the same way.

`RunValue.bind(canvas, annotation)` gives the ValueFn of one image: it renders every source
box at the encoder's input size, encodes it once, and scores the moves to the target boxes
(`env.boxes.relative_action`, tokenised without flip or jitter).
`RunValue.reward_probabilities(canvas, boxes)` gives what Q is trained towards: the base head's
p(l | view) of each box's view (the rewards), for a `labels` run.
"""

from __future__ import annotations

import functools

import jax
import jax.numpy as jnp
import numpy as np
from flax import nnx

from avrl_jax.checkpointing import restore_params
from avrl_jax.env.boxes import relative_action
from avrl_jax.env.render import normalize, render
from avrl_jax.env.tokens import action_token_layout, plain_action_tokens
from avrl_jax.evaluation.value_search import FULL_BOX, ValueFn
from avrl_jax.models.bootstrapper import build_model
from avrl_jax.models.build import load_train_config
from avrl_jax.models.params import from_plain_params, to_plain_params
from avrl_jax.objectives.bootstrap import probabilities
from avrl_jax.objectives.registry import make_objective

INDEXED_OBJECTIVES = ("labels", "dino")  # annotations named by an index into a table


class RunValue:
    """The value function of a run's checkpoint (`step` None: the newest) or, with
    `random_init`, of its initial network (the baseline). `RunValue.of(config, graphdef,
    params)` wraps a network in memory (the training loop's image summaries)."""

    def __init__(self, workdir: str, step: int | None = None, random_init: bool = False):
        config = load_train_config(workdir)
        graphdef, params = to_plain_params(build_model(config, nnx.Rngs(config.seed)))
        if not random_init:
            step, params = restore_params(workdir, step, subtree=("params",))
        self._setup(config, graphdef, params, None if random_init else step)

    @classmethod
    def of(cls, config, graphdef, params, step: int | None = None) -> RunValue:
        value = cls.__new__(cls)
        value._setup(config, graphdef, params, step)
        return value

    def _setup(self, config, graphdef, params, step) -> None:
        self.config, self.graphdef, self.params, self.step = config, graphdef, params, step
        self.objective = make_objective(config)
        self.layout = action_token_layout(config.env)
        self.view_size = int(config.env.view_size)
        self.divergence = config.objective.divergence

    @property
    def base(self) -> str:
        return self.config.objective.base

    def num_annotations(self) -> int | None:
        """The size of the annotation table (classes or prototypes), None for crops/captions."""
        return self.objective.num_annotations() if self.base in INDEXED_OBJECTIVES else None

    def bind(
        self,
        canvas: np.ndarray,
        index: int | None = None,
        crop: np.ndarray | None = None,
        caption: str | None = None,
    ) -> ValueFn:
        """The ValueFn of annotation `index`, `crop` (uint8 [H, W, 3]) or `caption` on
        `canvas` (uint8 [S, S, 3]); see the module."""
        psi, column, as_probability = self._annotation(index, crop, caption)
        canvas = jnp.asarray(canvas)

        def q(sources: np.ndarray, targets: np.ndarray) -> np.ndarray:
            values = _values(
                self.graphdef,
                self.params,
                canvas,
                jnp.asarray(sources, jnp.float32),
                jnp.asarray(targets, jnp.float32),
                psi,
                layout=self.layout,
                view_size=self.view_size,
                divergence=self.divergence if as_probability else None,
            )
            return np.asarray(values[..., column])

        return q

    def reward_probabilities(self, canvas: np.ndarray, boxes: np.ndarray) -> np.ndarray:
        """p(l | view of each box f32[N, 4]) over the class table -> f32[N, A]: the base head's
        likelihoods that the value function's rewards are made of (a `labels` run; computed
        with this network's weights, where training uses the EMA target's)."""
        if self.base != "labels":
            raise ValueError(
                f"reward probabilities of single views need a labels run, not {self.base!r}"
            )
        model = from_plain_params(self.graphdef, self.params)
        base_psi, _ = self.objective.embeddings(model, None, None, {})
        probs = _reward_probabilities(
            self.graphdef,
            self.params,
            jnp.asarray(canvas),
            jnp.asarray(boxes, jnp.float32),
            base_psi,
            objective=self.objective,
            view_size=self.view_size,
        )
        return np.asarray(probs)

    def _annotation(self, index, crop, caption) -> tuple[jax.Array, int, bool]:
        """(psi_ab [A, d], the column of the named annotation, whether Q is a probability)."""
        given = [
            name
            for name, v in (("index", index), ("crop", crop), ("caption", caption))
            if v is not None
        ]
        if len(given) != 1:
            raise ValueError(f"name one annotation (an index, a crop or a caption); got {given}")
        model = from_plain_params(self.graphdef, self.params)
        if index is not None:
            size = self.num_annotations()
            if size is None:
                raise ValueError(
                    f"objective.base={self.base!r} has no annotation table; name a crop "
                    "(simclr) or a caption (clip) instead of an index"
                )
            if not 0 <= index < size:
                raise ValueError(f"annotation index {index} is outside the table [0, {size})")
            _, psi = self.objective.embeddings(model, None, None, {})
            return psi, int(index), True
        if crop is not None:
            if self.base != "simclr":
                raise ValueError(f"a crop names an annotation of simclr, not {self.base!r}")
            view = normalize(render(jnp.asarray(crop), jnp.asarray(FULL_BOX), self.view_size))
            _, pooled = model.encoder(view[None])
            features = jnp.stack([pooled, pooled])
            _, psi = self.objective.embeddings(model, features, model.base_query(features), {})
            return psi, 0, False
        if self.base != "clip":
            raise ValueError(f"a caption names an annotation of clip, not {self.base!r}")
        from avrl_jax.data.scenes import encode_caption

        batch = {"caption_bytes": jnp.asarray(encode_caption(caption))[None]}
        _, psi = self.objective.embeddings(model, None, None, batch)
        return psi, 0, False


@functools.partial(jax.jit, static_argnames=("graphdef", "layout", "view_size", "divergence"))
def _values(graphdef, params, canvas, sources, targets, psi, *, layout, view_size, divergence):
    """Q from each source box [N, 4] to its targets [N, G, 4] -> [N, G, A] (probabilities,
    or logits when `divergence` is None)."""
    model = from_plain_params(graphdef, params)
    patch_tokens, _ = _encode_boxes(model, canvas, sources, view_size)
    tokens = plain_action_tokens(relative_action(sources[:, None, :], targets), layout)
    logits = model.value_logits(patch_tokens, tokens, psi)
    return logits if divergence is None else probabilities(logits, divergence)


@functools.partial(jax.jit, static_argnames=("graphdef", "objective", "view_size"))
def _reward_probabilities(graphdef, params, canvas, boxes, base_psi, *, objective, view_size):
    """p(l | x) of the view of each box [N, 4] -> [N, A], as the trainer's rewards."""
    model = from_plain_params(graphdef, params)
    _, pooled = _encode_boxes(model, canvas, boxes, view_size)
    logits = objective.reward_logits(model, model.base_query(pooled), base_psi, {}, 0)
    return probabilities(logits, objective.objective.divergence)


def _encode_boxes(model, canvas, boxes, view_size):
    """The encoder's (patch tokens, pooled) of the view of each box [N, 4] of `canvas`."""
    views = jax.vmap(lambda box: normalize(render(canvas, box, view_size)))(boxes)
    return model.encoder(views)
