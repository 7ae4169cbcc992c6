"""One quick look at the hub before a hub model is loaded, so a misspelled id fails at once, and says so.

Without it, a typo meets transformers' loading: offline it reports "couldn't connect",
never "check the id"; with an unreachable hub the hub client retries every request five
times (about 28 s) before the same answer. Here: a model in the local cache is loaded as
usual; otherwise one request (no retries, a short timeout) tells a missing repository
from an unreachable hub, and the message names the id, close ids in the cache, and the fix.
"""

from __future__ import annotations

import difflib
import logging
from pathlib import Path

from ppruning.errors import ModelLoadError
from ppruning.model.refs import ModelRef

#: Seconds the one look at the hub may take.
PROBE_TIMEOUT_S = 5.0

log = logging.getLogger(__name__)


def cached_model_ids() -> list[str]:
    """The hub models in the local cache (``models--org--name`` folders), for suggestions."""
    from huggingface_hub import constants

    root = Path(constants.HF_HUB_CACHE)
    if not root.is_dir():
        return []
    return sorted(p.name[len("models--") :].replace("--", "/") for p in root.glob("models--*"))


def _suggestion(model_id: str) -> str:
    close = difflib.get_close_matches(model_id, cached_model_ids(), n=1, cutoff=0.75)
    return f" (did you mean {close[0]!r}, which is in the cache?)" if close else ""


def is_cached(ref: ModelRef) -> bool:
    from huggingface_hub import try_to_load_from_cache

    return isinstance(try_to_load_from_cache(ref.id, "config.json", revision=ref.revision), str)


def _spelling(model_id: str) -> str:
    return f"check the id's spelling{_suggestion(model_id)}, e.g. 'bert-base-uncased' or 'org/name'"


def look_up_hub_model(ref: ModelRef) -> str:
    """Where a hub model is: ``cached``, ``found`` (the hub has it), ``offline`` (not cached, hub off),
    ``unreachable`` (not cached, no answer) or ``not_an_id`` (no hub id in form: a missing folder, say,
    which the loader reports); a hub that says it has no such repository or revision is a
    ModelLoadError naming the field. One request at most, without retries.
    """
    from huggingface_hub import HfApi, constants
    from huggingface_hub import errors as hub
    from huggingface_hub.utils import validate_repo_id

    try:
        validate_repo_id(ref.id)
    except hub.HFValidationError:
        return "not_an_id"
    if is_cached(ref):
        return "cached"
    if constants.HF_HUB_OFFLINE:
        return "offline"
    try:
        HfApi(endpoint=constants.ENDPOINT).model_info(ref.id, revision=ref.revision, timeout=PROBE_TIMEOUT_S)
    except hub.RevisionNotFoundError:
        raise ModelLoadError(
            f"revision {ref.revision!r} of model {ref.id!r} does not exist on the hub: give a branch, tag or commit",
            field="model.revision",
        ) from None
    except hub.RepositoryNotFoundError:
        raise ModelLoadError(
            f"model {ref.id!r} is not a repository on the Hugging Face hub (or it is private or gated and no "
            f"HF_TOKEN can read it): {_spelling(ref.id)}",
            field="model.id",
        ) from None
    except hub.HfHubHTTPError as exc:  # another answer (401 on a private repo, 5xx): loading reports it
        log.info("hub look at %s answered %s; loading goes on", ref.id, exc)
    except Exception as exc:  # no answer at all: connection refused, DNS, timeout
        log.info("hub look at %s: no answer (%s)", ref.id, exc)
        return "unreachable"
    return "found"


def check_hub_model(ref: ModelRef) -> None:
    """Return when ``ref`` is in the cache or on a reachable hub; else ModelLoadError naming ``model.id``.

    Only a hub id is looked at (a local folder is the caller's to read).
    """
    from huggingface_hub import constants

    where = look_up_hub_model(ref)
    if where == "offline":
        raise ModelLoadError(
            f"model {ref.id!r} is not in the local Hugging Face cache and the hub is off (HF_HUB_OFFLINE): "
            f"{_spelling(ref.id)}; or download it once with the hub reachable",
            field="model.id",
        )
    if where == "unreachable":
        raise ModelLoadError(
            f"model {ref.id!r} is not in the local Hugging Face cache and the hub at {constants.ENDPOINT} did not "
            f"answer: {_spelling(ref.id)}; or check the network (HF_HUB_OFFLINE=1 uses the cache only)",
            field="model.id",
        )
