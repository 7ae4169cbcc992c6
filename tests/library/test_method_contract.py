"""The method contract: a method is one module's declaration, resolved once into a plan.

- a throw-away method registers itself, shows up in the discovery listing and runs
  through ``prune()`` end to end with no edit to the pipeline, the CLI or the service;
- the budget's sequence length is fixed when the plan resolves (submission) and is the
  one the run uses and records; every method of a comparison is budgeted at it;
- one command line serves every method; a method that reads no data says so;
- a record made before records carried the method's version still reruns.
"""

from __future__ import annotations

import dataclasses
import json
from collections import OrderedDict
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch

from ppruning import all_methods, describe_methods, prune_stages, resolve_prune_plan, spec_from_record
from ppruning.methods import MethodContext, MethodParams, MethodSpec, register_method, unregister_method
from ppruning.methods.contract import WEIGHT_MASK_ARTIFACTS
from ppruning.progress import Progress
from ppruning.run.config import PruneConfig
from ppruning.run.prune import prune
from ppruning.units.budget import uniform_removal
from ppruning.units.masks import Masks, load_masks
from ppruning.units.select import keep_mask
from ppruning.units.weight_masks import WeightMasks
from tests.support.reviews import REVIEWS_TRAIN, reviews_task

FIXTURES = Path(__file__).parents[1] / "fixtures" / "custom"
REVIEWS = reviews_task()


class _Stages(Progress):
    def __init__(self) -> None:
        self.stages: list[str] = []

    def start_stage(self, stage: str, total: int | None = None, message: str = "") -> None:
        self.stages.append(stage)


# --------------------------------------------------------------------------- a throw-away method


class FirstUnitsParams(MethodParams):
    allocation: str = "uniform"


def first_units(ctx: MethodContext) -> Masks:
    """Keep the first units of every layer, at the uniform counts of the budget it was handed."""
    ctx.progress.start_stage("pick", total=ctx.shape.num_layers)
    heads, neurons = uniform_removal(ctx.budget, ctx.shape)
    rows_h = [
        keep_mask(la.num_head_units, list(range(la.num_head_units - int(heads[i]))))
        for i, la in enumerate(ctx.shape.layers)
    ]
    rows_n = [
        keep_mask(la.ffn_size, list(range(la.ffn_size - int(neurons[i])))) for i, la in enumerate(ctx.shape.layers)
    ]
    ctx.details["seen_examples"] = ctx.examples is not None
    return Masks(torch.stack(rows_h), torch.stack(rows_n))


@pytest.fixture
def first_units_method() -> Iterator[MethodSpec]:
    spec = register_method(
        MethodSpec(
            name="first-units",
            summary="Test method: keep the first units of each layer.",
            kind="structured",
            needs="weights",
            params_model=FirstUnitsParams,
            run=first_units,
            version="7",
            stages=("pick",),
        )
    )
    try:
        yield spec
    finally:
        unregister_method(spec.name)


def _config(model: Path, method: str, **extra) -> PruneConfig:
    return PruneConfig.model_validate(
        {
            "model": {"id": str(model)},
            "task": REVIEWS,
            "method": method,
            "target": {"flops_reduction": 0.2},
            "measure": False,
            **extra,
        }
    )


def test_a_method_declared_in_one_place_is_listed_and_runs_end_to_end(
    first_units_method: MethodSpec, tiny_bert_path: Path, tmp_path: Path
) -> None:
    listed = {m["name"]: m for m in describe_methods()}["first-units"]
    assert listed["version"] == "7" and listed["stages"] == ["pick"] and listed["needs"] == "weights"
    # compensation, the outlier neurons and the default budget length (the inputs' mean) would read inputs
    quiet = {"compensation": False, "outlier_units": False, "sampling": {"cost_length": "max"}}
    config = _config(tiny_bert_path, "first-units", **quiet)
    assert prune_stages(config) == ("load_model", "pick", "materialise", "write")
    with_refit = _config(tiny_bert_path, "first-units", sampling={"cost_length": "max"})
    assert prune_stages(with_refit) == (
        "load_model", "load_data", "pick", "outlier_units", "compensate", "materialise", "write"
    )  # fmt: skip

    progress = _Stages()
    result = prune(config, tmp_path / "out", progress)
    assert progress.stages == list(prune_stages(config))
    masks = load_masks(result.output_dir)
    assert masks.head_mask[:, 0].tolist() == [1.0] * masks.head_mask.shape[0]  # the first units stay
    report = result.report
    assert report["method"] == "first-units" and report["method_version"] == "7"
    assert report["details"]["seen_examples"] is False and report["sampling"]["used"] is False
    assert report["record"]["method"]["name"] == "first-units" and report["record"]["method"]["version"] == "7"
    assert report["achieved"]["flops_reduction_pruned_part"] >= 0.2

    unregister_method("first-units")
    assert "first-units" not in all_methods()
    assert "first-units" not in {m["name"] for m in describe_methods()}


# --------------------------------------------------------------------------- a throw-away unstructured method


def zero_half_of_one_matrix(ctx: MethodContext) -> WeightMasks:
    """Prune the first half of layer 0's query weight; leave a note of its own beside the masks."""
    name, weight = next((n, p) for n, p in ctx.model.named_parameters() if n.endswith("query.weight"))
    mask = torch.ones_like(weight, dtype=torch.bool)
    mask[: weight.shape[0] // 2] = False
    with torch.no_grad():
        weight.mul_(mask)
    ctx.files["half_note.json"] = json.dumps({"pruned": name}).encode()
    return WeightMasks(OrderedDict([(name, mask)]), ctx.model)


@pytest.fixture
def zero_half_method() -> Iterator[MethodSpec]:
    spec = register_method(
        MethodSpec(
            name="zero-half",
            summary="Test method: unstructured masks of one matrix, and a file of its own.",
            kind="unstructured",
            needs="weights",
            params_model=MethodParams,
            run=zero_half_of_one_matrix,
            targets=frozenset({"params"}),
            artifacts=(*WEIGHT_MASK_ARTIFACTS, "half_note.json"),
        )
    )
    try:
        yield spec
    finally:
        unregister_method(spec.name)


def test_an_unstructured_method_s_declared_files_are_written_and_listed(
    zero_half_method: MethodSpec, tiny_bert_path: Path, tmp_path: Path
) -> None:
    """The unstructured path used to return before the method's own files were written, and listed a
    fixed set of mask files instead of the method's declared artifacts."""
    config = _config(tiny_bert_path, "zero-half", target={"params_reduction": 0.1})
    result = prune(config, tmp_path / "out")
    note = result.output_dir / "half_note.json"
    assert note.is_file() and json.loads(note.read_text())["pruned"].endswith("query.weight")
    assert sorted(p.name for p in result.mask_files) == sorted(zero_half_method.artifacts)
    assert result.report["kind"] == "unstructured"


def test_a_file_a_method_did_not_declare_is_refused(
    first_units_method: MethodSpec, tiny_bert_path: Path, tmp_path: Path
) -> None:
    def with_a_stray_file(ctx: MethodContext) -> Masks:
        ctx.files["stray.bin"] = b"x"
        return first_units(ctx)

    register_method(dataclasses.replace(first_units_method, name="first-units-stray", run=with_a_stray_file))
    try:
        with pytest.raises(RuntimeError, match="stray.bin without declaring"):
            prune(_config(tiny_bert_path, "first-units-stray"), tmp_path / "out")
    finally:
        unregister_method("first-units-stray")


# --------------------------------------------------------------------------- one budget length


def test_the_budget_length_is_fixed_at_validation_and_recorded(tiny_bert_path: Path, tmp_path: Path) -> None:
    config = _config(
        tiny_bert_path,
        "ppruning",
        params={"lambda_val": 1},
        sampling={"sampling_tokens": 40, "max_length": 24, "cost_length": "max"},
    )
    plan = resolve_prune_plan(config)  # what the service runs at submission
    assert plan.seq_len == 24
    report = prune(config, tmp_path / "out").report
    assert report["budget"]["seq_len"] == plan.seq_len and report["budget"]["seq_len_from"] == "sampling.max_length"
    assert report["budget"]["total_cost"] == pytest.approx(plan.budget.total)
    assert report["record"]["method"]["sampling"]["max_length"] == 24
    assert report["budget"]["seq_len_bound"] == 24 and report["budget"]["cost_length"] == "max"


def test_cost_length_mean_costs_the_budget_at_the_inputs_mean_real_length(tiny_bert_path: Path, tmp_path: Path) -> None:
    """Submission checks the target at the cap; the run re-costs it at the sample's mean real length, records
    both, and keeps fewer head costs (attention's quadratic part shrinks with the length)."""
    from ppruning.run.prune import mean_real_length
    from ppruning.units.budget import make_budget

    sampling = {"sampling_tokens": 40, "max_length": 24, "cost_length": "mean"}
    config = _config(tiny_bert_path, "ppruning", params={"lambda_val": 1}, sampling=sampling)
    plan = resolve_prune_plan(config)
    assert plan.seq_len == 24 and plan.seq_len_bound == 24 and plan.costs_at_mean
    report = prune(config, tmp_path / "mean").report
    budget = report["budget"]
    assert budget["cost_length"] == "mean" and budget["seq_len_from"] == "inputs_mean"
    assert budget["seq_len_bound"] == 24 and 1 < budget["seq_len"] < 24
    assert report["cost"]["before"]["seq_len"] == budget["seq_len"]
    expected = make_budget(config.target, plan.shape, budget["seq_len"], 1.0)
    assert budget["total_cost"] == pytest.approx(expected.total) and budget["total_cost"] < plan.budget.total

    from types import SimpleNamespace

    from transformers import AutoConfig

    from ppruning.model.loading import load_tokenizer
    from ppruning.run.prune import load_examples

    model = SimpleNamespace(config=AutoConfig.from_pretrained(tiny_bert_path))
    examples = load_examples(plan, load_tokenizer(tiny_bert_path), model)
    assert budget["seq_len"] == pytest.approx(mean_real_length(examples))

    fixed = _config(tiny_bert_path, "ppruning", params={"lambda_val": 1}, sampling={**sampling, "cost_length": 16})
    assert resolve_prune_plan(fixed).seq_len == 16 and resolve_prune_plan(fixed).seq_len_from == "sampling.cost_length"


def test_cost_length_mean_reads_the_inputs_lengths_for_a_method_that_reads_no_data(tiny_bert_path: Path) -> None:
    off = {"compensation": False, "outlier_units": False}
    plain = resolve_prune_plan(_config(tiny_bert_path, "random", **off, sampling={"cost_length": "max"}))
    mean = resolve_prune_plan(_config(tiny_bert_path, "random", **off, sampling={"cost_length": "mean"}))
    assert not plain.reads_data and "load_data" not in plain.stages
    assert mean.reads_data and "load_data" in mean.stages
    assert prune_stages(_config(tiny_bert_path, "random", **off, sampling={"cost_length": "mean"})) == mean.stages


def test_every_method_of_a_comparison_is_budgeted_at_the_same_length(tiny_bert_path: Path) -> None:
    lengths = {
        method: resolve_prune_plan(_config(tiny_bert_path, method, params={"lambda_val": 1})).seq_len
        for method in ("ppruning", "random", "magnitude")
    }
    assert len(set(lengths.values())) == 1, lengths
    budgets = {
        method: resolve_prune_plan(_config(tiny_bert_path, method, params={"lambda_val": 1})).budget.total
        for method in ("ppruning", "random", "magnitude")
    }
    assert len(set(budgets.values())) == 1, budgets


def test_one_command_line_serves_a_method_that_reads_no_data(tiny_bert_path: Path, tmp_path: Path) -> None:
    from ppruning.cli.main import main

    out = tmp_path / "out"
    args = [
        "prune",
        "--model",
        str(tiny_bert_path),
        "--task",
        "text-classification",
        "--data-files",
        f"train={REVIEWS_TRAIN}",
        "--text-column",
        "review",
        "--label-column",
        "sentiment",
        "--method",
        "magnitude",
        "--flops-reduction",
        "0.2",
        "--max-length",
        "64",
        "--max-instances",
        "10",
        "--output",
        str(out),
        "--device",
        "cpu",
        "--quiet",
        "--no-compensation",  # the refit reads inputs for any method
        "--no-outlier-units",  # and so does finding the outlier neurons
        "--cost-length",
        "max",  # so does costing at the inputs' mean length (the default)
    ]
    assert main(args) == 0
    report = json.loads((out / "report.json").read_text())
    assert report["sampling"]["used"] is False and "not used" in report["sampling"]["note"]
    assert report["sampling"]["max_instances"] == 10 and report["budget"]["seq_len"] == 64


def test_sampling_keys_given_under_params_move_to_the_sampling_block() -> None:
    base = {"model": {"id": "m"}, "task": {"name": "sst2"}, "target": {"flops_reduction": 0.3}}
    config = PruneConfig.model_validate({**base, "params": {"max_instances": 300, "lambda_val": 2}})
    assert config.sampling.max_instances == 300 and config.params == {"lambda_val": 2}
    with pytest.raises(ValueError, match="disagree"):
        PruneConfig.model_validate({**base, "params": {"max_instances": 300}, "sampling": {"max_instances": 5}})


def test_a_record_without_method_version_still_reruns(tiny_bert_path: Path, tmp_path: Path) -> None:
    """A record written before the sampling block and method versions: old keys, ``counts``, no ``method``."""
    first = prune(_config(tiny_bert_path, "random", params={"lambda_val": 1}), tmp_path / "a").report["record"]
    legacy = json.loads(json.dumps(first))
    legacy.pop("method")
    legacy["record_version"] = 1
    legacy["rerun_spec"].pop("sampling")
    legacy["rerun_spec"]["params"] = {
        "lambda_val": 1,
        "counts": "uniform",
        "max_instances": 3000,
        "sampling_tokens": 200,
        "batch_size": 32,
        "max_length": None,
        "distance_mode": "condensed",
        "head_matching": "greedy",
    }
    legacy["rerun_spec"].pop("outlier_units")  # written before the step existed: it did not run
    kind, spec = spec_from_record(legacy)
    assert kind == "prune" and spec["outlier_units"] is False
    assert spec["compensation"] == first["rerun_spec"]["compensation"]  # recorded: kept as it ran
    again = prune(PruneConfig.model_validate(spec), tmp_path / "b")
    assert torch.equal(load_masks(tmp_path / "a").head_mask, load_masks(again.output_dir).head_mask)
    assert torch.equal(load_masks(tmp_path / "a").neuron_mask, load_masks(again.output_dir).neuron_mask)
    assert again.report["record"]["method"]["version"] == all_methods()["random"].version


def test_method_spec_is_the_one_name_of_a_declaration() -> None:
    """``MethodInfo``, an older alias of ``MethodSpec``, is gone; the listing keeps ``data`` (GET /methods)."""
    import ppruning
    import ppruning.methods

    assert "MethodInfo" not in ppruning.__all__ and not hasattr(ppruning.methods, "MethodInfo")
    assert {m["name"]: m["data"] for m in describe_methods()}["ppruning"] == "unlabeled"


def test_every_method_kind_has_an_output_writer_and_every_method_a_declared_kind() -> None:
    """The run picks the writer from the declared kind: a kind without one must fail here, not in a job."""
    import typing

    from ppruning.run.outputs import WRITERS

    kinds = typing.get_args(typing.get_type_hints(MethodSpec)["kind"])
    assert set(kinds) == set(WRITERS)
    assert {spec.kind for spec in all_methods().values()} <= set(WRITERS)
