"""AdamW with linear warmup, cosine decay and global-norm clipping (DESIGN §1.3)."""

import jax
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
            weight_decay=opt.weight_decay,
            mask=decay_mask,
        )
    )
    return optax.chain(*chain)
