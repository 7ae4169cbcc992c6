"""Job kinds: each one declaration (spec model, submission checks, progress plan, examples, the kinds
it may spawn), one module here per kind; the worker adds one runner per kind.

Adding a kind: its spec model (:mod:`jobs.specs`) and checks (:mod:`jobs.spec_checks`), a
module here with its :class:`KindDeclaration`, its line in the list below, and its runner
in ``worker/runners.py``. The API's union, examples, ``kind`` filter and ``/methods``
schemas follow from the declaration; a kind without a runner fails the test suite.
"""

from __future__ import annotations

from jobs.kinds import finetune, pipeline, prune, sweep
from jobs.kinds.registry import (
    KindDeclaration,
    KindDeclarationError,
    Phases,
    UnknownJobKind,
    check_spawn,
    checked_spec,
    declare,
    declared,
    job_kind,
    job_kinds,
    kind_enum,
    method_spec_models,
    openapi_examples,
    parse_spec,
    parse_submitted,
    progress_phases,
    spec_union,
)

#: The built-in kinds, in the order of the spec union, the examples and the docs.
for _kind in (prune.KIND, finetune.KIND, pipeline.KIND, sweep.KIND):
    declare(_kind)

__all__ = [
    "KindDeclaration",
    "KindDeclarationError",
    "Phases",
    "UnknownJobKind",
    "check_spawn",
    "checked_spec",
    "declare",
    "declared",
    "job_kind",
    "job_kinds",
    "kind_enum",
    "method_spec_models",
    "openapi_examples",
    "parse_spec",
    "parse_submitted",
    "progress_phases",
    "spec_union",
]
