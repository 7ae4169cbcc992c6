"""The reproducibility record: what it holds, and that a run from it makes the same masks again."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import torch

from ppruning.model.refs import ModelRef
from ppruning.run.config import PruneConfig
from ppruning.run.provenance import folder_digest, model_revision, spec_from_record
from ppruning.run.prune import prune
from tests.worker.conftest import FIXTURES
from tests.worker.harness import prune_config


def _config(model: Path, **overrides) -> PruneConfig:
    mine = {"params": {"max_instances": 24, "sampling_tokens": 30}, "seed": 11, "measure": False}
    return prune_config(model, FIXTURES, **(mine | overrides))


def _masks(folder: Path) -> tuple[torch.Tensor, torch.Tensor]:
    return torch.load(folder / "head_mask.pt"), torch.load(folder / "neuron_mask.pt")


def test_a_prune_run_from_its_record_makes_identical_masks(tiny_bert_path: Path, tmp_path: Path) -> None:
    first = prune(_config(tiny_bert_path), tmp_path / "first")
    record = first.report["record"]
    assert json.loads((tmp_path / "first" / "record.json").read_text()) == record
    assert json.loads((first.model_dir / "record.json").read_text()) == record

    # What it holds: every parameter with its default, the model's content hash, the data's fingerprint.
    assert record["kind"] == "prune" and record["seed"] == 11
    assert record["spec"]["params"]["lambda_val"] == 5.0 and record["spec"]["params"]["distance_mode"] == "condensed"
    assert record["model"] == {
        "id": str(tiny_bert_path), "source": "local", "revision": None, "content": folder_digest(tiny_bert_path),
    }  # fmt: skip
    data = record["data"]
    assert data["source"]["files"]["train"]["sha256"] and data["split"] == "train"
    assert data["selection"] == {"seed": 11, "max_instances": 24, "max_length": None}
    assert data["examples"]["count"] == 24 and len(data["examples"]["sha256"]) == 64
    assert {"torch", "transformers", "datasets", "numpy", "ppruning"} <= set(record["versions"])
    assert record["git_revision"] and len(record["git_revision"]) == 40

    kind, spec = spec_from_record(json.loads((tmp_path / "first" / "report.json").read_text()))
    assert kind == "prune"
    second = prune(PruneConfig.model_validate(spec), tmp_path / "second")
    for a, b in zip(_masks(tmp_path / "first"), _masks(tmp_path / "second"), strict=True):
        assert torch.equal(a, b)
    assert second.report["record"]["data"] == data and second.report["record"]["model"] == record["model"]

    # Another seed selects other examples: the fingerprint tells the runs apart.
    other = prune(_config(tiny_bert_path, seed=12), tmp_path / "other").report["record"]
    assert other["data"]["examples"]["sha256"] != data["examples"]["sha256"]


def test_a_hub_model_is_pinned_to_the_commit_transformers_resolved() -> None:
    ref = ModelRef(id="org/some-model", revision="main")
    model = model_revision(ref, SimpleNamespace(_commit_hash="a" * 40))
    assert model == {"id": "org/some-model", "source": "hub", "revision": "main", "resolved_revision": "a" * 40}
    from ppruning.run.provenance import build_record

    record = build_record("prune", {"model": ref.model_dump(), "seed": 1}, model, {})
    assert record["spec"]["model"]["revision"] == "main"
    assert record["rerun_spec"]["model"] == {"id": "org/some-model", "revision": "a" * 40}


def test_a_local_model_hash_changes_with_its_weights(tmp_path: Path) -> None:
    (tmp_path / "m").mkdir()
    (tmp_path / "m" / "config.json").write_text("{}")
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\0" * 10)
    before = folder_digest(tmp_path / "m")
    (tmp_path / "m" / "record.json").write_text("{}")  # a record written beside it changes nothing
    assert folder_digest(tmp_path / "m") == before
    (tmp_path / "m" / "model.safetensors").write_bytes(b"\1" * 10)
    assert folder_digest(tmp_path / "m")["sha256"] != before["sha256"]


def test_a_job_rerun_from_its_record_through_the_api_makes_identical_masks(
    service_backend, spawn, tiny_model, tmp_path, capsys
) -> None:
    from ppruning.cli.main import main
    from ppruning_client.http_client import Client
    from tests.worker.conftest import served_api
    from tests.worker.harness import API_KEY, prune_spec

    spawn(service_backend)
    with served_api(service_backend) as url, Client(url, API_KEY) as client:
        first = client.wait(client.submit(prune_spec(tiny_model, FIXTURES))["id"], timeout_s=90, poll_s=0.3)
        assert first["state"] == "succeeded", first.get("error")
        record = first["result"]["record"]
        assert record["kind"] == "prune" and record["spec"]["params"]["lambda_val"] == 5.0  # defaults filled in
        assert record["model"]["content"] == folder_digest(tiny_model) and record["steps"]["prune"]["data"]
        assert record["data"]["examples"]["count"] == 32 and record["git_revision"]
        client.download(first["id"], "record.json", tmp_path / "record.json")
        assert json.loads((tmp_path / "record.json").read_text()) == record
        record_digest = next(a["sha256"] for a in first["artifacts"] if a["name"] == "record.json")
        for artifact in first["artifacts"]:  # every artifact names the record it came from
            meta = artifact["meta"]["record"]
            assert meta["sha256"] == record_digest and meta["model"]["content"] == record["model"]["content"]

        (tmp_path / "job.json").write_text(json.dumps(first))
        capsys.readouterr()
        auth = ["--url", url, "--api-key", API_KEY]
        assert main(["submit", str(tmp_path / "job.json"), "--from-record", "-q", *auth]) == 0
        again = client.wait(capsys.readouterr().out.strip(), timeout_s=90, poll_s=0.3)
        assert again["state"] == "succeeded" and again["id"] != first["id"]
        digests = [{a["name"]: a["sha256"] for a in job["artifacts"]} for job in (first, again)]
        assert digests[0]["masks.safetensors"] == digests[1]["masks.safetensors"]
        for name in ("head_mask.pt", "neuron_mask.pt"):
            masks = [torch.load(client.download(j["id"], name, tmp_path / j["id"] / name)) for j in (first, again)]
            assert torch.equal(*masks)
        assert again["result"]["record"]["data"] == record["data"]
        assert again["result"]["record"]["spec"] == record["spec"]
