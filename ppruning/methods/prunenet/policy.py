"""PruneNet's policy, its reward and one REINFORCE episode over the layers (docs/algorithms.md, PruneNet).

The policy scores the rows of an FFN-in weight; an episode samples k rows per layer
from the noisy scores, rewards each layer by how close the sliced matrix's spectrum
stays to the full one's, and takes one policy-gradient step per layer.
"""

from __future__ import annotations

from dataclasses import dataclass

import torch
from torch import nn


class SlicingPolicy(nn.Module):
    """alpha = sigmoid((W A^T + b) rho): one keep score per row of an FFN-in weight W [d_ffn, d]."""

    def __init__(self, hidden_size: int, ffn_size: int) -> None:
        super().__init__()
        self.project = nn.Linear(hidden_size, ffn_size)  # A, b
        self.rho = nn.Parameter(torch.rand(ffn_size, 1))

    def forward(self, weight: torch.Tensor) -> torch.Tensor:
        return torch.sigmoid(self.project(weight) @ self.rho)[:, 0]


def keep_probabilities(alpha: torch.Tensor, noise: torch.Tensor) -> torch.Tensor:
    """alpha perturbed by logistic noise (``noise`` uniform in (0, 1)): sigmoid(logit(u) + logit(alpha))."""
    eps = torch.finfo(alpha.dtype).eps
    alpha = alpha.clamp(eps, 1 - eps)
    return torch.sigmoid(torch.logit(noise) + torch.log(alpha) - torch.log1p(-alpha))


def ks_statistic(a: torch.Tensor, b: torch.Tensor) -> torch.Tensor:
    """The two-sample Kolmogorov-Smirnov statistic sup |F_a - F_b| (scipy's ``ks_2samp(...).statistic``)."""
    a, b = torch.sort(a.flatten().double()).values, torch.sort(b.flatten().double()).values
    points = torch.cat([a, b])
    cdf_a = torch.searchsorted(a, points, right=True) / a.numel()
    cdf_b = torch.searchsorted(b, points, right=True) / b.numel()
    return (cdf_a - cdf_b).abs().max()


def spectrum_reward(full_spectrum: torch.Tensor, sliced: torch.Tensor) -> float:
    """1 / KS(spectrum of the full matrix, spectrum of the sliced one).

    KS is a multiple of 1 / lcm(n1, n2) >= 1 / (n1 * n2), so flooring it there keeps a
    perfect match (KS = 0) finite and at least as rewarding as any other slice.
    """
    spectrum = torch.linalg.svdvals(sliced.float())
    floor = 1.0 / (full_spectrum.numel() * spectrum.numel())
    return 1.0 / max(float(ks_statistic(full_spectrum, spectrum)), floor)


@dataclass
class Episode:
    total_reward: float
    layer_rewards: list[float]


def _sample_rows(probs: torch.Tensor, k: int, generator: torch.Generator) -> torch.Tensor:
    return torch.multinomial(probs.detach(), k, replacement=False, generator=generator).sort().values


def _uniform_noise(n: int, generator: torch.Generator, device: torch.device) -> torch.Tensor:
    eps = torch.finfo(torch.float32).eps
    return torch.rand(n, generator=generator).clamp(eps, 1 - eps).to(device)


def run_episode(
    policy: SlicingPolicy,
    optimizer: torch.optim.Optimizer,
    weights: list[torch.Tensor],
    spectra: list[torch.Tensor],
    k: int,
    gamma: float,
    generator: torch.Generator,
) -> Episode:
    """One pass over the layers: sample k rows per layer, reward them, then one REINFORCE step per layer."""
    actions, noises, rewards = [], [], []
    with torch.no_grad():
        for weight, spectrum in zip(weights, spectra, strict=True):
            noise = _uniform_noise(weight.shape[0], generator, weight.device)
            rows = _sample_rows(keep_probabilities(policy(weight), noise), k, generator)
            rewards.append(spectrum_reward(spectrum, weight[rows]))
            actions.append(rows)
            noises.append(noise)
    for layer, (weight, rows, noise) in enumerate(zip(weights, actions, noises, strict=True)):
        probs = keep_probabilities(policy(weight), noise)
        loss = -torch.log(probs[rows]).sum() * (gamma**layer * rewards[layer])
        optimizer.zero_grad()
        loss.backward()
        torch.nn.utils.clip_grad_norm_(policy.parameters(), 1.0)
        optimizer.step()
    return Episode(sum(rewards), rewards)


def select_rows(
    policy: SlicingPolicy, weight: torch.Tensor, k: int, selection: str, generator: torch.Generator
) -> torch.Tensor:
    """The rows the (best) policy keeps in one layer, sorted."""
    with torch.no_grad():
        alpha = policy(weight)
        if selection == "top_k":
            return torch.topk(alpha, k).indices.sort().values
        noise = _uniform_noise(len(alpha), generator, alpha.device)
        return _sample_rows(keep_probabilities(alpha, noise), k, generator)
