"""The contract every pruning method implements: what it declares and what its entry point receives.

A method is one module under ``ppruning/methods/`` that builds a :class:`MethodSpec` and
passes it to :func:`ppruning.methods.registry.register_method`. The spec declares
everything the rest of the system needs to know, so nothing outside the module names
the method: its parameter model, what it reads (weights only, task inputs, or labelled
data and training steps), the progress stages it reports, the targets it accepts, the
artifacts it writes, whether it keeps resumable state, and its version (recorded with
every run, so a record made before a default changed is still understood).

The entry point ``run(ctx)`` gets a :class:`MethodContext`: the loaded model, the
validated parameters, the sampling block, the task, the examples when the method reads
data, and the budget already computed at the sequence length fixed at submission. It
returns :class:`~ppruning.masks.Masks`; the pipeline does everything else.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field
from torch import nn

from ppruning.arch.base import ArchAdapter, ModelShape
from ppruning.budget import Budget, BudgetScope
from ppruning.config import SamplingConfig, TaskRef
from ppruning.masks import Masks
from ppruning.progress import Progress
from ppruning.tasks.registry import TaskInfo

#: What a method reads: the weights alone, unlabelled task inputs, or labelled data (and trains).
DataNeed = Literal["weights", "inputs", "labels"]
TargetKind = Literal["flops", "params"]
#: The mask files every structured method leaves in the output folder.
MASK_ARTIFACTS = ("head_mask.pt", "neuron_mask.pt", "masks.safetensors")
_LEGACY_DATA = {"weights": "none", "inputs": "unlabeled", "labels": "labeled"}


class MethodParams(BaseModel):
    """Base of every method's parameter model: unknown keys are errors, not ignored.

    ``lambda_val`` is part of every method's budget (how the removed cost is split between
    attention and FFN), so it is declared here, once, where the budget reads it. Every
    method also declares an ``allocation`` field (how the removal is spread over the
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
    budget: Budget
    progress: Progress
    #: Tokenised task inputs (train split) when the method reads data for these params, else None.
    examples: Sequence[dict[str, Any]] | None
    pad_token_id: int
    #: Method-specific facts for the report (thresholds, collection counts).
    details: dict[str, Any] = field(default_factory=dict)
    #: Files of the method's own (name -> contents), written beside the masks; declare them in ``artifacts``.
    files: dict[str, bytes] = field(default_factory=dict)


@dataclass(frozen=True)
class MethodSpec:
    """One method's declaration; see the module docstring."""

    name: str
    summary: str
    kind: Literal["structured", "unstructured"]
    needs: DataNeed
    params_model: type[MethodParams]
    #: ``run(ctx) -> Masks``: the one entry point.
    run: Callable[[MethodContext], Masks]
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
    #: ``config.model_type`` values the method supports; empty means every adapter's.
    model_types: frozenset[str] = field(default_factory=frozenset)
    #: What the budget may remove for given parameters; default: attention and FFN, split 1 : lambda_val.
    budget_scope_for: Callable[[Any], BudgetScope] | None = None

    def reads_data(self, params: Any) -> bool:
        if self.reads_data_for is not None:
            return self.reads_data_for(params)
        return self.needs != "weights"

    def budget_scope(self, params: Any) -> BudgetScope:
        return self.budget_scope_for(params) if self.budget_scope_for is not None else "attention+ffn"

    def run_stages(self, params: Any) -> tuple[str, ...]:
        return self.stages_for(params) if self.stages_for is not None else self.stages

    @property
    def data(self) -> str:
        """The older three-way name of ``needs`` ('none', 'unlabeled', 'labeled'), kept for listings."""
        return _LEGACY_DATA[self.needs]

    def json_schema(self) -> dict[str, Any]:
        return self.params_model.model_json_schema()
