"""PruneNet: the reward, the best policy kept, reproducible kept indices, no model copies, FFN-only budgets."""

from __future__ import annotations

import copy
import json
from pathlib import Path

import pytest
import torch
from scipy import stats
from torch import nn

from ppruning import load_pruned
from ppruning.errors import InfeasibleTargetError
from ppruning.methods.prunenet import method as prunenet
from ppruning.methods.prunenet import policy as prunenet_policy
from ppruning.progress import Progress
from ppruning.run.config import PruneConfig
from ppruning.run.plan import prune_stages, resolve_prune_plan
from ppruning.run.prune import prune
from ppruning.units.masks import load_masks
from tests.support.reviews import reviews_task

FIXTURES = Path(__file__).parents[1] / "fixtures" / "custom"
CORPUS = {"name": "causal-lm", "data_files": {"train": str(FIXTURES / "corpus_train.txt")}}


def _config(model: Path, target: float = 0.2, **params) -> PruneConfig:
    return PruneConfig(
        model={"id": str(model)},
        task=CORPUS,
        method="prunenet",
        target={"params_reduction": target},
        params={"num_episodes": 4, **params},
        measure=False,
        seed=3,
    )


class _Episodes(Progress):
    def __init__(self) -> None:
        self.updates: dict[str, list[tuple[int, int | None]]] = {}
        self.stage = ""

    def start_stage(self, stage: str, total: int | None = None, message: str = "") -> None:
        self.stage = stage
        self.updates[stage] = []

    def update(self, step: int, total: int | None = None, message: str = "") -> None:
        self.updates[self.stage].append((step, total))


def test_ks_statistic_equals_scipy() -> None:
    g = torch.Generator().manual_seed(0)
    a, b = torch.randn(50, generator=g), torch.randn(31, generator=g) * 1.3 + 0.2
    assert float(prunenet_policy.ks_statistic(a, b)) == pytest.approx(stats.ks_2samp(a.numpy(), b.numpy()).statistic)


def test_reward_is_finite_when_ks_is_zero_and_beats_every_other_slice() -> None:
    g = torch.Generator().manual_seed(1)
    weight = torch.randn(16, 8, generator=g)
    spectrum = torch.linalg.svdvals(weight)
    perfect = prunenet_policy.spectrum_reward(spectrum, weight)  # the same rows: KS = 0
    assert float(prunenet_policy.ks_statistic(spectrum, torch.linalg.svdvals(weight))) == 0.0
    assert torch.isfinite(torch.tensor(perfect))
    assert perfect >= max(prunenet_policy.spectrum_reward(spectrum, weight[torch.randperm(16, generator=g)[:10]])
                          for _ in range(20))


def test_prunenet_slices_the_ffn_uniformly_and_writes_its_outputs(tiny_llama_path: Path, tmp_path: Path) -> None:
    progress = _Episodes()
    result = prune(_config(tiny_llama_path), tmp_path / "out", progress)
    assert progress.updates["policy"] == [(e, 4) for e in range(1, 5)]  # episodes as progress
    masks = load_masks(result.output_dir)
    assert masks.head_mask.all()  # attention untouched
    kept = masks.neuron_mask.sum(dim=1)
    assert len(set(kept.tolist())) == 1  # the same width in every layer
    details = result.report["details"]["prunenet"]
    assert details["ffn_ratio"] == pytest.approx(1 - kept[0].item() / 64)
    assert result.report["achieved"]["params_reduction_pruned_part"] >= 0.2
    assert result.report["budget"]["scope"] == "ffn"
    for name in (prunenet.POLICY_FILE, prunenet.KEPT_FILE, prunenet.REWARDS_FILE):
        assert (result.output_dir / name).is_file(), name
    curve = json.loads((result.output_dir / prunenet.REWARDS_FILE).read_text())["episode_total_reward"]
    assert len(curve) == 4 and all(torch.isfinite(torch.tensor(curve)))

    config = json.loads((result.model_dir / "config.json").read_text())
    assert config["model_type"] == "llama" and config["intermediate_size"] == int(kept[0])  # a stock config
    reloaded = load_pruned(result.model_dir)
    assert type(reloaded).__name__ == "LlamaForCausalLM"


def test_kept_indices_reproduce_the_checkpoint(tiny_llama_path: Path, tmp_path: Path) -> None:
    from transformers import AutoModelForCausalLM

    # the kept rows alone, as sliced: compensation would refit down_proj's kept columns
    config = PruneConfig.model_validate({**_config(tiny_llama_path).model_dump(), "compensation": False})
    result = prune(config, tmp_path / "out")
    kept = json.loads((result.output_dir / prunenet.KEPT_FILE).read_text())["kept"]
    full = AutoModelForCausalLM.from_pretrained(tiny_llama_path)
    pruned = load_pruned(result.model_dir)
    for layer, rows in enumerate(kept):
        rows = torch.tensor(rows)
        mlp, cut = full.model.layers[layer].mlp, pruned.model.layers[layer].mlp
        assert torch.equal(mlp.gate_proj.weight[rows], cut.gate_proj.weight)
        assert torch.equal(mlp.up_proj.weight[rows], cut.up_proj.weight)
        assert torch.equal(mlp.down_proj.weight[:, rows], cut.down_proj.weight)
    assert torch.equal(full.lm_head.weight, pruned.lm_head.weight)  # the LM head is saved


def test_the_policy_with_the_best_total_reward_is_applied(
    tiny_llama_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Episode rewards are scripted: 1, 7, 2, 3. The policy that acted in episode 1 must compress the model."""
    scripted = iter([1.0, 7.0, 2.0, 3.0])
    acting: list[dict[str, torch.Tensor]] = []
    real = prunenet_policy.run_episode

    def scripted_episode(policy, optimizer, weights, spectra, k, gamma, generator):
        acting.append(copy.deepcopy(policy.state_dict()))
        real(policy, optimizer, weights, spectra, k, gamma, generator)  # the policy really changes
        return prunenet_policy.Episode(next(scripted), [])

    monkeypatch.setattr(prunenet, "run_episode", scripted_episode)
    result = prune(_config(tiny_llama_path, selection="top_k", learning_rate=0.05), tmp_path / "out")
    saved = torch.load(result.output_dir / prunenet.POLICY_FILE)
    assert saved["episode"] == 1 and saved["total_reward"] == 7.0
    for name, tensor in saved["state_dict"].items():
        assert torch.equal(tensor, acting[1][name]), name
    assert not torch.equal(acting[1]["rho"], acting[3]["rho"])  # the last policy differs

    from transformers import AutoModelForCausalLM

    policy = prunenet_policy.SlicingPolicy(saved["hidden_size"], saved["ffn_size"])
    policy.load_state_dict(saved["state_dict"])
    full = AutoModelForCausalLM.from_pretrained(tiny_llama_path)
    kept = json.loads((result.output_dir / prunenet.KEPT_FILE).read_text())
    for layer, rows in enumerate(kept["kept"]):
        weight = full.model.layers[layer].mlp.gate_proj.weight.detach()
        expected = torch.topk(policy(weight).detach(), kept["neurons_kept_per_layer"]).indices.sort().values
        assert rows == expected.tolist()
    assert result.report["details"]["prunenet"]["best_episode"] == 1


def test_no_copy_of_the_model_per_episode(
    tiny_llama_path: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    copied: list[str] = []
    real = copy.deepcopy

    def spy(obj, *args, **kwargs):
        if isinstance(obj, nn.Module):
            copied.append(type(obj).__name__)
        return real(obj, *args, **kwargs)

    monkeypatch.setattr(copy, "deepcopy", spy)
    prune(_config(tiny_llama_path, num_episodes=3), tmp_path / "out")
    assert copied == []


def test_a_target_the_ffn_cannot_reach_is_refused_at_submission(tiny_llama_path: Path) -> None:
    with pytest.raises(InfeasibleTargetError, match="FFN only") as err:
        resolve_prune_plan(_config(tiny_llama_path, target=0.9))
    assert 0 < err.value.largest_feasible < 0.9 and f"{err.value.largest_feasible:.4f}" in str(err.value)


def test_prunenet_refuses_encoders_at_submission(tiny_bert_path: Path) -> None:
    from ppruning.errors import UnsupportedModelError

    config = PruneConfig(
        model={"id": str(tiny_bert_path)},
        task=reviews_task(),
        method="prunenet",
        target={"params_reduction": 0.1},
    )
    with pytest.raises(UnsupportedModelError, match="prunenet"):
        resolve_prune_plan(config)


# --------------------------------------------------------------------------- learn once, prune at any ratio


def _kept(result) -> list[list[int]]:
    return json.loads((result.output_dir / prunenet.KEPT_FILE).read_text())["kept"]


def test_a_reused_policy_keeps_the_rows_of_the_run_that_trained_it(tiny_llama_path: Path, tmp_path: Path) -> None:
    trained = prune(_config(tiny_llama_path, learning_rate=0.05), tmp_path / "trained")
    progress = _Episodes()
    config = _config(tiny_llama_path, learning_rate=0.05, policy=str(trained.output_dir / prunenet.POLICY_FILE))
    assert "policy" not in prune_stages(config) and "policy" in prune_stages(_config(tiny_llama_path))
    reused = prune(config, tmp_path / "reused", progress)
    assert "policy" not in progress.updates  # no episode ran
    assert _kept(reused) == _kept(trained)
    assert trained.report["details"]["prunenet"]["policy"] == "trained"
    details = reused.report["details"]["prunenet"]
    assert details["policy"] == "reused" and details["policy_source"].endswith(prunenet.POLICY_FILE)
    assert details["best_episode"] == trained.report["details"]["prunenet"]["best_episode"]
    again = torch.load(reused.output_dir / prunenet.POLICY_FILE, weights_only=True)
    first = torch.load(trained.output_dir / prunenet.POLICY_FILE, weights_only=True)
    assert all(torch.equal(again["state_dict"][n], t) for n, t in first["state_dict"].items())
    # the folder of the run is enough, and another ratio slices with the same policy, without training
    other = prune(_config(tiny_llama_path, target=0.1, policy=str(trained.output_dir)), tmp_path / "other")
    assert other.report["details"]["prunenet"]["policy"] == "reused"
    assert len(_kept(other)[0]) > len(_kept(trained)[0])


def test_a_policy_that_is_missing_or_for_another_shape_is_refused_naming_the_field(
    tiny_llama_path: Path, tmp_path: Path
) -> None:
    from ppruning.errors import InvalidConfigError
    from ppruning.methods.prunenet.policy_file import policy_bytes

    with pytest.raises(InvalidConfigError, match="no policy file") as err:
        resolve_prune_plan(_config(tiny_llama_path, policy=str(tmp_path / "nowhere.pt")))
    assert err.value.field == "params.policy"
    trained = prune(_config(tiny_llama_path, num_episodes=1), tmp_path / "trained")
    saved = torch.load(trained.output_dir / prunenet.POLICY_FILE, weights_only=True)
    wider = policy_bytes(
        saved["state_dict"], hidden_size=saved["hidden_size"], ffn_size=saved["ffn_size"] * 2, episode=0,
        total_reward=1.0, neurons_kept_per_layer=1, model=None,
    )  # fmt: skip
    (tmp_path / "wider.pt").write_bytes(wider)
    with pytest.raises(InvalidConfigError, match="trained for hidden size") as err:
        prune(_config(tiny_llama_path, policy=str(tmp_path / "wider.pt")), tmp_path / "wider")
    assert err.value.field == "params.policy"
    (tmp_path / "junk.pt").write_bytes(b"not a torch file")
    with pytest.raises(InvalidConfigError, match="not a PruneNet policy file"):
        prune(_config(tiny_llama_path, policy=str(tmp_path / "junk.pt")), tmp_path / "junk")
