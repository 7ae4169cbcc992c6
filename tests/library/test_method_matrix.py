"""Every registered method on every registered adapter's tiny model, end to end through ``prune()``.

The matrix is read from the two registries (methods and their ``allocation`` choices;
the adapters' model types), so a new method or a new adapter is covered here without
editing this file. Every run leaves every artifact its method declares. A method that
declares it does not support a model type must refuse it when the plan resolves
(submission), before any weight is read.
"""

from __future__ import annotations

import typing
from pathlib import Path

import pytest
import torch

from ppruning import load_pruned
from ppruning.arch.registry import supported_model_types
from ppruning.errors import UnsupportedModelError
from ppruning.methods import all_methods
from ppruning.run.config import PruneConfig
from ppruning.run.plan import resolve_prune_plan
from ppruning.run.prune import prune
from ppruning.units.masks import load_masks
from tests.support.registry_models import save_tiny
from tests.support.reviews import reviews_task

FIXTURES = Path(__file__).parents[1] / "fixtures" / "custom"
REVIEWS = reviews_task()
#: Parameters that keep every method quick on a tiny model, where the method has them
#: (training methods: a few steps; heads: a fresh classifier, as tiny models have no MLM head).
_QUICK = {"lambda_val": 1.0, "steps": 3, "train_batch_size": 4, "head": "new"}
#: OPT runs fast by default (its collection once crashed); the rest of the matrix is marked slow.
FAST_MODEL_TYPES = ("opt",)
#: Where every ``allocation`` choice runs: allocation is the method's logic over unit scores, the
#: same for every family, so one encoder and two decoders (one with GQA) cover it; every other
#: family runs each method at its default allocation (what reads the family's units).
ALL_ALLOCATIONS_ON = ("bert", "llama", "opt")
#: Where weight-mask (unstructured) methods run: they mask every Linear (and GPT-2's Conv1D) the
#: same way whatever the family, so an encoder, GPT-2's Conv1D and two decoders cover them.
UNSTRUCTURED_ON = ("bert", "gpt2", "llama", "opt")


def _allocations(params_model: type, model_type: str) -> tuple[str, ...]:
    field = params_model.model_fields.get("allocation")
    if field is None:
        return (None,)
    return typing.get_args(field.annotation) if model_type in ALL_ALLOCATIONS_ON else (field.default,)


def _cases() -> list:
    cases = []
    for model_type in supported_model_types():
        for name, spec in all_methods().items():
            if spec.kind == "unstructured" and model_type not in UNSTRUCTURED_ON:
                continue
            for allocation in _allocations(spec.params_model, model_type):
                marks = () if model_type in FAST_MODEL_TYPES else (pytest.mark.slow,)
                case_id = f"{model_type}-{name}-{allocation}"
                cases.append(pytest.param(model_type, name, allocation, marks=marks, id=case_id))
    return cases


@pytest.fixture(scope="module")
def tiny_paths() -> dict[str, Path]:
    """Each model type's tiny model, saved on first use and shared by the module."""
    return {}


def _model_path(tiny_paths: dict[str, Path], model_type: str, tmp_path_factory: pytest.TempPathFactory) -> Path:
    if model_type not in tiny_paths:
        tiny_paths[model_type] = save_tiny(model_type, tmp_path_factory.mktemp(f"tiny-{model_type}"))
    return tiny_paths[model_type]


@pytest.mark.parametrize(("model_type", "method", "allocation"), _cases())
def test_every_method_prunes_every_adapter_end_to_end(
    model_type: str,
    method: str,
    allocation: str | None,
    tiny_paths: dict[str, Path],
    tmp_path_factory: pytest.TempPathFactory,
    tmp_path: Path,
) -> None:
    path = _model_path(tiny_paths, model_type, tmp_path_factory)
    spec = all_methods()[method]
    fields = spec.params_model.model_fields
    params = {k: v for k, v in _QUICK.items() if k in fields} | ({"allocation": allocation} if allocation else {})
    target = "flops_reduction" if "flops" in spec.targets else "params_reduction"
    config = PruneConfig.model_validate(
        {
            "model": {"id": str(path)},
            "task": REVIEWS,
            "method": method,
            "target": {target: 0.15},
            "params": params,
            "sampling": {"max_instances": 24, "sampling_tokens": 24, "max_length": 32},
            "measure": False,
            "seed": 5,
        }
    )
    if spec.model_types and model_type not in spec.model_types:
        with pytest.raises(UnsupportedModelError, match=method):
            resolve_prune_plan(config)
        return

    result = prune(config, tmp_path / "out")
    written = {path.name for path in result.mask_files}
    missing = [name for name in spec.artifacts if not (result.output_dir / name).is_file() or name not in written]
    assert not missing, f"{method} declares {missing} but did not write them"
    if spec.kind == "structured":
        assert result.report["achieved"][f"{target}_pruned_part"] >= 0.15 - 1e-6
        masks = load_masks(result.output_dir)
        assert (masks.head_mask.sum(dim=1) >= 1).all() and (masks.neuron_mask.sum(dim=1) >= 1).all()
    else:  # weight masks: the files the method declares, the dense checkpoint with the masks applied
        assert result.mask_files and all(path.is_file() for path in result.mask_files)
    reloaded = load_pruned(result.model_dir)
    ids = torch.randint(5, reloaded.config.vocab_size, (2, 9), generator=torch.Generator().manual_seed(0))
    with torch.no_grad():
        logits = reloaded(input_ids=ids, attention_mask=torch.ones_like(ids)).logits
    assert torch.isfinite(logits).all()
