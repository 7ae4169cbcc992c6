"""Decoder follow-up: what an output reconstruction after the cut does to SmolLM2-135M.

Reads the FFN-only masks ``bench/llm.py`` cached (``<results>/masks/<method>-<target>``)
and compares, by perplexity on the same held-out text, the cut model:
- ``plain``: as cut (the bench's no-fine-tune figure);
- ``scales``: the library's reconstruction (:mod:`ppruning.recovery.reconstruct`: one output scale
  per kept neuron by ridge least squares), fitted on the dense model's inputs
  (``sequential: false``) and layer by layer on the pruned model's (``sequential: true``);
- ``full-ls``: a full least-squares refit of each layer's ``down_proj`` on the kept
  neurons, ``W' = W S[:, K] (S[K, K] + r I)^-1`` with ``S`` the second moment of the dense
  model's ``down_proj`` inputs (r relative to the mean diagonal). This is not in the
  library; it is here to measure how much of a pruned neuron's output the kept ones carry.

A unit that is redundant in P-pruning's sense (its output close to a kept unit's, up to
scale and sign) is exactly one whose contribution a refit recovers; a random unit is not.
Only FFN masks: attention is left whole, so ``S`` is per layer [d_ffn, d_ffn].

Run after ``bench/llm.py`` (same ``--results``):
``PYTHONPATH=. python bench/llm_reconstruct.py --masks ppruning-ffn-uniform-0.2 random-ffn-0.2 prunenet-0.2``
"""

from __future__ import annotations

import argparse
import copy
import sys
import time
from pathlib import Path
from typing import Any

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from llm import REPO, calibration_examples, perplexity, text_blocks  # noqa: E402 - bench scripts run as files

from ppruning.arch import get_adapter  # noqa: E402
from ppruning.model.surgery import prune_model  # noqa: E402
from ppruning.recovery.reconstruct import ReconstructConfig, reconstruct  # noqa: E402
from ppruning.units.masks import Masks, load_masks  # noqa: E402
from tests.support.smollm2 import save_smollm2  # noqa: E402


@torch.no_grad()
def down_proj_moments(model: torch.nn.Module, examples: list[dict[str, list[int]]]) -> list[torch.Tensor]:
    """Per layer, sum over calibration tokens of x x^T for the dense model's ``down_proj`` input x."""
    layers = model.model.layers
    ffn = model.config.intermediate_size
    moments = [torch.zeros(ffn, ffn, dtype=torch.float64) for _ in layers]

    def hook(i: int) -> Any:
        def add(module: torch.nn.Module, args: tuple[torch.Tensor, ...]) -> None:
            x = args[0].reshape(-1, ffn).double()
            moments[i].add_(x.T @ x)

        return add

    handles = [layer.mlp.down_proj.register_forward_pre_hook(hook(i)) for i, layer in enumerate(layers)]
    try:
        for example in examples:  # one row at a time: no padding enters the moments
            model(input_ids=torch.tensor([example["input_ids"]]))
    finally:
        for h in handles:
            h.remove()
    return moments


@torch.no_grad()
def refit_down_proj(
    pruned: torch.nn.Module, dense: torch.nn.Module, masks: Masks, moments: list[torch.Tensor], ridge: float
) -> None:
    for i, layer in enumerate(pruned.model.layers):
        kept = torch.nonzero(masks.neuron_mask[i] > 0.5).flatten()
        if len(kept) == masks.neuron_mask.shape[1]:
            continue
        s_kk = moments[i][kept][:, kept]
        lam = ridge * float(s_kk.diagonal().mean())
        w = dense.model.layers[i].mlp.down_proj.weight.double()
        eye = torch.eye(len(kept), dtype=torch.float64)
        layer.mlp.down_proj.weight.copy_(torch.linalg.solve(s_kk + lam * eye, (w @ moments[i][:, kept]).T).T.float())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--model", type=Path, default=REPO / ".bench" / "smollm2-135m-fp32")
    p.add_argument("--text", type=Path, default=REPO / ".bench" / "llm-text")
    p.add_argument("--results", type=Path, default=REPO / ".bench" / "llm-results")
    p.add_argument("--masks", nargs="+", required=True, help="cached mask folders, e.g. ppruning-ffn-uniform-0.2")
    p.add_argument("--rows", type=int, default=400, help="calibration snippets (bench/llm.py's max instances)")
    p.add_argument("--max-length", type=int, default=128)
    p.add_argument("--eval-blocks", type=int, default=24)
    p.add_argument("--ridge", type=float, nargs="+", default=[1e-3, 1e-2])
    p.add_argument("--scale-tokens", type=int, default=4096, help="the library reconstruction's calibration tokens")
    args = p.parse_args(argv)
    start = time.perf_counter()
    from transformers import AutoModelForCausalLM, AutoTokenizer

    model_dir = save_smollm2(args.model)
    tokenizer = AutoTokenizer.from_pretrained(model_dir)
    dense = AutoModelForCausalLM.from_pretrained(model_dir, dtype=torch.float32).eval()
    test = text_blocks(tokenizer, args.text / "test.txt", 256, args.eval_blocks)
    examples = calibration_examples(tokenizer, args.text / "train.txt", args.rows, args.max_length)
    moments = down_proj_moments(dense, examples)
    tokens = sum(len(e["input_ids"]) for e in examples)
    columns = ["plain", "scales (dense inputs)", "scales (sequential)", *(f"full-ls r={r:g}" for r in args.ridge)]
    lines = ["| masks | " + " | ".join(columns) + " |", "|---" * (len(columns) + 1) + "|"]
    for name in args.masks:
        masks = load_masks(args.results / "masks" / name)
        figures = []
        model = copy.deepcopy(dense)
        prune_model(model, masks, get_adapter(model))
        figures.append(perplexity(model, test))
        for sequential in (False, True):
            model = copy.deepcopy(dense)
            adapter = get_adapter(model)
            config = ReconstructConfig(tokens=args.scale_tokens, sequential=sequential)
            fitted = reconstruct(model, adapter, masks, examples, config, pad_token_id=tokenizer.pad_token_id or 0)
            prune_model(model, fitted.masks, adapter)
            figures.append(perplexity(model, test))
        for ridge in args.ridge:
            model = copy.deepcopy(dense)
            prune_model(model, masks, get_adapter(model))
            refit_down_proj(model, dense, masks, moments, ridge)
            figures.append(perplexity(model, test))
        lines.append(f"| {name} | " + " | ".join(f"{f:,.1f}" for f in figures) + " |")
        print(lines[-1], flush=True)
    command = "PYTHONPATH=. python bench/llm_reconstruct.py " + " ".join(sys.argv[1:] if argv is None else argv)
    dense_ppl = perplexity(dense, test)
    print(f"\n{command}\nperplexity on {test.numel()} held-out tokens (dense {dense_ppl:.1f}); full-ls moments from")
    print(f"{tokens} calibration tokens ({len(examples)} snippets); wall time {time.perf_counter() - start:.0f} s\n")
    print("\n".join(lines))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
