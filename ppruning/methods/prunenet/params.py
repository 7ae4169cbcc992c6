"""PruneNet's parameters (the paper's defaults)."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ppruning.methods.contract import MethodParams


class PruneNetParams(MethodParams):
    """PruneNet's parameters (the paper's defaults). ``lambda_val`` plays no part: only the FFN is cut.

    ``policy`` names a policy trained before, learned once and reused at any ratio.
    """

    allocation: Literal["uniform"] = Field(
        default="uniform", description="Every layer keeps the same number of neurons (the only choice)."
    )
    num_episodes: int = Field(default=20, ge=1, le=10_000, description="Passes of the policy over all layers.")
    gamma: float = Field(default=0.99, gt=0.0, le=1.0, description="Discount of layer l's reward: gamma**l.")
    learning_rate: float = Field(default=1e-4, gt=0.0, le=1.0, description="AdamW learning rate of the policy.")
    selection: Literal["sample", "top_k"] = Field(
        default="sample",
        description="How the best policy picks the kept rows: sampled (seeded), or the k largest alpha.",
    )
    policy: str | None = Field(
        default=None,
        min_length=1,
        max_length=4096,
        description="A trained policy to reuse: the policy.pt an earlier prunenet run wrote (the file, or the "
        "run's output folder). With one no policy is trained (num_episodes, gamma and learning_rate play no "
        "part): the model is only sliced, at this run's target (the paper's 'you only prune once').",
    )
