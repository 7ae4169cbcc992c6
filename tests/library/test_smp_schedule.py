"""SMP trained as the authors train it: the per-matrix regulariser, the learning rates' linear decay to
zero, lambda's cubic rise over the whole run, the keep fraction's final hold, the run's length in
epochs or steps, SMP-S's temperature by remaining share, and the best validation checkpoint of the hold.
"""

from __future__ import annotations

from pathlib import Path

import pytest
import torch

from ppruning.methods.smp.params import SMPParams
from ppruning.methods.smp.schedule import Schedule, default_temperature, total_steps
from ppruning.methods.smp.scores import Scores, prunable_linears
from ppruning.run.config import PruneConfig
from ppruning.run.prune import prune
from tests.support.tiny_models import save_tiny_bert_mlm


@pytest.fixture(scope="module")
def tiny_bert_mlm(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return save_tiny_bert_mlm(tmp_path_factory.mktemp("bert-mlm"))


def _config(model: Path, **params) -> PruneConfig:
    return PruneConfig.model_validate(
        {
            "model": {"id": str(model)},
            "task": {"name": "sst2"},
            "method": "smp",
            "target": {"params_reduction": 0.9},
            "params": {"steps": 12, "train_batch_size": 8, **params},
            "device": "cpu",
        }
    )


def test_the_regulariser_is_the_mean_over_matrices_of_each_matrix_mean_sigmoid(tiny_bert_mlm: Path) -> None:
    from transformers import AutoModelForMaskedLM

    model = AutoModelForMaskedLM.from_pretrained(tiny_bert_mlm)
    scores = Scores(prunable_linears(model), 0.0, "smp-s", 1.0)
    torch.manual_seed(0)
    with torch.no_grad():
        for i, s in enumerate(scores.params):
            s.scores.copy_(torch.randn_like(s.scores) + 0.5 * i)  # each matrix its own level
    per_matrix = [float(torch.sigmoid(s.scores.detach()).mean()) for s in scores.params]
    assert float(scores.regulariser().detach()) == pytest.approx(sum(per_matrix) / len(per_matrix), rel=1e-6)
    elements = torch.cat([torch.sigmoid(s.scores).flatten() for s in scores.params])
    assert abs(float(scores.regulariser().detach()) - float(elements.mean())) > 1e-3  # FFN matrices are larger
    scores.regulariser().backward()  # each matrix's gradient is 1 / (matrices * its elements) times sigmoid'
    first = scores.params[0].scores
    expected = torch.sigmoid(first) * (1 - torch.sigmoid(first)) / (len(scores.params) * first.numel())
    assert torch.allclose(first.grad, expected.detach(), rtol=1e-5)


def test_the_schedule_ramps_keep_to_the_hold_and_lambda_over_the_whole_run() -> None:
    schedule = Schedule.for_run(total=100, warmup_fraction=0.0, hold_steps=40, lr_schedule="linear")
    assert (schedule.hold, schedule.hold_start) == (40, 60)
    assert schedule.keep(0, 0.1) == 1.0 and schedule.keep(30, 0.1) == pytest.approx(0.1 + 0.9 / 8)
    assert all(schedule.keep(s, 0.1) == pytest.approx(0.1) for s in range(60, 100))
    assert schedule.keep(59, 0.1) > 0.1
    assert schedule.lam(0, 400.0) == 0.0 and schedule.lam(50, 400.0) == pytest.approx(400.0 * 7 / 8)
    assert schedule.lam(60, 400.0) < 400.0 and schedule.lam(100, 400.0) == pytest.approx(400.0)  # still rising
    assert schedule.lr_factor(0) == 1.0 and schedule.lr_factor(50) == 0.5 and schedule.lr_factor(100) == 0.0
    # the authors' hold is 30,000 steps; a shorter run holds its last half
    assert Schedule.for_run(1000, 0.0, 30_000, "linear").hold == 500
    assert Schedule.for_run(100, 0.0, 40, "constant").lr_factor(99) == 1.0


def test_the_run_length_is_epochs_over_the_rows_unless_steps_are_given() -> None:
    assert total_steps(SMPParams(), 392_702) == 12 * (392_702 // 64)  # MNLI at the defaults: about 74k steps
    assert total_steps(SMPParams(epochs=1.5, train_batch_size=8), 48) == 9
    assert total_steps(SMPParams(epochs=3, steps=5), 48) == 5


def test_smp_s_temperature_is_four_at_seventy_percent_remaining_or_more() -> None:
    assert default_temperature(0.7) == 4.0 and default_temperature(0.8) == 4.0
    assert default_temperature(0.5) == 1.0 and default_temperature(0.03) == 1.0


def test_a_run_decays_the_learning_rate_to_zero_at_its_last_step(
    tiny_bert_mlm: Path, task_datasets: Path, tmp_path: Path
) -> None:
    result = prune(_config(tiny_bert_mlm, hold_steps=4, learning_rate=0.02), tmp_path / "out")
    details = result.report["details"]
    curve = details["training"]["curve"]
    assert [p["step"] for p in curve] == list(range(1, 13))
    assert curve[-1]["lr"] == 0.0
    assert [p["lr"] for p in curve] == pytest.approx([0.02 * (12 - s) / 12 for s in range(1, 13)], abs=1e-6)
    assert [p["keep"] for p in curve[8:]] == pytest.approx([0.1] * 4) and curve[7]["keep"] > 0.1
    assert details["schedule"] == {
        "steps": 12, "warmup_steps": 0, "ramp_steps": 8, "hold_steps": 4, "lambda": "cubic over the whole run",
        "lr_schedule": "linear", "temperature": 1.0,
    }  # fmt: skip
    assert details["checkpoint"] == {"selected": "last", "step": 12}


def test_the_best_validation_checkpoint_of_the_hold_gives_the_masks(
    tiny_bert_mlm: Path, task_datasets: Path, tmp_path: Path
) -> None:
    config = _config(tiny_bert_mlm, hold_steps=6, checkpoint="best_validation", eval_every=2, learning_rate=0.5)
    result = prune(config, tmp_path / "out")
    chosen = result.report["details"]["checkpoint"]
    assert chosen["selected"] == "best_validation" and chosen["split"] == "validation" and chosen["rows"] == 16
    assert [e["step"] for e in chosen["evaluations"]] == [8, 10, 12]
    best = max(chosen["evaluations"], key=lambda e: e["accuracy"])  # ties keep the earlier
    assert chosen["step"] == best["step"] and chosen["accuracy"] == best["accuracy"]

    from transformers import AutoModelForMaskedLM, AutoTokenizer

    from ppruning.methods.smp.classifier import GLUE_LABEL_WORDS, Classifier, label_word_ids
    from ppruning.methods.smp.validation import accuracy
    from ppruning.tasks.collate import PadCollator
    from ppruning.tasks.labelled import labelled_examples

    model = AutoModelForMaskedLM.from_pretrained(result.model_dir)  # the written masks, scored again
    tokenizer = AutoTokenizer.from_pretrained(result.model_dir)
    rows = labelled_examples(
        config.task, tokenizer, split="validation", max_instances=2000, seed=config.seed,
        max_length=config.sampling.max_length, model_config=model.config,
    )  # fmt: skip
    classifier = Classifier(model, "mlm", label_word_ids(tokenizer, GLUE_LABEL_WORDS["sst2"]))
    rescored = accuracy(classifier, model, rows, PadCollator(tokenizer), 8, torch.device("cpu"))
    assert rescored == pytest.approx(chosen["accuracy"], abs=1e-6)
    if chosen["step"] < 12:  # the same run read at its last step has other masks
        last = prune(config.model_copy(update={"params": config.params | {"checkpoint": "last"}}), tmp_path / "last")
        from ppruning.units.weight_masks import load_weight_masks

        best_masks, _ = load_weight_masks(result.output_dir)
        last_masks, _ = load_weight_masks(last.output_dir)
        assert any(not torch.equal(best_masks[n], last_masks[n]) for n in best_masks)


# --------------------------------------------------------------------------- MaP, the paper's baseline


def test_map_prunes_every_matrix_gradually_on_the_cubic_schedule(
    tiny_bert_mlm: Path, task_datasets: Path, tmp_path: Path
) -> None:
    from transformers import AutoModelForMaskedLM

    from ppruning.methods.smp.scores import Ramp, keep_fraction_at
    from ppruning.units.weight_masks import load_weight_masks

    config = _config(tiny_bert_mlm, hold_steps=4).model_copy(update={"method": "map"})
    result = prune(config, tmp_path / "out")
    curve = result.report["details"]["training"]["curve"]
    sizes = [p.numel() for n, p in AutoModelForMaskedLM.from_pretrained(tiny_bert_mlm).named_parameters()
             if n in load_weight_masks(result.output_dir)[0]]  # fmt: skip
    tolerance = 1.0 / min(sizes)  # floor(v * n) / n per matrix
    for point in curve:  # every matrix's mask at every step is its own top |W| at the scheduled fraction
        expected = keep_fraction_at(point["step"] - 1, 0.1, Ramp(0, 8))
        assert point["keep"] == pytest.approx(expected, abs=1e-6)
        assert expected - tolerance <= point["density_min"] <= point["density_max"] <= expected + 1e-6
    assert curve[0]["density_min"] == 1.0 and curve[-1]["density_max"] == pytest.approx(0.1, abs=tolerance)
    masks, manifest = load_weight_masks(result.output_dir)
    tuned = dict(AutoModelForMaskedLM.from_pretrained(result.model_dir).named_parameters())
    for name, mask in masks.items():  # per matrix: the final weights' own top 10%, the rest at zero
        assert mask.float().mean() == pytest.approx(0.1, abs=tolerance)
        assert torch.count_nonzero(tuned[name][~mask]) == 0
    assert manifest["method"] == "map"
    dense = dict(AutoModelForMaskedLM.from_pretrained(tiny_bert_mlm).named_parameters())
    assert any(not torch.equal(tuned[n][m], dense[n][m]) for n, m in masks.items())  # the kept weights trained
