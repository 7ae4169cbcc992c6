"""PruneNet learns once and prunes at any ratio: a three-point sweep trained at every point against one
trained at the first point and reused at the others. Wall time of each ``prune()`` (load, policy, slice,
write), and whether the reused policy keeps the rows of the run that trained it at the same ratio.

    .venv/bin/python bench/prunenet_reuse.py --model .bench/smollm2-135m-fp32 --targets 0.1 0.2 0.3

``--model``: a decoder folder (SmolLM2-135M as ``bench/llm.py`` writes it, or any other). PruneNet
reads no data; the task only completes the config. ``measure`` is off: the speed of the cut model
is not what is timed.
"""

from __future__ import annotations

import argparse
import json
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import torch

REPO = Path(__file__).resolve().parents[1]
CORPUS = REPO / "tests" / "fixtures" / "custom" / "corpus_train.txt"


def run(model: Path, target: float, out: Path, episodes: int, seed: int, policy: str | None) -> dict[str, Any]:
    from ppruning import PruneConfig, prune

    params: dict[str, Any] = {"num_episodes": episodes}
    if policy is not None:
        params["policy"] = policy
    config = PruneConfig.model_validate(
        {
            "model": {"id": str(model)},
            "task": {"name": "causal-lm", "data_files": {"train": str(CORPUS)}},
            "method": "prunenet",
            "target": {"params_reduction": target},
            "params": params,
            "measure": False,
            "device": "cpu",
            "seed": seed,
        }
    )
    began = time.monotonic()
    result = prune(config, out)
    seconds = time.monotonic() - began
    kept = json.loads((Path(result.output_dir) / "prunenet_kept.json").read_text())["kept"]
    policy_used = result.report["details"]["prunenet"]["policy"]
    print(json.dumps({"target": target, "policy": policy_used, "seconds": round(seconds, 1)}), flush=True)
    return {
        "target": target,
        "policy": policy_used,
        "seconds": round(seconds, 1),
        "kept": kept,
        "output": str(result.output_dir),
    }


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--model", type=Path, default=REPO / ".bench" / "smollm2-135m-fp32")
    p.add_argument("--targets", type=float, nargs="+", default=[0.1, 0.2, 0.3])
    p.add_argument("--episodes", type=int, default=20)
    p.add_argument("--seed", type=int, default=3407)
    p.add_argument("--threads", type=int, default=1)
    args = p.parse_args(argv)
    torch.set_num_threads(args.threads)
    with tempfile.TemporaryDirectory(prefix="prunenet-reuse-") as tmp:
        work = Path(tmp)
        each = [run(args.model, t, work / f"each-{t}", args.episodes, args.seed, None) for t in args.targets]
        first = each[0]
        policy = str(Path(first["output"]) / "policy.pt")
        trained = first  # the sweep that trains once trains at its first point, as the run above did
        reused = [run(args.model, t, work / f"once-{t}", args.episodes, args.seed, policy) for t in args.targets]
    train_each = sum(r["seconds"] for r in each)
    train_once = trained["seconds"] + sum(r["seconds"] for r in reused[1:])
    summary = {
        "model": str(args.model),
        "targets": args.targets,
        "episodes": args.episodes,
        "threads": args.threads,
        "train_each_s": [r["seconds"] for r in each],
        "train_once_s": [trained["seconds"], *[r["seconds"] for r in reused[1:]]],
        "reuse_at_trained_ratio_s": reused[0]["seconds"],
        "sweep_train_each_s": round(train_each, 1),
        "sweep_train_once_s": round(train_once, 1),
        "saved_s": round(train_each - train_once, 1),
        "saved_share": round(1 - train_once / train_each, 3),
        "same_rows_at_the_trained_ratio": reused[0]["kept"] == first["kept"],
        "policies": [r["policy"] for r in reused],
    }
    print(json.dumps(summary, indent=1))
    print("command:", " ".join(["bench/prunenet_reuse.py", *(argv or sys.argv[1:])]))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
