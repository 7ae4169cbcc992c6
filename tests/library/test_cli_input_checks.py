"""What the CLI says about a user's mistakes, before any work.

The real entry point: in a subprocess where the whole process's output is the point (the
version, a quiet run's empty stderr), else ``ppruning.cli.main.main`` in this process (what
the console script calls), which spares each case seconds of importing torch again.
"""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from dataclasses import dataclass
from pathlib import Path

import pytest

from ppruning.cli.main import main
from ppruning.progress import StderrProgress
from ppruning.version import __version__
from tests.support.reviews import REVIEWS_TRAIN

FIXTURES = Path(__file__).parents[1] / "fixtures" / "custom"
TRAIN = REVIEWS_TRAIN


def _run(*args: str, cwd: Path | None = None) -> subprocess.CompletedProcess:
    env = {**os.environ, "PYTHONPATH": str(Path(__file__).parents[2])}
    return subprocess.run(
        [sys.executable, "-m", "ppruning.cli.main", *args],
        capture_output=True, text=True, timeout=240, check=False, cwd=cwd, env=env, stdin=subprocess.DEVNULL,
    )  # fmt: skip


@dataclass
class _Done:
    """What ``main`` did: the exit code and what it printed, as a finished subprocess reports them."""

    returncode: int
    stdout: str
    stderr: str


def _main(capsys: pytest.CaptureFixture, *args: str) -> _Done:
    capsys.readouterr()
    try:
        code = main(list(args))
    except SystemExit as exc:  # argparse's own errors
        code = exc.code if isinstance(exc.code, int) else 2
    out = capsys.readouterr()
    return _Done(code, out.out, out.err)


def _prune(model: str | Path, output: Path, *extra: str, train: Path = TRAIN) -> list[str]:
    return ["prune", "--model", str(model), "--task", "text-classification", "--data-files", f"train={train}",
            "--text-column", "review", "--label-column", "sentiment", "--flops-reduction", "0.2",
            "--max-instances", "8", "--sampling-tokens", "20", "--device", "cpu",
            "--output", str(output), *extra]  # fmt: skip


def _one_error_line(proc: subprocess.CompletedProcess) -> str:
    assert proc.returncode == 2, proc.stderr
    assert "Traceback" not in proc.stderr and "[load_model]" not in proc.stderr, proc.stderr
    (line,) = proc.stderr.strip().splitlines()
    return line


def test_version_flag_prints_the_library_version() -> None:
    proc = _run("--version")
    assert proc.returncode == 0 and proc.stdout.strip() == f"ppruning {__version__}"


def test_a_model_folder_that_does_not_exist_is_named_not_taken_for_a_hub_id(
    tmp_path: Path, capsys: pytest.CaptureFixture, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.chdir(tmp_path)
    line = _one_error_line(_main(capsys, *_prune("./no-such-model", tmp_path / "out")))
    assert line == "ppruning: error (--model): model folder ./no-such-model does not exist"
    assert not (tmp_path / "out").exists()


def test_empty_binary_or_malformed_data_files_fail_before_the_model_loads(
    tiny_bert_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    empty, binary, json_file = tmp_path / "empty.csv", tmp_path / "binary.csv", tmp_path / "rows.jsonl"
    empty.write_text("")
    binary.write_bytes(b"PK\x03\x04\x00\x00\x08\x00" * 32)
    json_file.write_text("review,sentiment\nfine,pos\n")
    expected = {empty: "the file is empty", binary: "a binary file", json_file: "does not start with a JSON object"}
    for path, why in expected.items():
        line = _one_error_line(_main(capsys, *_prune(tiny_bert_path, tmp_path / "out", train=path)))
        assert line.startswith(f"ppruning: error (--data-files): train={path}: {why}"), line


def test_an_output_that_is_a_file_is_refused_before_any_work(
    tiny_bert_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    taken = tmp_path / "out.txt"
    taken.write_text("keep me\n")
    line = _one_error_line(_main(capsys, *_prune(tiny_bert_path, taken)))
    assert line.startswith(f"ppruning: error (--output): {taken} is a file") and taken.read_text() == "keep me\n"


def test_errors_name_the_flag_the_user_typed_not_the_config_field(
    tiny_bert_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    args = _prune(tiny_bert_path, tmp_path / "out", "--quiet")
    args[args.index("review")] = "nosuch"
    proc = _main(capsys, *args)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("ppruning: error (--text-column): ") and "no column 'nosuch'" in line
    assert "task.text_column" not in proc.stderr and "(set --text-column)" in line


def test_quiet_prune_prints_no_progress_bars_or_load_reports(tiny_bert_path: Path, tmp_path: Path) -> None:
    proc = _run(*_prune(tiny_bert_path, tmp_path / "out", "--quiet"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ""  # no hub/datasets bars, no coloured load report of the new classifier head
    assert "pruned" in proc.stdout


def test_finetune_without_an_evaluation_split_says_so(
    tiny_bert_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    out = tmp_path / "ft"
    proc = _main(capsys, "finetune", "--model", str(tiny_bert_path), "--task", "text-classification", "--data-files",
                f"train={TRAIN}", "--text-column", "review", "--label-column", "sentiment", "--epochs", "1",
                "--max-train-samples", "8", "--batch-size", "4", "--device", "cpu",
                "--output", str(out), "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    assert "no labelled evaluation split" in proc.stderr
    written = json.loads((out / "metrics.json").read_text())
    assert written["scored"] is False and "validation=FILE" in written["note"]


class _Tty(io.StringIO):
    def isatty(self) -> bool:
        return True


def test_the_tty_bar_shows_elapsed_time_and_eta() -> None:
    now = [100.0]
    stream = _Tty()
    bar = StderrProgress(stream, min_interval_s=0.0, clock=lambda: now[0])
    bar.start_stage("collect", total=10)
    now[0] += 30.0
    bar.update(3, 10)
    assert stream.getvalue().splitlines()[-1].endswith("[#########.....................] 3/10 elapsed 00:30 eta 01:10")
    now[0] += 3570.0
    bar.update(10, 10)
    assert stream.getvalue().endswith("10/10 elapsed 1:00:00")


def test_evaluate_on_a_custom_task_needs_only_the_split_it_scores(
    tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """A trained classifier scores a validation file alone; its saved label names map the labels."""
    from transformers import BertForSequenceClassification

    from tests.support.tiny_models import save_tiny_bert

    folder = save_tiny_bert(tmp_path / "clf")
    model = BertForSequenceClassification.from_pretrained(folder, num_labels=2, id2label={0: "neg", 1: "pos"},
                                                          label2id={"neg": 0, "pos": 1})  # fmt: skip
    model.save_pretrained(folder)
    proc = _main(capsys, "evaluate", "--model", str(folder), "--task", "text-classification",
                 "--data-files", f"validation={FIXTURES / 'reviews_validation.csv'}", "--text-column", "review",
                 "--label-column", "sentiment", "--device", "cpu", "--quiet")  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert set(metrics) == {"validation"} and 0.0 <= metrics["validation"]["accuracy"] <= 1.0
