"""Tests for avrl_jax.models: ViT, ValueDecoder, heads and plain-dict parameters (tiny sizes)."""

from __future__ import annotations

import contextlib
import io

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from flax import nnx
from jax.ad_checkpoint import print_saved_residuals

from avrl_jax.models import (
    VIT_SIZES,
    ClassEmbedding,
    ProjectionHead,
    Temperature,
    ValueDecoder,
    ViT,
    from_plain_params,
    l2_normalize,
    to_plain_params,
    vit_config,
)
from avrl_jax.models.heads import clamp_temperatures, use_batch_statistics
from avrl_jax.models.params import batch_stats, with_batch_stats
from avrl_jax.models.vit import attention, self_attention

IMAGE, PATCH = 16, 8  # 4 patches
VOCAB, T = 11, 4


def tiny_vit(pool: str = "cls", **kw) -> ViT:
    return ViT(
        variant="mu", patch_size=PATCH, image_size=IMAGE, depth=1, pool=pool, rngs=nnx.Rngs(0), **kw
    )


def tiny_decoder(use_action_tokens: bool = True, depth: int = 2, seed: int = 1) -> ValueDecoder:
    return ValueDecoder(
        vocab_size=VOCAB,
        tokens_per_action=T,
        width=32,
        depth=depth,
        num_heads=2,
        mlp_dim=64,
        input_dim=64,
        output_dim=16,
        use_action_tokens=use_action_tokens,
        rngs=nnx.Rngs(seed),
    )


# Jitted applies: one XLA compile per shape is much faster on CPU than eager op-by-op dispatch.
apply = nnx.jit(lambda module, *args: module(*args))


@pytest.fixture(scope="module")
def decoder() -> ValueDecoder:
    return tiny_decoder()


@pytest.fixture(scope="module", params=["cls", "gap"])
def vit(request) -> ViT:
    return tiny_vit(request.param)


def images(n: int, seed: int = 0) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), (n, IMAGE, IMAGE, 3))


def tokens(n: int, q: int, seed: int = 0) -> jax.Array:
    return jax.random.randint(jax.random.key(seed), (n, q, T), 0, VOCAB, dtype=jnp.int32)


def patch_tokens(n: int, seed: int = 0) -> jax.Array:
    return jax.random.normal(jax.random.key(seed), (n, 5, 64))


# ----------------------------------------------------------------------------- ViT


def test_vit_output_shapes_and_pooling(vit):
    pool = vit.pool
    patches, pooled = apply(vit, images(3))
    assert patches.shape == (3, 4, 64) and pooled.shape == (3, 64)
    assert patches.dtype == jnp.float32 and pooled.dtype == jnp.float32
    if pool == "gap":
        np.testing.assert_allclose(pooled, patches.mean(axis=1), rtol=1e-6, atol=1e-6)
    else:
        # The CLS output is its own token, not a function of the patch outputs' mean.
        assert not np.allclose(pooled, patches.mean(axis=1), atol=1e-3)
    _, params = to_plain_params(vit)
    assert ("cls_token" in params) == (pool == "cls")


def test_vit_sincos_posemb_has_no_position_parameters():
    model = tiny_vit("gap", posemb="sincos2d")
    patches, _ = apply(model, images(2))
    assert patches.shape == (2, 4, 64)
    assert "pos_embed" not in to_plain_params(model)[1]
    # Fixed embeddings still make the output position-dependent: identical patches differ.
    flat = jnp.ones((1, IMAGE, IMAGE, 3))
    patches, _ = apply(model, flat)
    assert not np.allclose(patches[0, 0], patches[0, 1], atol=1e-4)


def test_vit_depth_override_and_sizes():
    model = ViT(variant="mu", patch_size=PATCH, image_size=IMAGE, depth=3, rngs=nnx.Rngs(0))
    assert model.depth == 3 and len(model.blocks) == 3 and model.width == 64
    assert VIT_SIZES["S"] == {"width": 384, "depth": 12, "num_heads": 6, "mlp_dim": 1536}
    assert vit_config("B", depth=6) == {"width": 768, "depth": 6, "num_heads": 12, "mlp_dim": 3072}
    with pytest.raises(ValueError, match="valid fields"):
        vit_config("S", heads=3)


def test_vit_unknown_variant_names_field_and_choices():
    with pytest.raises(ValueError) as err:
        ViT(variant="XL", patch_size=8, image_size=16, rngs=nnx.Rngs(0))
    message = str(err.value)
    assert "model.variant" in message and "'XL'" in message
    for name in VIT_SIZES:
        assert name in message


def test_vit_rejects_image_size_not_divisible_by_patch():
    with pytest.raises(ValueError, match="not divisible by patch_size=8"):
        ViT(variant="mu", patch_size=8, image_size=20, rngs=nnx.Rngs(0))


def test_vit_rejects_bad_pool_and_wrong_input_shape(vit):
    with pytest.raises(ValueError, match="model.pool"):
        ViT(variant="mu", patch_size=8, image_size=16, pool="max", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match=r"\[N, 16, 16, 3\]"):
        apply(vit, jnp.zeros((1, 20, 20, 3)))  # not a multiple of the patch size
    with pytest.raises(ValueError, match=r"\[N, 16, 16, 3\]"):
        apply(vit, jnp.zeros((1, 16, 24, 3)))  # not square


def test_vit_batch_independence(vit):
    batch = images(3)
    alone_patches, alone_pooled = apply(vit, batch[1:2])
    patches, pooled = apply(vit, batch)
    np.testing.assert_allclose(patches[1:2], alone_patches, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(pooled[1:2], alone_pooled, rtol=1e-5, atol=1e-5)
    assert not np.allclose(pooled[0], pooled[1], atol=1e-3)


def loss_and_grads(model: ViT, x: jax.Array):
    """A scalar of the encoder's outputs and its gradients, jitted, with its forward jaxpr."""
    graphdef, params = to_plain_params(model)

    def loss(p):
        patches, pooled = from_plain_params(graphdef, p)(x)
        return jnp.sum(pooled**2) + jnp.mean(patches)

    value, grads = jax.jit(jax.value_and_grad(loss))(params)
    return value, grads, str(jax.make_jaxpr(loss)(params))


def saved_activations(model: ViT, x: jax.Array) -> list[str]:
    """What the backward pass of the encoder keeps from its forward pass, parameters aside."""
    graphdef, params = to_plain_params(model)

    def loss(p, x):
        return jnp.sum(from_plain_params(graphdef, p)(x)[1] ** 2)

    printed = io.StringIO()
    with contextlib.redirect_stdout(printed):
        print_saved_residuals(loss, params, x)
    lines = printed.getvalue().splitlines()
    return [line for line in lines if "from the argument" not in line and "literal" not in line]


def test_vit_remat_gives_the_same_values_and_gradients_and_keeps_only_block_inputs():
    def model(remat):
        return ViT(variant="mu", patch_size=PATCH, image_size=IMAGE, depth=2, remat=remat,
                   rngs=nnx.Rngs(0))  # fmt: skip

    x = images(3)
    value, grads, _ = loss_and_grads(model(False), x)
    value_remat, grads_remat, _ = loss_and_grads(model(True), x)
    np.testing.assert_allclose(value_remat, value, rtol=1e-6)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-5, atol=1e-7), grads_remat,
                 grads)  # fmt: skip
    # Without remat the attention and MLP activations of every block are kept; with it only
    # each block's input (and the final LayerNorm's statistics) are, the rest is recomputed.
    kept, kept_remat = saved_activations(model(False), x), saved_activations(model(True), x)
    inside_blocks = ("attention.py", "linear.py")
    assert any(name in line for line in kept for name in inside_blocks), kept
    assert not any(name in line for line in kept_remat for name in inside_blocks), kept_remat
    assert len(kept_remat) < len(kept) / 3, (kept_remat, kept)


def test_vit_bfloat16_computes_in_bfloat16_and_keeps_float32_params_and_outputs():
    x = images(3)
    f32, bf16 = tiny_vit(), tiny_vit(dtype="bfloat16")
    jax.tree.map(np.testing.assert_array_equal, to_plain_params(bf16)[1], to_plain_params(f32)[1])
    assert {p.dtype for p in jax.tree.leaves(to_plain_params(bf16)[1])} == {np.dtype("float32")}
    value, _, jaxpr = loss_and_grads(f32, x)
    value_bf16, grads_bf16, jaxpr_bf16 = loss_and_grads(bf16, x)
    assert "bf16[3,5,64]" in jaxpr_bf16 and "bf16" not in jaxpr
    assert {g.dtype for g in jax.tree.leaves(grads_bf16)} == {np.dtype("float32")}
    (_, pooled), (patches_bf16, pooled_bf16) = apply(f32, x), apply(bf16, x)
    assert patches_bf16.dtype == pooled_bf16.dtype == jnp.float32
    np.testing.assert_allclose(pooled_bf16, pooled, atol=0.1)  # bfloat16 keeps ~3 digits
    np.testing.assert_allclose(value_bf16, value, rtol=0.05)
    with pytest.raises(ValueError, match="model.encoder.dtype='float16'.*bfloat16"):
        tiny_vit(dtype="float16")


# ----------------------------------------------------------------------------- ValueDecoder


def test_decoder_output_shape(decoder):
    out = apply(decoder, patch_tokens(2), tokens(2, 3))
    assert out.shape == (2, 3, 16) and out.dtype == jnp.float32
    assert np.all(np.isfinite(out))


def test_decoder_rejects_wrong_token_shape(decoder):
    with pytest.raises(ValueError, match=r"\[N, Q, 4\]"):
        apply(decoder, patch_tokens(2), tokens(2, 3)[..., :3])


def test_decoder_queries_are_independent(decoder):
    memory, actions = patch_tokens(2), tokens(2, 5)
    out = apply(decoder, memory, actions)
    # Permuting the queries permutes the outputs identically.
    perm = jnp.array([3, 0, 4, 2, 1])
    np.testing.assert_allclose(apply(decoder, memory, actions[:, perm]), out[:, perm], atol=1e-5)
    # Each action evaluated alone gives the value it gets inside the batch of queries.
    for q in range(actions.shape[1]):
        alone = apply(decoder, memory, actions[:, q : q + 1])
        np.testing.assert_allclose(alone[:, 0], out[:, q], atol=1e-5)
    # Changing one action's tokens changes that output only.
    changed = actions.at[0, 2].set((actions[0, 2] + 1) % VOCAB)
    new = apply(decoder, memory, changed)
    assert not np.allclose(new[0, 2], out[0, 2], atol=1e-4)
    keep = np.ones((2, 5), bool)
    keep[0, 2] = False
    np.testing.assert_allclose(new[keep], out[keep], atol=1e-5)


def test_decoder_token_positions_matter(decoder):
    # (a, b, c, d) and (b, a, c, d) are different moves: the query is not a bag of tokens.
    action = jnp.array([[[1, 2, 3, 4], [2, 1, 3, 4]]], jnp.int32)
    out = apply(decoder, patch_tokens(1), action)
    assert not np.allclose(out[0, 0], out[0, 1], atol=1e-4)


def test_decoder_out_of_range_token_gives_nan_for_that_action_only(decoder):
    actions = tokens(1, 3).at[0, 1, 0].set(VOCAB)
    out = apply(decoder, patch_tokens(1), actions)
    assert np.all(np.isnan(out[0, 1]))
    assert np.all(np.isfinite(out[0, 0])) and np.all(np.isfinite(out[0, 2]))


def test_decoder_without_action_tokens_gives_equal_outputs_per_view():
    decoder = tiny_decoder(use_action_tokens=False)
    out = apply(decoder, patch_tokens(2), tokens(2, 4))
    np.testing.assert_allclose(out, jnp.broadcast_to(out[:, :1], out.shape), atol=1e-6)
    assert not np.allclose(out[0, 0], out[1, 0], atol=1e-4)
    assert "token_embed" not in to_plain_params(decoder)[1]


def test_decoder_depends_on_patch_tokens(decoder):
    actions = tokens(1, 3)
    a = apply(decoder, patch_tokens(1, seed=0), actions)
    b = apply(decoder, patch_tokens(1, seed=1), actions)
    assert not np.allclose(a, b, atol=1e-4)


# ----------------------------------------------------------------------------- heads


@pytest.mark.parametrize("num_layers", [1, 2, 3])
def test_projection_head_unit_norm(num_layers):
    head = ProjectionHead(64, 32, 8, num_layers=num_layers, rngs=nnx.Rngs(0))
    out = head(jax.random.normal(jax.random.key(0), (5, 64)))
    assert out.shape == (5, 8)
    np.testing.assert_allclose(jnp.linalg.norm(out, axis=-1), 1.0, rtol=1e-5)
    assert len(head.layers) == num_layers


def test_projection_head_batch_norm_uses_the_batch_in_training_and_running_stats_after():
    head = ProjectionHead(6, 16, 4, batch_norm=True, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(0), (2, 8, 6)) * 3.0 + 1.5
    shift = jnp.arange(6.0) * 10.0
    # Built: the running statistics (mean 0, var 1 at init): each crop embeds alone as in a
    # batch, and a shift shared by the batch changes the embeddings.
    np.testing.assert_allclose(head(x[:1, :1]), head(x)[:1, :1], atol=1e-6)
    assert np.abs(head(x + shift) - head(x)).max() > 1e-2
    # Training: standardised over every leading axis, so the shared shift is gone ...
    use_batch_statistics(head)
    np.testing.assert_allclose(head(x + shift), head(x), atol=1e-4)
    # ... and the running statistics moved towards the batch's (momentum 0.9 per call).
    head = use_batch_statistics(ProjectionHead(6, 16, 4, batch_norm=True, rngs=nnx.Rngs(0)))
    head(x)
    stats = batch_stats(head)["norm"]
    np.testing.assert_allclose(stats["mean"], 0.1 * x.reshape(-1, 6).mean(0), rtol=1e-5)
    np.testing.assert_allclose(stats["var"], 0.9 + 0.1 * x.reshape(-1, 6).var(0), rtol=1e-5)
    # Without batch_norm the head holds no statistics.
    assert batch_stats(ProjectionHead(6, 16, 4, rngs=nnx.Rngs(0))) == {}


def test_plain_params_carry_batch_stats_and_with_batch_stats_replaces_only_them():
    head = ProjectionHead(6, 16, 4, batch_norm=True, rngs=nnx.Rngs(0))
    graphdef, params = to_plain_params(head)
    assert set(params["norm"]) == {"mean", "var"}
    new = {"norm": {"mean": jnp.full(6, 2.0), "var": jnp.full(6, 4.0)}}
    merged = with_batch_stats(params, new)
    np.testing.assert_array_equal(merged["norm"]["mean"], 2.0)
    assert merged["layers"] is params["layers"]
    rebuilt = from_plain_params(graphdef, merged)  # (x - 2) / 2 at the input
    x = jax.random.normal(jax.random.key(1), (3, 6))
    original = from_plain_params(graphdef, params)  # mean 0, var 1: the identity
    np.testing.assert_allclose(rebuilt(x), original((x - 2.0) / 2.0), atol=2e-5)  # eps 1e-5
    with pytest.raises(ValueError, match="no parameter 'nrm'"):
        with_batch_stats(params, {"nrm": {"mean": jnp.zeros(6)}})


def test_class_embedding_unit_rows():
    rows = ClassEmbedding(7, 16, rngs=nnx.Rngs(0))()
    assert rows.shape == (7, 16)
    np.testing.assert_allclose(jnp.linalg.norm(rows, axis=-1), 1.0, rtol=1e-5)


def test_l2_normalize_is_finite_at_zero():
    grad = jax.grad(lambda x: l2_normalize(x).sum())(jnp.zeros(4))
    assert np.all(np.isfinite(grad))


def test_temperature_is_clamped_on_the_parameter_and_can_move_back():
    np.testing.assert_allclose(Temperature(10.0)(), 10.0, rtol=1e-6)
    with pytest.raises(ValueError, match="init"):
        Temperature(200.0)
    params = {"t": {"log_t": jnp.log(1e4)}, "w": jnp.asarray(1e4)}
    clamped = clamp_temperatures(params)
    np.testing.assert_allclose(jnp.exp(clamped["t"]["log_t"]), 100.0, rtol=1e-6)
    assert float(clamped["w"]) == 1e4  # only temperatures are clamped
    np.testing.assert_allclose(
        jnp.exp(clamp_temperatures({"log_t": jnp.log(1e-5)})["log_t"]), 0.01, rtol=1e-6
    )
    # At the bound the output still has a gradient, so the loss can pull the scale back down
    # (an output clamp min(exp(log_t), 100) would give exactly zero here).
    temperature = Temperature(100.0)
    graphdef, state = nnx.split(temperature)
    grad = jax.grad(lambda s: nnx.merge(graphdef, s)())(state)
    assert float(grad["log_t"][...]) > 0.0


# ----------------------------------------------------------------------------- plain params


class EncoderAndHead(nnx.Module):
    def __init__(self, rngs: nnx.Rngs):
        self.encoder = ViT(variant="mu", patch_size=PATCH, image_size=IMAGE, depth=1, rngs=rngs)
        self.value_head = tiny_decoder()

    def __call__(self, x: jax.Array, actions: jax.Array) -> jax.Array:
        patches, _ = self.encoder(x)
        return self.value_head(patches, actions)


def test_plain_params_round_trip_eager_and_jit():
    model = EncoderAndHead(nnx.Rngs(0))
    x, actions = images(2), tokens(2, 3)
    expected = apply(model, x, actions)
    graphdef, params = to_plain_params(model)

    leaves_with_paths = jax.tree_util.tree_leaves_with_path(params)
    assert all(isinstance(leaf, jax.Array) for _, leaf in leaves_with_paths)
    assert all(isinstance(k.key, str) for path, _ in leaves_with_paths for k in path)
    assert isinstance(params["encoder"]["blocks"]["0"], dict)

    np.testing.assert_allclose(
        from_plain_params(graphdef, params)(x, actions), expected, rtol=1e-5, atol=1e-5
    )

    @jax.jit
    def apply_plain(params, x, actions):
        return from_plain_params(graphdef, params)(x, actions)

    np.testing.assert_allclose(apply_plain(params, x, actions), expected, rtol=1e-5, atol=1e-5)


def test_plain_params_keep_block_order_beyond_ten_blocks():
    # String keys sort "10" < "2"; the conversion must still put every block back in place.
    decoder = tiny_decoder(depth=12)
    memory, actions = patch_tokens(1), tokens(1, 2)
    graphdef, params = to_plain_params(decoder)
    # Make the blocks distinguishable, so a permutation would change the output.
    params["blocks"] = {
        k: jax.tree.map(lambda v, i=int(k): v + 0.01 * i, block)
        for k, block in params["blocks"].items()
    }
    # As Orbax restores it (string keys) and as nnx.to_pure_dict gives it (int keys).
    int_keyed = dict(params, blocks={int(k): v for k, v in params["blocks"].items()})
    # The reference is loaded by nnx's own path-matching update, not by our conversion.
    state = nnx.state(decoder)
    nnx.replace_by_pure_dict(state, int_keyed)
    nnx.update(decoder, state)
    expected = apply(decoder, memory, actions)
    for tree in (params, int_keyed):
        rebuilt = from_plain_params(graphdef, tree)
        np.testing.assert_allclose(apply(rebuilt, memory, actions), expected, atol=1e-6)
        np.testing.assert_allclose(rebuilt.blocks[10].norm1.bias[...], 0.1)


def test_from_plain_params_rejects_other_architectures(decoder):
    graphdef, params = to_plain_params(decoder)
    missing = {k: v for k, v in params.items() if k != "base_query"}
    with pytest.raises(ValueError, match="parameter arrays"):
        from_plain_params(graphdef, missing)
    renamed = dict(missing, query=params["base_query"])
    with pytest.raises(ValueError, match="query"):
        from_plain_params(graphdef, renamed)


def test_to_plain_params_rejects_non_parameter_state():
    class WithRngs(nnx.Module):
        def __init__(self):
            self.linear = nnx.Linear(2, 2, rngs=nnx.Rngs(0))
            self.rngs = nnx.Rngs(0)

    with pytest.raises(ValueError, match="non-parameter state"):
        to_plain_params(WithRngs())


def test_gradients_reach_the_token_embedding():
    model = EncoderAndHead(nnx.Rngs(0))
    graphdef, params = to_plain_params(model)
    x, actions = images(2), tokens(2, 3)

    def loss(params):
        return jnp.sum(from_plain_params(graphdef, params)(x, actions) ** 2)

    grads = jax.jit(jax.grad(loss))(params)
    assert jax.tree.structure(grads) == jax.tree.structure(params)
    table = grads["value_head"]["token_embed"]
    assert table.shape == (T, VOCAB, 32)
    assert np.all(np.isfinite(table)) and np.any(table != 0)
    assert all(np.all(np.isfinite(g)) for g in jax.tree.leaves(grads))
    assert np.any(grads["encoder"]["patch_embed"]["kernel"] != 0)


def test_vit_conv_stem_keeps_the_token_grid_and_sees_local_structure():
    """stem="conv": log2(p) stride-2 3x3 convs + a 1x1; the same token grid as patchify, at
    the training size and at another multiple of the patch (local crops)."""
    model = ViT(variant="mu", patch_size=8, image_size=32, stem="conv", rngs=nnx.Rngs(0))
    assert not hasattr(model, "patch_embed") and len(model.conv_stem.convs) == 3
    widths = [conv.out_features for conv in model.conv_stem.convs]
    assert widths == [16, 32, 64]
    x = jax.random.normal(jax.random.key(0), (2, 32, 32, 3))
    tokens, pooled = model(x)
    assert tokens.shape == (2, 16, 64) and pooled.shape == (2, 64)
    assert model(x[:, :16, :16])[0].shape == (2, 4, 64)
    # Unlike patchify + linear, the 3x3 convs cross patch borders: the stem's token (0, 0)
    # (before any attention) sees a pixel of patch (0, 1); token (0, 2) does not.
    moved = x.at[:, 3, 9].add(5.0)  # row 3, column 9: inside patch (0, 1)
    delta = jnp.abs(model.conv_stem(moved) - model.conv_stem(x)).sum(-1)
    assert delta[0, 0] > 1e-4 and delta[0, 1] > 1e-4 and delta[0, 2] == 0
    for patch, message in [(6, "power-of-two"), (1, "power-of-two")]:
        with pytest.raises(ValueError, match=message):
            ViT(variant="mu", patch_size=patch, image_size=12, stem="conv", rngs=nnx.Rngs(0))
    with pytest.raises(ValueError, match="model.encoder.stem='pixels'"):
        ViT(variant="mu", patch_size=8, image_size=32, stem="pixels", rngs=nnx.Rngs(0))


def test_head_major_self_attention_equals_the_nnx_layer_in_values_and_gradients():
    layer = attention(64, 4, rngs=nnx.Rngs(0))
    x = jax.random.normal(jax.random.key(1), (3, 5, 64))
    readout = jax.random.normal(jax.random.key(2), (3, 5, 64))
    graphdef, params = nnx.split(layer)

    def loss(p, x, ours):
        module = nnx.merge(graphdef, p)
        return jnp.sum(jnp.tanh(self_attention(module, x) if ours else module(x)) * readout)

    grad = jax.jit(jax.value_and_grad(loss, argnums=(0, 1)), static_argnums=2)
    (value, (d_params, d_x)), (value_ours, (d_params_ours, d_x_ours)) = (
        grad(params, x, False),
        grad(params, x, True),
    )
    np.testing.assert_allclose(value_ours, value, rtol=1e-5)
    np.testing.assert_allclose(d_x_ours, d_x, rtol=1e-4, atol=1e-5)
    jax.tree.map(lambda a, b: np.testing.assert_allclose(a, b, rtol=1e-4, atol=1e-5),
                 d_params_ours, d_params)  # fmt: skip
