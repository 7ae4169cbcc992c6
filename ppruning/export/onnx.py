"""ONNX export of a checkpoint, checked against PyTorch and timed under onnxruntime.

The model is loaded with :func:`ppruning.load_pruned` (pruned or plain), wrapped so its
one output is a tensor (hidden states, logits, or start|end logits for QA), and exported
with torch's ONNX exporter with dynamic batch and sequence axes. The export is checked
on inputs of another batch size and length than the traced ones; the report holds the
largest absolute difference from PyTorch and the onnxruntime latency (median of
``repeats`` runs), for the pruned export and, when a dense model is given (by default
the source recorded in ``pruning.json``), for the dense export too. ``quantize="int8"``
adds onnxruntime's dynamic int8 quantisation of the pruned export (weights int8,
activations quantised on the fly) with its size, latency and difference.

``README.md`` beside the export is its model card (the pruning carried from the checkpoint's card).

Needs the ``export`` extra (``onnx``, ``onnxscript``, ``onnxruntime``).
"""

from __future__ import annotations

import json
import statistics
import time
from pathlib import Path
from typing import Any

import torch
from torch import nn

from ppruning.errors import InvalidConfigError
from ppruning.model.checkpoint import HEADS, PRUNING_FILE, head_name, load_pruned
from ppruning.run.outputs.model_card import exported_card, write_card
from ppruning.tasks.refs import TaskRef

QUANTIZE_CHOICES = ("int8",)


class _SingleOutput(nn.Module):
    """``model(input_ids, attention_mask)`` -> one tensor, no cache: what the export traces."""

    def __init__(self, model: nn.Module) -> None:
        super().__init__()
        self.model = model
        self.is_decoder = hasattr(model.config, "use_cache")

    def forward(self, input_ids: torch.Tensor, attention_mask: torch.Tensor) -> torch.Tensor:
        kwargs = {"use_cache": False} if self.is_decoder else {}
        out = self.model(input_ids=input_ids, attention_mask=attention_mask, **kwargs)
        if hasattr(out, "start_logits"):
            return torch.stack([out.start_logits, out.end_logits], dim=-1)
        return out.logits if hasattr(out, "logits") else out.last_hidden_state


def sample_inputs(vocab_size: int, batch: int, seq_len: int, seed: int = 0) -> dict[str, torch.Tensor]:
    g = torch.Generator().manual_seed(seed)
    ids = torch.randint(5, min(vocab_size, 1000), (batch, seq_len), generator=g)
    mask = torch.ones_like(ids)
    if batch > 1:
        mask[-1, seq_len // 2 :] = 0  # one padded row
    return {"input_ids": ids, "attention_mask": mask}


def export_model(model: nn.Module, path: Path) -> Path:
    """Write ``model`` to ``path`` (.onnx) with dynamic batch and sequence axes."""
    wrapped = _SingleOutput(model.eval())
    example = sample_inputs(model.config.vocab_size, batch=2, seq_len=8)
    batch, seq = torch.export.Dim("batch", min=1, max=1024), torch.export.Dim("sequence", min=2, max=4096)
    path.parent.mkdir(parents=True, exist_ok=True)
    with torch.no_grad():
        torch.onnx.export(
            wrapped,
            (example["input_ids"], example["attention_mask"]),
            str(path),
            input_names=["input_ids", "attention_mask"],
            output_names=["output"],
            dynamic_shapes={"input_ids": {0: batch, 1: seq}, "attention_mask": {0: batch, 1: seq}},
            dynamo=True,
            external_data=False,
        )
    return path


def _session(path: Path) -> Any:
    import onnxruntime

    options = onnxruntime.SessionOptions()
    options.log_severity_level = 3
    return onnxruntime.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def max_abs_diff(model: nn.Module, path: Path, inputs: dict[str, torch.Tensor]) -> float:
    """Largest |onnxruntime - PyTorch| over the real (unpadded) positions' outputs."""
    with torch.no_grad():
        want = _SingleOutput(model.eval())(**inputs).float().numpy()
    got = _session(path).run(None, {k: v.numpy() for k, v in inputs.items()})[0]
    return float(abs(got - want).max())


def latency_ms(path: Path, inputs: dict[str, torch.Tensor], repeats: int) -> float:
    """Median onnxruntime latency of one forward pass, after two warm-up runs."""
    session = _session(path)
    feed = {k: v.numpy() for k, v in inputs.items()}
    for _ in range(2):
        session.run(None, feed)
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        session.run(None, feed)
        times.append((time.perf_counter() - start) * 1000)
    return round(statistics.median(times), 3)


def file_mb(path: Path) -> float:
    files = [path, *path.parent.glob(path.name + ".data")]
    return round(sum(f.stat().st_size for f in files if f.is_file()) / 2**20, 3)


def quantize_int8(path: Path, out: Path) -> Path:
    from onnxruntime.quantization import QuantType, quantize_dynamic

    quantize_dynamic(str(path), str(out), weight_type=QuantType.QInt8)
    return out


def dense_source(model_dir: Path) -> tuple[str, str | None] | None:
    """The dense model recorded in ``pruning.json`` (id, revision), if any."""
    info_file = model_dir / PRUNING_FILE
    if not info_file.is_file():
        return None
    source = json.loads(info_file.read_text()).get("source_model") or {}
    return (source["id"], source.get("revision")) if source.get("id") else None


def export_onnx(
    model: str | Path,
    output: Path,
    *,
    dense: str | None = None,
    revision: str | None = None,
    quantize: str | None = None,
    batch: int = 1,
    seq_len: int = 128,
    repeats: int = 30,
    task: TaskRef | None = None,
    max_eval_samples: int = 500,
) -> dict[str, Any]:
    """Export ``model`` (and its dense source) to ``output``; returns the report (also written there).

    ``task``: also score the exports on the task's labelled evaluation split, the pruned
    export and (with ``quantize``) its int8 quantisation, so the cost of quantising is a metric.
    """
    if quantize is not None and quantize not in QUANTIZE_CHOICES:
        raise InvalidConfigError(f"unknown quantisation {quantize!r}; choose one of: {', '.join(QUANTIZE_CHOICES)}",
                                 field="quantize")
    output = Path(output)
    pruned = load_pruned(model, revision=revision)
    check = sample_inputs(pruned.config.vocab_size, batch=3, seq_len=13, seed=1)
    timed = sample_inputs(pruned.config.vocab_size, batch=batch, seq_len=seq_len, seed=2)
    pruned_path = export_model(pruned, output / "model.onnx")
    report: dict[str, Any] = {
        "model": str(model),
        "output": str(pruned_path),
        "timing_inputs": {"batch": batch, "sequence_length": seq_len, "repeats": repeats},
        "pruned": {
            "max_abs_diff": max_abs_diff(pruned, pruned_path, check),
            "latency_ms": latency_ms(pruned_path, timed, repeats),
            "size_mb": file_mb(pruned_path),
        },
    }
    source = (dense, None) if dense else dense_source(Path(model)) if Path(model).is_dir() else None
    if source is not None:
        head = head_name(pruned)
        reference = load_pruned(source[0], head=head if head in HEADS else None, revision=source[1])
        dense_path = export_model(reference, output / "dense" / "model.onnx")
        report["dense"] = {
            "model": source[0],
            "max_abs_diff": max_abs_diff(reference, dense_path, check),
            "latency_ms": latency_ms(dense_path, timed, repeats),
            "size_mb": file_mb(dense_path),
        }
        report["speedup"] = round(report["dense"]["latency_ms"] / report["pruned"]["latency_ms"], 3)
    if quantize == "int8":
        int8_path = quantize_int8(pruned_path, output / "model.int8.onnx")
        report["int8"] = {
            "output": str(int8_path),
            "max_abs_diff": max_abs_diff(pruned, int8_path, check),
            "latency_ms": latency_ms(int8_path, timed, repeats),
            "size_mb": file_mb(int8_path),
        }
    if task is not None and Path(model).is_dir():
        from ppruning.export.onnx_metrics import onnx_task_metrics

        scored = {"pruned": pruned_path, **({"int8": output / "model.int8.onnx"} if quantize == "int8" else {})}
        report["task_metric"] = onnx_task_metrics(scored, Path(model), task, max_eval_samples=max_eval_samples)
    (output / "export_report.json").write_text(json.dumps(report, indent=2, sort_keys=True) + "\n")
    write_card(exported_card(report, Path(model)), output)
    return report
