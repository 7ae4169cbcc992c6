"""``ppruning prune``: compute masks, cut the model and write masks, checkpoint and report into a folder.

    ppruning prune --model bert-base-uncased --task sst2 --flops-reduction 0.3 --output out/
    ppruning prune --model ./my-model --task text-classification --data-files train=a.csv \\
        --text-column text --label-column label --method random --params-reduction 0.4 --output out/
    ppruning prune --model ./llm --task causal-lm ... --method prunenet --params-reduction 0.3 \\
        --policy out-20/policy.pt --output out-30/    # a trained PruneNet policy, sliced at another ratio

The sampling flags (``--max-instances``, ``--max-length``, ``--batch-size``,
``--sampling-tokens``, ``--cost-length``) fill the sampling block every method accepts
(``--cost-length max|mean|N``: the length the FLOPs budget is costed at: ``--max-length``,
the inputs' mean real length, or N tokens), so one command line serves every method; a method
that reads no data says in its report that it did not use them. Method parameters have
flags of their own (``--lambda-val`` ...) or ``--param KEY=VALUE``; only the ones given are
passed, so each method's defaults apply. A bad input exits 2 with one line naming the field.
"""

from __future__ import annotations

import argparse
import json
import sys
from pathlib import Path
from typing import Any

from ppruning.cli.checks import check_model, check_output_folder
from ppruning.cli.task_args import add_task_arguments, quiet_libraries, task_dict, third_party_bars_off
from ppruning.errors import InvalidConfigError


def _number_or_word(value: str) -> int | float | str:
    """``--cost-length``: ``max``, ``mean``, or a number of tokens (the config validates which)."""
    for kind in (int, float):
        try:
            return kind(value)
        except ValueError:
            pass
    return value


#: flag dest -> (type, help), for the sampling block shared by every method (defaults: SamplingConfig's,
#: named in the help; a test keeps them in step without importing torch to print a help text)
_SAMPLING_FLAGS = {
    "max_instances": (int, "task examples read from the train split (default: 3000)"),
    "max_length": (int, "token limit per example, also the budget's sequence length (default: the task's)"),
    "batch_size": (int, "examples per forward pass while reading data (default: 32)"),
    "sampling_tokens": (int, "real token positions sampled, by methods that sample positions (default: 200)"),
    "cost_length": (
        _number_or_word,
        "tokens the FLOPs budget is costed at: 'max' (the token limit), 'mean' (the "
        "sampled inputs' mean real length) or a number (default: max)",
    ),
}
#: flag dest -> (type, help), for method parameters (passed only when given: each method's default applies)
_PARAM_FLAGS = {
    "lambda_val": (float, "removed cost split 1 : LAMBDA_VAL between attention and FFN (default: the method's; 5.0 "
                   "for ppruning)"),
    "allocation": (str, "'global': one threshold per unit type over all layers; 'uniform': every layer cut "
                   "alike (default: the method's; global for ppruning)"),
    "distance_mode": (str, "ppruning: 'condensed' (linkage on the distance matrix) or 'reference' (the reference "
                      "code's Chebyshev over its rows) (default: condensed)"),
    "head_matching": (str, "ppruning: matching of head dimensions, 'greedy' (reference) or 'hungarian' (exact) "
                      "(default: greedy)"),
}  # fmt: skip


def register(sub: argparse._SubParsersAction) -> None:
    p = sub.add_parser(
        "prune",
        help="prune a model (P-pruning or a baseline) and write masks, the pruned model and a report",
        description="Prune a model with a registered method; writes the masks, model/ and report.json into "
        "--output. Sampling and method flags left out take the method's own defaults.",
    )
    p.add_argument("--model", required=True, help="hub id or local folder")
    p.add_argument("--revision", default=None, help="hub branch, tag or commit")
    add_task_arguments(p)
    p.add_argument("--method", default="ppruning", help="a registered method (see `ppruning methods`)")
    target = p.add_mutually_exclusive_group(required=True)
    target.add_argument("--flops-reduction", type=float, help="fraction of attention+FFN FLOPs to remove")
    target.add_argument("--params-reduction", type=float, help="fraction of attention+FFN parameters to remove")
    p.add_argument("--output", required=True, type=Path, help="folder for masks, model/ and report.json")
    p.add_argument("--seed", type=int, default=3407, help="seed of every random choice (data sample, methods)")
    p.add_argument("--device", default="auto", help="auto (CUDA when available), cpu, cuda, cuda:N, mps")
    for name, (kind, text) in {**_SAMPLING_FLAGS, **_PARAM_FLAGS}.items():
        p.add_argument("--" + name.replace("_", "-"), dest=name, type=kind, default=None, help=text)
    p.add_argument(
        "--policy",
        default=None,
        metavar="PATH",
        help="prunenet: reuse the policy an earlier run trained (its policy.pt, or its output folder); "
        "only the slicing runs",
    )
    p.add_argument("--param", action="append", default=[], metavar="KEY=VALUE", help="any method parameter (JSON)")
    comp = p.add_argument_group("compensation (least-squares refit of the output projections; on by default)")
    comp.add_argument(
        "--compensation",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="refit the kept units' output projections after the method (default: on for structured methods)",
    )
    comp.add_argument("--compensation-tokens", type=int, default=None, help="calibration tokens (default 8192)")
    comp.add_argument(
        "--compensation-alpha",
        type=float,
        default=None,
        help="ridge, relative to the normal matrix's mean diagonal (default 0.01)",
    )
    comp.add_argument(
        "--compensation-target",
        choices=("current", "dense"),
        default=None,
        help="what the refit reproduces: the unpruned projection on the pruned model's inputs ('current') or the "
        "dense model's output on dense inputs ('dense') (default: current)",
    )
    comp.add_argument(
        "--compensation-outliers",
        choices=("downweight", "exclude", "keep"),
        default=None,
        help="tokens with massive activations in the statistics: weighted down, left out or kept as they are "
        "(default: downweight)",
    )
    keep = p.add_argument_group("outlier neurons (those that write massive activations, kept; on by default)")
    keep.add_argument(
        "--outlier-units",
        action=argparse.BooleanOptionalAction,
        default=None,
        help="keep the FFN neurons whose peak activation towers over their layer's, at unchanged counts "
        "(default: on for structured methods)",
    )
    keep.add_argument(
        "--outlier-ratio",
        type=float,
        default=None,
        help="peak |activation| over the layer's median peak that makes a neuron an outlier (default 40)",
    )
    p.add_argument(
        "--no-measure",
        dest="measure",
        action="store_false",
        help="skip timing the dense and the pruned model (the report gives the cost model's ideal speedup only)",
    )
    p.add_argument("--quiet", action="store_true", help="no progress on stderr")
    p.set_defaults(func=run)


def _pairs(values: list[str], flag: str) -> dict[str, str]:
    out = {}
    for item in values:
        key, sep, value = item.partition("=")
        if not sep or not key:
            raise InvalidConfigError(f"{flag} takes KEY=VALUE, got {item!r}", field=flag.lstrip("-"))
        out[key] = value
    return out


def _json_value(text: str) -> Any:
    try:
        return json.loads(text)
    except json.JSONDecodeError:
        return text


def build_config(args: argparse.Namespace) -> Any:
    """The :class:`PruneConfig` the flags describe; pydantic errors become one-line InvalidConfigErrors.

    Method parameters are checked with the rest of the plan when the run resolves it.
    """
    from pydantic import ValidationError

    from ppruning.run.config import PruneConfig

    check_model(args.model)
    check_output_folder(args.output)
    params: dict[str, Any] = {k: getattr(args, k) for k in _PARAM_FLAGS if getattr(args, k) is not None}
    params.update({k: _json_value(v) for k, v in _pairs(args.param, "--param").items()})
    if args.policy is not None:
        params["policy"] = str(Path(args.policy).expanduser().resolve())
    sampling = {k: getattr(args, k) for k in _SAMPLING_FLAGS if getattr(args, k) is not None}
    task = task_dict(args)
    target = (
        {"flops_reduction": args.flops_reduction}
        if args.flops_reduction is not None
        else {"params_reduction": args.params_reduction}
    )
    raw: dict[str, Any] = {
        "model": {"id": args.model, "revision": args.revision},
        "task": task,
        "method": args.method,
        "target": target,
        "params": params,
        "sampling": sampling,
        "seed": args.seed,
        "device": args.device,
    }
    compensation = _compensation(args)
    if compensation is not None:
        raw["compensation"] = compensation
    if args.outlier_units is False:
        if args.outlier_ratio is not None:
            raise InvalidConfigError("--no-outlier-units takes no --outlier-ratio", field="outlier_units")
        raw["outlier_units"] = False
    elif args.outlier_ratio is not None:
        raw["outlier_units"] = {"ratio": args.outlier_ratio}
    if not args.measure:
        raw["measure"] = False
    try:
        return PruneConfig.model_validate(raw)
    except ValidationError as exc:
        first = exc.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "config"
        message = first["msg"].replace("Value error, ", "")
        raise InvalidConfigError(message, field=field) from None


def _compensation(args: argparse.Namespace) -> dict[str, Any] | bool | None:
    """The compensation block the flags give: False (--no-compensation), options, or None (the default)."""
    options = {
        key: getattr(args, f"compensation_{key}")
        for key in ("tokens", "alpha", "target", "outliers")
        if getattr(args, f"compensation_{key}") is not None
    }
    if args.compensation is False:
        if options:
            raise InvalidConfigError("--no-compensation takes no --compensation-* options", field="compensation")
        return False
    return options or (True if args.compensation else None)


def run(args: argparse.Namespace) -> int:
    from ppruning.progress import NULL_PROGRESS, StderrProgress
    from ppruning.run.prune import prune

    config = build_config(args)
    quiet_libraries() if args.quiet else third_party_bars_off()  # our progress, not theirs besides it
    result = prune(config, args.output, NULL_PROGRESS if args.quiet else StderrProgress())
    print(summary_line(config.model.id, config.method, result.report), file=sys.stdout)
    written = ",".join(sorted(path.name for path in result.mask_files) + ["report.json"])
    print(f"wrote {result.output_dir}/{{{written}}} and {result.model_dir}")
    return 0


def summary_line(model: str, method: str, report: dict[str, Any]) -> str:
    """One line of what the run removed, from the report of the method's kind.

    A structured method's report has per-layer kept units and FLOPs; an unstructured one's
    (``kind: unstructured``) has weight density instead, its shapes (and FLOPs) unchanged.
    """
    achieved = report["achieved"]
    if report.get("kind") == "unstructured":
        return (
            f"pruned {model} with {method}: "
            f"weights -{achieved['params_reduction_pruned_part']:.1%} (attention+FFN), "
            f"-{achieved['params_reduction_whole_model']:.1%} (whole model); "
            f"density {achieved['density_pruned_part']:.1%}; shapes and FLOPs unchanged (unstructured masks)"
        )
    return (
        f"pruned {model} with {method}: "
        f"FLOPs -{achieved['flops_reduction_pruned_part']:.1%} (attention+FFN), "
        f"-{achieved['flops_reduction_whole_model']:.1%} (whole model); "
        f"params -{achieved['params_reduction_whole_model']:.1%} (whole model); "
        f"heads kept per layer {[layer['heads_kept'] for layer in report['layers']]}"
    )
