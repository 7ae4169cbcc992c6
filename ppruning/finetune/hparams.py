"""Which hyperparameters a fine-tuning run uses: explicit values, else the preset, else defaults.

``--preset paper`` takes the task's reference settings (docs/algorithms.md, P-pruning, step 8);
without it the defaults are the Hugging Face examples' (lr 5e-5, batch 32, 3 epochs)
and the task's max length. The resolved values are recorded in the report.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass

from ppruning.run.config import FinetuneConfig
from ppruning.tasks.registry import TaskInfo

DEFAULTS = {"learning_rate": 5e-5, "batch_size": 32, "epochs": 3.0}


@dataclass(frozen=True)
class Hyperparameters:
    learning_rate: float
    batch_size: int
    epochs: float
    max_length: int
    gradient_accumulation_steps: int
    seed: int
    precision: str

    def as_dict(self) -> dict:
        return asdict(self)


def resolve_hparams(config: FinetuneConfig, info: TaskInfo) -> Hyperparameters:
    base = {**DEFAULTS, "max_length": info.max_length}
    if config.preset == "paper":
        base.update({k: v for k, v in info.paper_hparams.items() if k in base})
    chosen = {
        "learning_rate": config.learning_rate,
        "batch_size": config.batch_size,
        "epochs": config.epochs,
        "max_length": config.max_length,
    }
    values = {k: (v if v is not None else base[k]) for k, v in chosen.items()}
    return Hyperparameters(
        learning_rate=float(values["learning_rate"]),
        batch_size=int(values["batch_size"]),
        epochs=float(values["epochs"]),
        max_length=int(values["max_length"]),
        gradient_accumulation_steps=config.gradient_accumulation_steps,
        seed=config.seed,
        precision=config.precision,
    )
