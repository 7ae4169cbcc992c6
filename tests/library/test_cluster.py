"""Complete linkage on condensed distances; thresholds respected; cutting the dendrogram."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from scipy.cluster.hierarchy import fcluster, linkage
from scipy.spatial.distance import squareform

from ppruning.methods.ppruning.cluster import clusters_at, complete_linkage, cut, layer_dendrogram
from ppruning.methods.ppruning.select import centroids
from ppruning.methods.ppruning.similarity import head_distances_square


def _random_condensed(n: int, seed: int) -> np.ndarray:
    rng = np.random.default_rng(seed)
    return rng.random(n * (n - 1) // 2)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_clusters_respect_the_threshold_under_complete_linkage(seed: int) -> None:
    n = 30
    condensed = _random_condensed(n, seed)
    dendro = complete_linkage(condensed, n)
    d = squareform(condensed)
    for merges in (5, 15, 25):
        labels = cut(dendro, merges)
        threshold = dendro.heights[merges - 1]
        assert len(np.unique(labels)) == n - merges
        for label in np.unique(labels):
            members = np.flatnonzero(labels == label)
            assert d[np.ix_(members, members)].max() <= threshold + 1e-12


def test_cut_agrees_with_scipy_fcluster_at_the_merge_height() -> None:
    n = 25
    condensed = _random_condensed(n, 7)
    dendro = complete_linkage(condensed, n)
    for merges in range(0, n):
        ours = cut(dendro, merges)
        if merges == 0:
            assert len(np.unique(ours)) == n
            continue
        theirs = fcluster(dendro.z, dendro.heights[merges - 1], criterion="distance")
        # same partition, labels may differ
        assert len(np.unique(ours)) == len(np.unique(theirs)) == clusters_at(dendro, dendro.heights[merges - 1])
        pairs_ours = ours[:, None] == ours[None, :]
        pairs_theirs = theirs[:, None] == theirs[None, :]
        assert np.array_equal(pairs_ours, pairs_theirs)


def test_single_unit_layer_has_no_merges() -> None:
    dendro = complete_linkage(np.zeros(0), 1)
    assert dendro.heights.size == 0
    assert cut(dendro, 0).tolist() == [0]


def test_head_copy_lands_in_its_originals_cluster_first() -> None:
    g = torch.Generator().manual_seed(0)
    z = torch.randn(60, 6, 8, generator=g, dtype=torch.float64)
    z[:, 4] = -2.0 * z[:, 1][:, torch.randperm(8, generator=g)]
    dendro = layer_dendrogram(head_distances_square(z.reshape(60, 48), 6))
    labels = cut(dendro, 1)
    assert labels[1] == labels[4]
    assert len(np.unique(labels)) == 5


@pytest.mark.filterwarnings("ignore::scipy.cluster.hierarchy.ClusterWarning")
def test_reference_mode_matches_the_reference_call() -> None:
    g = torch.Generator().manual_seed(5)
    square = head_distances_square(torch.randn(30, 7 * 4, generator=g, dtype=torch.float64), 7)
    ours = layer_dendrogram(square, mode="reference")
    reference = linkage(square.numpy(), method="complete", metric="chebyshev")
    assert np.allclose(ours.z, reference)


def test_centroid_is_the_largest_magnitude_member_of_its_own_cluster() -> None:
    labels = np.array([0, 1, 0, 2, 1, 0])
    magnitude = np.array([0.5, 9.0, 2.0, 0.1, 1.0, 1.5])
    # cluster 0 = {0, 2, 5} -> 2; cluster 1 = {1, 4} -> 1; cluster 2 = {3} -> 3
    assert centroids(labels, magnitude).tolist() == [1, 2, 3]
