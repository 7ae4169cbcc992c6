"""Writing a layers method's result: the decoder with whole layers removed, timings, the report.

``materialise``: the method's own files are written, then the layers are cut out
(:func:`ppruning.model.layer_surgery.drop_layers`); where compensation refit the layer below a
removed run, its projections go to ``compensation.safetensors`` first, under the unpruned
model's layer indices (:func:`ppruning.recovery.layer_compensation.apply_layer_refit`).
``measure`` (when ``config.measure``): the dense and the shallower model timed as for any
structured method. ``write``: the model under ``model/`` with ``save_pretrained`` (a stock
config: fewer layers, each of the original shape, so plain transformers loads it), its
tokenizer and ``pruning.json``; then
``report.json`` and ``record.json``. The report's ``layers`` list every original layer
(a removed one keeps no head and no neuron) and ``layers_removed`` names them.
"""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ppruning.methods.contract import MethodResult
from ppruning.model.layer_surgery import drop_layers
from ppruning.model.surgery import count_parameters
from ppruning.recovery.compensation import save_refit
from ppruning.recovery.layer_compensation import layer_refit_tensors
from ppruning.run.outputs.base import MODEL_DIR, PruneResult, RunOutputs, finish, write_method_files
from ppruning.run.outputs.structured import measure_models
from ppruning.run.report import build_report
from ppruning.units.cost import model_costs
from ppruning.units.layer_drop import LayerDrop

PRUNING_FILE = "pruning.json"


def save_shallower(model: nn.Module, tokenizer: Any, directory: Path, extra: dict[str, Any]) -> Path:
    """``save_pretrained`` + tokenizer + ``pruning.json`` (no per-layer structure: the stock config is exact)."""
    import transformers

    from ppruning.model.checkpoint import FORMAT_VERSION, head_name
    from ppruning.version import __version__

    directory.mkdir(parents=True, exist_ok=True)
    model.save_pretrained(directory)
    if tokenizer is not None:
        tokenizer.save_pretrained(directory)
    info = {
        "format_version": FORMAT_VERSION,
        "model_type": model.config.model_type,
        "head": head_name(model),
        "head_class": type(model).__name__,
        "loads_with": "stock",
        "num_hidden_layers": int(model.config.num_hidden_layers),
        "parameters": count_parameters(model),
        "versions": {"ppruning": __version__, "torch": torch.__version__, "transformers": transformers.__version__},
        **extra,
    }
    (directory / PRUNING_FILE).write_text(json.dumps(info, indent=2, sort_keys=True) + "\n")
    return directory


class LayersWriter:
    """The output writer of ``kind="layers"`` methods: :class:`~ppruning.units.layer_drop.LayerDrop` in,
    a shallower model with a stock config out."""

    def write(self, run: RunOutputs, result: MethodResult) -> PruneResult:
        plan, ctx, timer = run.plan, run.ctx, run.timer
        config, model, adapter, shape = plan.config, ctx.model, ctx.adapter, ctx.shape
        if not isinstance(result, LayerDrop):
            raise TypeError(f"method {plan.method.name!r} is declared layers but returned {type(result).__name__}")
        if result.num_layers != shape.num_layers:
            raise ValueError(f"the result names {result.num_layers} layers, the model has {shape.num_layers}")

        timer.start_stage("materialise")
        timer.checkpoint()
        run.output_dir.mkdir(parents=True, exist_ok=True)
        write_method_files(run)
        if run.refit is not None:  # compensation refit the layer below each removed run: stored by original index
            refitted = [layer for layer, _ in run.refit]
            save_refit(layer_refit_tensors(model, adapter, refitted), run.output_dir)
        dense = copy.deepcopy(model) if config.measure else None
        drop_layers(model, result.removed, adapter)

        if config.measure:
            timer.start_stage("measure")
        after = model_costs(model, adapter.shape(), plan.seq_len)
        speed = measure_models(config, dense, model, shape, plan.task, run.tokenizer, run.device, timer)
        del dense

        timer.start_stage("write")
        extra = {
            "method": config.method,
            "seed": config.seed,
            "source_model": config.model.model_dump(mode="json"),
            "layers_removed": list(result.removed),
            "original_num_hidden_layers": result.num_layers,
        }
        model_dir = save_shallower(model, run.tokenizer, run.output_dir / MODEL_DIR, extra)
        removed = set(result.removed)
        original = shape.structure()
        method = plan.method_record()
        report = build_report(
            config=plan.resolved_spec(),
            method_params=method["params"],
            head_kept=[0 if i in removed else n for i, n in enumerate(original["num_head_units"])],
            neuron_kept=[0 if i in removed else n for i, n in enumerate(original["ffn_size"])],
            original=original,
            before=run.before,
            after=after,
            budget={
                "kind": config.target.kind,
                "target": config.target.value,
                "seq_len": plan.seq_len,
                "unit": "layer",
                "layers_removed": len(result.removed),
                "num_layers": result.num_layers,
                "note": "every layer costs the same: the smallest count of layers whose share meets the target",
            },
            stage_seconds=timer.finish(),
            device=run.device,
            details=ctx.details,
        )
        report["kind"] = "layers"
        report["method_version"] = method["version"]
        report["sampling"] = method["sampling"]
        report["layers_removed"] = list(result.removed)
        report["speed"] = speed
        return finish(run, report, model, model_dir)
