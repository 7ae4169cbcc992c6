"""Every checkpoint folder the library writes carries a model card that huggingface_hub parses.

A tiny BERT with a card of its own (license, base model) is pruned with P-pruning, timed
briefly, fine-tuned on sst2's offline stand-in and exported to ONNX; each card is read back
with huggingface_hub's parser and must name the method, the targets, the figures of the
report and a load snippet that works.
"""

from __future__ import annotations

import json
import re
import shutil
from pathlib import Path

import pytest
import torch
from huggingface_hub import ModelCard

from ppruning.finetune.run import finetune
from ppruning.model.refs import ModelRef
from ppruning.run.config import FinetuneConfig, PruneConfig
from ppruning.run.outputs.model_card import SUMMARY_KEY
from ppruning.run.prune import prune
from ppruning.tasks.refs import TaskRef

BASE_CARD = "---\nlicense: mit\nbase_model: google-bert/bert-base-uncased\n---\n\n# a tiny BERT\n"
QUICK_TIMING = {"batch_sizes": [1], "repeats": 2, "warmup": 0, "max_seconds": 4.0, "seconds_per_batch": 2.0}


def _python_blocks(card: ModelCard) -> list[str]:
    return re.findall(r"```python\n(.*?)```", card.text, flags=re.S)


@pytest.fixture(scope="module")
def pruned(tiny_bert_path: Path, tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict]:
    base = shutil.copytree(tiny_bert_path, tmp_path_factory.mktemp("base") / "tiny-bert")
    (base / "README.md").write_text(BASE_CARD)
    fixtures = Path(__file__).parents[1] / "fixtures"
    task = {"name": "sst2"}
    out = tmp_path_factory.mktemp("pruned")
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PPRUNING_DATASETS_DIR", str(fixtures / "datasets"))
        config = PruneConfig(
            model={"id": str(base)}, task=task, target={"flops_reduction": 0.3},
            params={"sampling_tokens": 40, "lambda_val": 1}, sampling={"max_instances": 16}, seed=3,
            measure=QUICK_TIMING, device="cpu",
        )  # fmt: skip
        result = prune(config, out)
    return Path(result.model_dir), result.report


def test_a_pruned_checkpoint_has_a_card_with_hub_metadata_figures_and_a_working_load_snippet(pruned) -> None:
    model_dir, report = pruned
    card = ModelCard.load(model_dir / "README.md")
    data = card.data.to_dict()
    assert data["base_model"] == "google-bert/bert-base-uncased"  # carried from the base model's card
    assert data["license"] == "mit"
    assert data["pipeline_tag"] == "text-classification" and data["library_name"] == "transformers"
    assert {"pruned", "structured-pruning", "pruning-method-ppruning", "sst2"} <= set(data["tags"])
    assert data["datasets"]  # sst2's hub dataset
    summary = data[SUMMARY_KEY]
    assert summary["method"] == "ppruning" and summary["target"] == {"flops_reduction": 0.3}
    assert summary["achieved"] == report["achieved"]

    text = card.text
    assert "`ppruning` (structured pruning)" in text and "flops reduction 30.0%" in text
    assert f"{100 * report['achieved']['flops_reduction_whole_model']:.1f}%" in text
    speed = report["speed"]
    assert speed["measured"] and f"{speed['ideal_speedup']:.2f}x" in text
    if speed["speedup"] is not None:
        assert f"**{speed['speedup']:.2f}x**" in text
    else:
        assert "not given" in text
    for row in report["layers"]:
        assert f"| {row['layer']} | {row['heads_kept']} / {row['heads_total']} |" in text
    comp = report["details"]["compensation"]  # the defaults: outlier neurons kept, projections refit
    assert f"least squares on {comp['tokens']} calibration tokens" in text and "Outlier neurons" in text

    # the snippets load the checkpoint as written: plain transformers (remote code) and the library
    inputs = torch.tensor([[101, 7, 8, 9, 102]])
    outputs = []
    for block in _python_blocks(card)[:2]:
        scope: dict = {}
        exec(block.replace("path/to/this/folder", str(model_dir)), scope)  # noqa: S102 - the card's own code
        with torch.no_grad():
            outputs.append(scope["model"].eval()(input_ids=inputs).logits)
    assert len(outputs) == 2 and torch.allclose(outputs[0], outputs[1], atol=1e-5)


def test_the_fine_tuned_checkpoint_carries_the_pruning_and_states_its_metrics(pruned, tmp_path: Path) -> None:
    model_dir, report = pruned
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("PPRUNING_DATASETS_DIR", str(Path(__file__).parents[1] / "fixtures" / "datasets"))
        config = FinetuneConfig(
            model=ModelRef(id=str(model_dir)), task=TaskRef(name="sst2"),
            epochs=1, batch_size=16, learning_rate=1e-3, max_length=24, device="cpu",
        )  # fmt: skip
        result = finetune(config, tmp_path)
    card = ModelCard.load(result.model_dir / "README.md")
    data = card.data.to_dict()
    assert data["base_model"] == "google-bert/bert-base-uncased" and data["license"] == "mit"
    assert "pruning-method-ppruning" in data["tags"] and "fine-tuned" in data["tags"]
    assert data[SUMMARY_KEY]["achieved"] == report["achieved"]
    accuracy = result.metrics["validation"]["accuracy"]
    scored = {(r.dataset_split, r.metric_type): r.metric_value for r in card.data.eval_results}
    assert scored[("validation", "accuracy")] == pytest.approx(accuracy)
    assert f"accuracy {accuracy:.4f}" in card.text and "How it was pruned" in card.text
    assert "trust_remote_code=True" in card.text and "load_pruned(" in card.text


@pytest.mark.slow
def test_an_onnx_export_has_a_card_naming_its_source_and_how_to_run_it(pruned, tmp_path: Path) -> None:
    pytest.importorskip("onnxruntime")
    pytest.importorskip("onnxscript")
    from ppruning.export.onnx import export_onnx

    model_dir, _ = pruned
    report = export_onnx(model_dir, tmp_path, dense=str(model_dir), repeats=2, seq_len=8)
    card = ModelCard.load(tmp_path / "README.md")
    data = card.data.to_dict()
    assert data["library_name"] == "onnx" and "onnx" in data["tags"] and data["license"] == "mit"
    assert data[SUMMARY_KEY]["method"] == "ppruning"
    assert "onnxruntime.InferenceSession" in card.text
    assert str(report["pruned"]["latency_ms"]) in card.text
    json.loads((tmp_path / "export_report.json").read_text())
