"""Methods: registry and parameter ranges, centroids inside a model, baselines' counts and choices."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest
import torch
from pydantic import ValidationError
from transformers import AutoModel

from ppruning.errors import InvalidConfigError
from ppruning.methods.baselines.magnitude import magnitude_scores
from ppruning.methods.contract import SamplingConfig
from ppruning.methods.registry import all_methods
from ppruning.run.config import PruneConfig
from ppruning.run.plan import resolve_prune_plan
from ppruning.run.prune import prune
from ppruning.units.masks import load_masks
from tests.support.reviews import reviews_task

FIXTURES = Path(__file__).parents[1] / "fixtures" / "custom"
REVIEWS = reviews_task()


def _config(model: Path, method: str = "ppruning", target: float = 0.2, seed: int = 3, **params) -> PruneConfig:
    return PruneConfig(
        model={"id": str(model)},
        task=REVIEWS,
        method=method,
        target={"flops_reduction": target},
        params={"lambda_val": 1, **params},
        seed=seed,
    )


def test_registry_lists_the_methods_with_their_json_schemas() -> None:
    methods = all_methods()
    assert {"ppruning", "random", "magnitude"} <= set(methods)
    schema = methods["ppruning"].json_schema()["properties"]
    sampling = SamplingConfig.model_json_schema()["properties"]  # one block, shared by every method
    assert sampling["sampling_tokens"]["default"] == 200 and sampling["max_instances"]["default"] == 3000
    assert "sampling_tokens" not in schema and "max_instances" not in schema
    assert schema["lambda_val"]["default"] == 5.0
    assert set(schema["distance_mode"]["enum"]) == {"condensed", "reference"}
    assert set(schema["head_matching"]["enum"]) == {"greedy", "hungarian"}
    assert set(methods["random"].json_schema()["properties"]["allocation"]["enum"]) == {"uniform", "ppruning"}
    for name in ("ppruning", "random", "magnitude"):  # one allocation field, 'uniform' for every method
        assert "uniform" in methods[name].json_schema()["properties"]["allocation"]["enum"]


@pytest.mark.parametrize("params", [{"sampling_tokens": 1}, {"max_instances": 0}])
def test_out_of_range_sampling_settings_are_rejected_by_the_config(params: dict) -> None:
    with pytest.raises(ValidationError):
        PruneConfig(model={"id": "m"}, task={"name": "sst2"}, target={"flops_reduction": 0.3}, params=params)


@pytest.mark.parametrize(
    ("params", "field"),
    [
        ({"lambda_val": -1}, "params.lambda_val"),
        ({"distance_mode": "euclid"}, "params.distance_mode"),
        ({"bogus": 1}, "params.bogus"),
    ],
)
def test_out_of_range_parameters_are_rejected_when_the_plan_resolves(params: dict, field: str) -> None:
    config = PruneConfig(model={"id": "m"}, task={"name": "sst2"}, target={"flops_reduction": 0.3}, params=params)
    with pytest.raises(InvalidConfigError) as err:
        resolve_prune_plan(config)
    assert err.value.field == field


def test_duplicated_head_shares_a_cluster_and_the_larger_member_is_kept(tiny_bert_path: Path, tmp_path: Path) -> None:
    """Head 2 of layer 0 is 3x head 1 (same Q, K; V tripled): distance 0, one cluster; head 2 is the centroid."""
    model = AutoModel.from_pretrained(tiny_bert_path)
    attn = model.encoder.layer[0].attention.self
    w = attn.attention_head_size
    with torch.no_grad():
        for proj, scale in ((attn.query, 1.0), (attn.key, 1.0), (attn.value, 3.0)):
            proj.weight[2 * w : 3 * w] = proj.weight[w : 2 * w] * scale
            proj.bias[2 * w : 3 * w] = proj.bias[w : 2 * w] * scale
    model.save_pretrained(tmp_path / "dup")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tiny_bert_path).save_pretrained(tmp_path / "dup")
    result = prune(_config(tmp_path / "dup", target=0.05, sampling_tokens=40), tmp_path / "out")
    masks = load_masks(result.output_dir)
    assert result.report["details"]["thresholds"]["heads"] < 1e-5  # only the zero-distance merge was taken
    assert masks.head_mask[0].tolist() == [1.0, 0.0, 1.0, 1.0]
    assert masks.head_counts() == [3, 4, 4]


@pytest.mark.parametrize("method", ["ppruning", "random", "magnitude"])
def test_every_layer_keeps_a_head_and_a_neuron_at_the_largest_feasible_target(
    method: str, tiny_bert_path: Path, tmp_path: Path
) -> None:
    from ppruning.errors import InfeasibleTargetError

    extra = {} if method == "magnitude" else {"sampling_tokens": 30}
    with pytest.raises(InfeasibleTargetError) as err:
        prune(_config(tiny_bert_path, method, target=0.95, **extra), tmp_path / "probe")
    best = err.value.largest_feasible
    result = prune(_config(tiny_bert_path, method, target=best * 0.999, **extra), tmp_path / "out")
    masks = load_masks(result.output_dir)
    assert min(masks.head_counts()) >= 1 and min(masks.neuron_counts()) >= 1


def test_random_is_seeded_and_uses_uniform_counts(tiny_bert_path: Path, tmp_path: Path) -> None:
    a = load_masks(prune(_config(tiny_bert_path, "random", seed=1), tmp_path / "a").output_dir)
    b = load_masks(prune(_config(tiny_bert_path, "random", seed=1), tmp_path / "b").output_dir)
    c = load_masks(prune(_config(tiny_bert_path, "random", seed=2), tmp_path / "c").output_dir)
    assert torch.equal(a.neuron_mask, b.neuron_mask) and torch.equal(a.head_mask, b.head_mask)
    assert not torch.equal(a.neuron_mask, c.neuron_mask)
    assert max(a.neuron_counts()) - min(a.neuron_counts()) <= 1
    assert max(a.head_counts()) - min(a.head_counts()) <= 1


def test_random_at_ppruning_counts_matches_ppruning_per_layer(tiny_bert_path: Path, tmp_path: Path) -> None:
    pp = load_masks(prune(_config(tiny_bert_path, sampling_tokens=40), tmp_path / "p").output_dir)
    rnd = load_masks(
        prune(_config(tiny_bert_path, "random", sampling_tokens=40, allocation="ppruning"), tmp_path / "r").output_dir
    )
    assert pp.head_counts() == rnd.head_counts() and pp.neuron_counts() == rnd.neuron_counts()


def test_magnitude_keeps_the_largest_norm_units(tiny_bert_path: Path, tmp_path: Path) -> None:
    model = AutoModel.from_pretrained(tiny_bert_path)
    layer = model.encoder.layer[1]
    with torch.no_grad():
        layer.attention.output.dense.weight[:, 0:8] *= 100.0  # head 0 of layer 1: huge output columns
        layer.output.dense.weight[:, 5] = 0.0  # neuron 5 of layer 1: contributes nothing
    from ppruning.arch import get_adapter

    heads, neurons = magnitude_scores(get_adapter(model), 1)
    assert int(np.argmax(heads)) == 0 and neurons[5] == 0.0
    model.save_pretrained(tmp_path / "m")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tiny_bert_path).save_pretrained(tmp_path / "m")
    masks = load_masks(prune(_config(tmp_path / "m", "magnitude", target=0.3), tmp_path / "out").output_dir)
    assert masks.head_mask[1, 0] == 1.0 and masks.neuron_mask[1, 5] == 0.0
    kept = masks.neuron_mask[1].bool().numpy()
    assert neurons[kept].min() >= neurons[~kept].max()  # top-k by score


def test_magnitude_global_allocation_prunes_the_weakest_layer_most(tiny_bert_path: Path, tmp_path: Path) -> None:
    model = AutoModel.from_pretrained(tiny_bert_path)
    with torch.no_grad():
        model.encoder.layer[2].output.dense.weight *= 0.01  # layer 2's neurons are all weak
    model.save_pretrained(tmp_path / "m")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tiny_bert_path).save_pretrained(tmp_path / "m")
    masks = load_masks(
        prune(_config(tmp_path / "m", "magnitude", target=0.2, allocation="global"), tmp_path / "out").output_dir
    )
    counts = masks.neuron_counts()
    assert counts[2] < counts[0] and counts[2] < counts[1]


@pytest.mark.parametrize("policy", ["first", "cluster"])
def test_dead_units_go_first_or_are_kept_as_the_paper_does(policy: str, tiny_bert_path: Path, tmp_path: Path) -> None:
    """Head 1 of layer 1 outputs zeros (V rows and bias zeroed); so do neurons 0-3 of layer 2 (FFN-in rows)."""
    model = AutoModel.from_pretrained(tiny_bert_path)
    attn = model.encoder.layer[1].attention.self
    w = attn.attention_head_size
    ffn_in = model.encoder.layer[2].intermediate.dense
    with torch.no_grad():
        attn.value.weight[w : 2 * w] = 0
        attn.value.bias[w : 2 * w] = 0
        ffn_in.weight[:4] = 0
        ffn_in.bias[:4] = 0  # GELU(0) = 0
    model.save_pretrained(tmp_path / "dead")
    from transformers import AutoTokenizer

    AutoTokenizer.from_pretrained(tiny_bert_path).save_pretrained(tmp_path / "dead")
    config = _config(tmp_path / "dead", target=0.05, sampling_tokens=40, dead_units=policy)
    result = prune(config.model_copy(update={"reconstruct": False, "measure": False}), tmp_path / "out")
    masks = load_masks(result.output_dir)
    details = result.report["details"]
    assert details["dead_units"] == {"policy": policy, "heads": [0, 1, 0], "neurons": [0, 0, 4]}
    if policy == "first":
        assert masks.head_mask[1, 1] == 0 and masks.neuron_mask[2, :4].sum() == 0
        assert details["thresholds"]["heads"] < 1e-9  # the dead head's merge (height 0) was enough
    else:
        assert masks.head_mask[1, 1] == 1 and masks.neuron_mask[2, :4].sum() == 4


def test_no_method_parameter_shadows_a_sampling_setting() -> None:
    """Sampling keys given under ``params`` move to the sampling block; a method parameter of
    the same name would be taken away from its method (and conflict with the block)."""
    from ppruning.methods import all_methods as registered
    from ppruning.methods.contract import SamplingConfig

    shadowing = {
        name: sorted(set(spec.params_model.model_fields) & set(SamplingConfig.model_fields))
        for name, spec in registered().items()
    }
    assert not any(shadowing.values()), shadowing
