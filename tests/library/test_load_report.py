"""transformers' load report: a new task head is expected and dropped, a backbone problem is still said."""

from __future__ import annotations

import logging

import pytest

from ppruning.model.load_report import backbone_rows, held_load_report, pass_on_backbone_problems

REPORT = (
    "\x1b[1mBertForSequenceClassification LOAD REPORT\x1b[0m from: x\n"
    "Key                          | Status  | \n"
    "-----------------------------+---------+-\n"
    "classifier.weight            | MISSING | \n"
    "bert.encoder.layer.0.output.dense.weight | MISSING | \n"
)


def test_only_backbone_rows_are_passed_on_as_plain_text(caplog: pytest.LogCaptureFixture) -> None:
    logger = logging.getLogger("transformers.modeling_utils")
    caplog.set_level(logging.WARNING, logger="transformers.modeling_utils")  # another test may have quietened it
    with held_load_report() as reports:
        logger.warning(REPORT)
    assert reports and "\x1b[" not in reports[0]
    assert backbone_rows(reports[0], "bert") == ["bert.encoder.layer.0.output.dense.weight: MISSING"]
    with caplog.at_level(logging.WARNING, logger="ppruning"):
        pass_on_backbone_problems(reports, "x", "bert")
    assert "bert.encoder.layer.0.output.dense.weight" in caplog.text and "classifier" not in caplog.text
    assert "\x1b[" not in caplog.text
