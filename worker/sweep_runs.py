"""Sweep jobs in the worker: send the children, then finalise the parent when the last one ends.

No worker slot ever waits on another (one worker with concurrency 1 runs a sweep):

1. The sweep's attempt (:func:`start_sweep`) creates one child job per target, in the
   same transaction that marks the parent ``waiting`` (:mod:`jobs.sweeps`), sends the
   children's messages and returns. A re-run attempt finds the children and creates none.
2. Every worker that finishes a job with a parent calls :func:`after_child`, which locks
   the parent row (``SELECT ... FOR UPDATE``). A sweep of a method that learns a policy
   (PruneNet) with none given starts with its first child only, which trains the policy;
   when that child has finished, the lock holder creates the others, reusing its policy
   (``policy.from_job``), and sends them. Whoever sees no unfinished child left
   writes the table (``sweep.json``, ``sweep.csv``) and the plot (``sweep.png``) and
   ends the parent. Two children finishing at once serialise on the lock; the later one
   sees the parent finished and does nothing.
3. The reaper calls :func:`finalise_ready` on every sweep, for children that ended
   without a worker (cancelled while queued) or a finaliser that died.

A failed or cancelled child is a row of the table with its error. The sweep ends
``succeeded`` when at least one child succeeded (``result.failures`` lists the others)
and ``failed`` (``SweepFailed``) when none did; a cancelled sweep ends ``cancelled``.
"""

from __future__ import annotations

import csv
import json
import logging
import tempfile
import uuid
from pathlib import Path
from typing import TYPE_CHECKING, Any

from sqlalchemy import select
from sqlalchemy.orm import Session, sessionmaker

from jobs import sweeps
from jobs.artifacts import attempt_key, open_store
from jobs.kinds import check_spawn, parse_spec
from jobs.queue import send_job
from jobs.settings import Settings
from jobs.specs import SweepJobSpec
from jobs.store import repository as repo
from jobs.store.claims import Claim, fenced_update, lock_if_current
from jobs.store.models import Job, utcnow
from jobs.store.states import JobState
from worker.callbacks import notify

if TYPE_CHECKING:
    from matplotlib.figure import Figure

log = logging.getLogger(__name__)

TABLE_JSON, TABLE_CSV, PLOT_PNG = "sweep.json", "sweep.csv", "sweep.png"
COLUMNS = (
    "target",
    "state",
    "flops_reduction",
    "flops_reduction_whole_model",
    "params",
    "params_reduction",
    "remaining_weights",
    "train_loss",
    "metric",
    "metric_split",
    "metric_value",
    "speedup",
    "speedup_low",
    "speedup_high",
    "speedup_noisy",
    "ideal_speedup",
    "job_id",
    "error",
)


# --------------------------------------------------------------------------- start


def start_sweep(claim: Claim, settings: Settings, sessions: sessionmaker[Session]) -> str:
    """Create (once) and send the children; leave the parent waiting. Returns an attempt outcome value."""
    spec = parse_spec(claim.spec)
    assert isinstance(spec, SweepJobSpec)
    with sessions.begin() as session:
        parent = lock_if_current(session, claim)
        if parent is None:
            return "lost"
        kids = sweeps.children(session, parent.id)
        if not kids:
            specs = spec.child_specs()
            first = specs[:1] if spec.trains_policy_once else specs  # the others once its policy is trained
            for child in first:
                check_spawn(parent.kind, child["kind"])
                repo.create_job(session, owner=parent.owner, kind=child["kind"], spec=child, parent_id=parent.id)
            kids = sweeps.children(session, parent.id)
            targets = ", ".join(f"{v:g}" for v in spec.targets.values)
            repo.add_event(session, parent.id, f"created {len(kids)} child jobs ({spec.targets.key} {targets})")
            if spec.trains_policy_once:
                repo.add_event(session, parent.id, f"the child at {spec.targets.values[0]:g} trains the policy; "
                               f"the other {len(specs) - 1} start when it has finished and reuse it")  # fmt: skip
        if parent.cancel_requested:
            for child in sweeps.unfinished(kids):
                repo.cancel_job(session, child)
        total = len(spec.targets.values)
        done = len(kids) - len(sweeps.unfinished(kids))
        fenced_update(
            session, claim, stage=sweeps.WAITING, heartbeat_at=None, progress=done / total,
            message=f"{done}/{total} child jobs finished",
        )  # fmt: skip
        to_send = [(child.id, child.spec) for child in kids if child.state == JobState.QUEUED.value]
    _send(settings, to_send)
    finalise(sessions, settings, claim.job_id)  # all may be finished already (a re-run, a cancel)
    return "waiting"


def _send(settings: Settings, jobs: list[tuple[uuid.UUID, dict[str, Any]]]) -> None:
    for job_id, spec in jobs:
        try:
            send_job(settings.broker_url, job_id, spec)
        except Exception:  # the row is queued: the reaper re-sends it after queued_timeout_s
            log.warning("could not send child job %s; the reaper will", job_id, exc_info=True)


# --------------------------------------------------------------------------- finalise


def after_child(sessions: sessionmaker[Session], settings: Settings, job_id: uuid.UUID) -> None:
    """Called when a job has finished: if it belongs to a sweep, try to finalise that sweep."""
    try:
        with sessions() as session:
            parent_id = session.scalar(select(Job.parent_id).where(Job.id == job_id))
        if parent_id is not None:
            finalise(sessions, settings, parent_id)
    except Exception:  # the child's own outcome stands; the reaper finalises the sweep later
        log.warning("could not finalise the sweep of job %s", job_id, exc_info=True)


def finalise_ready(sessions: sessionmaker[Session], settings: Settings) -> int:
    """Finalise every waiting sweep whose children have all finished (the reaper's sweep)."""
    with sessions() as session:
        waiting = session.scalars(
            select(Job.id).where(
                Job.kind == sweeps.SWEEP, Job.state == JobState.RUNNING.value, Job.stage == sweeps.WAITING
            )
        ).all()
    return sum(finalise(sessions, settings, parent_id) for parent_id in waiting)


def finalise(sessions: sessionmaker[Session], settings: Settings, parent_id: uuid.UUID) -> bool:
    """End the sweep if no child is left unfinished (under the parent's row lock); True if this call ended it.

    A sweep that trains its policy once creates its other children here, when the first has finished.
    """
    with sessions.begin() as session:
        parent = session.execute(
            select(Job).where(Job.id == parent_id).with_for_update().execution_options(populate_existing=True)
        ).scalar_one_or_none()
        if parent is None or not sweeps.is_waiting(parent):
            return False
        spec = parse_spec(parent.spec)
        assert isinstance(spec, SweepJobSpec)
        kids = sweeps.children(session, parent_id)
        to_send = [] if parent.cancel_requested else _reusing_children(session, parent, spec, kids)
        if to_send:
            kids = sweeps.children(session, parent_id)
        left = sweeps.unfinished(kids)
        if left:
            total = len(spec.targets.values)
            done = len(kids) - len(left)
            parent.progress, parent.updated_at = done / total, utcnow()
            parent.message = f"{done}/{total} child jobs finished"
        elif parent.cancel_requested:
            repo.add_event(session, parent_id, "cancelled; every child job has stopped")
            repo.transition(session, parent, JobState.CANCELLED, message="cancelled with its children")
        else:
            _conclude(session, parent, kids, settings)
    _send(settings, to_send)
    if left:
        return False
    try:
        notify(sessions, settings, parent_id)
    except Exception:
        log.warning("callback of sweep %s failed", parent_id, exc_info=True)
    return True


def _reusing_children(
    session: Session, parent: Job, spec: SweepJobSpec, kids: list[Job]
) -> list[tuple[uuid.UUID, dict[str, Any]]]:
    """A sweep that trains its policy once: when the first child has finished, create the others.

    They reuse the policy the first child trained (``policy.from_job``); when it did not
    succeed, each trains its own, and an event says so. Nothing to do in any other case.
    """
    if not spec.trains_policy_once or len(kids) != 1 or sweeps.unfinished(kids):
        return []
    trainer = kids[0]
    trained = trainer.state == JobState.SUCCEEDED.value
    created = []
    for index in range(1, len(spec.targets.values)):
        child = spec.child_spec_reusing(index, trainer.id) if trained else spec.child_specs()[index]
        check_spawn(parent.kind, child["kind"])
        job, _ = repo.create_job(session, owner=parent.owner, kind=child["kind"], spec=child, parent_id=parent.id)
        created.append((job.id, child))
    if trained:
        repo.add_event(session, parent.id, f"created {len(created)} child jobs reusing the policy job {trainer.id} "
                       "trained")  # fmt: skip
    else:
        repo.add_event(session, parent.id, f"the child that trains the policy ended {trainer.state}; the other "
                       f"{len(created)} child jobs train their own", level="warning")  # fmt: skip
    return created


def _conclude(session: Session, parent: Job, kids: list[Job], settings: Settings) -> None:
    spec = parse_spec(parent.spec)
    assert isinstance(spec, SweepJobSpec)
    rows = [table_row(child, spec.targets.key) for child in kids]
    rows.sort(key=lambda r: r["target"])
    failures = [{"target": r["target"], "job_id": r["job_id"], "state": r["state"], "error": r["error"]}
                for r in rows if r["state"] != JobState.SUCCEEDED.value]  # fmt: skip
    store = open_store(settings.artifact_root)
    artifacts: dict[str, dict[str, Any]] = {}
    with tempfile.TemporaryDirectory(prefix=f"sweep-{parent.id}-") as tmp:
        for name, kind, path in write_outputs(rows, spec, Path(tmp)):
            obj = store.put_file(path, attempt_key(parent.id, parent.attempts, name))
            repo.add_artifact(session, parent.id, name, kind, uri=obj.uri, size=obj.size, sha256=obj.sha256)
            artifacts[name] = {"uri": obj.uri, "size": obj.size, "sha256": obj.sha256}
    succeeded = len(rows) - len(failures)
    repo.record_metrics(session, parent.id, {"sweep": {"children": len(rows), "succeeded": succeeded}})
    result = {"table": rows, "x_axis": spec.x_axis, "failures": failures, "children": [r["job_id"] for r in rows],
              "artifacts": artifacts}  # fmt: skip
    summary = f"{succeeded}/{len(rows)} child jobs succeeded"
    repo.add_event(session, parent.id, summary, level="info" if not failures else "warning")
    if succeeded:
        repo.transition(session, parent, JobState.SUCCEEDED, progress=1.0, message=summary, result=result)
    else:
        repo.transition(
            session, parent, JobState.FAILED, message=summary, result=result,
            error_type="SweepFailed", error_message=f"no child job succeeded: {failures[0]['error']}",
        )  # fmt: skip


# --------------------------------------------------------------------------- table and plot


def _main_score(child: Job, result: dict[str, Any]) -> tuple[str | None, str | None, float | None]:
    """(metric, split, value): the main metric on the task's first evaluation split that was scored."""
    metric = result.get("main_metric")
    scores = result.get("metrics") or {}
    if not metric or not scores:
        return None, None, None
    from ppruning import get_task

    try:
        order = list(get_task(child.spec["task"]["name"]).eval_splits)
    except Exception:
        order = []
    for split in [*order, *sorted(scores)]:
        if metric in (scores.get(split) or {}):
            return metric, split, float(scores[split][metric])
    return metric, None, None


def _remaining(achieved: dict[str, Any]) -> float | None:
    """The fraction of the prunable weights kept (the pruned part's params, structured or not)."""
    removed = achieved.get("params_reduction_pruned_part")
    return round(1.0 - float(removed), 6) if isinstance(removed, int | float) else None


def table_row(child: Job, key: str) -> dict[str, Any]:
    """One child's figures: target, achieved FLOPs and parameters, remaining weights, the method's final
    training loss (methods that train their masks), main metric, measured speedup."""
    result = child.result or {}
    report = result.get("report") or {}
    achieved = report.get("achieved") or {}
    training = (report.get("details") or {}).get("training") or {}
    after = ((report.get("cost") or {}).get("after") or {}).get("params") or {}
    speed = report.get("speed") or {}
    ci = (speed.get("speedup_ci") or None) if speed.get("measured") else None
    metric, split, value = _main_score(child, result)
    error = None
    if child.state != JobState.SUCCEEDED.value:
        error = f"{child.error_type}: {child.error_message}" if child.error_type else child.message or child.state
    return {
        "target": float(child.spec["target"][key]),
        "state": child.state,
        "flops_reduction": achieved.get("flops_reduction_pruned_part"),
        "flops_reduction_whole_model": achieved.get("flops_reduction_whole_model"),
        "params": after.get("total"),
        "params_reduction": achieved.get("params_reduction_pruned_part"),
        "remaining_weights": _remaining(achieved),
        "train_loss": training.get("final_loss") if isinstance(training, dict) else None,
        "metric": metric,
        "metric_split": split,
        "metric_value": value,
        "speedup": speed.get("speedup") if speed.get("measured") else None,
        "speedup_low": ci[0] if ci else None,
        "speedup_high": ci[1] if ci else None,
        "speedup_noisy": speed.get("noisy") if speed.get("measured") else None,
        "ideal_speedup": speed.get("ideal_speedup"),
        "job_id": str(child.id),
        "error": error,
    }


def write_outputs(rows: list[dict[str, Any]], spec: SweepJobSpec, folder: Path) -> list[tuple[str, str, Path]]:
    """The table as JSON and CSV and the plot as PNG; (artifact name, kind, file) each."""
    table = {
        "method": spec.method,
        "model": spec.model.id,
        "task": spec.task.name,
        "target_kind": spec.targets.key,
        "x_axis": spec.x_axis,
        "finetuned": spec.finetune is not None,
        "columns": list(COLUMNS),
        "rows": rows,
    }
    (folder / TABLE_JSON).write_text(json.dumps(table, indent=2) + "\n")
    with (folder / TABLE_CSV).open("w", newline="") as fh:
        writer = csv.DictWriter(fh, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(rows)
    plot(rows, spec, folder / PLOT_PNG)
    return [(TABLE_JSON, "report", folder / TABLE_JSON), (TABLE_CSV, "report", folder / TABLE_CSV),
            (PLOT_PNG, "plot", folder / PLOT_PNG)]  # fmt: skip


def plot(rows: list[dict[str, Any]], spec: SweepJobSpec, path: Path) -> None:
    """The sweep's figure (:func:`figure`) as a PNG."""
    figure(rows, spec).savefig(path, format="png")


def x_axis(done: list[dict[str, Any]], spec: SweepJobSpec) -> tuple[str, str]:
    """(row key, label) of the x axis: the remaining weights, or the measured speedup (ideal where none was)."""
    if spec.x_axis == "remaining_weights":
        return "remaining_weights", "remaining weights (fraction of the prunable weights kept)"
    if any(r["speedup"] is not None for r in done):
        return "speedup", "measured speedup (dense / pruned latency)"
    return "ideal_speedup", "ideal speedup (FLOPs)"


#: The y axis where no metric was scored: the first of these the children report, with its label.
_Y_WITHOUT_METRIC = (
    ("flops_reduction", "achieved FLOPs reduction (attention + FFN)"),
    ("train_loss", "final training loss of the method"),
    ("params_reduction", "achieved parameter reduction (pruned matrices)"),
)


def y_axis(done: list[dict[str, Any]], spec: SweepJobSpec) -> tuple[str, str]:
    """(row key, label) of the y axis: the main metric of a fine-tuned sweep, else what the children report.

    An unstructured method reports no FLOPs reduction (its matrices stay dense); a method
    that trains its masks reports its final training loss, the one quality figure a
    sweep without fine-tuning has.
    """
    scored = next((r for r in done if r["metric"]), None)
    if spec.finetune is not None and scored is not None:
        return "metric_value", f"{scored['metric']} ({scored['metric_split'] or ''})"
    for key, label in _Y_WITHOUT_METRIC:
        if any(r[key] is not None for r in done):
            return key, label
    return _Y_WITHOUT_METRIC[0]


def figure(rows: list[dict[str, Any]], spec: SweepJobSpec) -> Figure:
    """The y axis (:func:`y_axis`) against speedup or remaining weights (:func:`x_axis`), one point per target.

    Measured speedup on the x axis with its 95% interval as an error bar; the ideal (FLOPs)
    speedup when none was measured. A child whose measurement was noisy has no speedup to
    place, so it is left out and the legend names its target. An unstructured method's
    sweep is plotted against the remaining weights instead: its dense speedup is none by
    construction. A ``Figure`` without pyplot renders with Agg: no display, no global state.
    """
    from matplotlib.figure import Figure

    done = [r for r in rows if r["state"] == JobState.SUCCEEDED.value]
    (x_key, x_label), (y_key, y_label) = x_axis(done, spec), y_axis(done, spec)
    shown = [r for r in done if r[x_key] is not None and r[y_key] is not None]
    noisy = [r["target"] for r in done if r.get("speedup_noisy") and r[y_key] is not None]
    fig = Figure(figsize=(6.4, 4.2), dpi=100)
    ax = fig.subplots()
    if shown:
        xs, ys = [r[x_key] for r in shown], [r[y_key] for r in shown]
        if x_key == "speedup":
            bounds = [(r.get("speedup_low"), r.get("speedup_high")) for r in shown]
            low = [x if lo is None else lo for x, (lo, _) in zip(xs, bounds, strict=True)]
            high = [x if hi is None else hi for x, (_, hi) in zip(xs, bounds, strict=True)]
            xerr = [[max(0.0, x - lo) for x, lo in zip(xs, low, strict=True)],
                    [max(0.0, hi - x) for x, hi in zip(xs, high, strict=True)]]  # fmt: skip
            ax.errorbar(xs, ys, xerr=xerr, marker="o", capsize=3, label="measured speedup, 95% interval")
        else:
            ax.plot(xs, ys, marker="o", label="ideal speedup (FLOPs)" if x_key == "ideal_speedup" else None)
        for r, x, y in zip(shown, xs, ys, strict=True):
            ax.annotate(f"{r['target']:g}", (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
    else:
        ax.text(0.5, 0.5, "no finished child job to plot", ha="center", va="center", transform=ax.transAxes)
    if noisy and x_key == "speedup":
        targets = ", ".join(f"{t:g}" for t in noisy)
        label = f"left out, noisy (machine busy): {targets}"
        ax.plot([], [], linestyle="none", marker="o", fillstyle="none", label=label)
    if ax.get_legend_handles_labels()[0]:
        ax.legend(fontsize=8)
    ax.set_xlabel(x_label)
    ax.set_ylabel(y_label)
    ax.set_title(f"{spec.method} on {spec.task.name}: {spec.targets.key} sweep", fontsize=10)
    ax.grid(True, alpha=0.3)
    fig.tight_layout()
    return fig
