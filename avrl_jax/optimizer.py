"""AdamW with linear warmup, cosine decay and optional global-norm clipping (docs/design.md
§1.3), and a weight decay that is constant or follows a cosine schedule (DINO's 0.04 -> 0.4)."""

import jax
import jax.numpy as jnp
import optax


def learning_rate_schedule(config) -> optax.Schedule:
    """Linear warmup from 0 to `optimizer.learning_rate`, then cosine decay to `end_fraction`."""
    opt = config.optimizer
    return optax.warmup_cosine_decay_schedule(
        init_value=0.0,
        peak_value=opt.learning_rate,
        warmup_steps=opt.warmup_steps,
        decay_steps=max(config.total_steps, opt.warmup_steps + 1),
        end_value=opt.learning_rate * opt.end_fraction,
    )


def weight_decay_schedule(config) -> float | optax.Schedule:
    """`optimizer.weight_decay`, or a cosine from it to `optimizer.final_weight_decay`."""
    opt = config.optimizer
    final = opt.get("final_weight_decay")
    if final is None:
        return opt.weight_decay
    start = opt.weight_decay
    steps = max(config.total_steps - 1, 1)
    return lambda step: (
        final + (start - final) * 0.5 * (1.0 + jnp.cos(jnp.pi * jnp.clip(step / steps, 0.0, 1.0)))
    )


def decay_mask(params):
    """Weight decay on matrices only: biases, norms, temperatures and 1-D tables are exempt."""
    return jax.tree.map(lambda p: p.ndim >= 2, params)


def make_optimizer(config) -> optax.GradientTransformation:
    opt = config.optimizer
    chain = []
    if opt.grad_clip_norm:
        chain.append(optax.clip_by_global_norm(opt.grad_clip_norm))
    chain.append(
        optax.adamw(
            learning_rate=learning_rate_schedule(config),
            b1=opt.b1,
            b2=opt.b2,
            weight_decay=weight_decay_schedule(config),
            mask=decay_mask,
        )
    )
    return optax.chain(*chain)
