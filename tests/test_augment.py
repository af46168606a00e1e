"""Tests of the SSL image augmentations in avrl_jax.env.augment."""

import dataclasses

import jax
import jax.numpy as jnp
import ml_collections
import numpy as np
import pytest
import scipy.ndimage

# Names, not the module: `avrl_jax.env.augment` is also render.augment, re-exported by the package.
from avrl_jax.env.augment import (
    Augmentation,
    _sample_jitter,
    adjust_brightness,
    adjust_contrast,
    adjust_hue,
    adjust_saturation,
    augment_view,
    color_jitter,
    gaussian_blur,
    grayscale,
    hsv_to_rgb,
    rgb_to_hsv,
    solarize,
)

KEY = jax.random.key(0)
OFF = Augmentation(flip_prob=0.0, jitter_prob=0.0, grayscale_prob=0.0)  # everything off

# Jitted once per signature: eager op-by-op dispatch is what makes small JAX tests slow.
jit_hue = jax.jit(adjust_hue)
jit_blur = jax.jit(gaussian_blur, static_argnums=2)
jit_jitter = jax.jit(color_jitter, static_argnums=2)
jit_augment = jax.jit(augment_view, static_argnums=2)
augment_many = jax.jit(jax.vmap(augment_view, in_axes=(0, None, None)), static_argnums=2)


def _view(key: jax.Array = KEY, size: int = 8) -> jax.Array:
    return jax.random.uniform(key, (size, size, 3))


def _pixel(*rgb: float) -> jax.Array:
    return jnp.asarray(rgb, jnp.float32).reshape(1, 1, 3)


# ----------------------------------------------------------------------------- hue, HSV


@pytest.mark.parametrize(
    "colour, shift, expected",
    [
        ((1, 0, 0), 1 / 3, (0, 1, 0)),
        ((1, 0, 0), -1 / 3, (0, 0, 1)),
        ((0, 1, 0), 1 / 3, (0, 0, 1)),
        ((1, 0, 0), 1 / 6, (1, 1, 0)),
        ((1, 0, 0), 0.5, (0, 1, 1)),
    ],
)
def test_hue_rotates_pure_colours(colour, shift, expected):
    out = jit_hue(_pixel(*colour), shift)
    np.testing.assert_allclose(out.ravel(), expected, atol=1e-6)


def test_zero_hue_shift_is_exact():
    view = _view()
    np.testing.assert_array_equal(jit_hue(view, 0.0), view)


def test_hsv_round_trip():
    colours = jax.random.uniform(KEY, (1000, 3))
    np.testing.assert_allclose(hsv_to_rgb(rgb_to_hsv(colours)), colours, atol=1e-5)


def test_hsv_known_values():
    hsv = rgb_to_hsv(jnp.asarray([[1.0, 0.5, 0.0], [0.0, 0.0, 1.0], [0.2, 0.4, 0.2]]))
    np.testing.assert_allclose(hsv, [[1 / 12, 1.0, 1.0], [2 / 3, 1.0, 1.0], [1 / 3, 0.5, 0.4]])


@pytest.mark.parametrize("shift", [-0.5, -0.21, 0.1, 0.37, 0.5])
def test_hue_shift_leaves_gray_unchanged(shift):
    gray = jnp.broadcast_to(jnp.linspace(0.0, 1.0, 5)[:, None, None], (5, 1, 3))
    np.testing.assert_array_equal(jit_hue(gray, shift), gray)


# ----------------------------------------------------------------------------- grayscale


@pytest.mark.parametrize(
    "colour, luma", [((1, 0, 0), 0.299), ((0, 1, 0), 0.587), ((0, 0, 1), 0.114), ((1, 1, 1), 1.0)]
)
def test_grayscale_weights(colour, luma):
    np.testing.assert_allclose(grayscale(_pixel(*colour)).ravel(), [luma] * 3, rtol=1e-6)


# ----------------------------------------------------------------------------- blur


def _impulse(size: int = 15) -> jax.Array:
    return jnp.zeros((size, size, 3)).at[size // 2, size // 2].set(1.0)


def test_blur_keeps_a_constant_image():
    np.testing.assert_allclose(jit_blur(jnp.full((9, 9, 3), 0.3), 1.7, 6), 0.3, atol=1e-6)


def test_blur_of_a_point_keeps_its_total_and_is_symmetric():
    out = np.asarray(jit_blur(_impulse(), 1.5, 5))[..., 0]
    np.testing.assert_allclose(out.sum(), 1.0, rtol=1e-5)
    np.testing.assert_allclose(out, out[::-1, :], atol=1e-7)
    np.testing.assert_allclose(out, out[:, ::-1], atol=1e-7)
    np.testing.assert_allclose(out, out.T, atol=1e-7)


def test_larger_sigma_spreads_more():
    def spread(sigma):
        out = np.asarray(jit_blur(_impulse(), sigma, 6))[..., 0]
        offsets = np.arange(15) - 7
        return float((out * offsets[:, None] ** 2).sum())  # the variance along y

    small, large = spread(0.8), spread(1.6)
    assert large > 2 * small
    # A Gaussian's variance is sigma^2 (the truncation at 3 sigma trims it by a few %).
    np.testing.assert_allclose([small, large], [0.8**2, 1.6**2], rtol=0.05)


def test_tiny_sigma_is_almost_the_identity():
    view = _view()
    np.testing.assert_allclose(jit_blur(view, 0.1, 6), view, atol=1e-6)


def test_blur_matches_scipy_with_reflect_padding():
    # scipy's "mirror" is numpy's / torchvision's "reflect" (the edge pixel is not repeated);
    # a random image makes the border handling visible.
    view = _view(size=10)
    sigma, radius = 1.3, 4
    expected = scipy.ndimage.gaussian_filter(
        np.asarray(view), sigma, mode="mirror", truncate=radius / sigma, axes=(0, 1)
    )
    np.testing.assert_allclose(jit_blur(view, sigma, radius), expected, atol=1e-6)


# ----------------------------------------------------------------------------- solarisation


def test_solarize_threshold():
    values = jnp.asarray([0.0, 0.49, 0.5, 0.8, 1.0]).reshape(1, 5, 1).repeat(3, axis=-1)
    np.testing.assert_allclose(solarize(values, 0.5)[0, :, 0], [0, 0.49, 0.5, 0.2, 0])
    # 0.5 maps to itself either way; threshold 0.3 shows that the threshold itself is inverted.
    values = jnp.asarray([0.29, 0.3, 0.8]).reshape(1, 3, 1).repeat(3, axis=-1)
    np.testing.assert_allclose(solarize(values, 0.3)[0, :, 0], [0.29, 0.7, 0.2], atol=1e-7)


# ----------------------------------------------------------------------------- brightness etc.

# Two pixels, lumas 0.363 and 0.3082 (mean 0.3356).
TWO = jnp.asarray([[[0.2, 0.4, 0.6], [0.6, 0.2, 0.1]]])


@pytest.mark.parametrize(
    "op, factor, expected",
    [
        (adjust_brightness, 1.5, [[0.3, 0.6, 0.9], [0.9, 0.3, 0.15]]),
        (adjust_brightness, 2.0, [[0.4, 0.8, 1.0], [1.0, 0.4, 0.2]]),  # clipped
        (adjust_contrast, 0.5, [[0.2678, 0.3678, 0.4678], [0.4678, 0.2678, 0.2178]]),
        (adjust_contrast, 0.0, [[0.3356] * 3, [0.3356] * 3]),
        (adjust_contrast, 3.0, [[0.0, 0.5288, 1.0], [1.0, 0.0, 0.0]]),  # clipped
        (adjust_saturation, 0.5, [[0.2815, 0.3815, 0.4815], [0.4541, 0.2541, 0.2041]]),
        (adjust_saturation, 0.0, [[0.363] * 3, [0.3082] * 3]),
    ],
)
def test_adjust_by_hand(op, factor, expected):
    np.testing.assert_allclose(op(TWO, factor)[0], expected, atol=1e-6)


@pytest.mark.parametrize("op", [adjust_brightness, adjust_contrast, adjust_saturation])
def test_factor_one_is_the_identity(op):
    view = _view()
    np.testing.assert_array_equal(op(view, 1.0), view)


# ----------------------------------------------------------------------------- colour jitter


def _fraction(aug: Augmentation, predicate, count: int = 2000) -> float:
    view = _view(size=4)
    views, _ = augment_many(jax.random.split(KEY, count), view, aug)
    return float(jnp.mean(jax.vmap(predicate, in_axes=(0, None))(views, view)))


def test_jitter_probability():
    aug = dataclasses.replace(OFF, jitter_prob=0.8)
    changed = lambda out, view: jnp.any(out != view)
    assert abs(_fraction(aug, changed) - 0.8) < 0.04


def test_grayscale_probability():
    aug = dataclasses.replace(OFF, grayscale_prob=0.2)
    gray = lambda out, view: jnp.all((out[..., 0] == out[..., 1]) & (out[..., 1] == out[..., 2]))
    assert abs(_fraction(aug, gray) - 0.2) < 0.04


def test_jitter_order_is_random():
    # Brightness and contrast commute except through clipping (both are linear maps that keep
    # the mean luma's role), so the view has dark and bright pixels for the clip to act on.
    aug = Augmentation(brightness=0.4, contrast=0.4, saturation=0.0, hue=0.0)
    view = jnp.concatenate([_view(size=4) * 0.3, 0.75 + 0.25 * _view(jax.random.key(1), 4)])
    distinct_runs = {0: 0, 1: 0}  # first op -> keys where the two orders differ visibly
    for key in jax.random.split(KEY, 40):
        order, factors = _sample_jitter(key, aug)
        assert sorted(order.tolist()) == [0, 1]  # the disabled ops are left out
        b_c = adjust_contrast(adjust_brightness(view, factors[0]), factors[1])
        c_b = adjust_brightness(adjust_contrast(view, factors[1]), factors[0])
        first = b_c if order[0] == 0 else c_b
        np.testing.assert_allclose(jit_jitter(key, view, aug), first, atol=1e-6)
        if np.max(np.abs(b_c - c_b)) > 1e-2:
            distinct_runs[int(order[0])] += 1
    # Both orders occur, each on keys where the order changes the result.
    assert distinct_runs[0] >= 3 and distinct_runs[1] >= 3, distinct_runs


def test_jitter_zero_strengths_are_exact():
    view = _view()
    none = Augmentation(brightness=0.0, contrast=0.0, saturation=0.0, hue=0.0)
    np.testing.assert_array_equal(jit_jitter(KEY, view, none), view)
    only_brightness = dataclasses.replace(none, brightness=0.4)
    _, factors = _sample_jitter(KEY, only_brightness)
    np.testing.assert_array_equal(
        jit_jitter(KEY, view, only_brightness), adjust_brightness(view, factors[0])
    )


def test_jitter_factor_ranges():
    aug = Augmentation(brightness=0.4, contrast=1.5, saturation=0.2, hue=0.1)
    _, factors = jax.vmap(_sample_jitter, in_axes=(0, None))(jax.random.split(KEY, 500), aug)
    lo, hi = np.min(factors, axis=0), np.max(factors, axis=0)
    np.testing.assert_allclose(lo, [0.6, 0.0, 0.8, -0.1], atol=0.02)
    np.testing.assert_allclose(hi, [1.4, 2.5, 1.2, 0.1], atol=0.02)


# ----------------------------------------------------------------------------- augment_view


def test_everything_off_is_exact():
    view = _view()
    out, flipped = jit_augment(KEY, view, OFF)
    np.testing.assert_array_equal(out, view)
    assert not flipped


ALL_ON = Augmentation(blur_prob=0.5, solarize_prob=0.2)


def test_jit_and_vmap_match_eager_and_stay_in_range():
    view = _view()
    keys = jax.random.split(KEY, 16)
    views, flipped = augment_many(keys, view, ALL_ON)
    assert views.shape == (16, 8, 8, 3) and flipped.shape == (16,)
    assert float(views.min()) >= 0.0 and float(views.max()) <= 1.0
    for i in range(4):
        out, flip = augment_view(keys[i], view, ALL_ON)
        np.testing.assert_allclose(views[i], out, atol=1e-6)
        assert bool(flip) == bool(flipped[i])


def test_decisions_are_independent():
    # With one key shared by two decisions, both would happen together half the time, not 1/4.
    aug = dataclasses.replace(OFF, flip_prob=0.5, grayscale_prob=0.5)
    views, flipped = augment_many(jax.random.split(KEY, 2000), _view(size=4), aug)
    gray = jnp.all(views[..., 0] == views[..., 1], axis=(1, 2))
    assert abs(float(jnp.mean(flipped & gray)) - 0.25) < 0.04


def test_ops_with_probability_zero_are_not_traced():
    view = _view()
    off = str(jax.make_jaxpr(lambda key, v: augment_view(key, v, OFF))(KEY, view))
    assert "select_n" not in off and "pad" not in off  # no flip / jitter / blur choices
    blur = dataclasses.replace(OFF, blur_prob=0.5)
    assert "pad" in str(jax.make_jaxpr(lambda key, v: augment_view(key, v, blur))(KEY, view))


def test_flipped_flag_matches_the_mirrored_view():
    view = _view()
    views, flipped = augment_many(
        jax.random.split(KEY, 64), view, dataclasses.replace(OFF, flip_prob=0.5)
    )
    assert 0 < int(flipped.sum()) < 64
    for out, flip in zip(views, flipped, strict=True):
        np.testing.assert_array_equal(out, view[:, ::-1] if flip else view)


# ----------------------------------------------------------------------------- Augmentation


@pytest.mark.parametrize(
    "field, value",
    [
        ("flip_prob", 1.5),
        ("jitter_prob", -0.1),
        ("grayscale_prob", 2.0),
        ("blur_prob", -1.0),
        ("solarize_prob", 1.1),
        ("brightness", -0.1),
        ("contrast", -1.0),
        ("saturation", -0.5),
        ("hue", 0.6),
        ("hue", -0.1),
        ("blur_sigma", (0.0, 1.0)),
        ("blur_sigma", (2.0, 1.0)),
    ],
)
def test_validation_names_the_field(field, value):
    with pytest.raises(ValueError, match=field) as error:
        Augmentation(**{field: value})
    assert str(value if not isinstance(value, tuple) else value[0]) in str(error.value)


def test_lists_become_hashable_tuples():
    aug = Augmentation(blur_sigma=[0.5, 1])
    assert aug.blur_sigma == (0.5, 1.0) and hash(aug) == hash(Augmentation(blur_sigma=(0.5, 1.0)))


def test_from_config():
    config = ml_collections.ConfigDict({"blur_prob": 1.0, "blur_sigma": [0.1, 2.0], "hue": 0})
    aug = Augmentation.from_config(config)
    assert aug == Augmentation(blur_prob=1.0, hue=0.0)
    assert Augmentation.from_config({}) == Augmentation()


def test_from_config_rejects_unknown_keys():
    with pytest.raises(ValueError, match="blur_sigmas") as error:
        Augmentation.from_config({"blur_sigmas": (0.1, 2.0)})
    for name in ("flip_prob", "blur_sigma", "solarize_threshold"):
        assert name in str(error.value)
