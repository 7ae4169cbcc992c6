"""transformers' load report, judged by what the run uses instead of printed as it comes.

Loading a base checkpoint into a task model always reports the task head as ``MISSING``
(``classifier.weight | MISSING``): the head is new, and a method that reads only the
backbone, or a fine-tuning that trains the head, expects exactly that. The report also
carries ANSI colour codes whatever stderr is. So the report is held back while the model
loads; only rows about the backbone (a real mismatch) are passed on, as plain text.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterator
from contextlib import contextmanager

#: The logger transformers' ``from_pretrained`` writes its load report to.
_REPORT_LOGGER = "transformers.modeling_utils"
_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_ROW = re.compile(r"^(?P<key>[\w.]+)\s*\|\s*(?P<status>[A-Z_]+)\b")

log = logging.getLogger(__name__)


def strip_ansi(text: str) -> str:
    return _ANSI.sub("", text)


class _HoldReports(logging.Filter):
    def __init__(self) -> None:
        super().__init__()
        self.reports: list[str] = []

    def filter(self, record: logging.LogRecord) -> bool:
        text = record.getMessage()
        if "LOAD REPORT" in text:
            self.reports.append(strip_ansi(text))
            return False
        return True


def backbone_rows(report: str, base_prefix: str) -> list[str]:
    """The report's rows about the backbone (keys under ``base_prefix``): what a new task head does not explain."""
    rows = []
    for line in report.splitlines():
        match = _ROW.match(line.strip())
        if match and match["key"] != "Key" and match["key"].startswith(f"{base_prefix}."):
            rows.append(f"{match['key']}: {match['status']}")
    return rows


@contextmanager
def held_load_report() -> Iterator[list[str]]:
    """Hold transformers' load reports back while the block loads a model; the reports, ANSI-free, after it."""
    logger = logging.getLogger(_REPORT_LOGGER)
    hold = _HoldReports()
    logger.addFilter(hold)
    try:
        yield hold.reports
    finally:
        logger.removeFilter(hold)


def pass_on_backbone_problems(reports: list[str], model_id: str, base_prefix: str) -> None:
    """Warn, in one plain line, about backbone weights the checkpoint lacks or does not fit; nothing for the head."""
    rows = [row for report in reports for row in backbone_rows(report, base_prefix)]
    if rows:
        shown = "; ".join(rows[:8]) + (f"; and {len(rows) - 8} more" if len(rows) > 8 else "")
        log.warning("loading %s: backbone weights not loaded as they are: %s", model_id, shown)
