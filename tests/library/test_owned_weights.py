"""Loading weights into memory each tensor owns: the same model as ``from_pretrained``,
from a single file, shards or a ``.bin`` checkpoint, and freed weights' memory goes back."""

from __future__ import annotations

from pathlib import Path

import pytest
import torch
import transformers

from ppruning.model.heap import release_free_memory
from ppruning.model.owned_weights import from_pretrained_owned, safetensors_files
from ppruning.run.report import proc_status_bytes


def _files_holding(model: torch.nn.Module) -> set[str]:
    """The files whose mapping (``/proc/self/maps``) holds a parameter's memory."""
    regions = []
    for line in Path("/proc/self/maps").read_text().splitlines():
        span, *rest = line.split(maxsplit=5)
        start, end = (int(x, 16) for x in span.split("-"))
        regions.append((start, end, rest[4] if len(rest) > 4 else ""))
    held = set()
    for p in model.parameters():
        ptr = p.data_ptr()
        held |= {name for start, end, name in regions if start <= ptr < end and name.startswith("/")}
    return held


def _assert_same_weights(a: torch.nn.Module, b: torch.nn.Module, skip: str = "\0") -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        if not key.startswith(skip):
            torch.testing.assert_close(sa[key], sb[key], rtol=0, atol=0, msg=key)


@pytest.mark.skipif(not Path("/proc/self/maps").is_file(), reason="needs Linux's /proc/self/maps")
def test_each_weight_owns_its_memory_and_matches_from_pretrained(minilm_path: Path) -> None:
    auto = transformers.AutoModelForSequenceClassification
    owned = from_pretrained_owned(auto, str(minilm_path), num_labels=3)
    mapped = auto.from_pretrained(minilm_path, num_labels=3)
    assert type(owned) is type(mapped) and owned.config.num_labels == 3
    _assert_same_weights(owned, mapped, skip="classifier.")  # the new head is drawn at random
    assert owned.classifier.weight.shape == (3, owned.config.hidden_size)
    assert _files_holding(mapped) == {str((minilm_path / "model.safetensors").resolve())}  # what this avoids
    assert _files_holding(owned) == set()


def test_sharded_checkpoint_loads_every_shard(tiny_llama_path: Path, tmp_path: Path) -> None:
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_llama_path)
    model.save_pretrained(tmp_path, max_shard_size="20KB")
    assert (tmp_path / "model.safetensors.index.json").is_file()
    files = safetensors_files(str(tmp_path))
    assert files is not None and len(files) > 1
    _assert_same_weights(from_pretrained_owned(transformers.AutoModelForCausalLM, str(tmp_path)), model)


def test_a_bin_checkpoint_loads_the_usual_way(tiny_gpt2_path: Path, tmp_path: Path) -> None:
    model = transformers.AutoModelForCausalLM.from_pretrained(tiny_gpt2_path)
    model.config.save_pretrained(tmp_path)
    torch.save(model.state_dict(), tmp_path / "pytorch_model.bin")
    assert safetensors_files(str(tmp_path)) is None
    _assert_same_weights(from_pretrained_owned(transformers.AutoModelForCausalLM, str(tmp_path)), model)


def test_a_missing_model_fails_as_from_pretrained_does(tmp_path: Path) -> None:
    with pytest.raises(OSError):
        from_pretrained_owned(transformers.AutoModel, str(tmp_path / "nothing-here"))


@pytest.mark.skipif(proc_status_bytes("RssAnon") is None, reason="needs Linux's /proc/self/status")
def test_freed_tensors_memory_goes_back_to_the_os() -> None:
    """Once a mapped block is freed, glibc serves later 4 MB tensors from the heap and keeps them when freed."""
    first = torch.ones(2_000_000)  # 8 MB, mapped; freeing it raises glibc's mmap threshold
    del first
    tensors = [torch.ones(1_000_000) for _ in range(40)]  # 160 MB, now from the heap
    last = tensors[-1]  # alive at the top of the heap: the automatic trim cannot give the rest back
    del tensors
    before = proc_status_bytes("RssAnon") or 0
    assert release_free_memory()
    after = proc_status_bytes("RssAnon") or 0
    assert before - after > 100 * 2**20, f"only {(before - after) / 2**20:.0f} MB went back"
    del last


@pytest.mark.skipif(proc_status_bytes("RssAnon") is None, reason="needs Linux's /proc/self/status")
def test_a_loaded_model_gives_back_its_cut_weights_memory(tmp_path: Path) -> None:
    """The task loader reads owned weights, and cutting half the FFN lowers the process's memory."""
    from ppruning.model.loading import load_task_model
    from ppruning.model.refs import ModelRef
    from ppruning.model.surgery import prune_model
    from ppruning.tasks import get_task
    from ppruning.units.masks import Masks
    from tests.support.tiny_models import save_tiny_llama

    layers, hidden, ffn = 6, 256, 4096  # FFN weights: 6 x 3 x 4 MB = 72 MB
    save_tiny_llama(tmp_path, num_hidden_layers=layers, hidden_size=hidden, intermediate_size=ffn)
    model, _, _ = load_task_model(ModelRef(id=str(tmp_path)), get_task("causal-lm"))
    assert _files_holding(model) == set()
    before = proc_status_bytes("RssAnon") or 0
    neurons = torch.zeros(layers, ffn)
    neurons[:, : ffn // 2] = 1
    prune_model(model, Masks(torch.ones(layers, 2), neurons))
    freed = (before - (proc_status_bytes("RssAnon") or 0)) / 2**20
    assert freed > 25, f"cutting 36 MB of FFN weights changed memory by {-freed:.0f} MB"


@pytest.mark.parametrize("keep_bytes", [1000, -4096], ids=["header-cut", "data-cut"])
def test_a_truncated_weights_file_is_a_load_error_naming_the_model(
    tiny_llama_path: Path, tmp_path: Path, keep_bytes: int
) -> None:
    import shutil

    from ppruning.errors import ModelLoadError
    from ppruning.model.loading import load_task_model
    from ppruning.model.refs import ModelRef
    from ppruning.tasks import get_task

    shutil.copytree(tiny_llama_path, tmp_path / "model")
    weights = tmp_path / "model" / "model.safetensors"
    data = weights.read_bytes()
    weights.write_bytes(data[:keep_bytes])
    with pytest.raises(ModelLoadError) as caught:
        load_task_model(ModelRef(id=str(tmp_path / "model")), get_task("causal-lm"))
    assert caught.value.field == "model.id" and str(tmp_path / "model") in str(caught.value)
