"""The stages of the job kinds that run in a work folder: the library calls of prune, finetune and
pipeline jobs (:mod:`worker.runners` says which kind runs which).

A prune or pipeline spec with ``export`` ends with the library's ONNX export of the job's
final model (the pruned one, or the fine-tuned one of a pipeline).

A runner turns a job spec into local files under a work folder and says which of them
are artifacts, which numbers are metrics and what goes into the job's ``result``. It
touches neither the database nor the artifact store: :mod:`worker.attempt` uploads and
records, so a cancelled or failed runner leaves nothing behind but its work folder.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from ppruning import ModelRef, ResumeStore
from worker.policies import resolve_policy
from worker.progress import JobProgress
from worker.teachers import resolve_teacher

#: Artifact kinds, as stored in ``artifacts.kind``.
MASK, MODEL, REPORT, METRICS, LOG = "mask", "model", "report", "metrics", "log"
MODEL_ARCHIVE = "model.tar.gz"
#: The final model's card (``README.md`` inside its archive), also stored on its own; an export's card beside it.
MODEL_CARD, EXPORT_CARD = "README.md", "README.onnx.md"
#: Timed onnxruntime runs per export (median reported), and the parity beyond which the job log warns.
EXPORT_REPEATS = 10
EXPORT_MAX_ABS_DIFF = 1e-3


@dataclass
class Outputs:
    """Local results of a runner, ready to be stored."""

    #: (artifact name, kind, local file)
    files: list[tuple[str, str, Path]] = field(default_factory=list)
    #: (artifact name, kind, local folder packed as tar.gz)
    archives: list[tuple[str, str, Path]] = field(default_factory=list)
    #: {split: {metric: value}}
    metrics: dict[str, dict[str, float]] = field(default_factory=dict)
    #: stored as ``jobs.result``
    result: dict[str, Any] = field(default_factory=dict)
    #: The library's reproducibility record of each step run (``prune``, ``finetune``), for the job's record.
    steps: dict[str, dict[str, Any]] = field(default_factory=dict)

    def add_step(self, step: str, report: dict[str, Any]) -> None:
        """Keep the record of a library step, from its report (a report without one adds nothing)."""
        record = report.get("record")
        if isinstance(record, dict):
            self.steps[step] = record


def _with_device(config: Any, device: str) -> Any:
    """The worker's device setting fills in a job that left the device to 'auto'."""
    if config.device == "auto" and device != "auto":
        return config.model_copy(update={"device": device})
    return config


def _numeric(tree: Any) -> dict[str, float]:
    if not isinstance(tree, dict):
        return {}
    return {k: float(v) for k, v in tree.items() if isinstance(v, int | float) and not isinstance(v, bool)}


def prune_metrics(report: dict[str, Any]) -> dict[str, dict[str, float]]:
    """Headline numbers of a prune report, as metrics of split ``prune``.

    The achieved reductions (``report["achieved"]``), the parameter and FLOP totals
    before and after (``report["cost"]``) and the measured and ideal speedup
    (``report["speed"]``); the report itself stays the full record.
    """
    headline = _numeric(report.get("achieved"))
    cost = report.get("cost") or {}
    for when in ("before", "after"):
        for quantity in ("params", "flops"):
            total = (cost.get(when) or {}).get(quantity, {}).get("total")
            if isinstance(total, int | float):
                headline[f"{quantity}_{when}"] = float(total)
    speed = report.get("speed") or {}
    if speed.get("measured"):
        headline.update(
            {k: float(speed[k]) for k in ("speedup", "ideal_speedup") if isinstance(speed.get(k), int | float)}
        )
    return {"prune": headline} if headline else {}


def _prune(spec: Any, work: Path, progress: JobProgress, ctx: RunContext) -> Outputs:
    """The library's prune run.

    A resumable method continues from the job's saved state (``ctx.resume``). The spec's
    teacher (``distill``) reaches the method as ``params.distill``, a ``from_job`` teacher
    downloaded first; ``result["prune_teacher"]`` records it as the spec named it (the
    report's ``details.teacher`` has the folder the method read, gone with the work folder).
    """
    from ppruning import get_method, prune

    progress.set_phase("prune")
    teacher = resolve_teacher(spec.distill, ctx.fetch_model, work / "prune_teacher", ctx.check_model)
    if spec.distill is not None and spec.distill.from_job is not None:
        progress.event(f"teacher of the pruning method: the fine-tuned model of job {spec.distill.from_job}")
    policy = resolve_policy(spec.policy, ctx.fetch_artifact, work / "prune_policy")
    if spec.policy is not None and spec.policy.from_job is not None:
        progress.event(f"reusing the policy job {spec.policy.from_job} trained: no training, only the slicing")
    config = _with_device(spec.prune_config(distill=teacher, policy=policy), ctx.device)
    resume = ctx.resume if get_method(config.method).resumable else None
    result = prune(config, work / "prune", progress, resume=resume)
    out_dir = Path(result.output_dir)
    outputs = Outputs(metrics=prune_metrics(result.report), result={"report": result.report})
    outputs.add_step("prune", result.report)
    if spec.distill is not None:
        outputs.result["prune_teacher"] = spec.distill.model_dump(mode="json", exclude_none=True)
    if spec.policy is not None:
        outputs.result["prune_policy"] = spec.policy.model_dump(mode="json", exclude_none=True)
    for path in result.mask_files:  # the files the method declares (unit or weight masks, its own files)
        outputs.files.append((path.name, MASK, path))
    outputs.files.append(("report.json", REPORT, out_dir / "report.json"))
    outputs.archives.append((MODEL_ARCHIVE, MODEL, Path(result.model_dir)))
    _set_card(outputs, Path(result.model_dir))
    return outputs


def _set_card(outputs: Outputs, model_dir: Path) -> None:
    """The model card of the job's final model (the library writes one into every checkpoint) as an artifact."""
    from ppruning import CARD_FILE

    outputs.files = [entry for entry in outputs.files if entry[0] != MODEL_CARD]
    if (model_dir / CARD_FILE).is_file():
        outputs.files.append((MODEL_CARD, REPORT, model_dir / CARD_FILE))


def run_prune(spec: Any, work: Path, progress: JobProgress, ctx: RunContext) -> Outputs:
    outputs = _prune(spec, work, progress, ctx)
    return _export(spec, _final_model(outputs), work, progress, outputs)


def _final_model(outputs: Outputs) -> Path:
    return next(folder for name, _, folder in outputs.archives if name == MODEL_ARCHIVE)


def export_metrics(report: dict[str, Any]) -> dict[str, float]:
    """Headline numbers of an export report: parity, latency and size of each export, and the speedup."""
    headline = {}
    for variant in ("pruned", "dense", "int8"):
        for key, value in _numeric(report.get(variant)).items():
            headline[f"{variant}_{key}"] = value
    if isinstance(report.get("speedup"), int | float):
        headline["speedup"] = float(report["speedup"])
    return headline


def _export(spec: Any, model_dir: Path, work: Path, progress: JobProgress, outputs: Outputs) -> Outputs:
    """The spec's exports of the job's final model, as artifacts (``model.onnx``, ``export_report.json``)."""
    if not spec.export:
        return outputs
    from ppruning import export_onnx

    progress.set_phase("export")
    progress.checkpoint()
    progress.start_stage("export", message=f"exporting the model to {', '.join(spec.export)}")
    out = work / "export"
    report = export_onnx(model_dir, out, quantize=spec.quantize, repeats=EXPORT_REPEATS)
    progress.checkpoint()
    for name in ("model.onnx", "model.onnx.data", "model.int8.onnx", "model.int8.onnx.data"):
        if (out / name).is_file():
            outputs.files.append((name, MODEL, out / name))
    outputs.files.append(("export_report.json", REPORT, out / "export_report.json"))
    if (out / "README.md").is_file():
        outputs.files.append((EXPORT_CARD, REPORT, out / "README.md"))
    outputs.metrics["export"] = export_metrics(report)
    outputs.result["export"] = report
    diff = report["pruned"]["max_abs_diff"]
    if diff > EXPORT_MAX_ABS_DIFF:
        progress.event(f"onnxruntime differs from PyTorch by up to {diff:.3g}", level="warning")
    return outputs


def _finetune_outputs(result: Any, outputs: Outputs) -> Outputs:
    out_dir = Path(result.output_dir)
    outputs.metrics.update({str(s): dict(v) for s, v in result.metrics.items()})
    outputs.result.update(
        {"metrics": result.metrics, "main_metric": result.main_metric, "finetune_report": result.report}
    )
    outputs.add_step("finetune", result.report)
    _set_card(outputs, Path(result.model_dir))
    for name, kind in (("metrics.json", METRICS), ("trainer_log.jsonl", LOG)):
        if (out_dir / name).exists():
            outputs.files.append((name, kind, out_dir / name))
    return outputs


def run_finetune(spec: Any, work: Path, progress: JobProgress, ctx: RunContext) -> Outputs:
    """Fine-tune a model, or (``from_job``) the pruned model another job produced."""
    from ppruning import finetune_model

    model = None
    if spec.from_job is not None:
        progress.set_phase("finetune")
        progress.start_stage("load_model", message=f"fetching the pruned model of job {spec.from_job}")
        model = ModelRef(id=str(ctx.fetch_model(spec.from_job, work / "from_job")))
    teacher = resolve_teacher(spec.distill, ctx.fetch_model, work, ctx.check_model)
    config = _with_device(spec.finetune_config(model=model, distill=teacher), ctx.device)
    progress.set_phase("finetune")
    result = finetune_model(config, work / "finetune", progress)
    outputs = Outputs(archives=[(MODEL_ARCHIVE, MODEL, Path(result.model_dir))])
    return _finetune_outputs(result, outputs)


def run_pipeline(spec: Any, work: Path, progress: JobProgress, ctx: RunContext) -> Outputs:
    """Prune, then fine-tune the pruned checkpoint on the same task; the fine-tuned model is the result.

    With ``accept`` (and no ``dense_score``), the dense model is fine-tuned the same way
    right after pruning, before the pruned model, so that it can teach it: unless the spec
    names a teacher, the pruned model distils from it. The verdict goes into ``result``
    (:mod:`worker.gates`). A named teacher (a model or a finished job) is used as given.
    """
    from ppruning import DistillConfig, finetune_model

    pruned = _prune(spec, work, progress, ctx)
    pruned_model = _final_model(pruned)
    dense = _dense_run(spec, work, progress, ctx) if spec.accept is not None and spec.accept.needs_dense_run else None
    if spec.dense_teacher and dense is not None:
        teacher = DistillConfig(teacher=ModelRef(id=str(dense.model_dir)))
        progress.event("the dense model fine-tuned for the gate teaches the pruned one")
    else:
        teacher = resolve_teacher(spec.finetune.distill, ctx.fetch_model, work, ctx.check_model, "finetune.distill")
    config = _with_device(spec.finetune_config(pruned_model, distill=teacher), ctx.device)
    progress.set_phase("finetune")
    result = finetune_model(config, work / "finetune", progress)
    outputs = Outputs(
        files=pruned.files,
        archives=[("pruned_model.tar.gz", MODEL, pruned_model), (MODEL_ARCHIVE, MODEL, Path(result.model_dir))],
        metrics=pruned.metrics,
        result=pruned.result,
        steps=pruned.steps,
    )
    outputs = _finetune_outputs(result, outputs)
    outputs.result["teacher"] = teacher.teacher.model_dump() if teacher is not None else None
    if spec.accept is not None:
        _judge(spec, progress, outputs, dense)
    return _export(spec, Path(result.model_dir), work, progress, outputs)


def _dense_run(spec: Any, work: Path, progress: JobProgress, ctx: RunContext) -> Any:
    """The gate's baseline: the dense model fine-tuned with the same settings (and no teacher)."""
    from ppruning import finetune_model

    progress.set_phase("dense")
    progress.event("fine-tuning the dense model with the same settings (the gate's baseline)")
    return finetune_model(_with_device(spec.dense_finetune_config(), ctx.device), work / "dense", progress)


def _judge(spec: Any, progress: JobProgress, outputs: Outputs, dense: Any) -> None:
    """Record the gate's verdict and figures (``dense``: the baseline fine-tune, when one ran)."""
    from ppruning import validate_task_ref
    from worker.gates import decide, gate_metrics

    dense_metrics = None
    if dense is not None:
        dense_metrics = dense.metrics
        if (Path(dense.output_dir) / "metrics.json").exists():
            outputs.files.append(("dense_metrics.json", METRICS, Path(dense.output_dir) / "metrics.json"))
    speed = (outputs.result.get("report") or {}).get("speed") or {}
    gate = decide(spec.accept, validate_task_ref(spec.task), outputs.result["metrics"], dense_metrics, speed)
    outputs.result.update(verdict=gate["verdict"], gate=gate)
    outputs.metrics["gate"] = gate_metrics(gate)
    reasons = "; ".join(gate["reasons"]) or "every criterion met"
    progress.event(f"gate {gate['verdict']}: {reasons}", level="info" if gate["verdict"] == "passed" else "warning")


@dataclass(frozen=True)
class RunContext:
    """What a runner needs from the worker besides the spec."""

    #: (job id, destination) -> local folder of that job's pruned model
    fetch_model: Callable[[Any, Path], Path]
    device: str = "auto"
    #: The job's resume state (in the artifact store), for a resumable method; None: start from step 0.
    resume: ResumeStore | None = None
    #: (model id, field) -> None, or InvalidSpec: a model id checked again right before it is loaded.
    check_model: Callable[[str, str], None] = lambda model_id, field: None
    #: (job id, artifact name, destination folder) -> local file of that finished job's artifact
    fetch_artifact: Callable[[Any, str, Path], Path] | None = None


#: A kind's stages: (spec, work folder, progress, context) -> the outputs the attempt uploads and registers.
StageRunner = Callable[[Any, Path, JobProgress, RunContext], Outputs]
