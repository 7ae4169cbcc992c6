"""``ppruning inspect DIR``: reload a pruned checkpoint and run one forward pass.

What a user (and the demo) does after downloading ``model.tar.gz``: proof that the folder
loads in one call with :func:`ppruning.load_pruned`, with its per-layer structure and
parameter count, before it goes anywhere else.
"""

from __future__ import annotations

import argparse
import json


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser("inspect", help="reload a pruned checkpoint, print its structure and run one forward pass")
    p.add_argument("model_dir", help="a folder written by 'ppruning prune' (or unpacked from model.tar.gz)")
    p.add_argument("--text", default="The film was a delight from start to finish.", help="input of the forward pass")
    p.add_argument("--json", action="store_true", help="one JSON document instead of text")
    p.set_defaults(func=run)


def run(args: argparse.Namespace) -> int:
    from pathlib import Path

    import torch

    from ppruning.arch import get_adapter
    from ppruning.model.checkpoint import load_pruned
    from ppruning.model.loading import load_tokenizer

    model = load_pruned(args.model_dir).eval()
    tokenizer = load_tokenizer(Path(args.model_dir))
    with torch.no_grad():
        out = model(**tokenizer([args.text], return_tensors="pt"))
    first = next(iter(out.values()))
    shape = get_adapter(model).shape()
    summary = {
        "class": type(model).__name__,
        "parameters": sum(p.numel() for p in model.parameters()),
        "head_units_per_layer": [la.num_head_units for la in shape.layers],
        "ffn_per_layer": [la.ffn_size for la in shape.layers],
        "output_shape": list(first.shape),
    }
    if args.json:
        print(json.dumps(summary, indent=2))
        return 0
    print(
        f"load_pruned: {summary['class']}, {summary['parameters']:,} parameters, "
        f"forward pass ok (output {tuple(summary['output_shape'])})"
    )
    print(f"heads (KV groups for GQA) per layer: {summary['head_units_per_layer']}")
    print(f"FFN neurons per layer: {summary['ffn_per_layer']}")
    return 0
