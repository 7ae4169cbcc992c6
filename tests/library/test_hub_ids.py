"""A misspelled hub id fails at once and says to check the id: offline, with a hub that does not know
it, and with a hub that does not answer (no 28 s of the hub client's retries)."""

from __future__ import annotations

import time

import pytest

from ppruning.errors import ModelLoadError
from ppruning.model.refs import ModelRef
from ppruning.run.plan import load_hf_config
from tests.support.fake_hub import hub_without_repositories
from tests.support.served import free_port

TYPO = ModelRef(id="bert-base-uncsed")


def _online(monkeypatch: pytest.MonkeyPatch, endpoint: str) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", False)
    monkeypatch.setattr(constants, "ENDPOINT", endpoint)


def test_offline_the_message_says_to_check_the_id(monkeypatch: pytest.MonkeyPatch) -> None:
    from huggingface_hub import constants

    monkeypatch.setattr(constants, "HF_HUB_OFFLINE", True)
    with pytest.raises(ModelLoadError, match="check the id's spelling") as info:
        load_hf_config(TYPO)
    assert info.value.field == "model.id" and "'bert-base-uncsed'" in info.value.message


def test_a_hub_that_does_not_know_the_id_is_answered_at_once(monkeypatch: pytest.MonkeyPatch) -> None:
    with hub_without_repositories() as endpoint:
        _online(monkeypatch, endpoint)
        started = time.monotonic()
        with pytest.raises(ModelLoadError, match="not a repository on the Hugging Face hub.*spelling"):
            load_hf_config(TYPO)
    assert time.monotonic() - started < 5


def test_a_hub_that_does_not_answer_is_asked_once(monkeypatch: pytest.MonkeyPatch) -> None:
    _online(monkeypatch, f"http://127.0.0.1:{free_port()}")  # nothing listens there
    started = time.monotonic()
    with pytest.raises(ModelLoadError, match="did not answer.*spelling"):
        load_hf_config(TYPO)
    assert time.monotonic() - started < 5  # the hub client alone retries for about 23 s
