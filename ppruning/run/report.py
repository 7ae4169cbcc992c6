"""``report.json``: what ran, what it kept, what it saved, what it cost to run.

Holds the method with every parameter and the seed, the model id and revision, per-layer
kept head units and neurons, parameters and FLOPs before/after (whole model and the
pruned attention+FFN part), time per stage, peak host RSS and device memory, and the
library versions, so a report alone says how to reproduce its masks.
"""

from __future__ import annotations

import resource
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import torch

from ppruning.progress import Progress


class StageTimer(Progress):
    """Forwards to another listener and records the wall time of each stage."""

    def __init__(self, inner: Progress) -> None:
        self.inner = inner
        self.seconds: dict[str, float] = {}
        self._stage: str | None = None
        self._since = self._began = time.perf_counter()

    def _close(self) -> None:
        if self._stage is not None:
            elapsed = time.perf_counter() - self._since
            self.seconds[self._stage] = self.seconds.get(self._stage, 0.0) + elapsed
        self._stage = None

    def start_stage(self, stage: str, total: int | None = None, message: str = "") -> None:
        self._close()
        self._stage, self._since = stage, time.perf_counter()
        self.inner.start_stage(stage, total, message)

    def elapsed(self) -> float:
        """Seconds since the run began (since this timer was made)."""
        return time.perf_counter() - self._began

    def finish(self) -> dict[str, float]:
        self._close()
        return {k: round(v, 4) for k, v in self.seconds.items()}

    def update(self, step: int, total: int | None = None, **metrics: Any) -> None:
        self.inner.update(step, total, **metrics)

    def event(self, message: str, level: str = "info", **data: Any) -> None:
        self.inner.event(message, level, **data)

    def checkpoint(self) -> None:
        self.inner.checkpoint()


def reset_peak_memory(device: torch.device | None) -> None:
    """Start a fresh peak: the process's RSS high-water mark (Linux) and the CUDA allocator's."""
    try:  # Linux >= 4.0: writing 5 resets VmHWM, so a long-lived worker reports this job's peak
        Path("/proc/self/clear_refs").write_text("5")
    except OSError:
        pass
    if device is not None and device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)


def proc_status_bytes(field: str) -> int | None:
    """One memory field of Linux's ``/proc/self/status`` (``VmHWM``, ``RssAnon``, ...) in bytes; None elsewhere."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith(f"{field}:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return None


def peak_host_rss_bytes() -> int:
    """Peak resident set size since :func:`reset_peak_memory` (process lifetime where it cannot reset)."""
    peak = proc_status_bytes("VmHWM")
    if peak is not None:
        return peak
    scale = 1 if sys.platform == "darwin" else 1024
    return int(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss) * scale


def peak_device_bytes(device: torch.device | None) -> int | None:
    if device is not None and device.type == "cuda":
        return int(torch.cuda.max_memory_allocated(device))
    return None


def library_versions() -> dict[str, str | None]:
    import transformers

    from ppruning.version import __version__

    return {
        "ppruning": __version__,
        "ppruning_git": _git_revision(),
        "torch": torch.__version__,
        "transformers": transformers.__version__,
        "python": sys.version.split()[0],
    }


def _git_revision() -> str | None:
    here = Path(__file__).resolve().parent
    try:
        out = subprocess.run(
            ["git", "-C", str(here), "rev-parse", "HEAD"], capture_output=True, text=True, timeout=5, check=False
        )
    except (OSError, subprocess.SubprocessError):
        return None
    return out.stdout.strip() or None


def _ratio(before: float, after: float) -> float:
    return round(1.0 - after / before, 6) if before else 0.0


def build_report(
    *,
    config: dict[str, Any],
    method_params: dict[str, Any],
    head_kept: list[int],
    neuron_kept: list[int],
    original: dict[str, list[int]],
    before: dict[str, Any],
    after: dict[str, Any],
    budget: dict[str, Any],
    stage_seconds: dict[str, float],
    device: torch.device,
    details: dict[str, Any],
) -> dict[str, Any]:
    """Assemble the report; ``before``/``after`` come from :func:`ppruning.units.cost.model_costs`."""
    achieved = {
        "flops_reduction_pruned_part": _ratio(before["flops"]["pruned_part"], after["flops"]["pruned_part"]),
        "flops_reduction_whole_model": _ratio(before["flops"]["total"], after["flops"]["total"]),
        "params_reduction_pruned_part": _ratio(before["params"]["pruned_part"], after["params"]["pruned_part"]),
        "params_reduction_whole_model": _ratio(before["params"]["total"], after["params"]["total"]),
    }
    layers = [
        {"layer": i, "heads_kept": h, "heads_total": ht, "neurons_kept": n, "neurons_total": nt}
        for i, (h, ht, n, nt) in enumerate(
            zip(head_kept, original["num_head_units"], neuron_kept, original["ffn_size"], strict=True)
        )
    ]
    return {
        "method": config["method"],
        "kind": "structured",
        "params": method_params,
        "seed": config["seed"],
        "model": config["model"],
        "task": config["task"],
        "target": config["target"],
        "reconstruct": config.get("reconstruct", False),
        "device": str(device),
        "budget": budget,
        "achieved": achieved,
        "layers": layers,
        "cost": {
            "before": before,
            "after": after,
            "note": "FLOPs are multiply-accumulates per sequence at cost.seq_len tokens; 'other' is "
            "embeddings, norms and task heads (not pruned), a pooler counted at every token.",
        },
        "timings_s": stage_seconds,
        "memory": {
            "peak_host_rss_bytes": peak_host_rss_bytes(),
            "peak_device_bytes": peak_device_bytes(device),
        },
        "details": details,
        "versions": library_versions(),
    }
