"""What the CLI says about a user's mistakes, before any work: the real entry point in a subprocess."""

from __future__ import annotations

import io
import json
import os
import subprocess
import sys
from pathlib import Path

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


def test_a_model_folder_that_does_not_exist_is_named_not_taken_for_a_hub_id(tmp_path: Path) -> None:
    line = _one_error_line(_run(*_prune("./no-such-model", tmp_path / "out"), cwd=tmp_path))
    assert line == "ppruning: error (--model): model folder ./no-such-model does not exist"
    assert not (tmp_path / "out").exists()


def test_empty_binary_or_malformed_data_files_fail_before_the_model_loads(tiny_bert_path: Path, tmp_path: Path) -> None:
    empty, binary, json_file = tmp_path / "empty.csv", tmp_path / "binary.csv", tmp_path / "rows.jsonl"
    empty.write_text("")
    binary.write_bytes(b"PK\x03\x04\x00\x00\x08\x00" * 32)
    json_file.write_text("review,sentiment\nfine,pos\n")
    expected = {empty: "the file is empty", binary: "a binary file", json_file: "does not start with a JSON object"}
    for path, why in expected.items():
        line = _one_error_line(_run(*_prune(tiny_bert_path, tmp_path / "out", train=path)))
        assert line.startswith(f"ppruning: error (--data-files): train={path}: {why}"), line


def test_an_output_that_is_a_file_is_refused_before_any_work(tiny_bert_path: Path, tmp_path: Path) -> None:
    taken = tmp_path / "out.txt"
    taken.write_text("keep me\n")
    line = _one_error_line(_run(*_prune(tiny_bert_path, taken)))
    assert line.startswith(f"ppruning: error (--output): {taken} is a file") and taken.read_text() == "keep me\n"


def test_errors_name_the_flag_the_user_typed_not_the_config_field(tiny_bert_path: Path, tmp_path: Path) -> None:
    args = _prune(tiny_bert_path, tmp_path / "out", "--quiet")
    args[args.index("review")] = "nosuch"
    proc = _run(*args)
    assert proc.returncode == 2, proc.stderr
    line = proc.stderr.strip().splitlines()[-1]
    assert line.startswith("ppruning: error (--text-column): ") and "no column 'nosuch'" in line
    assert "task.text_column" not in proc.stderr and "(set --text-column)" in line


def test_quiet_prune_prints_no_progress_bars_or_load_reports(tiny_bert_path: Path, tmp_path: Path) -> None:
    proc = _run(*_prune(tiny_bert_path, tmp_path / "out", "--quiet"))
    assert proc.returncode == 0, proc.stderr
    assert proc.stderr.strip() == ""  # no hub/datasets bars, no coloured load report of the new classifier head
    assert "pruned" in proc.stdout


def test_finetune_without_an_evaluation_split_says_so(tiny_bert_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "ft"
    proc = _run("finetune", "--model", str(tiny_bert_path), "--task", "text-classification", "--data-files",
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


def test_evaluate_on_a_custom_task_needs_only_the_split_it_scores(tmp_path: Path) -> None:
    """A trained classifier scores a validation file alone; its saved label names map the labels."""
    from transformers import BertForSequenceClassification

    from tests.support.tiny_models import save_tiny_bert

    folder = save_tiny_bert(tmp_path / "clf")
    model = BertForSequenceClassification.from_pretrained(folder, num_labels=2, id2label={0: "neg", 1: "pos"},
                                                          label2id={"neg": 0, "pos": 1})  # fmt: skip
    model.save_pretrained(folder)
    proc = subprocess.run(
        [sys.executable, "-m", "ppruning.cli.main", "evaluate", "--model", str(folder), "--task", "text-classification",
         "--data-files", f"validation={FIXTURES / 'reviews_validation.csv'}", "--text-column", "review",
         "--label-column", "sentiment", "--device", "cpu", "--quiet"],
        capture_output=True, text=True, timeout=300, check=False,
    )  # fmt: skip
    assert proc.returncode == 0, proc.stderr
    metrics = json.loads(proc.stdout)
    assert set(metrics) == {"validation"} and 0.0 <= metrics["validation"]["accuracy"] <= 1.0
