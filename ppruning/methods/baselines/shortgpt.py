"""``shortgpt``: ShortGPT (Men et al., 2024), removing whole decoder layers by Block Influence.

docs/algorithms.md, decoder baselines, ShortGPT. One pass of the dense model over the
calibration inputs; for every decoder layer, hooks take its input and output hidden states
and average, over the real (non-pad) tokens, the cosine between the two:
BI_l = 1 - mean_t cos(x_l,t, x_l+1,t). A layer whose output barely turns its input adds
little; the n layers of lowest BI are removed, n the smallest count whose share of the
layers meets the target (every layer costs the same, so n / L of the attention + FFN cost,
FLOPs or parameters). The report gives the count, the layers and every layer's BI.
Decoders only: the paper's measure is of a causal LM's residual stream, and an encoder's
post-norm blocks (BERT) do not pass their input through unchanged.
"""

from __future__ import annotations

import json
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ppruning.arch.base import ArchAdapter
from ppruning.errors import DataError
from ppruning.methods.baselines.calibration import dense_pass
from ppruning.methods.contract import MethodContext, MethodParams, MethodSpec
from ppruning.methods.registry import register_method
from ppruning.progress import NULL_PROGRESS, Progress
from ppruning.units.layer_drop import LayerDrop, layers_to_remove

LAYERS_FILE = "shortgpt_layers.json"


class ShortGPTParams(MethodParams):
    """No parameters of its own: ``lambda_val`` is accepted (every method's) and plays no part."""


def _hidden(value: Any) -> torch.Tensor:
    return value[0] if isinstance(value, tuple | list) else value


def block_influence(
    model: nn.Module,
    adapter: ArchAdapter,
    examples: Sequence[Mapping[str, Any]],
    *,
    batch_size: int = 32,
    pad_token_id: int = 0,
    progress: Progress = NULL_PROGRESS,
) -> np.ndarray:
    """BI per layer: 1 - the mean over real tokens of cos(layer input, layer output), from the dense model."""
    if not examples:
        raise DataError("shortgpt reads calibration inputs, and the task gave none", field="task")
    blocks = adapter.layers()
    device = next(model.parameters()).device
    cos_sum = torch.zeros(len(blocks), dtype=torch.float64, device=device)
    current: dict[str, Any] = {}

    def take_input(layer: int) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
            current[layer] = _hidden(args[0] if args else kwargs["hidden_states"])

        return hook

    def take_output(layer: int) -> Any:
        def hook(module: nn.Module, args: tuple[Any, ...], kwargs: dict[str, Any], output: Any) -> None:
            mask = current["mask"]
            x, y = current.pop(layer)[mask].double(), _hidden(output)[mask].double()
            cos_sum[layer] += torch.nn.functional.cosine_similarity(x, y, dim=-1).sum()

        return hook

    handles = []
    for i, block in enumerate(blocks):
        handles.append(block.register_forward_pre_hook(take_input(i), with_kwargs=True))
        handles.append(block.register_forward_hook(take_output(i), with_kwargs=True))
    tokens = dense_pass(model, adapter, examples, handles, lambda mask: current.__setitem__("mask", mask),
                        batch_size=batch_size, pad_token_id=pad_token_id, progress=progress)  # fmt: skip
    if tokens == 0:
        raise DataError("the calibration inputs hold no real tokens", field="task")
    return (1.0 - cos_sum / tokens).cpu().numpy()


def shortgpt_layers(ctx: MethodContext) -> LayerDrop:
    assert ctx.examples is not None and ctx.target is not None, "shortgpt reads task inputs and a target"
    num_layers = ctx.shape.num_layers
    count = layers_to_remove(ctx.target, num_layers)
    scores = block_influence(
        ctx.model,
        ctx.adapter,
        ctx.examples,
        batch_size=ctx.sampling.batch_size,
        pad_token_id=ctx.pad_token_id,
        progress=ctx.progress,
    )
    ctx.progress.start_stage("select", total=1)
    removed = sorted(int(i) for i in np.argsort(scores, kind="stable")[:count])
    ctx.progress.update(1)
    record = {
        "layers_removed": removed,
        "count": count,
        "num_layers": num_layers,
        "share_removed": count / num_layers,
        "block_influence": [float(s) for s in scores],
    }
    ctx.details["shortgpt"] = record
    ctx.files[LAYERS_FILE] = (json.dumps(record, indent=2) + "\n").encode()
    return LayerDrop(tuple(removed), num_layers, tuple(float(s) for s in scores))


def supports(adapter: type[ArchAdapter]) -> bool:
    return adapter.is_decoder


SHORTGPT = register_method(
    MethodSpec(
        name="shortgpt",
        summary="ShortGPT (Men et al., 2024): removes whole decoder layers, those whose output is most like "
        "their input (lowest Block Influence, 1 - cosine) on calibration inputs.",
        kind="layers",
        needs="inputs",
        params_model=ShortGPTParams,
        run=shortgpt_layers,
        stages=("collect", "select"),
        artifacts=(LAYERS_FILE,),
        supports=supports,
    )
)
