"""PruneNet (Sengupta et al., ICLR 2025): calibration-free FFN slicing by a policy learned on the weights.

ALGORITHMS.md, section PruneNet. No data and no forward pass of the LM: a small policy
reads each layer's FFN-in weight W_l [d_ffn, d] and scores its rows,
alpha = sigmoid((W_l A^T + b) rho) with A: d -> d_ffn and rho: d_ffn -> 1. An episode
passes over the layers; in each, logistic noise perturbs alpha into keep probabilities
and k rows are drawn from them without replacement. The reward of a layer is
1 / KS(singular values of W_l, singular values of W_l[kept]) (two-sample
Kolmogorov-Smirnov statistic): slices whose spectrum stays close to the full matrix's
are preferred. REINFORCE with the reward of layer l discounted by gamma^l, AdamW.

Where we differ from the reference, as the specification asks:
- the policy that *earned* the best total reward is kept and compresses the model
  (the reference keeps whichever policy it had last);
- no model copy per episode: the reward needs W_l[kept] only, and the spectra of the
  full matrices are computed once (``torch.linalg.svdvals``);
- KS = 0 is finite: the statistic is floored at its resolution 1 / (n1 * n2);
- the kept indices, the policy and the reward curve are written out, and the sliced
  checkpoint keeps its LM head and a config (every layer has the same width, so it is
  the stock config);
- ``selection="top_k"`` keeps the k largest alpha instead of sampling (deterministic).

Every layer keeps the same number of neurons, k = d_ffn - m, the smallest m that removes
the target's share of attention+FFN cost from the FFN alone; the report gives that FFN
ratio m / d_ffn (the paper's slicing ratio) beside the whole-model ratios.
"""

from __future__ import annotations

import copy
import io
import json
import math
from dataclasses import dataclass
from typing import Literal

import torch
from pydantic import Field
from torch import nn

from ppruning.arch.base import ArchAdapter
from ppruning.budget import Budget
from ppruning.errors import InvalidConfigError
from ppruning.masks import Masks
from ppruning.methods.contract import MASK_ARTIFACTS, MethodContext, MethodParams, MethodSpec
from ppruning.methods.registry import register_method
from ppruning.select import keep_mask

POLICY_FILE = "policy.pt"
KEPT_FILE = "prunenet_kept.json"
REWARDS_FILE = "prunenet_rewards.json"


class PruneNetParams(MethodParams):
    """PruneNet's parameters (the paper's defaults). ``lambda_val`` plays no part: only the FFN is cut."""

    allocation: Literal["uniform"] = Field(
        default="uniform", description="Every layer keeps the same number of neurons (the only choice)."
    )
    num_episodes: int = Field(default=20, ge=1, le=10_000, description="Passes of the policy over all layers.")
    gamma: float = Field(default=0.99, gt=0.0, le=1.0, description="Discount of layer l's reward: gamma**l.")
    learning_rate: float = Field(default=1e-4, gt=0.0, le=1.0, description="AdamW learning rate of the policy.")
    selection: Literal["sample", "top_k"] = Field(
        default="sample",
        description="How the best policy picks the kept rows: sampled (seeded), or the k largest alpha.",
    )


# --------------------------------------------------------------------------- the policy and the reward


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


def ffn_in_weight(adapter: ArchAdapter, layer: int) -> torch.Tensor:
    """The layer's FFN-in weight as [d_ffn, d] in float32 (gate_proj for gated FFNs, as the reference)."""
    module = adapter.neuron_input_modules(layer)[0]
    weight = module.weight.detach().float()
    return weight.T if type(module).__name__ == "Conv1D" else weight


# --------------------------------------------------------------------------- the budget


def neurons_removed_per_layer(budget: Budget, ffn_size: int, neuron_costs: torch.Tensor) -> int:
    """The smallest m, the same in every layer, whose removed cost meets the budget's FFN share."""
    per_neuron = float(neuron_costs.sum())  # one neuron removed from every layer
    m = math.ceil(budget.neuron_removal * (1.0 - 1e-9) / per_neuron) if budget.neuron_removal > 0 else 0
    if m > ffn_size - 1:
        raise InvalidConfigError(  # the plan's feasibility check makes this unreachable
            f"removing {budget.neuron_removal:.4g} cost units needs more than {ffn_size - 1} of {ffn_size} "
            "neurons per layer",
            field=f"target.{budget.kind}_reduction",
        )
    return m


# --------------------------------------------------------------------------- training


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


def _to_bytes(obj: object) -> bytes:
    buffer = io.BytesIO()
    torch.save(obj, buffer)
    return buffer.getvalue()


def compute_masks(ctx: MethodContext) -> Masks:
    params: PruneNetParams = ctx.params
    shape = ctx.shape
    ffn_size = shape.layers[0].ffn_size
    m = neurons_removed_per_layer(ctx.budget, ffn_size, torch.as_tensor(ctx.budget.costs.neuron))
    k = ffn_size - m
    device = next(ctx.model.parameters()).device

    torch.manual_seed(ctx.seed)  # the policy's initial weights
    policy = SlicingPolicy(shape.hidden_size, ffn_size).to(device)
    optimizer = torch.optim.AdamW(policy.parameters(), lr=params.learning_rate)
    generator = torch.Generator().manual_seed(ctx.seed)
    weights = [ffn_in_weight(ctx.adapter, i) for i in range(shape.num_layers)]  # views of the weights, no copies
    spectra = [torch.linalg.svdvals(w) for w in weights]

    ctx.progress.start_stage("policy", total=params.num_episodes, message=f"keep {k} of {ffn_size} neurons per layer")
    curve: list[float] = []
    best_state, best_reward, best_episode = copy.deepcopy(policy.state_dict()), -math.inf, -1
    for episode in range(params.num_episodes):
        ctx.progress.checkpoint()
        acting = copy.deepcopy(policy.state_dict())  # the policy whose choices earn this episode's reward
        result = run_episode(policy, optimizer, weights, spectra, k, params.gamma, generator)
        curve.append(result.total_reward)
        if result.total_reward > best_reward:
            best_state, best_reward, best_episode = acting, result.total_reward, episode
        ctx.progress.update(episode + 1, total=params.num_episodes)

    ctx.progress.start_stage("select", total=shape.num_layers)
    policy.load_state_dict(best_state)
    final_generator = torch.Generator().manual_seed(ctx.seed + 1)
    kept, rewards, rows_mask = [], [], []
    for i, weight in enumerate(weights):
        rows = select_rows(policy, weight, k, params.selection, final_generator)
        kept.append(rows.cpu().tolist())
        rewards.append(spectrum_reward(spectra[i], weight[rows]))
        rows_mask.append(keep_mask(ffn_size, kept[-1]))
        ctx.progress.update(i + 1)

    ctx.details["prunenet"] = {
        "neurons_kept_per_layer": k,
        "ffn_ratio": m / ffn_size,
        "best_episode": best_episode,
        "best_total_reward": best_reward,
        "applied_total_reward": sum(rewards),
        "selection": params.selection,
    }
    ctx.files[POLICY_FILE] = _to_bytes(
        {"state_dict": {n: t.cpu() for n, t in best_state.items()}, "hidden_size": shape.hidden_size,
         "ffn_size": ffn_size, "episode": best_episode, "total_reward": best_reward}
    )
    ctx.files[KEPT_FILE] = json.dumps({"neurons_kept_per_layer": k, "kept": kept}).encode()
    ctx.files[REWARDS_FILE] = json.dumps(
        {"episode_total_reward": curve, "best_episode": best_episode, "applied_layer_rewards": rewards}, indent=1
    ).encode()
    head_mask = torch.ones(shape.num_layers, shape.layers[0].num_head_units)
    return Masks(head_mask, torch.stack(rows_mask))


#: The decoder families PruneNet is defined for (the LM's FFN; GPT-2, OPT, Llama-style).
DECODER_TYPES = frozenset({"gpt2", "opt", "llama", "mistral", "qwen2"})

SPEC = register_method(
    MethodSpec(
        name="prunenet",
        summary="PruneNet: calibration-free FFN slicing by a policy learned on the weights alone "
        "(the same width kept in every layer; attention untouched; no data, no forward pass).",
        kind="structured",
        needs="weights",
        params_model=PruneNetParams,
        run=compute_masks,
        stages=("policy", "select"),
        artifacts=(*MASK_ARTIFACTS, POLICY_FILE, KEPT_FILE, REWARDS_FILE),
        model_types=DECODER_TYPES,
        budget_scope_for=lambda params: "ffn",
    )
)
