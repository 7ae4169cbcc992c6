"""``measure.seq_len`` and ``measure.batch_sizes`` are checked against the model at submission:
its position embeddings and a memory bound, with errors that name the field."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from tests.service.conftest import count_jobs


@pytest.fixture(scope="module")
def large_bert(model_root: Path) -> Path:
    """A BERT-large shaped config only: submission reads nothing else."""
    folder = model_root / "bert-large-config"
    folder.mkdir(exist_ok=True)
    config = {"model_type": "bert", "hidden_size": 1024, "num_hidden_layers": 24, "num_attention_heads": 16,
              "intermediate_size": 4096, "max_position_embeddings": 512, "vocab_size": 30522}  # fmt: skip
    (folder / "config.json").write_text(json.dumps(config))
    return folder


def test_a_measure_seq_len_past_the_models_positions_is_422_naming_it(client, auth, prune_spec, pg_url, owner):
    r = client.post("/jobs", json={**prune_spec, "measure": {"seq_len": 4096}}, headers=auth)  # tiny BERT: 128
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == "measure.seq_len" and "128 positions" in error["message"]
    assert count_jobs(pg_url, owner) == 0
    assert client.post("/jobs", json={**prune_spec, "measure": {"seq_len": 128}}, headers=auth).status_code == 202


def test_measure_batch_sizes_past_the_memory_bound_are_422_naming_them(client, auth, prune_spec, large_bert):
    spec = {**prune_spec, "model": {"id": str(large_bert)}}
    r = client.post("/jobs", json={**spec, "measure": {"batch_sizes": [1, 4096], "seq_len": 512}}, headers=auth)
    assert r.status_code == 422, r.text
    error = r.json()["error"]
    assert error["field"] == "measure.batch_sizes" and "4096" in error["message"] and "GiB" in error["message"]
    ok = {**spec, "measure": {"batch_sizes": [1, 32], "seq_len": 512}}
    assert client.post("/jobs", json=ok, headers=auth).status_code == 202


def test_a_sweeps_measure_is_checked_for_its_children(client, auth, prune_spec):
    body = {k: v for k, v in prune_spec.items() if k != "target"}
    sweep = {**body, "kind": "sweep", "targets": {"flops_reduction": [0.2, 0.3]}, "measure": {"seq_len": 4096}}
    r = client.post("/jobs", json=sweep, headers=auth)
    assert r.status_code == 422 and r.json()["error"]["field"] == "measure.seq_len", r.text
    r = client.post("/jobs", json={**sweep, "measure": {"seq_len": 100000}}, headers=auth)  # past the range
    assert r.status_code == 422 and r.json()["error"]["field"] == "measure.seq_len", r.text
