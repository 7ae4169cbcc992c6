"""The contract every pruning method implements: what it declares and what its entry point receives.

A method is one package under ``ppruning/methods/``, named as it is registered, that
builds a :class:`MethodSpec` and passes it to
:func:`ppruning.methods.registry.register_method`. The spec declares everything the rest
of the system needs to know, so nothing outside the package names the method: its
parameter model, what it reads (weights only, task inputs, or labelled data and training
steps), the progress stages it reports, the targets it accepts, the artifacts it writes,
whether it keeps resumable state, and its version (recorded with every run, so a record
made before a default changed is still understood).

The entry point ``run(ctx)`` gets a :class:`MethodContext`: the loaded model, the
validated parameters, the sampling block, the task, the examples when the method reads
data, and the budget already computed at the sequence length fixed at submission. It
returns a :data:`MethodResult`: :class:`~ppruning.units.masks.Masks` (heads and neurons, cut
out by surgery) from a structured method, or :class:`~ppruning.units.weight_masks.WeightMasks`
(one mask per weight matrix, applied to a dense checkpoint) from an unstructured one, as
its declared ``kind`` says, or a :class:`~ppruning.units.layer_drop.LayerDrop` (whole decoder
layers removed) from a depth-pruning method (``kind="layers"``). The prune run
(:mod:`ppruning.run.prune`) does everything else, and writes the outputs with the writer of
that kind (:mod:`ppruning.run.outputs`).

An unstructured method has no structured budget (``ctx.budget`` is None: its target is
a fraction of the prunable weights, ``ctx.target``). A method that trains for long can
declare ``resumable`` and save its state through ``ctx.resume`` (:class:`ResumeStore`),
which the caller backs with a folder (the CLI) or the artifact store (the service). A
method that needs a model other than the task's (SMP: a masked LM) declares ``load_model``; one with
checks beyond its parameter model (a label word that must be one token) declares
``check``, which runs at submission with the model's config.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Annotated, Any, Literal, Protocol

from pydantic import BaseModel, ConfigDict, Field, field_validator
from torch import nn

from ppruning.arch.base import ArchAdapter, ModelShape
from ppruning.arch.registry import adapter_class, supported_model_types
from ppruning.model.refs import ModelRef
from ppruning.progress import Progress
from ppruning.tasks.refs import TaskRef
from ppruning.tasks.registry import TaskInfo
from ppruning.units.budget import Budget, BudgetScope, Target
from ppruning.units.layer_drop import LayerDrop
from ppruning.units.masks import Masks
from ppruning.units.weight_masks import WeightMasks

#: What a method reads: the weights alone, unlabelled task inputs, or labelled data (and trains).
DataNeed = Literal["weights", "inputs", "labels"]

#: The budget's sequence length: the token cap, the sampled inputs' mean real length, or a number of tokens
#: (fractional too: the reference code's per-task averages, such as 53.24 for MRPC).
CostLength = Literal["max", "mean"] | Annotated[int, Field(ge=1, le=65536)] | Annotated[float, Field(ge=1.0, le=65536)]
#: The default, chosen by the pair-task measurement in docs/algorithms.md (budget length).
DEFAULT_COST_LENGTH: Literal["max", "mean"] = "max"
TargetKind = Literal["flops", "params"]
#: The mask files every structured method leaves in the output folder.
MASK_ARTIFACTS = ("head_mask.pt", "neuron_mask.pt", "masks.safetensors")
#: The mask files every unstructured method leaves: packed bits and their manifest.
WEIGHT_MASK_ARTIFACTS = ("weight_masks.safetensors", "weight_masks.json")
_LEGACY_DATA = {"weights": "none", "inputs": "unlabeled", "labels": "labeled"}
#: What ``run`` returns: unit masks (structured), weight masks (unstructured) or the layers to remove (layers).
MethodResult = Masks | WeightMasks | LayerDrop


class SamplingConfig(BaseModel):
    """How a method that reads task inputs samples them; one set of defaults for every method.

    ``max_length`` caps the tokens per example (the task's when left out). ``cost_length``
    fixes the sequence length a FLOPs budget is computed at, for every method alike, so
    methods of one comparison are budgeted alike: ``"max"`` that cap, ``"mean"`` the
    sampled inputs' mean real length (what a user's latency sees; the reference P-pruning
    code costs at the task's average length), or a number of tokens. Submission judges the
    target at the bound (the cap, or the number), the run at the length it costs at; the
    report records both (``budget.seq_len_bound``, ``budget.seq_len``).
    A method that reads no data accepts the block and its report says it was not used
    (``"mean"`` reads the inputs' lengths, whatever the method).
    """

    model_config = ConfigDict(extra="forbid", str_max_length=4096)

    max_instances: int = Field(default=3000, ge=1, le=1_000_000, description="Task examples read (train split).")
    max_length: int | None = Field(
        default=None, ge=8, le=65536, description="Token limit, also the budget's sequence length; default the task's."
    )
    cost_length: CostLength = Field(
        default=DEFAULT_COST_LENGTH,
        description="Tokens per sequence the FLOPs budget is costed at: 'max' (max_length), 'mean' (the sampled "
        "inputs' mean real length, measured at run time; submission checks the target at max_length), or a number.",
    )
    batch_size: int = Field(default=32, ge=1, le=4096, description="Examples per forward pass while reading data.")
    sampling_tokens: int = Field(
        default=200, ge=2, le=100_000, description="Real token positions sampled (methods that sample positions)."
    )

    @field_validator("cost_length", mode="before")
    @classmethod
    def _cost_length_word(cls, value: Any) -> Any:
        """One clear message for a word that is neither length (the union would list three)."""
        if isinstance(value, str) and value not in ("max", "mean"):
            raise ValueError(f"cost_length must be 'max', 'mean' or a number of tokens, not {value!r}")
        if isinstance(value, int | float) and not isinstance(value, bool) and not 1 <= value <= 65536:
            raise ValueError(f"cost_length must be from 1 to 65536 tokens, not {value!r}")
        return value


#: Keys of :class:`SamplingConfig` that older specs gave under ``params`` (``cost_length`` came later).
SAMPLING_KEYS = tuple(k for k in SamplingConfig.model_fields if k != "cost_length")


class ResumeStore(Protocol):
    """Where a resumable method keeps the state a restarted run continues from."""

    def load(self) -> dict[str, Any] | None:
        """The last saved state, or None when there is none."""

    def save(self, state: dict[str, Any]) -> None:
        """Replace the saved state (atomically: a crash mid-save leaves the previous one)."""

    def clear(self) -> None:
        """Forget the state: the run it belongs to has ended and will not restart."""


class MethodParams(BaseModel):
    """Base of every method's parameter model: unknown keys are errors, not ignored.

    ``lambda_val`` is part of every method's budget (how the removed cost is split between
    attention and FFN), so it is declared here, once, where the budget reads it. Every
    structured method also declares an ``allocation`` field (how the removal is spread over the
    layers); ``"uniform"`` is one of its values for every built-in method.
    """

    model_config = ConfigDict(extra="forbid")

    lambda_val: float = Field(
        default=5.0, ge=0.0, le=1000.0, description="Removed cost split 1 : lambda_val between attention and FFN."
    )


@dataclass
class MethodContext:
    """What a method's entry point receives; everything in it is resolved already."""

    params: Any  # the method's own params_model instance
    sampling: SamplingConfig
    seed: int
    task: TaskInfo
    task_ref: TaskRef
    model: nn.Module
    tokenizer: Any
    adapter: ArchAdapter
    shape: ModelShape
    #: The structured budget; None for an unstructured or a layers method (see ``target``).
    budget: Budget | None
    progress: Progress
    #: Tokenised task inputs (train split) when the method reads data for these params, else None;
    #: with a ``labels`` column when the method needs labels.
    examples: Sequence[dict[str, Any]] | None
    pad_token_id: int
    #: Method-specific facts for the report (thresholds, collection counts).
    details: dict[str, Any] = field(default_factory=dict)
    #: The model as the config names it (id, revision): recorded with weight masks.
    model_ref: ModelRef | None = None
    target: Target | None = None
    #: Class names in label-id order, when the method reads labels.
    label_names: list[str] | None = None
    #: Where a resumable method saves and finds its state; None: no resuming.
    resume: ResumeStore | None = None
    #: Files of the method's own (name -> contents), written beside the masks; declare them in ``artifacts``.
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodSpec:
    """One method's declaration; see the module docstring."""

    name: str
    summary: str
    kind: Literal["structured", "unstructured", "layers"]
    needs: DataNeed
    params_model: type[MethodParams]
    #: ``run(ctx) -> Masks | WeightMasks``: the one entry point.
    run: Callable[[MethodContext], MethodResult]
    #: Bumped when the same parameters would give different masks; recorded with every run.
    version: str = "1"
    #: Progress stages ``run`` reports, in order (the service weights its progress bar by them).
    stages: tuple[str, ...] = ("select",)
    #: ``stages`` for given parameters, when they change which stages run.
    stages_for: Callable[[Any], tuple[str, ...]] | None = None
    #: Whether given parameters read task inputs; default: ``needs != "weights"``.
    reads_data_for: Callable[[Any], bool] | None = None
    targets: frozenset[TargetKind] = frozenset({"flops", "params"})
    artifacts: tuple[str, ...] = MASK_ARTIFACTS
    #: True when the method keeps state a restarted job can resume from (long training runs).
    resumable: bool = False
    #: Which model families the method runs on, asked of each family's adapter class; None: every family.
    supports: Callable[[type[ArchAdapter]], bool] | None = None
    #: ``(params, model ref, task, label names) -> (model, tokenizer)`` when the method needs
    #: another head than the task's (SMP's MLM head); None: the task's head.
    load_model: Callable[[Any, ModelRef, TaskInfo, list[str] | None], tuple[nn.Module, Any]] | None = None
    #: ``(params, model ref, task, model's HF config) -> None``: checks at submission beyond the
    #: parameter model, raising InvalidConfigError naming the field.
    check: Callable[[Any, ModelRef, TaskInfo, Any], None] | None = None
    #: What the budget may remove for given parameters; default: attention and FFN, split 1 : lambda_val.
    budget_scope_for: Callable[[Any], BudgetScope] | None = None

    @property
    def model_types(self) -> frozenset[str]:
        """The ``config.model_type`` values the method supports among the registered families; empty: every one."""
        if self.supports is None:
            return frozenset()
        return frozenset(t for t in supported_model_types() if self.supports(adapter_class(t)))

    def reads_data(self, params: Any) -> bool:
        if self.reads_data_for is not None:
            return self.reads_data_for(params)
        return self.needs != "weights"

    def budget_scope(self, params: Any) -> BudgetScope:
        return self.budget_scope_for(params) if self.budget_scope_for is not None else "attention+ffn"

    @property
    def accepts_teacher(self) -> bool:
        """Whether the method can learn from a distillation teacher: its parameters have ``distill``
        (a :class:`~ppruning.recovery.distill.DistillConfig`). The service reads this to accept a teacher on a job."""
        return "distill" in self.params_model.model_fields

    def run_stages(self, params: Any) -> tuple[str, ...]:
        return self.stages_for(params) if self.stages_for is not None else self.stages

    @property
    def data(self) -> str:
        """The older three-way name of ``needs`` ('none', 'unlabeled', 'labeled'), kept for listings."""
        return _LEGACY_DATA[self.needs]

    def json_schema(self) -> dict[str, Any]:
        return self.params_model.model_json_schema()
