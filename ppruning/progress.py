"""How long-running library stages report progress and learn that they should stop.

The library never knows who listens: the CLI draws a progress bar, the worker writes
stage, fraction and events to the job row. Stages call :meth:`Progress.checkpoint`
between batches; a listener that wants the work to stop raises
:class:`~ppruning.errors.JobCancelled` from there.

Stage names used by the library (the worker weights them into one job fraction):
``load_model``, ``load_data``, ``collect``, ``cluster``, ``select``, ``materialise``,
``finetune``, ``evaluate``, ``measure``, ``write``.
"""

from __future__ import annotations

import sys
import time
from collections.abc import Callable
from typing import Any, TextIO

from tqdm import tqdm


class Progress:
    """A listener that does nothing; subclass and override what you need."""

    def start_stage(self, stage: str, total: int | None = None, message: str = "") -> None:
        """A new stage begins; ``total`` is its number of steps when known."""

    def update(self, step: int, total: int | None = None, **metrics: Any) -> None:
        """``step`` of the current stage is done; ``metrics`` (loss, a metric) ride along."""

    def event(self, message: str, level: str = "info", **data: Any) -> None:
        """Something a user reading the job's log should see."""

    def checkpoint(self) -> None:
        """Called between batches; raise ``JobCancelled`` here to stop the work."""


NULL_PROGRESS = Progress()


#: The bar of a stage with a known length, drawn by tqdm (``eta`` assumes the pace so far holds).
BAR_FORMAT = "{desc} [{bar:30}] {n_fmt}/{total_fmt} elapsed {elapsed} eta {remaining}"
DONE_FORMAT = "{desc} [{bar:30}] {n_fmt}/{total_fmt} elapsed {elapsed}"


class StderrProgress(Progress):
    """Plain progress lines on stderr (or a bar with elapsed time and ETA on a TTY), for the CLI.

    The bar's text is tqdm's (:meth:`tqdm.tqdm.format_meter`); when and where it is written
    stays here, so a listener's clock and interval decide, and a log gets one line per update.
    """

    def __init__(
        self,
        stream: TextIO | None = None,
        min_interval_s: float = 0.5,
        clock: Callable[[], float] = time.monotonic,
    ) -> None:
        self.stream = stream or sys.stderr
        self.min_interval_s = min_interval_s
        self.clock = clock
        self._began = clock()
        self._stage = ""
        self._total: int | None = None
        self._last = 0.0
        self._tty = self.stream.isatty()

    def start_stage(self, stage: str, total: int | None = None, message: str = "") -> None:
        if self._tty and self._stage:
            self.stream.write("\n")
        self._stage, self._total, self._last, self._began = stage, total, 0.0, self.clock()
        self.stream.write(f"[{stage}] {message}".rstrip() + "\n")
        self.stream.flush()

    def update(self, step: int, total: int | None = None, **metrics: Any) -> None:
        total = total if total is not None else self._total
        now = self.clock()
        if now - self._last < self.min_interval_s and step != total:
            return
        self._last = now
        extra = " ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}" for k, v in metrics.items())
        if total:
            bar = tqdm.format_meter(
                min(step, total), total, max(0.0, now - self._began), prefix=f"[{self._stage}]", ascii=".#",
                bar_format=DONE_FORMAT if step >= total else BAR_FORMAT,
            )  # fmt: skip
            text = f"{bar} {extra}".rstrip()
        else:
            text = f"[{self._stage}] {step} {extra}".rstrip()
        self.stream.write(("\r" + text) if self._tty else (text + "\n"))
        self.stream.flush()

    def event(self, message: str, level: str = "info", **data: Any) -> None:
        self.stream.write(("\n" if self._tty else "") + f"{level}: {message}\n")
        self.stream.flush()

