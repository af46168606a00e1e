"""Loss math against small hand-computed cases."""

import math

import jax.numpy as jnp
import numpy as np
import pytest

from avrl_jax.objectives import base, bootstrap, ema


def three_view_example():
    # One image, 3 views, 2 annotations.
    rewards = jnp.array([[[0.9, 0.1], [0.2, 0.8], [0.5, 0.5]]])  # p(l | x_j)  [1, 3, 2]
    next_values = jnp.array(  # Q(l | x_j, a_jk) for the two other views k of j  [1, 3, 2, 2]
        [[[[0.6, 0.4], [0.3, 0.7]], [[0.1, 0.9], [0.8, 0.2]], [[0.5, 0.5], [0.4, 0.6]]]]
    )
    return rewards, next_values


def test_bootstrap_targets_gamma_zero_is_next_view_reward():
    rewards, next_values = three_view_example()
    y, share = bootstrap.bootstrap_targets(rewards, None, 0.0, "softmax")
    np.testing.assert_array_equal(share, 0.0)
    # View 0's slots hold views 1 and 2; view 1's hold 0 and 2; view 2's hold 0 and 1.
    expected = [[[0.2, 0.8], [0.5, 0.5]], [[0.9, 0.1], [0.5, 0.5]], [[0.9, 0.1], [0.2, 0.8]]]
    np.testing.assert_allclose(y[0], expected, rtol=1e-6)


def test_bootstrap_targets_gamma_half_by_hand():
    rewards, next_values = three_view_example()
    next_max = bootstrap.max_next_values(next_values, None)
    y, share = bootstrap.bootstrap_targets(rewards, next_max, 0.5, "softmax")
    # v_j = 0.5 r_j + 0.5 max_k Q(x_j, a_jk), per annotation, then renormalised.
    v = {
        0: [0.5 * 0.9 + 0.5 * 0.6, 0.5 * 0.1 + 0.5 * 0.7],  # [0.75, 0.40]
        1: [0.5 * 0.2 + 0.5 * 0.8, 0.5 * 0.8 + 0.5 * 0.9],  # [0.50, 0.85]
        2: [0.5 * 0.5 + 0.5 * 0.5, 0.5 * 0.5 + 0.5 * 0.6],  # [0.50, 0.55]
    }
    norm = {j: np.array(x) / sum(x) for j, x in v.items()}
    expected = [[norm[1], norm[2]], [norm[0], norm[2]], [norm[0], norm[1]]]
    np.testing.assert_allclose(y[0], expected, rtol=1e-6)
    # The bootstrap term's share of view 1's target mass: 0.5 * (0.8 + 0.9) / (0.5 + 0.85).
    np.testing.assert_allclose(share[0, 0, 0], 0.85 / 1.35, rtol=1e-6)
    # BCE keeps the unnormalised per-annotation values.
    y_bce, _ = bootstrap.bootstrap_targets(rewards, next_max, 0.5, "bce")
    np.testing.assert_allclose(y_bce[0, 0, 0], v[1], rtol=1e-6)


def test_max_next_values_without_the_return_action_by_hand():
    _, next_values = three_view_example()  # [1, 3, 2, 2]: view j's actions to its other views
    out = bootstrap.max_next_values(next_values, None, exclude_return=True)
    # Pair (0 -> 1): view 1's candidates are views 0 (the return) and 2; only k = 2 counts.
    np.testing.assert_allclose(out[0, 0, 0], next_values[0, 1, 1])
    # Pair (0 -> 2): view 2's candidates are 0 (return) and 1 -> k = 1, slot 1.
    np.testing.assert_allclose(out[0, 0, 1], next_values[0, 2, 1])
    # Pair (1 -> 0): view 0's candidates are 1 (return, slot 0) and 2 (slot 1).
    np.testing.assert_allclose(out[0, 1, 0], next_values[0, 0, 1])
    # Pair (2 -> 1): view 1's candidates are 0 (slot 0) and 2 (return, slot 1).
    np.testing.assert_allclose(out[0, 2, 1], next_values[0, 1, 0])
    # With the return action the max runs over both candidates.
    both = bootstrap.max_next_values(next_values, None)
    np.testing.assert_allclose(both[0, 0, 0], np.max(next_values[0, 1], axis=0))


def test_max_next_values_with_a_grid_takes_the_best_of_both():
    _, next_values = three_view_example()
    grid = jnp.zeros((1, 3, 4, 2)).at[0, 1, 2, 0].set(0.95)  # view 1: one strong grid action
    out = bootstrap.max_next_values(next_values, grid)
    np.testing.assert_allclose(out[0, 0, 0], [0.95, 0.9])  # pair (0 -> 1)
    only_grid = bootstrap.max_next_values(None, grid)
    np.testing.assert_allclose(only_grid[0, 0, 0], [0.95, 0.0])
    np.testing.assert_allclose(only_grid[0, 0, 1], [0.0, 0.0])  # pair (0 -> 2)


def test_bootstrap_loss_is_minimised_at_the_target():
    target = jnp.array([[0.7, 0.2, 0.1]])
    at_target = bootstrap.bootstrap_loss(jnp.log(target), target, "softmax")
    entropy = -np.sum(np.array(target) * np.log(np.array(target)))
    np.testing.assert_allclose(at_target, entropy, rtol=1e-5)
    elsewhere = bootstrap.bootstrap_loss(jnp.zeros((1, 3)), target, "softmax")
    assert elsewhere > at_target
    bce = bootstrap.bootstrap_loss(jnp.array([[0.0]]), jnp.array([[0.5]]), "bce")
    np.testing.assert_allclose(bce, math.log(2.0), rtol=1e-6)


def test_unknown_divergence_names_field():
    with pytest.raises(ValueError, match=r"objective.divergence='kl'.*softmax"):
        bootstrap.bootstrap_loss(jnp.zeros((1, 2)), jnp.ones((1, 2)) / 2, "kl")


def test_info_nce_two_by_two_by_hand():
    logits = jnp.array([[2.0, 0.0], [1.0, 3.0]])
    loss, accuracy = base.info_nce(logits)
    rows = [-(2 - math.log(math.e**2 + 1)), -(3 - math.log(math.e + math.e**3))]
    cols = [-(2 - math.log(math.e**2 + math.e)), -(3 - math.log(1 + math.e**3))]
    np.testing.assert_allclose(loss, 0.5 * (np.mean(rows) + np.mean(cols)), rtol=1e-6)
    assert accuracy == 1.0


def test_label_cross_entropy_by_hand():
    logits = jnp.array([[0.0, math.log(3.0)]])
    loss, accuracy = base.label_cross_entropy(logits, jnp.array([0]))
    np.testing.assert_allclose(loss, math.log(4.0), rtol=1e-6)
    assert accuracy == 0.0


def test_annotation_logits_scale_cosines():
    q = jnp.array([[1.0, 0.0]])
    psi = jnp.array([[1.0, 0.0], [0.0, 1.0], [-1.0, 0.0]])
    np.testing.assert_allclose(base.annotation_logits(q, psi, 10.0), [[10.0, 0.0, -10.0]])


def test_ema_schedule_end_points():
    kwargs = dict(base=0.996, final=1.0, total_steps=101, schedule="cosine")
    np.testing.assert_allclose(ema.ema_momentum(0, **kwargs), 0.996, rtol=1e-7)
    np.testing.assert_allclose(ema.ema_momentum(50, **kwargs), 0.998, rtol=1e-7)
    np.testing.assert_allclose(ema.ema_momentum(100, **kwargs), 1.0, rtol=1e-7)
    constant = dict(kwargs, schedule="constant")
    np.testing.assert_allclose(ema.ema_momentum(100, **constant), 0.996, rtol=1e-7)
    with pytest.raises(ValueError, match="ema.schedule='step'"):
        ema.ema_momentum(0, **dict(kwargs, schedule="step"))


def test_ema_update():
    target = {"w": jnp.array([1.0, 2.0])}
    online = {"w": jnp.array([3.0, 6.0])}
    out = ema.ema_update(target, online, 0.75)
    np.testing.assert_allclose(out["w"], [1.5, 3.0])


def test_dino_centring_and_sharpening_by_hand():
    scores = jnp.array([[1.0, 0.0, -1.0]])
    center = jnp.array([0.5, 0.0, -0.5])
    probs = base.dino_teacher_probabilities(scores, center, 0.5)
    # (scores - center) / 0.5 = [1, 0, -1]
    e = np.exp([1.0, 0.0, -1.0])
    np.testing.assert_allclose(probs[0], e / e.sum(), rtol=1e-6)
    new_center = base.update_center(center, jnp.array([[[1.0, 2.0, 3.0]], [[3.0, 2.0, 1.0]]]), 0.9)
    # batch mean = [2, 2, 2]; 0.9 * center + 0.1 * mean
    np.testing.assert_allclose(new_center, [0.65, 0.2, -0.25], rtol=1e-6)


def test_dino_multi_crop_loss_pairs_teacher_crops_with_every_other_crop():
    student = jnp.log(jnp.array([[[0.5, 0.5]], [[0.9, 0.1]], [[0.2, 0.8]]]))  # 3 crops
    teacher = jnp.array([[[1.0, 0.0]], [[0.0, 1.0]]])  # the 2 global crops
    # Pairs (student a, teacher b), a != b: (1, 0), (2, 0), (0, 1), (2, 1).
    pairs = [-math.log(0.9), -math.log(0.2), -math.log(0.5), -math.log(0.8)]
    np.testing.assert_allclose(base.dino_loss(student, teacher), np.mean(pairs), rtol=1e-6)


def test_nt_xent_uses_both_crops_of_every_other_image_as_negatives():
    q = jnp.array([[[1.0, 0.0], [0.0, 1.0]], [[0.8, 0.6], [0.6, 0.8]]])  # [2 crops, N=2, d]
    loss, accuracy = base.nt_xent(q, 2.0)
    z = np.asarray(q).reshape(4, 2)
    logits = 2.0 * z @ z.T
    expected = []
    for a, positive in enumerate([2, 3, 0, 1]):
        others = [b for b in range(4) if b != a]
        expected.append(-logits[a, positive] + np.log(np.sum(np.exp(logits[a, others]))))
    np.testing.assert_allclose(loss, np.mean(expected), rtol=1e-6)
    # Crops of image 0 find their partners (0.8 beats 0.6 and 0); the second crops of image 0
    # and 1 are closer to each other (0.96) than to their partners (0.8): a negative wins.
    assert accuracy == 0.5


def test_dino_loss_pairs_each_teacher_crop_with_the_other_student_crop():
    student = jnp.log(jnp.array([[[0.5, 0.5]], [[0.9, 0.1]]]))  # [m=2, N=1, K=2]
    teacher = jnp.array([[[1.0, 0.0]], [[0.0, 1.0]]])
    # CE(teacher crop 1, student crop 0) = -log 0.5; CE(teacher crop 0, student crop 1) = -log 0.9
    expected = 0.5 * (-math.log(0.5) - math.log(0.9))
    np.testing.assert_allclose(base.dino_loss(student, teacher), expected, rtol=1e-6)
