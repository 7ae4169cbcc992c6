"""Distances: blind to permutation, sign and scale; each pair once; the reference's Chebyshev variant."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.spatial.distance import pdist, squareform

from ppruning.methods.ppruning.similarity import (
    head_distances,
    head_distances_square,
    mean_abs_activation,
    neuron_distances,
    neuron_distances_square,
    reference_chebyshev,
)


def _heads_with_copy(seed: int = 0, samples: int = 50, units: int = 5, width: int = 8) -> torch.Tensor:
    """Head 3 is head 1 with its dimensions permuted, sign-flipped and scaled."""
    g = torch.Generator().manual_seed(seed)
    z = torch.randn(samples, units, width, generator=g)
    perm = torch.randperm(width, generator=g)
    signs = torch.tensor([1.0, -1.0] * (width // 2))
    scales = torch.rand(width, generator=g) * 5 + 0.1
    z[:, 3] = z[:, 1][:, perm] * signs * scales
    return z.reshape(samples, units * width)


@pytest.mark.parametrize("matching", ["greedy", "hungarian"])
def test_permuted_sign_flipped_scaled_head_copy_has_distance_zero(matching: str) -> None:
    d = squareform(head_distances(_heads_with_copy(), 5, matching))
    assert d[1, 3] == pytest.approx(0.0, abs=1e-9)
    off = d[~np.eye(5, dtype=bool)]
    assert (off > 0.3).sum() == off.size - 2  # every other pair is far apart


def test_neuron_copy_up_to_sign_and_scale_has_distance_zero() -> None:
    g = torch.Generator().manual_seed(1)
    z = torch.randn(40, 6, generator=g)
    z[:, 4] = -3.5 * z[:, 2]
    d = squareform(neuron_distances(z))
    assert d[2, 4] == pytest.approx(0.0, abs=1e-12)
    assert np.allclose(d, d.T) and np.all(np.diag(d) == 0)
    assert np.all((d >= 0) & (d <= 1))


def test_neuron_distance_is_one_minus_abs_cos() -> None:
    z = torch.randn(30, 4, dtype=torch.float64)
    d = neuron_distances_square(z)
    a, b = z[:, 0], z[:, 3]
    cos = (a @ b) / (a.norm() * b.norm())
    assert float(d[0, 3]) == pytest.approx(1 - abs(float(cos)), abs=1e-12)


def test_head_distance_is_symmetric_and_matches_greedy_by_hand() -> None:
    z = torch.randn(20, 3 * 4, dtype=torch.float64)
    d = head_distances_square(z, 3)
    assert torch.allclose(d, d.T) and torch.all(d.diagonal() == 0)
    zi, zj = z[:, 0:4], z[:, 8:12]
    m = (torch.nn.functional.normalize(zi, dim=0).T @ torch.nn.functional.normalize(zj, dim=0)).abs().numpy()
    picked = []
    for _ in range(4):
        a, b = np.unravel_index(np.argmax(m), m.shape)
        picked.append(m[a, b])
        m[a, :] = -1
        m[:, b] = -1
    assert float(d[0, 2]) == pytest.approx(1 - float(np.mean(picked)), abs=1e-12)


def test_hungarian_never_scores_less_similar_than_greedy() -> None:
    z = torch.randn(25, 6 * 5, dtype=torch.float64, generator=torch.Generator().manual_seed(3))
    greedy = head_distances(z, 6, "greedy")
    exact = head_distances(z, 6, "hungarian")
    assert np.all(exact <= greedy + 1e-12)


def test_zero_unit_is_maximally_far_not_nan() -> None:
    z = torch.randn(10, 3, dtype=torch.float64)
    z[:, 1] = 0
    d = neuron_distances(z)
    assert np.all(np.isfinite(d))
    assert squareform(d)[0, 1] == 1.0


def test_reference_chebyshev_equals_scipy_observation_form() -> None:
    d = neuron_distances_square(torch.randn(15, 9, dtype=torch.float64))
    expected = pdist(d.numpy(), "chebyshev")
    assert np.allclose(reference_chebyshev(d, row_chunk=4), expected)


def test_mean_abs_activation_averages_a_heads_dimensions() -> None:
    z = torch.tensor([[1.0, -3.0, 2.0, 2.0], [-1.0, 1.0, -2.0, 0.0]])
    assert np.allclose(mean_abs_activation(z, 2), [1.5, 1.5])
    assert np.allclose(mean_abs_activation(z, 4), [1.0, 2.0, 2.0, 1.0])
