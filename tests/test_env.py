"""Tests of the environment: boxes, actions, tokens, rendering, augmentation and episodes."""

import functools

import jax
import jax.numpy as jnp
import numpy as np
import pytest

from avrl_jax import env

KEY = jax.random.key(0)

# Jitted once per signature: eager op-by-op dispatch is what makes small JAX tests slow.
render = jax.jit(env.render, static_argnums=(2, 3))
augment = jax.jit(env.flip_and_jitter)
color_jitter = jax.jit(env.strength_jitter)


def _random_box_pairs(key: jax.Array, count: int) -> tuple[jax.Array, jax.Array]:
    """Pairs of boxes as the episodes sample them: f32[count, 4] each."""
    boxes = env.sample_views(key, 2 * count)
    return boxes[:count], boxes[count:]


# ----------------------------------------------------------------------------- boxes, actions


def test_apply_action_inverts_relative_action():
    b1, b2 = _random_box_pairs(KEY, 500)
    recovered = env.apply_action(b1, env.relative_action(b1, b2))
    np.testing.assert_allclose(recovered, b2, atol=1e-5)


def test_relative_action_known_values():
    b1 = jnp.array([0.2, 0.4, 0.6, 0.6])  # h = 0.4, w = 0.2
    b2 = jnp.array([0.0, 0.5, 0.2, 0.9])  # centre (0.1, 0.7), h = 0.2, w = 0.4
    action = env.relative_action(b1, b2)
    expected = [(0.1 - 0.2) / 0.4, (0.7 - 0.4) / 0.2, np.log(0.5), np.log(2.0)]
    np.testing.assert_allclose(action, expected, rtol=1e-5, atol=1e-6)
    # An action is invariant to moving and scaling both boxes together.
    moved = env.relative_action(b1 * 0.5 + 0.1, b2 * 0.5 + 0.1)
    np.testing.assert_allclose(moved, expected, rtol=1e-5, atol=1e-5)


def test_token_round_trip_within_a_bin():
    bins = env.ActionBins()
    b1, b2 = _random_box_pairs(jax.random.key(1), 2000)
    action = env.relative_action(b1, b2)
    lo = np.array([bins.center_range[0]] * 2 + [bins.log_size_range[0]] * 2)
    hi = np.array([bins.center_range[1]] * 2 + [bins.log_size_range[1]] * 2)
    inside = np.all((np.asarray(action) >= lo) & (np.asarray(action) <= hi), axis=-1)
    assert inside.sum() > 1500  # most sampled pairs are in range: the test has teeth

    tokens = env.tokenize(action, bins)
    assert tokens.dtype == jnp.int32 and tokens.shape == (2000, 4)
    recovered_action = env.detokenize(tokens, bins)
    error = np.abs(np.asarray(recovered_action - action))[inside]
    # Bin centres: within half a bin (one bin is what the method promises; half is exact).
    assert np.all(error <= env.bin_widths(bins) / 2 + 1e-5)

    # The recovered box is the box of the recovered action, and close to b2 on the scale of b1.
    recovered_box = env.apply_action(b1, recovered_action)
    np.testing.assert_allclose(
        env.relative_action(b1, recovered_box), recovered_action, rtol=1e-4, atol=1e-4
    )


def test_tokens_ranges_clipping_and_vocab():
    bins = env.ActionBins(num_bins=4, center_range=(0.0, 1.0), log_size_range=(-2.0, 2.0))
    action = jnp.array(
        [
            [0.0, 0.3, -2.0, 1.99],  # edges and interior
            [-5.0, 9.0, -9.0, 9.0],  # far outside: edge bins
            [1.0, 0.999, 2.0, 0.0],  # exactly at hi -> last bin
        ]
    )
    tokens = env.tokenize(action, bins)
    expected = np.array([[0, 1, 0, 3], [0, 3, 0, 3], [3, 3, 3, 2]]) + np.array([0, 4, 8, 12])
    np.testing.assert_array_equal(tokens, expected)
    np.testing.assert_allclose(env.detokenize(tokens[0], bins), [0.125, 0.375, -1.5, 1.5])
    assert env.vocab_size(bins) == 16
    assert env.vocab_size(bins, with_flip=True) == 18
    np.testing.assert_array_equal(env.flip_token(jnp.array([False, True]), bins), [16, 17])
    # Hashable and equal when built from a config's lists: usable as a static jit argument.
    from_config = env.ActionBins(num_bins=4, center_range=[0, 1], log_size_range=[-2, 2])
    assert from_config == bins and hash(from_config) == hash(bins)


def test_sample_views_in_image_and_area_in_scale():
    boxes = np.asarray(env.sample_views(KEY, 4000))
    assert boxes.shape == (4000, 4) and boxes.dtype == np.float32
    assert np.all(boxes >= 0.0) and np.all(boxes <= 1.0 + 1e-6)
    h, w = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert np.all(h > 0) and np.all(w > 0)
    area = h * w
    # Clipping a side to the image only happens for areas > 3/4, where the result stays > 3/4.
    assert np.all(area >= 0.05 - 1e-6) and np.all(area <= 1.0 + 1e-6)
    assert area.min() < 0.06 and area.max() > 0.9  # the whole range is used

    # Without clipping, area and ratio are exactly in range and the area is uniform.
    boxes = np.asarray(env.sample_views(jax.random.key(3), 4000, scale=(0.1, 0.3)))
    h, w = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    assert np.all((h * w >= 0.1 - 1e-6) & (h * w <= 0.3 + 1e-6))
    assert np.all((w / h >= 3 / 4 - 1e-4) & (w / h <= 4 / 3 + 1e-4))
    assert abs(np.mean(h * w) - 0.2) < 0.01

    # The ratio is in pixels: on a 2:1 (wide) canvas a square-pixel box has w_norm = h_norm / 2.
    boxes = np.asarray(env.sample_views(KEY, 100, scale=(0.1, 0.2), ratio=(1, 1), image_aspect=2))
    h, w = boxes[:, 2] - boxes[:, 0], boxes[:, 3] - boxes[:, 1]
    np.testing.assert_allclose(w * 2, h, rtol=1e-5)


def test_sample_views_keys():
    a = env.sample_views(jax.random.key(1), 4)
    b = env.sample_views(jax.random.key(2), 4)
    np.testing.assert_array_equal(a, env.sample_views(jax.random.key(1), 4))
    assert not np.allclose(a, b)


def test_pairwise_actions_and_other_view_index():
    n = 4
    index = env.other_view_index(n)
    assert index.shape == (n, n - 1) and index.dtype == np.int32
    expected_index = [[j for j in range(n) if j != i] for i in range(n)]
    np.testing.assert_array_equal(index, expected_index)

    boxes = env.sample_views(KEY, n)
    actions = env.pairwise_actions(boxes)
    assert actions.shape == (n, n - 1, 4)
    for i in range(n):
        for s, j in enumerate(expected_index[i]):
            np.testing.assert_allclose(
                actions[i, s], env.relative_action(boxes[i], boxes[j]), rtol=1e-5, atol=1e-6
            )


# ----------------------------------------------------------------------------- rendering


def _horizontal_gradient(height: int, width: int) -> np.ndarray:
    row = np.linspace(0, 255, width).round().astype(np.uint8)
    return np.broadcast_to(row[None, :, None], (height, width, 3)).copy()


@pytest.mark.parametrize("antialias", [True, False])
@pytest.mark.parametrize("out_size", [8, 40])  # downscale and upscale
def test_render_full_box_matches_jax_image_resize(antialias, out_size):
    rng = np.random.RandomState(0)
    images = [_horizontal_gradient(24, 32), rng.randint(0, 256, (24, 32, 3)).astype(np.uint8)]
    for image in images:
        view = render(image, jnp.array([0.0, 0.0, 1.0, 1.0]), out_size, antialias)
        expected = jax.image.resize(
            image.astype(np.float32) / 255, (out_size, out_size, 3), "linear", antialias=antialias
        )
        np.testing.assert_allclose(view, expected, atol=1e-5)


def test_render_left_half_by_hand():
    image = np.arange(8 * 8 * 3, dtype=np.uint8).reshape(8, 8, 3)
    view = render(image, jnp.array([0.0, 0.0, 1.0, 0.5]), 4, antialias=False)
    # Rows: t = (o + 0.5) / 4, pixel coordinate 8 t - 0.5 = 2 o + 0.5: the mean of rows 2o, 2o+1.
    # Columns: t = (o + 0.5) / 8, pixel coordinate o: exactly column o.
    pixels = image.astype(np.float64) / 255
    expected = 0.5 * (pixels[0::2, :4] + pixels[1::2, :4])
    np.testing.assert_allclose(view, expected, atol=1e-6)


def test_render_constant_and_outside_clamps_to_edge():
    image = np.full((10, 14, 3), (200, 100, 50), np.uint8)
    for box in ([0.0, 0.0, 1.0, 1.0], [0.3, 0.1, 0.4, 0.9], [-0.5, -1.0, 2.0, 1.5]):
        view = render(image, jnp.array(box), 6)
        np.testing.assert_allclose(
            view, np.broadcast_to([200 / 255, 100 / 255, 50 / 255], view.shape), atol=1e-6
        )

    # Beyond the right edge the last column repeats.
    gradient = _horizontal_gradient(8, 8)
    view = render(gradient, jnp.array([0.0, 1.0, 1.0, 2.0]), 4)
    np.testing.assert_allclose(view, 1.0, atol=1e-6)


def test_render_coloured_square():
    image = np.zeros((64, 64, 3), np.uint8)
    image[16:40, 24:48] = (255, 128, 0)
    box = jnp.array([16 / 64, 24 / 64, 40 / 64, 48 / 64])
    view = np.asarray(render(image, box, 16))
    colour = np.array([1.0, 128 / 255, 0.0])
    close = np.all(np.abs(view - colour) < 0.02, axis=-1)
    assert close.mean() > 0.75
    # The interior, away from the antialiasing border, is exactly the colour.
    np.testing.assert_allclose(view[2:-2, 2:-2], np.broadcast_to(colour, (12, 12, 3)), atol=1e-5)


def test_render_antialias_averages_fine_detail():
    # A 1-pixel checkerboard downscaled 8x: with antialias it averages to grey.
    checker = ((np.indices((64, 64)).sum(0) % 2) * 255).astype(np.uint8)[..., None].repeat(3, -1)
    view = render(checker, jnp.array([0.0, 0.0, 1.0, 1.0]), 8, antialias=True)
    np.testing.assert_allclose(view, 0.5, atol=0.02)


# ----------------------------------------------------------------------------- augmentation


def test_color_jitter_zero_is_identity_and_flip_twice_is_identity():
    view = jax.random.uniform(KEY, (8, 6, 3))
    np.testing.assert_array_equal(color_jitter(jax.random.key(5), view, 0.0), view)
    np.testing.assert_array_equal(env.flip_left_right(env.flip_left_right(view)), view)
    np.testing.assert_array_equal(env.flip_left_right(view)[:, 0], view[:, -1])

    jittered = color_jitter(jax.random.key(5), view, 1.0)
    assert jittered.shape == view.shape
    assert jnp.all((jittered >= 0) & (jittered <= 1))
    assert not np.allclose(jittered, view)


def test_augment_flip_probability():
    view = jax.random.uniform(KEY, (4, 4, 3))
    keys = jax.random.split(jax.random.key(7), 256)
    views, flipped = jax.vmap(augment, in_axes=(0, None, None, None))(keys, view, 0.5, 0.0)
    assert 0.3 < float(flipped.mean()) < 0.7
    view = np.asarray(view)
    for v, f in zip(np.asarray(views[:8]), np.asarray(flipped[:8]), strict=True):
        np.testing.assert_array_equal(v, view[:, ::-1] if f else view)
    _, never = jax.vmap(augment, in_axes=(0, None, None, None))(keys, view, 0.0, 0.0)
    assert not never.any()


def test_normalize_round_trip():
    view = jnp.array([0.0, 0.5, 1.0])
    np.testing.assert_allclose(env.normalize(view), [-2.0, 0.0, 2.0])
    np.testing.assert_allclose(env.denormalize(env.normalize(view)), view)


# ----------------------------------------------------------------------------- episodes


EPISODE = dict(num_views=4, out_size=16, flip_prob=0.5, jitter_strength=0.5)


def _canvases(count: int) -> np.ndarray:
    return np.random.RandomState(1).randint(0, 256, (count, 32, 32, 3)).astype(np.uint8)


def test_sample_episode_shapes_and_consistency():
    canvas = _canvases(1)[0]
    episode = jax.jit(functools.partial(env.sample_episode, **EPISODE))(
        env.episode_key(KEY, 3), canvas
    )
    n = 4
    assert episode["boxes"].shape == (n, 4)
    assert episode["views"].shape == (n, 16, 16, 3) and episode["views"].dtype == jnp.float32
    assert episode["actions"].shape == (n, n - 1, 4)
    # 4 coordinates, the flip token, and the jitter token (jitter_strength > 0).
    assert episode["tokens"].shape == (n, n - 1, 6) and episode["tokens"].dtype == jnp.int32
    bins = env.ActionBins()
    np.testing.assert_array_equal(
        episode["tokens"][..., :4], env.tokenize(episode["actions"], bins)
    )
    assert np.all(episode["tokens"] < env.vocab_size(bins, with_flip=True, with_jitter=True))
    # The jitter token tells Q how strongly the *target* view is jittered.
    strength = np.asarray(episode["jitter"])
    assert strength.shape == (n,) and np.all((strength >= 0) & (strength <= 1))
    assert len(np.unique(strength)) == n
    targets = env.other_view_index(n)
    expected_jitter = 4 * bins.num_bins + 2 + np.floor(strength[targets] * bins.num_bins)
    np.testing.assert_array_equal(episode["tokens"][..., 5], expected_jitter)

    # Actions are in each source view's displayed frame: cx is mirrored when view i is flipped.
    flipped = np.asarray(episode["flipped"])
    geometric = np.asarray(env.pairwise_actions(episode["boxes"]))
    expected_cx = np.where(flipped[:, None], 1 - geometric[..., 1], geometric[..., 1])
    np.testing.assert_allclose(episode["actions"][..., 1], expected_cx, rtol=1e-6)
    relative = flipped[:, None] != flipped[env.other_view_index(n)]
    np.testing.assert_array_equal(episode["tokens"][..., 4], 4 * bins.num_bins + relative)

    # Without augmentation the views are exactly the normalised renders of the boxes.
    plain = jax.jit(functools.partial(env.sample_episode, num_views=n, out_size=16))(
        env.episode_key(KEY, 3), canvas
    )
    assert plain["tokens"].shape == (n, n - 1, 4)
    np.testing.assert_array_equal(plain["jitter"], 0.0)
    np.testing.assert_allclose(plain["actions"], env.pairwise_actions(plain["boxes"]))
    expected_view = env.normalize(render(canvas, plain["boxes"][2], 16, True))
    np.testing.assert_allclose(plain["views"][2], expected_view, atol=1e-6)


def test_sample_episode_depends_only_on_the_example_index():
    canvases = _canvases(3)
    indices = np.array([10, 11, 12], np.int64)

    def batch(keys_index, images):
        keys = jax.vmap(lambda i: env.episode_key(KEY, i))(keys_index)
        return jax.vmap(lambda k, c: env.sample_episode(k, c, **EPISODE))(keys, images)

    # Eager, alone; and under jit as the first example of a reversed, vmapped batch.
    alone = env.sample_episode(env.episode_key(KEY, 12), canvases[2], **EPISODE)
    batched = jax.jit(batch)(jnp.asarray(indices[::-1], jnp.int32), canvases[::-1])
    # Same random numbers, so flips and tokens are identical; floats differ at most by round-off
    # from XLA fusing ops differently under jit.
    np.testing.assert_array_equal(batched["flipped"][0], alone["flipped"])
    np.testing.assert_array_equal(batched["tokens"][0], alone["tokens"])
    np.testing.assert_allclose(batched["boxes"][0], alone["boxes"], atol=1e-6)
    np.testing.assert_allclose(batched["actions"][0], alone["actions"], atol=1e-5)
    np.testing.assert_allclose(batched["views"][0], alone["views"], atol=2e-5)
    # Different examples get different views.
    assert not np.allclose(batched["boxes"][0], batched["boxes"][1])


def test_episode_key_index_types():
    def data(key):
        return np.asarray(jax.random.key_data(key))

    expected = data(env.episode_key(KEY, 12))
    for index in [np.int64(12), np.array(12, np.int32), jnp.int32(12)]:
        np.testing.assert_array_equal(data(env.episode_key(KEY, index)), expected)
    traced = jax.jit(env.episode_key)(KEY, jnp.int32(12))
    np.testing.assert_array_equal(data(traced), expected)
    # Positions 2**32 apart are distinct (the high half is folded in), and match numpy's split.
    far = env.episode_key(KEY, 2**32 + 12)
    assert not np.array_equal(data(far), data(env.episode_key(KEY, 12)))
    manual = jax.random.fold_in(jax.random.fold_in(KEY, 1), 12)
    np.testing.assert_array_equal(data(far), data(manual))
    # Raw uint32 keys work too.
    assert env.episode_key(jax.random.PRNGKey(0), 3).shape == (2,)
