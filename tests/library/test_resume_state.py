"""A resume state is data, not code: safetensors plus a JSON tree, read back without running anything."""

from __future__ import annotations

import io
import math
import pickle
from pathlib import Path

import pytest
import torch

from ppruning.run.resume import FolderResume, ResumeStateError, decode_resume_state, encode_resume_state


class _Payload:
    """What an attacker with write access to the bucket would store: unpickling runs ``touch``."""

    def __init__(self, marker: Path) -> None:
        self.marker = marker

    def __reduce__(self):  # type: ignore[no-untyped-def]
        return (Path.touch, (self.marker,))


def _trained_optimizer() -> tuple[list[torch.nn.Parameter], torch.optim.Optimizer]:
    params = [torch.nn.Parameter(torch.randn(3, 4)), torch.nn.Parameter(torch.randn(5))]
    optimizer = torch.optim.AdamW(params, lr=1e-3, betas=(0.8, 0.99))
    for _ in range(2):
        sum(p.square().sum() for p in params).backward()
        optimizer.step()
    return params, optimizer


def test_a_state_round_trips_its_tensors_and_an_optimisers_plain_values_exactly():
    params, optimizer = _trained_optimizer()
    state = {"step": 7, "curve": [{"step": 1, "loss": 0.25, "odd": math.inf}],
             "method": {"scores": [p.detach() for p in params], "optimizer": optimizer.state_dict()}}  # fmt: skip
    back = decode_resume_state(encode_resume_state(state))
    assert back["step"] == 7 and back["curve"] == state["curve"]
    assert all(torch.equal(a, b) for a, b in zip(back["method"]["scores"], state["method"]["scores"], strict=True))
    saved = back["method"]["optimizer"]
    assert saved["param_groups"] == optimizer.state_dict()["param_groups"]  # betas stay a tuple, ids stay ints
    assert set(saved["state"]) == {0, 1}
    assert torch.equal(saved["state"][1]["exp_avg"], optimizer.state[params[1]]["exp_avg"])
    again = torch.optim.AdamW(params, lr=1e-3)
    again.load_state_dict(saved)
    assert again.param_groups[0]["betas"] == (0.8, 0.99)


def test_reading_a_pickled_state_runs_nothing_and_is_refused(tmp_path):
    marker = tmp_path / "ran"
    evil = io.BytesIO()
    torch.save({"step": 1, "method": _Payload(marker)}, evil)
    for data in (evil.getvalue(), pickle.dumps(_Payload(marker)), b"", b"\xff" * 64):
        with pytest.raises(ResumeStateError):
            decode_resume_state(data)
    assert not marker.exists()
    (tmp_path / "resume_state.safetensors").write_bytes(evil.getvalue())
    with pytest.raises(ResumeStateError):
        FolderResume(tmp_path).load()
    assert not marker.exists()


def test_a_state_holding_an_object_is_refused_when_saved_naming_where(tmp_path):
    with pytest.raises(ResumeStateError) as err:
        encode_resume_state({"method": {"rng": object()}})
    assert "state.method.rng" in str(err.value)
    resume = FolderResume(tmp_path)
    resume.save({"step": 3, "t": torch.ones(2)})
    assert resume.load()["step"] == 3 and resume.path.suffix == ".safetensors"
