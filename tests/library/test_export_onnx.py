"""``ppruning export --format onnx``: dynamic axes, parity with PyTorch, latency of pruned vs dense."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import transformers

from ppruning.cli.main import main
from ppruning.model.checkpoint import save_pruned
from ppruning.model.surgery import prune_model
from tests.library.arch_cases import random_masks

pytest.importorskip("onnxruntime")
pytest.importorskip("onnxscript")

FIXTURES = Path(__file__).parents[1] / "fixtures" / "custom"


@pytest.mark.slow
def test_export_of_pruned_tiny_bert_matches_torch_and_times_pruned_against_dense(
    tiny_bert_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    model = transformers.AutoModelForSequenceClassification.from_pretrained(
        tiny_bert_path, id2label={0: "neg", 1: "pos"}, label2id={"neg": 0, "pos": 1}
    ).eval()
    prune_model(model, random_masks(model, 3))
    tokenizer = transformers.AutoTokenizer.from_pretrained(tiny_bert_path)
    save_pruned(model, tokenizer, tmp_path / "model", extra={"source_model": {"id": str(tiny_bert_path)}})
    validation = FIXTURES / "reviews_validation.csv"
    argv = ["export", str(tmp_path / "model"), "--format", "onnx", "--output", str(tmp_path / "onnx"),
            "--quantize", "int8", "--repeats", "3", "--seq-len", "16",
            "--task", "text-classification", "--data-files", f"validation={validation}",
            "--text-column", "review", "--label-column", "sentiment"]
    assert main(argv) == 0
    capsys.readouterr()
    report = json.loads((tmp_path / "onnx" / "export_report.json").read_text())
    assert report["pruned"]["max_abs_diff"] <= 1e-4 and report["dense"]["max_abs_diff"] <= 1e-4
    assert report["pruned"]["latency_ms"] > 0 and report["dense"]["latency_ms"] > 0
    assert report["int8"]["latency_ms"] > 0 and report["int8"]["size_mb"] > 0
    # the task metric before (fp32 export) and after int8 quantisation, on the same labelled rows
    scored = report["task_metric"]
    rows = len(validation.read_text().strip().splitlines()) - 1
    assert scored["scored"] and scored["split"] == "validation" and scored["examples"] == rows
    assert 0.0 <= scored["pruned"]["accuracy"] <= 1.0 and 0.0 <= scored["int8"]["accuracy"] <= 1.0


@pytest.mark.slow
def test_export_of_pruned_minilm_passes_the_parity_check(minilm_path: Path, tmp_path: Path) -> None:
    from ppruning.export.onnx import export_onnx

    model = transformers.AutoModel.from_pretrained(minilm_path).eval()
    prune_model(model, random_masks(model, 11))
    save_pruned(model, None, tmp_path / "model", extra={"source_model": {"id": str(minilm_path)}})
    report = export_onnx(tmp_path / "model", tmp_path / "onnx", repeats=5, seq_len=64)
    assert report["pruned"]["max_abs_diff"] <= 1e-4
    assert report["dense"]["latency_ms"] > 0 and report["pruned"]["latency_ms"] > 0
