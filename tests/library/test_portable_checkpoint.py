"""Pruned checkpoints load with plain transformers: the shipped modelling code where
layers differ, a stock config where they do not, never a silently re-initialised model."""

from __future__ import annotations

import ast
import json
import os
import subprocess
import sys
import textwrap
from pathlib import Path

import pytest
import torch
import transformers

import ppruning
from ppruning.model.checkpoint import save_pruned
from ppruning.model.portable.describe import HERE, SHIPPED_FILES
from ppruning.model.surgery import prune_model
from ppruning.units.masks import Masks
from tests.library.arch_cases import CASES, FAMILIES, HEADS, batch, family_paths, outputs, random_masks  # noqa: F401

#: (family, head) saved and reloaded by the fresh-process test: every registered family, every head it supports.
PORTABLE_CASES = CASES

# Run by a fresh interpreter in isolated mode (no repository on sys.path): loads every
# case with plain transformers, compares with load_pruned's outputs and generation, and
# checks that the refusals name the fix.
FRESH_PROCESS = textwrap.dedent(
    """
    import json, sys
    import torch, transformers

    cases = json.loads(sys.argv[1])
    for case in cases:
        path, auto, ref = case["path"], case["auto"], torch.load(case["ref"])
        model = getattr(transformers, auto).from_pretrained(path, trust_remote_code=True).eval()
        with torch.no_grad():
            out = model(**ref["inputs"])
        got = out.last_hidden_state if auto == "AutoModel" else (
            torch.cat([out.start_logits, out.end_logits], -1) if hasattr(out, "start_logits") else out.logits)
        torch.testing.assert_close(got, ref["outputs"], rtol=0, atol=1e-6)
        if "generated" in ref:  # greedy generation with the KV cache
            ids = ref["inputs"]["input_ids"][:1, :4]
            new = model.generate(ids, max_new_tokens=6, do_sample=False, use_cache=True)
            assert torch.equal(new, ref["generated"]), (new, ref["generated"])
        for kwargs in ({}, {"ignore_mismatched_sizes": True}):
            try:
                getattr(transformers, auto).from_pretrained(path, **kwargs)
            except ValueError as exc:
                assert "trust_remote_code=True" in str(exc), str(exc)
            else:
                raise AssertionError(f"{auto} loaded {path} without remote code ({kwargs})")
        if auto == "AutoModelForSequenceClassification":
            pipe = transformers.pipeline("text-classification", model=path, trust_remote_code=True)
            assert pipe("the movie was great")[0]["label"] in model.config.id2label.values()
    assert "ppruning" not in sys.modules, "the checkpoint's code imported ppruning"
    print("ok", len(cases))
    """
)


def run_fresh(script: str, *args: str, env: dict[str, str] | None = None, cwd: Path) -> str:
    environment = {k: v for k, v in os.environ.items() if k != "PYTHONPATH"}
    environment.update({"HF_HUB_OFFLINE": "1", "TRANSFORMERS_OFFLINE": "1", **(env or {})})
    done = subprocess.run(
        [sys.executable, "-I", "-c", script, *args], cwd=cwd, env=environment, capture_output=True, text=True,
        stdin=subprocess.DEVNULL,
    )
    assert done.returncode == 0, done.stderr[-4000:]
    return done.stdout


def save_case(source: Path, head: str, out: Path, masks_for=random_masks) -> dict[str, str]:
    """Prune ``source`` under ``head``, save it, and store load_pruned's outputs beside it."""
    auto = HEADS[head]
    model = getattr(transformers, auto).from_pretrained(source).eval()
    prune_model(model, masks_for(model, 3))
    save_pruned(model, transformers.AutoTokenizer.from_pretrained(source), out)
    reloaded = ppruning.load_pruned(out)
    inputs = batch(model.config.vocab_size)
    ref = {"inputs": inputs, "outputs": outputs(reloaded, inputs)}
    if head == "causal-lm":
        ref["generated"] = reloaded.generate(inputs["input_ids"][:1, :4], max_new_tokens=6, do_sample=False)
    torch.save(ref, out / "reference.pt")
    return {"path": str(out), "auto": auto, "ref": str(out / "reference.pt")}


@pytest.mark.slow
def test_every_family_loads_with_plain_transformers_in_a_fresh_process(
    family_paths: dict[str, Path], tmp_path: Path  # noqa: F811
) -> None:
    cases = [save_case(family_paths[f], head, tmp_path / f"{f}-{head}") for f, head in PORTABLE_CASES]
    for case in cases:
        config = json.loads((Path(case["path"]) / "config.json").read_text())
        assert config["model_type"].startswith("pruned_") and "AutoConfig" in config["auto_map"]
    assert run_fresh(FRESH_PROCESS, json.dumps(cases), cwd=tmp_path).strip().endswith(f"ok {len(cases)}")


@pytest.mark.slow
def test_real_minilm_pruned_loads_with_plain_transformers(minilm_path: Path, tmp_path: Path) -> None:
    case = save_case(minilm_path, "base", tmp_path / "minilm")
    assert run_fresh(FRESH_PROCESS, json.dumps([case]), cwd=tmp_path).strip().endswith("ok 1")


def test_a_stock_class_rejects_a_pruned_config_instead_of_reinitialising(tiny_bert_path: Path, tmp_path: Path) -> None:
    save_case(tiny_bert_path, "sequence-classification", tmp_path)
    with pytest.raises(Exception, match="intermediate_size|num_attention_heads"):
        transformers.BertForSequenceClassification.from_pretrained(tmp_path, ignore_mismatched_sizes=True)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_every_registered_family_has_a_portable_config_model_classes_and_a_stock_path(family: str) -> None:
    """Built from the registry: a family added as one adapter module is covered here unedited."""
    from transformers.models.auto.configuration_auto import CONFIG_MAPPING

    from ppruning.arch.layout import LAYOUT_KEY
    from ppruning.model.portable import configuration_pruned, modeling_pruned
    from ppruning.model.portable.describe import auto_map

    adapter = ppruning.arch.adapter_class(family)
    stock = CONFIG_MAPPING[family]
    config_class = configuration_pruned.pruned_config_class(stock)
    assert config_class.model_type == f"pruned_{family}" and issubclass(config_class, stock)
    mapped = auto_map(family, adapter)
    assert mapped["AutoConfig"] == f"configuration_pruned.{config_class.__name__}"
    for auto in ("AutoModel", "AutoModelForCausalLM" if adapter.is_decoder else "AutoModelForMaskedLM"):
        name = mapped[auto].split(".", 1)[1]
        assert getattr(modeling_pruned, name).config_class is config_class, auto
    fields = adapter.size_fields  # the stock path writes the pruned sizes into these
    stock_fields = set(stock().to_dict())
    assert {fields.hidden, fields.heads, fields.ffn} | ({fields.kv_heads} - {None}) <= stock_fields
    assert configuration_pruned.LAYOUT_KEY == LAYOUT_KEY  # the shipped file cannot import it


def test_shipped_files_import_only_torch_and_transformers() -> None:
    for name in SHIPPED_FILES:
        tree = ast.parse((HERE / name).read_text())
        roots = {a.name.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.Import) for a in n.names}
        roots |= {n.module.split(".")[0] for n in ast.walk(tree) if isinstance(n, ast.ImportFrom) and n.level == 0}
        assert roots <= {"__future__", "collections", "typing", "torch", "transformers"}, (name, roots)


def uniform_masks(model: torch.nn.Module, _seed: int) -> Masks:
    """Every layer keeps all head units (where the config has an explicit head size: the first unit only)
    and its first 40 neurons."""
    adapter = ppruning.arch.get_adapter(model)
    shape = adapter.shape()
    heads = torch.ones(shape.num_layers, shape.layers[0].num_head_units)
    if adapter.explicit_head_dim:
        heads[:, 1:] = 0
    neurons = torch.zeros(shape.num_layers, shape.layers[0].ffn_size)
    neurons[:, :40] = 1
    return Masks(heads, neurons)


@pytest.mark.parametrize("family", list(FAMILIES))
def test_a_uniform_structure_gives_a_stock_checkpoint(
    family: str, tmp_path: Path, family_paths: dict[str, Path]  # noqa: F811 - fixture
) -> None:
    head = FAMILIES[family][-1]  # causal-lm for decoders, question-answering for encoders
    case = save_case(family_paths[family], head, tmp_path, masks_for=uniform_masks)
    config = json.loads((tmp_path / "config.json").read_text())
    assert config["model_type"] == family and "auto_map" not in config
    assert not any((tmp_path / name).exists() for name in SHIPPED_FILES)
    model = getattr(transformers, case["auto"]).from_pretrained(tmp_path).eval()  # no remote code
    ref = torch.load(case["ref"])
    torch.testing.assert_close(outputs(model, ref["inputs"]), ref["outputs"], rtol=0, atol=1e-6)
    if ppruning.arch.adapter_class(family).explicit_head_dim:  # one KV group of two query heads kept
        assert (config["num_key_value_heads"], config["num_attention_heads"]) == (1, 2)


def test_a_checkpoint_in_the_old_layout_still_loads(
    tiny_bert_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Before configs were self-describing: stock model type, dense sizes, structure beside them."""
    monkeypatch.setattr("ppruning.model.checkpoint.write_config", lambda *args: False)
    model = transformers.AutoModel.from_pretrained(tiny_bert_path).eval()
    prune_model(model, random_masks(model, 3))
    save_pruned(model, None, tmp_path)
    assert json.loads((tmp_path / "config.json").read_text())["intermediate_size"] == 64
    ids = torch.tensor([[2, 40, 41, 3]])
    with torch.no_grad():
        torch.testing.assert_close(
            ppruning.load_pruned(tmp_path)(input_ids=ids).last_hidden_state, model(input_ids=ids).last_hidden_state
        )


def test_a_self_describing_checkpoint_without_its_layout_still_loads(tiny_bert_path: Path, tmp_path: Path) -> None:
    """Checkpoints written before configs carried ``pruned_layout`` (their own copies of the shipped
    files beside them): the library reads their size fields from the family's adapter."""
    case = save_case(tiny_bert_path, "sequence-classification", tmp_path)
    config = json.loads((tmp_path / "config.json").read_text())
    del config["pruned_layout"]
    (tmp_path / "config.json").write_text(json.dumps(config))
    ref = torch.load(case["ref"])
    torch.testing.assert_close(outputs(ppruning.load_pruned(tmp_path), ref["inputs"]), ref["outputs"], rtol=0, atol=0)


def test_saving_a_reloaded_checkpoint_keeps_it_self_describing(tiny_bert_path: Path, tmp_path: Path) -> None:
    save_case(tiny_bert_path, "sequence-classification", tmp_path / "first")
    save_pruned(ppruning.load_pruned(tmp_path / "first"), None, tmp_path / "again")  # as fine-tuning saves
    first = json.loads((tmp_path / "first" / "config.json").read_text())
    again = json.loads((tmp_path / "again" / "config.json").read_text())
    for key in ("model_type", "num_attention_heads", "intermediate_size", "auto_map", "architectures", "pruned_layout"):
        assert again[key] == first[key], key
    assert all((tmp_path / "again" / name).is_file() for name in SHIPPED_FILES)


HUB_SCRIPT = textwrap.dedent(
    """
    import sys, torch, transformers
    ref = torch.load(sys.argv[2])
    remote = transformers.AutoModelForSequenceClassification.from_pretrained(
        "org/pruned-bert", revision="v1", trust_remote_code=True).eval()
    with torch.no_grad():
        torch.testing.assert_close(remote(**ref["inputs"]).logits, ref["outputs"], rtol=0, atol=1e-6)
    assert "ppruning" not in sys.modules
    sys.path.insert(0, sys.argv[1])  # this checkout's library, not an installed one
    import ppruning
    with torch.no_grad():
        out = ppruning.load_pruned("org/pruned-bert", revision="v1")(**ref["inputs"]).logits
    torch.testing.assert_close(out, ref["outputs"], rtol=0, atol=1e-6)
    print("ok")
    """
)


def fill_hub_cache(cache: Path, repo_id: str, folder: Path, revision: str) -> None:
    """The layout huggingface_hub keeps offline: refs/<revision> -> snapshots/<commit>/<files>."""
    commit = "0123456789abcdef0123456789abcdef01234567"
    repo = cache / f"models--{repo_id.replace('/', '--')}"
    snapshot = repo / "snapshots" / commit
    snapshot.mkdir(parents=True)
    for file in folder.iterdir():
        if file.is_file() and file.name != "reference.pt":
            (snapshot / file.name).write_bytes(file.read_bytes())
    (repo / "refs").mkdir()
    (repo / "refs" / revision).write_text(commit)


@pytest.mark.slow
def test_a_hub_id_and_revision_load_offline_from_the_hub_cache(tiny_bert_path: Path, tmp_path: Path) -> None:
    case = save_case(tiny_bert_path, "sequence-classification", tmp_path / "saved")
    fill_hub_cache(tmp_path / "hub", "org/pruned-bert", tmp_path / "saved", "v1")
    env = {"HF_HUB_CACHE": str(tmp_path / "hub"), "HF_HOME": str(tmp_path / "hf-home")}
    out = run_fresh(HUB_SCRIPT, str(Path(__file__).parents[2]), case["ref"], env=env, cwd=tmp_path)
    assert out.strip().endswith("ok")


def test_an_unknown_hub_id_is_a_clear_error(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("HF_HUB_OFFLINE", "1")
    with pytest.raises(ppruning.errors.ModelLoadError, match="could not be fetched from the hub"):
        ppruning.load_pruned("org/not-in-the-cache", revision="v9")
