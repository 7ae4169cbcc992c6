"""The registry of job kinds and everything read from it: the spec union, its examples, the checks, the plans.

A kind is one :class:`KindDeclaration`: the spec model (``kind: Literal[name]``), the
submission checks that depend on the deployment, the progress plan, the OpenAPI examples
and the kinds it may create as children. What depends on the kind is read from here and
nowhere else; a name that is not declared raises :class:`UnknownJobKind` instead of
falling into a default. The worker adds one runner per declared kind (``worker.runners``),
and a test fails the suite for a kind without one.

Everything is built from the kinds declared when it is first asked for, so a kind declared
before the API or the worker is imported (a throw-away kind in a test) is picked up like the
built-in ones (:mod:`jobs.kinds` declares those).
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from enum import StrEnum
from functools import cache
from typing import Annotated, Any, Union, get_args

from pydantic import BaseModel, Field, TypeAdapter
from sqlalchemy.orm import Session

from jobs.settings import Settings
from jobs.spec_checks import check_callback, check_tracking, reject_nul

#: Fields every kind's spec has: its tag, the callback the worker calls when the job ends, the spec version.
SHARED_FIELDS = frozenset({"kind", "callback_url", "spec_version"})
#: A progress plan: the job's phases in order, each with the stages it reports.
Phases = list[tuple[str, tuple[str, ...]]]
#: Submission checks of one kind: (spec, settings, session, owner) -> the spec to store (paths resolved).
Check = Callable[[Any, Settings, Session, str], BaseModel]


class UnknownJobKind(LookupError):
    """A kind nobody declared: a stored job of a kind this code no longer has, or a missing declaration."""

    def __init__(self, name: str, known: tuple[str, ...]) -> None:
        super().__init__(f"job kind {name!r} is not declared (declared: {', '.join(known) or 'none'})")
        self.name = name


class KindDeclarationError(ValueError):
    """A declaration that contradicts itself or another one; raised when it is declared."""


@dataclass(frozen=True)
class KindDeclaration:
    """Everything the job layer knows about one kind of job."""

    #: The ``kind`` of its specs and of ``jobs.kind``.
    name: str
    #: The spec model; its ``kind`` field is ``Literal[name]``.
    spec: type[BaseModel]
    #: One line: what a job of this kind does (the API's description lists it).
    summary: str
    #: The deployment's checks at submission (:mod:`jobs.spec_checks`), after the ones every kind shares.
    check: Check
    #: The stored spec -> the phases and stages its progress reports (the worker's progress bar).
    plan: Callable[[dict[str, Any]], Phases]
    #: OpenAPI examples of ``POST /jobs``: ``{name: {"summary": ..., "value": spec}}``; at least one.
    examples: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    #: The kinds of the child jobs a job of this kind may create (a sweep's prunes or pipelines).
    spawns: tuple[str, ...] = ()

    def __post_init__(self) -> None:
        kind_field = self.spec.model_fields.get("kind")
        if kind_field is None or get_args(kind_field.annotation) != (self.name,):
            raise KindDeclarationError(
                f"job kind {self.name!r}: {self.spec.__name__}.kind must be Literal[{self.name!r}]"
            )
        missing = sorted(SHARED_FIELDS - set(self.spec.model_fields))
        if missing:
            raise KindDeclarationError(f"job kind {self.name!r}: {self.spec.__name__} lacks {', '.join(missing)}")
        if not self.examples:
            raise KindDeclarationError(f"job kind {self.name!r} has no OpenAPI example")
        for example, body in self.examples.items():
            if body.get("value", {}).get("kind") != self.name:
                raise KindDeclarationError(f"job kind {self.name!r}: example {example!r} is not of kind {self.name!r}")

    @property
    def runs_method(self) -> bool:
        """Its spec names a pruning method (``method``, ``params``, ``task``): ``GET /methods`` shows its
        schema specialised to every method."""
        return {"method", "params", "task"} <= set(self.spec.model_fields)


_DECLARED: dict[str, KindDeclaration] = {}


def declare(declaration: KindDeclaration) -> KindDeclaration:
    """Add a kind. Its name and example names must be new, the kinds it spawns declared already."""
    name = declaration.name
    if name in _DECLARED:
        raise KindDeclarationError(f"job kind {name!r} is declared twice")
    unknown = [child for child in declaration.spawns if child not in _DECLARED]
    if unknown:
        raise KindDeclarationError(f"job kind {name!r} spawns undeclared kinds: {', '.join(unknown)}")
    taken = set(declaration.examples) & {e for kind in _DECLARED.values() for e in kind.examples}
    if taken:
        raise KindDeclarationError(f"job kind {name!r}: example names already used: {', '.join(sorted(taken))}")
    _DECLARED[name] = declaration
    return declaration


def declared() -> tuple[KindDeclaration, ...]:
    """Every declared kind, in declaration order (the order of the union, the examples and the docs)."""
    return tuple(_DECLARED.values())


def job_kinds() -> tuple[str, ...]:
    return tuple(_DECLARED)


def job_kind(name: str) -> KindDeclaration:
    """The declaration of ``name``; :class:`UnknownJobKind` when there is none."""
    try:
        return _DECLARED[name]
    except KeyError:
        raise UnknownJobKind(name, job_kinds()) from None


# --------------------------------------------------------------------------- the spec union


@cache
def _union(names: tuple[str, ...]) -> Any:
    members = tuple(_DECLARED[name].spec for name in names)
    return Annotated[Union[members], Field(discriminator="kind")]  # noqa: UP007 - built from a tuple


def spec_union() -> Any:
    """``Annotated[PruneJobSpec | FinetuneJobSpec | ..., Field(discriminator="kind")]`` of the declared kinds."""
    return _union(job_kinds())


@cache
def _adapter(names: tuple[str, ...]) -> TypeAdapter[Any]:
    return TypeAdapter(_union(names))


def parse_spec(spec: dict[str, Any]) -> Any:
    """A stored ``jobs.spec`` back as its kind's model (the worker's entry point to a job's config)."""
    return _adapter(job_kinds()).validate_python(spec)


def parse_submitted(body: bytes) -> Any:
    """A submitted spec, read strictly from its JSON: a number must be a JSON number, a flag a JSON
    boolean (``"0.3"`` is not 0.3). Raises :class:`pydantic.ValidationError`.

    Stored specs, the CLI and the library stay lax; only what a client sends is held to its schema.
    """
    return _adapter(job_kinds()).validate_json(body, strict=True, context={"strict": True})


@cache
def _enum(names: tuple[str, ...]) -> type[StrEnum]:
    return StrEnum("JobKind", {name: name for name in names})  # type: ignore[return-value]


def kind_enum() -> type[StrEnum]:
    """The declared kinds as an enum named ``JobKind`` (the ``GET /jobs?kind=`` filter)."""
    return _enum(job_kinds())


def openapi_examples() -> dict[str, dict[str, Any]]:
    """Every kind's examples, in declaration order: the examples of ``POST /jobs``."""
    return {name: dict(example) for kind in declared() for name, example in kind.examples.items()}


def method_spec_models() -> dict[str, type[BaseModel]]:
    """The spec model of every kind that runs a method, by kind (``GET /methods``' ``spec_schemas``)."""
    return {kind.name: kind.spec for kind in declared() if kind.runs_method}


# --------------------------------------------------------------------------- what the kind decides


def checked_spec(spec: BaseModel, settings: Settings, session: Session, owner: str) -> dict[str, Any]:
    """Run every deployment check on ``spec``: the ones all kinds share, then its kind's; the spec to store."""
    declaration = job_kind(spec.kind)  # type: ignore[attr-defined]
    reject_nul(spec.model_dump(mode="json"))
    check_callback(spec.callback_url, settings)  # type: ignore[attr-defined]  # every kind has it: SHARED_FIELDS
    if "tracking" in type(spec).model_fields:  # the built-in kinds carry MLflow options; a kind may leave them out
        check_tracking(spec.tracking, settings)  # type: ignore[attr-defined]
    return declaration.check(spec, settings, session, owner).model_dump(mode="json")


def progress_phases(kind: str, spec: dict[str, Any]) -> Phases:
    """The phases and stages a job of ``kind`` reports, from its stored spec."""
    return job_kind(kind).plan(spec)


def check_spawn(parent: str, child: str) -> None:
    """Raise unless a job of kind ``parent`` may create a child of kind ``child``."""
    if child not in job_kind(parent).spawns:
        raise KindDeclarationError(f"a {parent} job may not create a {child} job (it spawns: "
                                   f"{', '.join(job_kind(parent).spawns) or 'nothing'})")  # fmt: skip
