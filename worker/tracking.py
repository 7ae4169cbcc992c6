"""MLflow tracking of a finished job: one run with its parameters, stage times, metrics, curves and files,
and its final model registered as a model version.

Optional twice over: per deployment (``PPRUNING_MLFLOW_TRACKING_URI``, and
``PPRUNING_MLFLOW_TRACK_ALL`` for jobs that say nothing) and per job (the spec's
``tracking``). The run is written once the job's outputs are in the artifact store and
before the job is marked succeeded, so ``result.tracking`` names the run and the model
version. The tracker is a record, not the job's result: a tracking server that fails
leaves a warning event and ``result.tracking.error``, and the job still succeeds.

What a run holds: the spec flattened to dotted parameters (``target.flops_reduction``),
tags naming the job, metrics as ``<split>.<name>`` (``prune.speedup``,
``validation.accuracy``), the per-stage seconds of the prune report as ``time_s.<stage>``,
the fine-tuning curves from ``trainer_log.jsonl`` (``train.loss`` by step,
``selection.<metric>`` by epoch), the report, record, metrics and model card files, and the
final checkpoint under ``model/``, which becomes a version of the registered model. The
model card is also the run's description.
"""

from __future__ import annotations

import json
import logging
import time
from pathlib import Path
from typing import Any

from jobs.settings import Settings
from worker.job_runners import MODEL_ARCHIVE, MODEL_CARD, Outputs
from worker.progress import JobProgress

log = logging.getLogger(__name__)

#: MLflow's limits: parameter values, and entries per log_batch call.
MAX_PARAM_CHARS = 6000
BATCH = 100
#: Output files logged as run artifacts (the model folder goes under ``model/``).
LOGGED_KINDS = {"report", "metrics", "log"}


def wanted(spec: dict[str, Any], settings: Settings) -> bool:
    """Whether this job is tracked: the deployment has a server, and the job asked or the deployment tracks all."""
    if not settings.mlflow_tracking_uri:
        return False
    tracking = spec.get("tracking")
    return bool(tracking.get("mlflow", True)) if tracking else settings.mlflow_track_all


def flatten(tree: Any, prefix: str = "") -> dict[str, str]:
    """Nested JSON as dotted keys with string values (MLflow parameters)."""
    if isinstance(tree, dict):
        out: dict[str, str] = {}
        for key, value in tree.items():
            out |= flatten(value, f"{prefix}.{key}" if prefix else str(key))
        return out
    text = json.dumps(tree) if isinstance(tree, list) else str(tree)
    return {prefix: text[:MAX_PARAM_CHARS]} if prefix else {}


def registered_name(spec: dict[str, Any]) -> str:
    """The registered model's name: the spec's, else ``<model>-<method>-<task>`` (the model's last path part)."""
    tracking = spec.get("tracking") or {}
    if tracking.get("registered_model"):
        return str(tracking["registered_model"])
    model = str((spec.get("model") or {}).get("id") or "model").rstrip("/").rsplit("/", 1)[-1]
    parts = [model, str(spec.get("method") or spec.get("kind")), str((spec.get("task") or {}).get("name") or "")]
    return "-".join(p for p in parts if p)


def curves(path: Path) -> list[tuple[str, float, int]]:
    """(metric, value, step) of the fine-tuning log: Trainer records by step, selection scores by epoch."""
    points: list[tuple[str, float, int]] = []
    for line in path.read_text().splitlines():
        record = json.loads(line)
        if isinstance(record.get("selection"), dict):
            step = int(record.get("epoch") or 0)
            points += [(f"selection.{k}", float(v), step) for k, v in record["selection"].items() if _number(v)]
        elif "step" in record:
            step = int(record["step"])
            skip = {"step", "epoch"}
            points += [(f"train.{k}", float(v), step) for k, v in record.items() if k not in skip and _number(v)]
    return points


def _number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool)


def _metrics(outputs: Outputs) -> list[tuple[str, float, int]]:
    points = [(f"{split}.{name}", float(v), 0) for split, values in outputs.metrics.items()
              for name, v in values.items() if _number(v)]  # fmt: skip
    timings = (outputs.result.get("report") or {}).get("timings_s") or {}
    points += [(f"time_s.{stage}", float(v), 0) for stage, v in timings.items() if _number(v)]
    finetune = outputs.result.get("finetune_report") or {}
    if _number(finetune.get("train_time_s")):
        points.append(("time_s.train", float(finetune["train_time_s"]), 0))
    for name, _, path in outputs.files:
        if name == "trainer_log.jsonl" and path.is_file():
            points += curves(path)
    return points


def track_job(
    job_id: Any, kind: str, spec: dict[str, Any], outputs: Outputs, settings: Settings, progress: JobProgress
) -> dict[str, Any] | None:
    """Log the job to MLflow when it is tracked; what ``result.tracking`` records (None: not tracked)."""
    if not wanted(spec, settings):
        return None
    try:
        return _log_run(job_id, kind, spec, outputs, settings)
    except Exception as exc:  # the tracker is a record of the job, not its result
        log.warning("job %s: MLflow tracking failed", job_id, exc_info=True)
        message = f"MLflow tracking failed ({type(exc).__name__}: {str(exc)[:300]}); the job's results are kept"
        progress.event(message, level="warning")
        return {"mlflow": {"error": message}}


def _log_run(job_id: Any, kind: str, spec: dict[str, Any], outputs: Outputs, settings: Settings) -> dict[str, Any]:
    from mlflow.entities import Metric, Param, RunTag
    from mlflow.exceptions import MlflowException
    from mlflow.tracking import MlflowClient

    uri = settings.mlflow_tracking_uri
    client = MlflowClient(tracking_uri=uri, registry_uri=uri)
    name = (spec.get("tracking") or {}).get("experiment") or settings.mlflow_experiment
    experiment = client.get_experiment_by_name(name)
    experiment_id = experiment.experiment_id if experiment is not None else client.create_experiment(name)
    card = next((path for n, _, path in outputs.files if n == MODEL_CARD), None)
    tags = {"ppruning.job_id": str(job_id), "ppruning.kind": kind}
    if card is not None:
        tags["mlflow.note.content"] = card.read_text()[:50_000]
    run = client.create_run(experiment_id, run_name=f"{kind} {job_id}", tags=tags)
    run_id = run.info.run_id
    try:
        params = [Param(k, v) for k, v in flatten({k: v for k, v in spec.items() if k != "callback_url"}).items()]
        now = int(time.time() * 1000)
        metrics = [Metric(k, v, now, step) for k, v, step in _metrics(outputs)]
        for i in range(0, max(len(params), len(metrics)), BATCH):
            client.log_batch(run_id, metrics=metrics[i : i + BATCH], params=params[i : i + BATCH])
        client.log_batch(run_id, tags=[RunTag("ppruning.method", str(spec.get("method") or ""))])
        for _, artifact_kind, path in outputs.files:
            if artifact_kind in LOGGED_KINDS and path.is_file():
                client.log_artifact(run_id, str(path))
        model_dir = next((folder for n, _, folder in outputs.archives if n == MODEL_ARCHIVE), None)
        if model_dir is not None:
            client.log_artifacts(run_id, str(model_dir), "model")
        client.set_terminated(run_id, "FINISHED")
    except Exception:
        client.set_terminated(run_id, "FAILED")
        raise
    out: dict[str, Any] = {"tracking_uri": uri, "experiment_id": experiment_id, "run_id": run_id}
    if model_dir is not None:
        model_name = registered_name(spec)
        try:
            client.create_registered_model(model_name)
        except MlflowException as exc:
            if exc.error_code != "RESOURCE_ALREADY_EXISTS":
                raise
        version = client.create_model_version(
            model_name, f"runs:/{run_id}/model", run_id=run_id, tags={"ppruning.job_id": str(job_id)}
        )
        out |= {"registered_model": model_name, "model_version": str(version.version)}
    return {"mlflow": out}
