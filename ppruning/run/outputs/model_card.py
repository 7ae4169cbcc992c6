"""The model card (``README.md``) of every checkpoint the library writes: pruned, fine-tuned, exported.

A checkpoint folder on its own should say what it is, the way a model on the Hugging Face
Hub does: YAML metadata in the hub's convention (``base_model``, ``tags`` with the pruning
method, ``pipeline_tag``, ``license`` carried over from the base model's card or config,
``datasets``, ``metrics`` and ``model-index`` results) and a body written from the run's
report and reproducibility record: what was pruned, how and by how much, the measured
speedup and quality, and how to load it. huggingface_hub's :class:`~huggingface_hub.ModelCard`
renders and parses it, so what we write is what the hub reads.

The pruning figures also travel in the metadata under ``ppruning``: a card written for a
fine-tuned or exported copy of a pruned checkpoint reads them back from the source folder's
card, so the last checkpoint of a pipeline still says how it was pruned.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from huggingface_hub import EvalResult, ModelCard, ModelCardData

CARD_FILE = "README.md"
#: The metadata key holding the pruning summary (method, targets, achieved and measured figures).
SUMMARY_KEY = "ppruning"

#: Last word(s) of a transformers class name -> (hub pipeline tag, Auto class).
_HEADS = (
    ("ForSequenceClassification", "text-classification", "AutoModelForSequenceClassification"),
    ("ForQuestionAnswering", "question-answering", "AutoModelForQuestionAnswering"),
    ("ForCausalLM", "text-generation", "AutoModelForCausalLM"),
    ("LMHeadModel", "text-generation", "AutoModelForCausalLM"),
    ("ForMaskedLM", "fill-mask", "AutoModelForMaskedLM"),
    ("ForTokenClassification", "token-classification", "AutoModelForTokenClassification"),
)


# --------------------------------------------------------------------------- what the folders say


def _read_json(path: Path) -> dict[str, Any]:
    try:
        return json.loads(path.read_text())
    except (OSError, ValueError):
        return {}


def head_of(model_dir: Path) -> tuple[str, str]:
    """(pipeline tag, Auto class) of the checkpoint in ``model_dir``, from its config's architecture."""
    architectures = _read_json(Path(model_dir) / "config.json").get("architectures") or [""]
    for suffix, tag, auto in _HEADS:
        if architectures[0].endswith(suffix):
            return tag, auto
    return "feature-extraction", "AutoModel"


def needs_remote_code(model_dir: Path) -> bool:
    """True when plain transformers needs ``trust_remote_code=True`` (a config with its modelling code beside it)."""
    return "auto_map" in _read_json(Path(model_dir) / "config.json")


def source_card(model_id: str, revision: str | None = None) -> ModelCard | None:
    """The card of a model: ``README.md`` of a local folder, or of a hub model already in the local cache.

    Never reaches the network: a card that is not on disk is simply unknown.
    """
    folder = Path(model_id).expanduser()
    path: Any = folder / CARD_FILE if folder.is_dir() else None
    if path is None:
        try:
            from huggingface_hub import try_to_load_from_cache

            path = try_to_load_from_cache(model_id, CARD_FILE, revision=revision)
        except Exception:  # an id the cache cannot even name (a path that does not exist): unknown
            return None
    if not isinstance(path, str | Path) or not Path(path).is_file():
        return None
    try:
        return ModelCard.load(Path(path), ignore_metadata_errors=True)
    except Exception:  # a README without usable metadata says nothing we can carry
        return None


def _is_hub_id(model_id: str) -> bool:
    return not Path(model_id).expanduser().exists() and not model_id.startswith(("/", ".", "~"))


def shown_id(model_id: Any) -> str:
    """A model as a card names it: the hub id, or a local folder's name (its path means nothing elsewhere)."""
    model_id = str(model_id)
    return model_id if _is_hub_id(model_id) else f"{Path(model_id).name} (a local folder)"


def lineage(model_id: str, revision: str | None = None) -> dict[str, Any]:
    """What a derived checkpoint carries from its source: base model (a hub id), license, pruning summary."""
    card = source_card(model_id, revision)
    data = card.data.to_dict() if card is not None else {}
    config = _read_json(Path(model_id).expanduser() / "config.json") if not _is_hub_id(model_id) else {}
    base = model_id if _is_hub_id(model_id) else data.get("base_model")
    return {
        "base_model": base,
        "license": data.get("license") or config.get("license"),
        "summary": data.get(SUMMARY_KEY),
        "datasets": data.get("datasets"),
    }


def task_dataset(task: dict[str, Any]) -> tuple[str | None, str | None]:
    """(hub dataset id, config) of a task reference (as in a spec); None for custom local files."""
    from ppruning.tasks.registry import get_task

    try:
        info = get_task(task["name"])
    except Exception:
        return None, None
    return (None, None) if info.custom else (info.dataset, info.dataset_config)


# --------------------------------------------------------------------------- the pruning summary


def _pct(value: Any) -> str:
    return f"{100 * float(value):.1f}%" if isinstance(value, int | float) else "n/a"


def summarise_prune(report: dict[str, Any]) -> dict[str, Any]:
    """The figures of a prune report a card states (also kept in its metadata under ``ppruning``)."""
    speed = report.get("speed") or {}
    target = {k: v for k, v in (report.get("target") or {}).items() if v is not None}
    summary: dict[str, Any] = {
        "method": report.get("method"),
        "kind": report.get("kind", "structured"),
        "base_model": (report.get("model") or {}).get("id"),
        "task": (report.get("task") or {}).get("name"),
        "target": target,
        "achieved": report.get("achieved") or {},
        "seed": report.get("seed"),
        "speed": {
            k: speed.get(k)
            for k in ("measured", "device", "speedup", "speedup_ci", "ideal_speedup", "speedup_batch_size", "noisy")
            if k in speed
        },
    }
    if speed.get("note"):
        summary["speed"]["note"] = speed["note"]
    return summary


def _pruning_section(summary: dict[str, Any], report: dict[str, Any] | None) -> list[str]:
    method, kind = summary.get("method"), summary.get("kind", "structured")
    targets = ", ".join(f"{k.replace('_', ' ')} {_pct(v)}" for k, v in (summary.get("target") or {}).items())
    lines = [
        "## How it was pruned",
        "",
        f"- Method: `{method}` ({kind} pruning), seed {summary.get('seed')}",
        f"- Base model: `{shown_id(summary.get('base_model'))}`",
        f"- Task: `{summary.get('task')}`",
        f"- Target: {targets or 'n/a'}",
        *_recovery_lines((report or {}).get("details") or {}),
    ]
    achieved = summary.get("achieved") or {}
    if achieved:
        lines += ["", "| achieved | value |", "| --- | --- |"]
        lines += [f"| {k.replace('_', ' ')} | {_pct(v)} |" for k, v in achieved.items() if isinstance(v, int | float)]
    if report is not None and report.get("layers"):
        lines += ["", "| layer | heads kept | neurons kept |", "| --- | --- | --- |"]
        lines += [
            f"| {row['layer']} | {row['heads_kept']} / {row['heads_total']} | "
            f"{row['neurons_kept']} / {row['neurons_total']} |"
            for row in report["layers"]
        ]
    if report is not None and report.get("params"):
        params = ", ".join(f"{k}={v}" for k, v in report["params"].items())
        lines += ["", f"Method parameters: {params}."]
    return lines + [""]


def _recovery_lines(details: dict[str, Any]) -> list[str]:
    """What the run did beyond choosing units: the outlier neurons it kept and the projections it refit."""
    lines = []
    outliers = details.get("outlier_units")
    if outliers is not None:
        count = sum(len(n) for n in (outliers.get("neurons") or {}).values())
        swaps = len(outliers.get("swaps") or [])
        lines.append(
            f"- Outlier neurons (massive activations) kept: {count}, of which {swaps} in place of the method's choice"
        )
    comp = details.get("compensation")
    if comp is not None:
        refit = comp.get("refit") or {}
        parts = ", ".join(f"{part} in {len(layers)} layer(s)" for part, layers in refit.items() if layers)
        lines.append(
            f"- Compensation: output projections refit by least squares on {comp.get('tokens')} calibration "
            f"tokens ({parts or 'none'}); the kept weights differ from the base model's"
        )
    return lines


def _speed_section(summary: dict[str, Any]) -> list[str]:
    speed = summary.get("speed") or {}
    lines = ["## Measured speed", ""]
    if not speed.get("measured"):
        note = str(speed.get("note") or "the run did not time the models").removeprefix("none: ")
        lines.append(f"Not measured: {note.rstrip('.')}.")
        return lines + [""]
    ci = speed.get("speedup_ci")
    interval = f" (95% interval {ci[0]:.2f}x to {ci[1]:.2f}x)" if ci else ""
    where = f"on {speed.get('device')}, batch size {speed.get('speedup_batch_size')}"
    if isinstance(speed.get("speedup"), int | float):
        lines.append(f"- Measured speedup over the dense model: **{speed['speedup']:.2f}x**{interval}, {where}")
    else:
        lines.append(f"- Measured speedup: not given, the timings were too noisy{interval}, {where}")
    if isinstance(speed.get("ideal_speedup"), int | float):
        lines.append(f"- Ideal speedup from the FLOPs removed: {speed['ideal_speedup']:.2f}x")
    if speed.get("note"):
        lines.append(f"- {speed['note']}")
    return lines + [""]


# --------------------------------------------------------------------------- loading


def load_section(model_dir: Path, *, kind: str = "structured", onnx: bool = False) -> list[str]:
    """How to load the checkpoint: plain transformers (with remote code when the config needs it) and the library."""
    if onnx:
        return [
            "## How to load",
            "",
            "```python",
            "import onnxruntime",
            "",
            'session = onnxruntime.InferenceSession("model.onnx")',
            'outputs = session.run(None, {"input_ids": input_ids, "attention_mask": attention_mask})',
            "```",
            "",
        ]
    _, auto = head_of(model_dir)
    remote = ", trust_remote_code=True" if needs_remote_code(model_dir) else ""
    lines = [
        "## How to load",
        "",
        "With plain transformers:",
        "",
        "```python",
        f"from transformers import AutoTokenizer, {auto}",
        "",
        f'model = {auto}.from_pretrained("path/to/this/folder"{remote})',
        'tokenizer = AutoTokenizer.from_pretrained("path/to/this/folder")',
        "```",
        "",
    ]
    if remote:
        lines += [
            "The layers have different sizes, so the folder ships its modelling code "
            "(`modeling_pruned.py`); `trust_remote_code=True` runs it.",
            "",
        ]
    if kind == "structured":
        lines += [
            "As the library's stock transformers classes, cut to the recorded sizes (the portable checkpoint):",
            "",
            "```python",
            "from ppruning import load_pruned",
            "",
            'model = load_pruned("path/to/this/folder")',
            "```",
            "",
        ]
    else:
        lines += [
            "The pruned weights are zeros in dense matrices; `weight_masks.safetensors` (when present) "
            "holds the masks, so fine-tuning can keep them at zero.",
            "",
        ]
    return lines


def _reproduce_section(record: dict[str, Any] | None) -> list[str]:
    if not record:
        return []
    versions = record.get("versions") or {}
    used = ", ".join(f"{k} {v}" for k, v in versions.items() if v and k in ("ppruning", "torch", "transformers"))
    return [
        "## Reproduce",
        "",
        "`record.json` beside the weights holds the full specification with every default filled in, the "
        f"model's resolved revision and a fingerprint of the data. Made with {used}. Its `rerun_spec` runs the "
        "same again (as the spec of `POST /jobs`, or in Python):",
        "",
        "```python",
        "import json",
        "from ppruning import spec_from_record",
        "",
        'kind, spec = spec_from_record(json.load(open("record.json")))',
        "```",
        "",
    ]


# --------------------------------------------------------------------------- the cards


def _card(data: ModelCardData, title: str, body: list[str]) -> ModelCard:
    return ModelCard(f"---\n{data.to_yaml()}\n---\n\n# {title}\n\n" + "\n".join(body).rstrip() + "\n")


def _tags(summary: dict[str, Any] | None, *extra: str) -> list[str]:
    tags = ["ppruning", "pruned"]
    if summary and summary.get("method"):
        tags += [f"{summary.get('kind', 'structured')}-pruning", f"pruning-method-{summary['method']}"]
    return list(dict.fromkeys([*tags, *(t for t in extra if t)]))


def pruned_card(report: dict[str, Any], model_dir: Path) -> ModelCard:
    """The card of a prune run's checkpoint, from its report (``report["record"]``: its record)."""
    model_dir = Path(model_dir)
    summary = summarise_prune(report)
    model = report.get("model") or {}
    source = lineage(str(model.get("id")), model.get("revision"))
    dataset, _ = task_dataset(report.get("task") or {})
    pipeline_tag, _ = head_of(model_dir)
    data = ModelCardData(
        base_model=source["base_model"],
        license=source["license"],
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=_tags(summary, summary["task"]),
        datasets=[dataset] if dataset else source["datasets"],
        metrics=["speedup"] if (summary["speed"] or {}).get("measured") else None,
        **{SUMMARY_KEY: summary},
    )
    reduction = ", ".join(f"{_pct(v)} {k.replace('_', ' ')}" for k, v in summary["achieved"].items() if "whole" in k)
    body = [
        f"`{shown_id(summary['base_model'])}` pruned with `{summary['method']}` for `{summary['task']}`"
        + (f": {reduction}." if reduction else "."),
        "",
        *_pruning_section(summary, report),
        *_speed_section(summary),
        "## Quality",
        "",
        "The prune run scores no task metric; fine-tune this checkpoint (`ppruning finetune`, or a pipeline job) "
        "and its card reports the task metrics.",
        "",
        *load_section(model_dir, kind=summary["kind"]),
        *_reproduce_section(report.get("record")),
    ]
    return _card(data, f"{Path(str(summary['base_model'])).name}, pruned with {summary['method']}", body)


def finetuned_card(report: dict[str, Any], model_dir: Path) -> ModelCard:
    """The card of a fine-tuned checkpoint, from its ``finetune_report.json``; a pruned source's card is carried."""
    model_dir = Path(model_dir)
    model = report.get("model") or {}
    source = lineage(str(model.get("id")), model.get("revision"))
    summary = source["summary"]
    task = str(report.get("task"))
    dataset, dataset_config = task_dataset({"name": task})
    pipeline_tag, _ = head_of(model_dir)
    results = [
        EvalResult(
            task_type=pipeline_tag,
            dataset_type=dataset or task,
            dataset_name=task,
            dataset_config=dataset_config,
            dataset_split=str(split),
            metric_type=str(metric),
            metric_value=value,
        )
        for split, values in (report.get("metrics") or {}).items()
        for metric, value in values.items()
        if isinstance(value, int | float)
    ]
    data = ModelCardData(
        base_model=source["base_model"],
        license=source["license"],
        library_name="transformers",
        pipeline_tag=pipeline_tag,
        tags=_tags(summary, task, "fine-tuned") if summary else ["ppruning", "fine-tuned", task],
        datasets=[dataset] if dataset else source["datasets"],
        metrics=sorted({r.metric_type for r in results}) or None,
        eval_results=results or None,
        model_name=f"{Path(str(source['base_model'] or 'model')).name}-{task}",
        **({SUMMARY_KEY: summary} if summary else {}),
    )
    hp = report.get("hyperparameters") or {}
    quality = ["## Quality", ""]
    for split, values in (report.get("metrics") or {}).items():
        shown = ", ".join(f"{k} {v:.4f}" for k, v in values.items() if isinstance(v, int | float))
        quality.append(f"- `{split}`: {shown}")
    if len(quality) == 2:
        quality.append(f"Not scored: {report.get('evaluation_note') or 'no labelled evaluation split'}.")
    body = [
        f"Fine-tuned on `{task}` from `{shown_id(model.get('id'))}`"
        + (f", a checkpoint pruned with `{summary['method']}`." if summary else "."),
        "",
        *quality,
        "",
        "## Training",
        "",
        f"- Epochs run: {report.get('epochs_run')}, best epoch {report.get('best_epoch')} on "
        f"`{report.get('selection_split')}` ({report.get('main_metric')})",
        f"- Learning rate {hp.get('learning_rate')}, batch size {hp.get('batch_size')}, seed {hp.get('seed')}",
        f"- Training time {report.get('train_time_s')} s on {report.get('device')}",
        "",
    ]
    if summary:
        body += [*_pruning_section(summary, None), *_speed_section(summary)]
    body += [
        *load_section(model_dir, kind=(summary or {}).get("kind", "structured") if report.get("pruned") else "dense"),
        *_reproduce_section(report.get("record")),
    ]
    return _card(data, f"{task}: fine-tuned pruned model" if summary else f"{task}: fine-tuned model", body)


def exported_card(report: dict[str, Any], model_dir: Path) -> ModelCard:
    """The card of an ONNX export (``export_report.json``) of the checkpoint in ``model_dir``."""
    source = lineage(str(model_dir))
    summary = source["summary"]
    pipeline_tag, _ = head_of(Path(model_dir))
    data = ModelCardData(
        base_model=source["base_model"],
        license=source["license"],
        library_name="onnx",
        pipeline_tag=pipeline_tag,
        tags=_tags(summary, "onnx"),
        datasets=source["datasets"],
        **({SUMMARY_KEY: summary} if summary else {}),
    )
    lines = ["## The export", "", "| variant | latency (ms) | size (MB) | max abs diff to PyTorch |"]
    lines.append("| --- " * 4 + "|")
    for variant in ("pruned", "dense", "int8"):
        row = report.get(variant)
        if isinstance(row, dict):
            lines.append(f"| {variant} | {row.get('latency_ms')} | {row.get('size_mb')} | {row.get('max_abs_diff')} |")
    if isinstance(report.get("speedup"), int | float):
        lines += ["", f"onnxruntime speedup of the pruned export over the dense one: **{report['speedup']:.2f}x**."]
    body = [
        "The checkpoint beside this export in ONNX (dynamic batch and sequence axes), checked against PyTorch.",
        "",
        *lines,
        "",
        *(_pruning_section(summary, None) + _speed_section(summary) if summary else []),
        *load_section(Path(model_dir), onnx=True),
    ]
    return _card(data, "ONNX export" + (f" of a model pruned with {summary['method']}" if summary else ""), body)


def write_card(card: ModelCard, folder: Path) -> Path:
    """Write ``card`` as ``folder/README.md``; returns the file."""
    path = Path(folder) / CARD_FILE
    card.save(path)
    return path
