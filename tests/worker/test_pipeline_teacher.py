"""A gated pipeline fine-tunes the dense model first and lets it teach the pruned one; the library
calls are replaced by recorders, so only the runner's order and choice of teacher are under test."""

from __future__ import annotations

import uuid
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest

import ppruning
import worker.job_runners as runners
from jobs.specs import PipelineJobSpec
from ppruning.progress import Progress
from worker.job_runners import MODEL, MODEL_ARCHIVE, Outputs, RunContext
from worker.progress import plan_for

SPEC = {
    "kind": "pipeline",
    "model": {"id": "org/dense"},
    "task": {"name": "sst2"},
    "target": {"flops_reduction": 0.3},
    "finetune": {"epochs": 1},
    "measure": False,
}


@dataclass
class Finetuned:
    output_dir: Path
    model_dir: Path
    metrics: dict = field(default_factory=lambda: {"validation": {"accuracy": 0.8}})
    main_metric: str = "accuracy"
    report: dict = field(default_factory=dict)


class Phases(Progress):
    def __init__(self) -> None:
        self.phases: list[str] = []

    def set_phase(self, phase: str) -> None:
        self.phases.append(phase)


@pytest.fixture
def calls(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> list[Any]:
    seen: list[Any] = []

    def fake_prune(spec: Any, work: Path, progress: Any, ctx: Any) -> Outputs:
        progress.set_phase("prune")
        return Outputs(archives=[(MODEL_ARCHIVE, MODEL, tmp_path / "pruned")], result={"report": {}})

    def fake_finetune(config: Any, out: Path, progress: Any) -> Finetuned:
        seen.append(config)
        return Finetuned(output_dir=out, model_dir=out / "model")

    monkeypatch.setattr(runners, "_prune", fake_prune)
    monkeypatch.setattr(ppruning, "finetune_model", fake_finetune)
    return seen


def _run(spec: dict, tmp_path: Path) -> tuple[Outputs, Phases]:
    progress = Phases()
    fetch = lambda job, dest: dest / "fetched"  # noqa: E731
    outputs = runners.run_pipeline(PipelineJobSpec.model_validate(spec), tmp_path, progress, RunContext(fetch))
    return outputs, progress


def test_the_gates_dense_fine_tune_runs_first_and_teaches_the_pruned_model(calls: list, tmp_path: Path) -> None:
    outputs, progress = _run({**SPEC, "accept": {"max_metric_drop": 0.05}}, tmp_path)
    assert progress.phases == ["prune", "dense", "finetune"]
    dense, pruned = calls
    assert dense.model.id == "org/dense" and dense.distill is None
    assert pruned.model.id == str(tmp_path / "pruned")
    assert pruned.distill is not None and pruned.distill.teacher.id == str(tmp_path / "dense" / "model")
    assert outputs.result["teacher"]["id"] == str(tmp_path / "dense" / "model")
    assert outputs.result["verdict"] == "passed"
    assert list(plan_for("pipeline", {**SPEC, "accept": {"max_metric_drop": 0.05}}).phases) == [
        "prune",
        "dense",
        "finetune",
    ]


def test_a_given_dense_score_means_no_teacher_unless_one_is_named(calls: list, tmp_path: Path) -> None:
    outputs, progress = _run({**SPEC, "accept": {"max_metric_drop": 0.05, "dense_score": 0.9}}, tmp_path)
    assert progress.phases == ["prune", "finetune"] and len(calls) == 1
    assert calls[0].distill is None and outputs.result["teacher"] is None

    job = str(uuid.uuid4())
    named = {**SPEC, "finetune": {"epochs": 1, "distill": {"from_job": job, "temperature": 4}}}
    outputs, _ = _run({**named, "accept": {"max_metric_drop": 0.05}}, tmp_path)
    teacher = calls[-1].distill
    assert teacher.teacher.id == str(tmp_path / "teacher" / "fetched") and teacher.temperature == 4
    assert calls[-2].distill is None  # the dense baseline never learns from a teacher
