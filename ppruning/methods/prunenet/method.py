"""PruneNet (Sengupta et al., ICLR 2025): calibration-free FFN slicing by a policy learned on the weights.

docs/algorithms.md, PruneNet. No data and no forward pass of the LM: a small policy
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
- ``selection="top_k"`` keeps the k largest alpha instead of sampling (deterministic);
- ``policy`` reuses a policy an earlier run trained and wrote (``policy.pt``): no
  training, only the slicing at this run's target, with the same seeded selection, so a
  reused policy keeps the rows the run that trained it kept at the same ratio and seed.

Every layer keeps the same number of neurons, k = d_ffn - m, the smallest m that removes
the target's share of attention+FFN cost from the FFN alone; the report gives that FFN
ratio m / d_ffn (the paper's slicing ratio) beside the whole-model ratios.
"""

from __future__ import annotations

import copy
import json
import math
from typing import Any

import torch

from ppruning.arch.base import ArchAdapter
from ppruning.errors import InvalidConfigError
from ppruning.methods.contract import MASK_ARTIFACTS, MethodContext, MethodSpec
from ppruning.methods.prunenet.params import PruneNetParams
from ppruning.methods.prunenet.policy import SlicingPolicy, run_episode, select_rows, spectrum_reward
from ppruning.methods.prunenet.policy_file import POLICY_FILE, load_policy, policy_bytes, policy_path
from ppruning.methods.registry import register_method
from ppruning.units.budget import Budget
from ppruning.units.masks import Masks
from ppruning.units.select import keep_mask

KEPT_FILE = "prunenet_kept.json"
REWARDS_FILE = "prunenet_rewards.json"


def ffn_in_weight(adapter: ArchAdapter, layer: int) -> torch.Tensor:
    """The layer's FFN-in weight as [d_ffn, d] in float32 (gate_proj for gated FFNs, as the reference)."""
    return adapter.weight_out_in(adapter.neuron_input_modules(layer)[0]).detach().float()


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


def train_policy(
    ctx: MethodContext, policy: SlicingPolicy, weights: list[torch.Tensor], spectra: list[torch.Tensor], k: int
) -> tuple[dict[str, torch.Tensor], int, float, list[float]]:
    """REINFORCE over ``num_episodes``: (the state that earned the best total reward, its episode, that reward,
    the curve of every episode's total reward)."""
    params: PruneNetParams = ctx.params
    optimizer = torch.optim.AdamW(policy.parameters(), lr=params.learning_rate)
    generator = torch.Generator().manual_seed(ctx.seed)
    ffn_size = weights[0].shape[0]
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
    return best_state, best_episode, best_reward, curve


def compute_masks(ctx: MethodContext) -> Masks:
    params: PruneNetParams = ctx.params
    shape = ctx.shape
    ffn_size = shape.layers[0].ffn_size
    m = neurons_removed_per_layer(ctx.budget, ffn_size, torch.as_tensor(ctx.budget.costs.neuron))
    k = ffn_size - m
    device = next(ctx.model.parameters()).device

    torch.manual_seed(ctx.seed)  # the policy's initial weights
    policy = SlicingPolicy(shape.hidden_size, ffn_size).to(device)
    weights = [ffn_in_weight(ctx.adapter, i) for i in range(shape.num_layers)]  # views of the weights, no copies
    spectra = [torch.linalg.svdvals(w) for w in weights]

    trained_for: dict[str, Any] = {"neurons_kept_per_layer": k, "model": _model_record(ctx)}
    if params.policy is not None:  # learned once: only the slicing runs
        saved = load_policy(params.policy, shape.hidden_size, ffn_size)
        best_state, best_episode, best_reward = saved["state_dict"], int(saved["episode"]), float(saved["total_reward"])
        curve: list[float] = []
        trained_for = saved.get("trained_for") or {}
        ctx.progress.event(f"reusing the trained policy {params.policy} (no training): keep {k} of {ffn_size}")
    else:
        best_state, best_episode, best_reward, curve = train_policy(ctx, policy, weights, spectra, k)

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
        "policy": "reused" if params.policy is not None else "trained",
        "policy_source": params.policy,
        "policy_trained_for": trained_for,
        "best_episode": best_episode,
        "best_total_reward": best_reward,
        "applied_total_reward": sum(rewards),
        "selection": params.selection,
    }
    ctx.files[POLICY_FILE] = policy_bytes(
        best_state, hidden_size=shape.hidden_size, ffn_size=ffn_size, episode=best_episode,
        total_reward=best_reward, neurons_kept_per_layer=int(trained_for.get("neurons_kept_per_layer", k)),
        model=trained_for.get("model"),
    )  # fmt: skip
    ctx.files[KEPT_FILE] = json.dumps({"neurons_kept_per_layer": k, "kept": kept}).encode()
    ctx.files[REWARDS_FILE] = json.dumps(
        {"episode_total_reward": curve, "best_episode": best_episode, "applied_layer_rewards": rewards,
         "policy": "reused" if params.policy is not None else "trained"}, indent=1
    ).encode()  # fmt: skip
    head_mask = torch.ones(shape.num_layers, shape.layers[0].num_head_units)
    return Masks(head_mask, torch.stack(rows_mask))


def _model_record(ctx: MethodContext) -> dict[str, Any] | None:
    ref = ctx.model_ref
    return {"id": ref.id, "revision": ref.revision} if ref is not None else None


def check(params: PruneNetParams, model: Any, task: Any, hf_config: Any) -> None:
    """Submission check: a named policy file is there (its sizes are checked against the weights at the run)."""
    if params.policy is not None:
        policy_path(params.policy)


def _stages(params: PruneNetParams) -> tuple[str, ...]:
    return ("select",) if params.policy is not None else ("policy", "select")


def supports(adapter: type[ArchAdapter]) -> bool:
    """PruneNet is defined for decoders (a language model's FFN), as their adapters declare."""
    return adapter.is_decoder


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
        stages_for=_stages,
        check=check,
        artifacts=(*MASK_ARTIFACTS, POLICY_FILE, KEPT_FILE, REWARDS_FILE),
        supports=supports,
        budget_scope_for=lambda params: "ffn",
    )
)
