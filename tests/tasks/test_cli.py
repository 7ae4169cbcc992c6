"""The task commands: `ppruning tasks`, `ppruning finetune`, `ppruning evaluate`."""

from __future__ import annotations

import json

from ppruning.cli.main import main
from ppruning.tasks import all_tasks


def test_tasks_lists_every_registered_task_and_what_custom_tasks_need(capsys):
    assert main(["tasks"]) == 0
    out = capsys.readouterr().out
    for name in all_tasks():
        assert name in out
    assert "needs --data-files, --text-pair-column" in out
    assert main(["tasks", "--json"]) == 0
    listed = json.loads(capsys.readouterr().out)
    assert listed["mnli"]["eval_splits"] == ["validation_matched", "validation_mismatched"]


def test_finetune_then_evaluate_from_the_command_line(task_datasets, tiny_bert_path, tmp_path, capsys):
    code = main(
        [
            "finetune",
            "--model",
            str(tiny_bert_path),
            "--task",
            "rte",
            "--output",
            str(tmp_path / "ft"),
            "--epochs",
            "1",
            "--batch-size",
            "16",
            "--max-length",
            "24",
            "--device",
            "cpu",
            "--quiet",
        ]
    )
    assert code == 0
    summary = json.loads(capsys.readouterr().out)
    assert summary["main_metric"] == "accuracy" and "validation" in summary["metrics"]
    assert (tmp_path / "ft" / "metrics.json").is_file() and (tmp_path / "ft" / "trainer_log.jsonl").is_file()
    code = main(
        [
            "evaluate",
            "--model",
            str(tmp_path / "ft" / "model"),
            "--task",
            "rte",
            "--max-length",
            "24",
            "--device",
            "cpu",
            "--output",
            str(tmp_path / "m.json"),
        ]
    )
    assert code == 0
    scored = json.loads(capsys.readouterr().out)
    assert scored == json.loads((tmp_path / "m.json").read_text())
    assert abs(scored["validation"]["accuracy"] - summary["metrics"]["validation"]["accuracy"]) < 1e-6


def test_bad_task_options_exit_2_naming_the_field(tmp_path, capsys):
    code = main(
        [
            "finetune",
            "--model",
            "x",
            "--task",
            "text-classification",
            "--output",
            str(tmp_path),
            "--data-files",
            "train",
        ]
    )
    assert code == 2
    assert "(--data-files)" in capsys.readouterr().err  # the flag the user typed
    code = main(["finetune", "--model", "x", "--task", "sst2", "--output", str(tmp_path), "--epochs", "0"])
    assert code == 2
    assert "(--epochs)" in capsys.readouterr().err
