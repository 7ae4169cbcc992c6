"""`ppruning prune` and `ppruning methods` as a user runs them (in a subprocess, real entry point)."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.support.reviews import REVIEWS_TRAIN

FIXTURES = Path(__file__).parents[1] / "fixtures" / "custom"


def _run(*args: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [sys.executable, "-m", "ppruning.cli.main", *args], capture_output=True, text=True, timeout=240, check=False
    )


def _prune_args(model: Path, output: Path, *extra: str) -> list[str]:
    return [
        "prune",
        "--model",
        str(model),
        "--task",
        "text-classification",
        "--data-files",
        f"train={REVIEWS_TRAIN}",
        "--text-column",
        "review",
        "--label-column",
        "sentiment",
        "--output",
        str(output),
        *extra,
    ]


def test_prune_on_a_local_csv_exits_0_and_writes_the_outputs(tiny_bert_path: Path, tmp_path: Path) -> None:
    out = tmp_path / "out"
    proc = _run(
        *_prune_args(
            tiny_bert_path,
            out,
            "--flops-reduction",
            "0.2",
            "--lambda-val",
            "1",
            "--sampling-tokens",
            "40",
            "--max-instances",
            "30",
            "--seed",
            "5",
            "--distance-mode",
            "reference",
            "--device",
            "cpu",
        )
    )
    assert proc.returncode == 0, proc.stderr
    for name in ("head_mask.pt", "neuron_mask.pt", "masks.safetensors", "report.json", "model/config.json"):
        assert (out / name).is_file(), name
    report = json.loads((out / "report.json").read_text())
    assert report["params"]["distance_mode"] == "reference" and report["seed"] == 5
    assert report["details"]["collection"]["examples_read"] == 30
    assert "[collect]" in proc.stderr and "[cluster]" in proc.stderr  # progress on stderr
    # ... and only ours, in plain text: stderr is a pipe here, and the method does not use the new classifier
    for noise in ("\x1b[", "LOAD REPORT", "MISSING", "Loading weights", "Writing model shards", "Map:"):
        assert noise not in proc.stderr, (noise, proc.stderr)
    assert "pruned" in proc.stdout

    # What a user does next: reload the checkpoint in one call, with no question asked on stdin
    inspected = subprocess.run(
        [sys.executable, "-m", "ppruning.cli.main", "inspect", str(out / "model"), "--json"],
        capture_output=True, text=True, timeout=120, stdin=subprocess.DEVNULL, check=False,
    )  # fmt: skip
    assert inspected.returncode == 0, inspected.stderr
    summary = json.loads(inspected.stdout)
    assert summary["ffn_per_layer"] == [layer["neurons_kept"] for layer in report["layers"]]
    assert summary["output_shape"] == [1, 2] and "trust_remote_code" not in inspected.stderr


@pytest.mark.parametrize(
    ("extra", "field", "says"),
    [
        (["--flops-reduction", "1.5"], "--flops-reduction", "less than 1"),  # the flag, not the config field
        (["--flops-reduction", "0.9"], "--flops-reduction", "allows at most 0."),
        (
            ["--params-reduction", "0.2", "--method", "magnitude", "--param", "no_such=9"],
            "params.no_such",
            "has no parameter",
        ),
        (["--flops-reduction", "0.2", "--distance-mode", "euclid"], "--distance-mode", "condensed"),
        (["--flops-reduction", "0.2", "--task", "sst-2"], "--task", "did you mean 'sst2'?"),
        (["--flops-reduction", "0.2", "--cost-length", "avg"], "--cost-length", "'max', 'mean' or a number"),
        (["--flops-reduction", "0.2", "--cost-length", "0.5"], "--cost-length", "from 1 to 65536 tokens"),
    ],
)
def test_bad_input_exits_2_with_one_line_naming_the_field(
    extra: list[str], field: str, says: str, tiny_bert_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    from ppruning.cli.main import main

    assert main(_prune_args(tiny_bert_path, tmp_path / "out", *extra)) == 2
    err = capsys.readouterr().err
    lines = [line for line in err.splitlines() if line.startswith("ppruning: error")]
    assert len(lines) == 1 and f"({field})" in lines[0] and says in lines[0], err
    assert not (tmp_path / "out").exists()


def test_methods_lists_the_registry_with_schemas(capsys: pytest.CaptureFixture) -> None:
    from ppruning.cli.main import main
    from ppruning.methods.registry import all_methods

    assert main(["methods", "--json"]) == 0
    methods = {m["name"]: m for m in json.loads(capsys.readouterr().out)}
    assert set(methods) == set(all_methods())
    for name, info in all_methods().items():
        assert methods[name]["params_schema"] == info.json_schema()


def test_prunenet_reuses_a_trained_policy_with_the_policy_flag(tiny_llama_path: Path, tmp_path: Path) -> None:
    from ppruning.cli.main import main

    def args(out: Path, *extra: str) -> list[str]:
        return [
            "prune", "--model", str(tiny_llama_path), "--task", "causal-lm",
            "--data-files", f"train={FIXTURES / 'corpus_train.txt'}", "--method", "prunenet",
            "--params-reduction", "0.2", "--param", "num_episodes=2", "--output", str(out), "--quiet", *extra,
        ]  # fmt: skip

    assert main(args(tmp_path / "trained")) == 0
    assert main(args(tmp_path / "reused", "--policy", str(tmp_path / "trained" / "policy.pt"))) == 0
    trained = json.loads((tmp_path / "trained" / "report.json").read_text())["details"]["prunenet"]
    reused = json.loads((tmp_path / "reused" / "report.json").read_text())["details"]["prunenet"]
    assert (trained["policy"], reused["policy"]) == ("trained", "reused")
    assert reused["policy_source"] == str((tmp_path / "trained" / "policy.pt").resolve())
    kept = [json.loads((tmp_path / d / "prunenet_kept.json").read_text())["kept"] for d in ("trained", "reused")]
    assert kept[0] == kept[1]


#: Parameters that keep every method quick on a tiny model, where the method has them.
_QUICK = {"lambda_val": 1.0, "steps": 3, "train_batch_size": 4, "head": "new"}


@pytest.mark.parametrize("method", sorted(__import__("ppruning.methods", fromlist=["all_methods"]).all_methods()))
def test_every_registered_method_runs_through_the_cli_and_exits_0(
    method: str, tiny_bert_path: Path, tiny_gpt2_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """The CLI's summary reads each method kind's own report (an unstructured one has no per-layer counts)."""
    from ppruning.cli.main import main
    from ppruning.methods import all_methods

    spec = all_methods()[method]
    fields = spec.params_model.model_fields
    params = [f"--param={k}={json.dumps(v)}" for k, v in _QUICK.items() if k in fields]
    target = "--flops-reduction" if "flops" in spec.targets else "--params-reduction"
    model = tiny_gpt2_path if spec.model_types and "bert" not in spec.model_types else tiny_bert_path
    out = tmp_path / "out"
    code = main(
        _prune_args(model, out, "--method", method, target, "0.15", *params, "--device", "cpu", "--quiet")
        + ["--max-instances", "16", "--max-length", "32", "--sampling-tokens", "16", "--no-measure"]
    )
    captured = capsys.readouterr()
    assert code == 0, captured.err
    assert f"with {method}:" in captured.out and (out / "report.json").is_file()
    assert "Traceback" not in captured.err


def test_ppruning_reads_a_text_only_csv_and_a_labelled_method_names_the_missing_label(
    tiny_bert_path: Path, tmp_path: Path, capsys: pytest.CaptureFixture
) -> None:
    """P-pruning needs unlabeled inputs: a file with only a text column is enough; SMP needs labels and says so."""
    from ppruning.cli.main import main

    texts = tmp_path / "texts.csv"
    texts.write_text("text\n" + "\n".join(f"the movie was {w} and the plot {w}" for w in ("great", "bad", "fun") * 8))
    common = ["--task", "text-classification", "--data-files", f"train={texts}", "--device", "cpu", "--quiet"]
    sampling = ["--max-instances", "16", "--max-length", "32", "--sampling-tokens", "16", "--no-measure"]
    out = tmp_path / "out"
    code = main(["prune", "--model", str(tiny_bert_path), *common, "--flops-reduction", "0.2", "--output", str(out),
                 "--lambda-val", "1", *sampling])  # fmt: skip
    assert code == 0, capsys.readouterr().err
    assert json.loads((out / "report.json").read_text())["details"]["collection"]["examples_read"] == 16
    capsys.readouterr()

    smp = ["--method", "smp", "--param", "steps=2", "--param", 'head="new"', "--params-reduction", "0.2"]
    code = main(["prune", "--model", str(tiny_bert_path), *common, *smp, "--output", str(tmp_path / "smp"), *sampling])
    err = capsys.readouterr().err
    assert code == 2 and "label column 'label'" in err, err
