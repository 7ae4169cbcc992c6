"""ppruning.load_pruned: one call rebuilds the reduced shapes, for any head, and plain
HF checkpoints load too."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest
import torch
import transformers

import ppruning
from ppruning.arch import get_adapter
from ppruning.errors import InvalidConfigError, ModelLoadError
from ppruning.model.checkpoint import save_pruned
from ppruning.model.mask_hooks import apply_masks
from ppruning.model.surgery import count_parameters, prune_model
from ppruning.units.masks import Masks
from tests.library.arch_cases import random_masks


def pruned_checkpoint(source: Path, auto_class: str, out: Path, seed: int = 3) -> tuple[torch.nn.Module, Masks]:
    model = getattr(transformers, auto_class).from_pretrained(source).eval()
    masks = random_masks(model, seed)
    prune_model(model, masks)
    save_pruned(model, transformers.AutoTokenizer.from_pretrained(source), out, extra={"method": "test"})
    return model, masks


def test_import_ppruning_stays_light_and_exports_load_pruned() -> None:
    code = "import sys, ppruning; assert 'torch' not in sys.modules, 'torch imported'; ppruning.load_pruned"
    subprocess.run([sys.executable, "-c", code], check=True)


def test_pruning_json_records_structure_head_and_versions(tiny_bert_path: Path, tmp_path: Path) -> None:
    _, masks = pruned_checkpoint(tiny_bert_path, "AutoModelForSequenceClassification", tmp_path)
    info = json.loads((tmp_path / "pruning.json").read_text())
    assert info["format_version"] == 1 and info["model_type"] == "bert"
    assert info["head"] == "sequence-classification" and info["head_class"] == "BertForSequenceClassification"
    assert info["structure"]["num_head_units"] == masks.head_counts()
    assert info["structure"]["ffn_size"] == masks.neuron_counts()
    assert info["original"]["ffn_size"] == [64, 64, 64]
    assert info["method"] == "test" and info["versions"]["transformers"] == transformers.__version__
    assert (tmp_path / "tokenizer.json").is_file() or (tmp_path / "vocab.txt").is_file()


def test_a_checkpoint_loads_with_another_head_keeping_the_pruned_backbone(tiny_gpt2_path: Path, tmp_path: Path) -> None:
    lm, _ = pruned_checkpoint(tiny_gpt2_path, "AutoModelForCausalLM", tmp_path)
    ids = torch.tensor([[40, 41, 42, 43, 44]])
    with torch.no_grad():
        want = lm.transformer(input_ids=ids).last_hidden_state
        base = ppruning.load_pruned(tmp_path, head="base")
        cls = ppruning.load_pruned(tmp_path, head="sequence-classification")
        assert type(base).__name__ == "GPT2Model" and type(cls).__name__ == "GPT2ForSequenceClassification"
        torch.testing.assert_close(base(input_ids=ids).last_hidden_state, want)
        torch.testing.assert_close(cls.transformer(input_ids=ids).last_hidden_state, want)


def test_a_base_checkpoint_loads_under_a_task_head(tiny_bert_path: Path, tmp_path: Path) -> None:
    base, _ = pruned_checkpoint(tiny_bert_path, "AutoModel", tmp_path)
    qa = ppruning.load_pruned(tmp_path, head="question-answering")
    ids = torch.tensor([[2, 40, 41, 3]])
    with torch.no_grad():
        torch.testing.assert_close(qa.bert(input_ids=ids).last_hidden_state, base(input_ids=ids).last_hidden_state)


def test_plain_hf_checkpoint_loads_unchanged(tiny_bert_path: Path) -> None:
    model = ppruning.load_pruned(tiny_bert_path)
    reference = transformers.AutoModel.from_pretrained(tiny_bert_path).eval()
    assert not model.training
    ids = torch.tensor([[2, 40, 41, 3]])
    with torch.no_grad():
        torch.testing.assert_close(model(input_ids=ids).last_hidden_state, reference(input_ids=ids).last_hidden_state)


def test_saved_dtype_is_kept(tiny_bert_path: Path, tmp_path: Path) -> None:
    model = transformers.AutoModel.from_pretrained(tiny_bert_path).to(torch.bfloat16)
    prune_model(model, random_masks(model, 5))
    save_pruned(model, None, tmp_path)
    assert ppruning.load_pruned(tmp_path).embeddings.word_embeddings.weight.dtype == torch.bfloat16


def test_unknown_head_and_missing_folder_are_clear_errors(tiny_bert_path: Path, tmp_path: Path) -> None:
    with pytest.raises(InvalidConfigError, match="unknown head 'token-classification'; choose one of: base"):
        ppruning.load_pruned(tiny_bert_path, head="token-classification")
    with pytest.raises(ModelLoadError, match="not a folder"):
        ppruning.load_pruned(tmp_path / "nowhere")


def test_a_truncated_pruned_checkpoint_is_a_load_error(tiny_bert_path: Path, tmp_path: Path) -> None:
    pruned_checkpoint(tiny_bert_path, "AutoModelForSequenceClassification", tmp_path)
    weights = tmp_path / "model.safetensors"
    weights.write_bytes(weights.read_bytes()[:-4096])
    with pytest.raises(ModelLoadError, match="cannot read the weights in .*model.safetensors") as caught:
        ppruning.load_pruned(tmp_path)
    assert caught.value.field == "model"


def test_real_minilm_pruned_equals_masked_and_reloads_smaller(minilm_path: Path, tmp_path: Path) -> None:
    """Real pretrained weights (all-MiniLM-L6-v2): large activations, 12 heads, 1536 neurons."""
    model = transformers.AutoModel.from_pretrained(minilm_path).eval()
    tokenizer = transformers.AutoTokenizer.from_pretrained(minilm_path)
    inputs = tokenizer(["the movie was great", "a terrible film with a boring plot"], padding=True, return_tensors="pt")
    masks = random_masks(model, seed=11)
    with torch.no_grad(), apply_masks(model, masks):
        masked = model(**inputs).last_hidden_state
    before = count_parameters(model)
    prune_model(model, masks)
    with torch.no_grad():
        torch.testing.assert_close(model(**inputs).last_hidden_state, masked, atol=1e-5, rtol=1e-4)
    save_pruned(model, tokenizer, tmp_path)
    reloaded = ppruning.load_pruned(tmp_path)
    assert count_parameters(reloaded) == count_parameters(model) < before
    assert [la.num_head_units for la in get_adapter(reloaded).shape().layers] == masks.head_counts()
    with torch.no_grad():
        torch.testing.assert_close(reloaded(**inputs).last_hidden_state, masked, atol=1e-5, rtol=1e-4)
