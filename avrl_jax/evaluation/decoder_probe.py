"""The decoder probe (Beyer et al. 2023, "A study of autoregressive decoders for multi-tasking
in computer vision"): a small autoregressive Transformer decoder reads the frozen encoder's
patch tokens through cross-attention and writes the answer as text.

- Targets are words: a class name ("zebra", "three"), a count ("two"), or a list of names
  ("three zebra"). The vocabulary is the words of the task's label names, plus PAD, BOS and
  EOS; a target is its words, then EOS, then PAD up to the task's longest target.
- The decoder: token + learned position embeddings; per block (pre-LN) causal self-attention,
  cross-attention to the encoder's tokens (projected to the decoder's width), MLP; a final LN
  and a linear map to the vocabulary. Trained with teacher forcing (input BOS + target[:-1],
  cross-entropy on the non-PAD targets), AdamW with warmup and cosine decay, on cached tokens.
- Evaluation decodes greedily from BOS for the task's target length. `accuracy` is the exact
  match of the decoded words (everything up to the first EOS) with the target's;
  `token_accuracy` the fraction of target positions (EOS included) decoded right.

For a one-word classification task, `accuracy` is classification accuracy, comparable with the
linear and MAP probes' columns.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Sequence

import jax
import jax.numpy as jnp
import numpy as np
import optax
from flax import nnx

from avrl_jax.evaluation.head_training import padded_map, train_head, train_subset
from avrl_jax.models.params import from_plain_params, to_plain_params
from avrl_jax.models.vit import MlpBlock, attention

PAD, BOS, EOS = 0, 1, 2
SPECIAL_TOKENS = ("<pad>", "<bos>", "<eos>")
_LN_EPS = 1e-6


# --------------------------------------------------------------------------------------------
# Text targets.


class Vocabulary:
    """Words of a task's label names <-> token ids (0-2 are PAD, BOS, EOS)."""

    def __init__(self, label_names: Sequence[str]):
        if not label_names:
            raise ValueError(
                "the decoder probe needs the task's label names (its text targets); this task "
                "has none: use a task that names its classes, or disable decoder.enabled"
            )
        words = sorted({word for name in label_names for word in name.split()})
        self.words = SPECIAL_TOKENS + tuple(words)
        self._ids = {word: i for i, word in enumerate(self.words)}
        self.label_names = tuple(label_names)
        self._label_words = [name.split() for name in label_names]

    def __len__(self) -> int:
        return len(self.words)

    def text(self, labels: np.ndarray) -> str:
        """One example's target text: a label (int) or a list of labels (-1 = none)."""
        labels = np.atleast_1d(np.asarray(labels))
        return " ".join(self.label_names[int(k)] for k in labels if k >= 0)

    def encode(self, labels: np.ndarray) -> np.ndarray:
        """labels int[N] or int[N, K] (-1 = none) -> target tokens int32[N, L]: each
        example's words, EOS, then PAD. L = the longest possible target + 1."""
        labels = np.asarray(labels)
        rows = labels.reshape(labels.shape[0], -1)
        longest = max(len(words) for words in self._label_words) * rows.shape[1] + 1
        tokens = np.full((rows.shape[0], longest), PAD, np.int32)
        for n, row in enumerate(rows):
            ids = [self._ids[w] for k in row if k >= 0 for w in self._label_words[int(k)]]
            tokens[n, : len(ids) + 1] = ids + [EOS]
        return tokens

    def decode(self, tokens: np.ndarray) -> str:
        """Token ids -> the words before the first EOS (PAD/BOS dropped)."""
        words = []
        for t in np.asarray(tokens).tolist():
            if t == EOS:
                break
            if t >= len(SPECIAL_TOKENS):
                words.append(self.words[t])
        return " ".join(words)


def up_to_eos(tokens: np.ndarray) -> np.ndarray:
    """int[N, L] -> the same with every position after each row's first EOS set to PAD."""
    tokens = np.asarray(tokens)
    is_eos = tokens == EOS
    after = np.cumsum(is_eos, axis=1) - is_eos > 0  # strictly after the first EOS
    return np.where(after, PAD, tokens)


def sequence_metrics(predicted: np.ndarray, targets: np.ndarray) -> dict[str, float]:
    """Greedy outputs and targets, int[N, L] -> exact match and per-position accuracy over
    the targets' non-PAD positions (EOS included)."""
    predicted, targets = up_to_eos(predicted), np.asarray(targets)
    real = targets != PAD
    return {
        "accuracy": float(np.mean(np.all(predicted == targets, axis=1))),
        "token_accuracy": float(np.sum((predicted == targets) & real) / np.sum(real)),
    }


# --------------------------------------------------------------------------------------------
# The decoder.


class DecoderBlock(nnx.Module):
    """Pre-LN: `x + SelfAttn(LN(x), causal)`, `x + CrossAttn(LN(x), memory)`, `x + MLP(LN(x))`."""

    def __init__(self, width: int, num_heads: int, mlp_dim: int, *, rngs: nnx.Rngs):
        self.norm1 = nnx.LayerNorm(width, epsilon=_LN_EPS, rngs=rngs)
        self.self_attn = attention(width, num_heads, rngs=rngs)
        self.norm2 = nnx.LayerNorm(width, epsilon=_LN_EPS, rngs=rngs)
        self.cross_attn = attention(width, num_heads, rngs=rngs)
        self.norm3 = nnx.LayerNorm(width, epsilon=_LN_EPS, rngs=rngs)
        self.mlp = MlpBlock(width, mlp_dim, rngs=rngs)

    def __call__(self, x: jax.Array, memory: jax.Array, causal: jax.Array) -> jax.Array:
        x = x + self.self_attn(self.norm1(x), mask=causal)
        x = x + self.cross_attn(self.norm2(x), memory)
        return x + self.mlp(self.norm3(x))


class TextDecoder(nnx.Module):
    """`(memory f32[N, P, D_enc], inputs int32[N, L]) -> logits f32[N, L, V]`; position t's
    logits depend on inputs[:, :t+1] only."""

    def __init__(
        self,
        vocab_size: int,
        max_len: int,
        memory_width: int,
        *,
        width: int,
        depth: int,
        num_heads: int,
        mlp_dim: int,
        rngs: nnx.Rngs,
    ):
        if width % num_heads:
            raise ValueError(f"decoder.num_heads={num_heads} must divide decoder.width={width}")
        init = nnx.initializers.normal(0.02)
        self.embed = nnx.Embed(vocab_size, width, embedding_init=init, rngs=rngs)
        self.pos_embed = nnx.Param(init(rngs.params(), (1, max_len, width)))
        self.memory_proj = nnx.Linear(memory_width, width, rngs=rngs)
        self.blocks = nnx.List(
            [DecoderBlock(width, num_heads, mlp_dim, rngs=rngs) for _ in range(depth)]
        )
        self.norm = nnx.LayerNorm(width, epsilon=_LN_EPS, rngs=rngs)
        self.head = nnx.Linear(width, vocab_size, rngs=rngs)

    def __call__(self, memory: jax.Array, inputs: jax.Array) -> jax.Array:
        length = inputs.shape[1]
        x = self.embed(inputs) + self.pos_embed[:, :length]
        memory = self.memory_proj(memory.astype(jnp.float32))
        causal = jnp.tril(jnp.ones((1, 1, length, length), bool))
        for block in self.blocks:
            x = block(x, memory, causal)
        return self.head(self.norm(x))


def teacher_inputs(targets: jax.Array) -> jax.Array:
    """Targets int32[N, L] -> decoder inputs BOS + targets[:, :-1]."""
    bos = jnp.full((targets.shape[0], 1), BOS, targets.dtype)
    return jnp.concatenate([bos, targets[:, :-1]], axis=1)


def greedy_decode(logits_fn: Callable[[jax.Array], jax.Array], batch: int, length: int):
    """Greedy decoding: `logits_fn(inputs int32[N, L]) -> f32[N, L, V]` (causal) -> int32[N, L].

    Step t feeds BOS and the t tokens chosen so far and takes the argmax at position t. The
    input buffer has a fixed length (one compilation); positions after t cannot change step
    t's logits because the decoder is causal.
    """

    def step(t, carry):
        inputs, outputs = carry
        chosen = jnp.argmax(logits_fn(inputs)[:, t], axis=-1).astype(jnp.int32)
        outputs = outputs.at[:, t].set(chosen)
        inputs = jax.lax.dynamic_update_slice_in_dim(
            inputs, chosen[:, None], jnp.minimum(t + 1, length - 1), axis=1
        )
        return inputs, outputs

    inputs = jnp.full((batch, length), PAD, jnp.int32).at[:, 0].set(BOS)
    outputs = jnp.full((batch, length), PAD, jnp.int32)
    return jax.lax.fori_loop(0, length, step, (inputs, outputs))[1]


@functools.partial(jax.jit, static_argnames=("graphdef", "length"))
def _decode_batch(graphdef, params, memory, *, length: int) -> jax.Array:
    decoder = from_plain_params(graphdef, params)
    return greedy_decode(lambda inputs: decoder(memory, inputs), memory.shape[0], length)


def decode(graphdef, params, memory: np.ndarray, length: int, batch_size: int = 256):
    """Greedy outputs int32[N, L] for memory [N, P, D], in fixed-size padded batches."""
    batch = functools.partial(_decode_batch, graphdef, params, length=length)
    return padded_map(batch, memory, batch_size)


def decoder_probe(
    train_tokens: np.ndarray,
    train_labels: np.ndarray,
    test_tokens: np.ndarray,
    test_labels: np.ndarray,
    label_names: Sequence[str],
    *,
    width: int,
    depth: int = 4,
    num_heads: int = 4,
    mlp_dim: int | None = None,
    learning_rate: float = 1e-3,
    weight_decay: float = 1e-4,
    steps: int = 1000,
    warmup_steps: int = 50,
    batch_size: int = 256,
    seed: int = 0,
) -> dict[str, float]:
    """Trains a decoder on frozen `train_tokens [N, P, D]` to write the labels' names.

    Args:
      train_tokens, test_tokens: encoder patch tokens (float32 or bfloat16).
      train_labels, test_labels: int[N] labels, or int[N, K] label lists (-1 = none).
      label_names: the task's class names (the text targets).
      width, depth, num_heads, mlp_dim: the decoder's size (mlp_dim default 4 width).
      learning_rate, weight_decay, steps, warmup_steps, batch_size: AdamW, warmup + cosine.
      seed: initialisation and mini-batch order.

    Returns:
      {"accuracy", "token_accuracy"} on the test set, and "train_accuracy" (exact match on up
      to 2,000 train examples).
    """
    vocab = Vocabulary(label_names)
    train_targets, test_targets = vocab.encode(train_labels), vocab.encode(test_labels)
    length = train_targets.shape[1]
    decoder = TextDecoder(
        len(vocab),
        length,
        train_tokens.shape[-1],
        width=width,
        depth=depth,
        num_heads=num_heads,
        mlp_dim=mlp_dim or 4 * width,
        rngs=nnx.Rngs(seed),
    )
    graphdef, params = to_plain_params(decoder)

    def loss_fn(head, memory, targets):
        logits = head(memory, teacher_inputs(targets))
        losses = optax.softmax_cross_entropy_with_integer_labels(logits, targets)
        real = (targets != PAD).astype(jnp.float32)
        return jnp.sum(losses * real) / jnp.sum(real)

    params = train_head(
        graphdef,
        params,
        loss_fn,
        train_tokens,
        train_targets,
        steps=steps,
        batch_size=batch_size,
        learning_rate=learning_rate,
        weight_decay=weight_decay,
        warmup_steps=warmup_steps,
        seed=seed,
    )
    seen = train_subset(train_tokens.shape[0], seed)
    train_metrics = sequence_metrics(
        decode(graphdef, params, train_tokens[seen], length), train_targets[seen]
    )
    test_metrics = sequence_metrics(decode(graphdef, params, test_tokens, length), test_targets)
    return {**test_metrics, "train_accuracy": train_metrics["accuracy"]}
