"""The one interface of the output writers, and what every writer does the same way.

The prune run hands a writer everything the run has made (:class:`RunOutputs`) and what
the method returned; the writer of the method's declared ``kind`` turns them into files
(:mod:`ppruning.run.outputs`). Whatever the kind, the method's own files (``ctx.files``)
are written beside the masks, the report and the reproducibility record close the run,
and :class:`PruneResult` lists the method's declared artifacts as written.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol

import torch
from torch import nn

from ppruning.methods.contract import MethodContext, MethodResult
from ppruning.recovery.compensation import COMPENSATION_FILE
from ppruning.run.outputs.model_card import pruned_card, write_card
from ppruning.run.plan import PrunePlan
from ppruning.run.provenance import write_record
from ppruning.run.report import StageTimer

REPORT_FILE = "report.json"
MODEL_DIR = "model"


@dataclass
class PruneResult:
    output_dir: Path
    model_dir: Path
    report: dict[str, Any]
    #: The method's declared artifacts as written, and compensation's refit (what a service stores besides the
    #: model and report).
    mask_files: list[Path] = field(default_factory=list)


@dataclass
class RunOutputs:
    """What a prune run has made by the time its outputs are written."""

    plan: PrunePlan
    ctx: MethodContext
    tokenizer: Any
    #: The dense model's costs (:func:`ppruning.units.cost.model_costs`) at the plan's sequence length.
    before: dict[str, Any]
    #: The data part of the record (:func:`ppruning.run.provenance.data_fingerprint`, or why there is none).
    data_record: dict[str, Any]
    timer: StageTimer
    device: torch.device
    output_dir: Path
    #: The (layer, part) projections compensation refitted in the model (None: it did not run).
    refit: list[tuple[int, str]] | None = None


class OutputWriter(Protocol):
    """Writes one method kind's outputs: masks, model, report and record, in stages ``materialise`` .. ``write``."""

    def write(self, run: RunOutputs, result: MethodResult) -> PruneResult: ...


def write_method_files(run: RunOutputs) -> None:
    """The method's own files (``ctx.files``), beside the masks; each must be one of its declared artifacts."""
    undeclared = sorted(set(run.ctx.files) - set(run.plan.method.artifacts))
    if undeclared:
        raise RuntimeError(
            f"method {run.plan.method.name!r} wrote {', '.join(undeclared)} without declaring them in its artifacts"
        )
    for name, contents in run.ctx.files.items():
        (run.output_dir / name).write_bytes(contents)


def finish(run: RunOutputs, report: dict[str, Any], model: nn.Module, model_dir: Path) -> PruneResult:
    """Record the run (``record.json``, also in the report), write ``report.json`` and the checkpoint's model card
    (``model/README.md``, :mod:`ppruning.run.outputs.model_card`); the result."""
    plan = run.plan
    report["record"] = write_record(
        "prune",
        plan.resolved_spec(),
        plan.config.model,
        model.config,
        run.data_record,
        run.output_dir,
        model_dir,
        method=plan.method_record(),
    )
    (run.output_dir / REPORT_FILE).write_text(json.dumps(report, indent=2) + "\n")
    write_card(pruned_card(report, model_dir), model_dir)
    names = (*plan.method.artifacts, COMPENSATION_FILE)  # the refit travels with the masks it belongs to
    written = [run.output_dir / name for name in names if (run.output_dir / name).exists()]
    return PruneResult(output_dir=run.output_dir, model_dir=model_dir, report=report, mask_files=written)
