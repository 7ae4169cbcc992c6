"""Streamed, token-weighted second moments of one projection's input (and of a target output).

Compensation (:mod:`ppruning.recovery.compensation`) solves a least-squares problem per
output projection; everything it needs is a handful of sums over calibration tokens,
accumulated batch by batch in float64 and never a [tokens x width] matrix for the whole
calibration set: for the input x (width D) and, where the target is not the projection
itself, a target output y (width d),

    gram  = sum_n w_n x_n x_n^T        [D, D]
    cross = sum_n w_n x_n y_n^T        [D, d]   (only with an explicit target)
    sum_x = sum_n w_n x_n, sum_y = sum_n w_n y_n, yy = sum_n w_n ||y_n||^2, weight = sum_n w_n

so the memory is O(D^2 + D d) per projection, whatever the number of tokens. One batch's
products are taken in float32 (half and bfloat16 inputs are widened first) and summed into
the float64 totals: the batch is a few hundred tokens, the totals many thousands, and the
float64 product of a 1,536-wide input would cost several times more on a CPU. The token
weights ``w_n`` come from :func:`ppruning.recovery.outliers.token_weights` (massive
activations down-weighted so one token cannot dominate the fit).
"""

from __future__ import annotations

from dataclasses import dataclass

import torch


@dataclass
class Moments:
    """The sums above for one projection; ``cross`` and ``sum_y`` are None when the target is the projection itself."""

    gram: torch.Tensor
    sum_x: torch.Tensor
    cross: torch.Tensor | None = None
    sum_y: torch.Tensor | None = None
    yy: float = 0.0
    weight: float = 0.0
    #: Real tokens seen, and how many of them were down-weighted or excluded as outliers.
    tokens: int = 0
    outliers: int = 0

    @classmethod
    def empty(cls, width: int, target_width: int | None, device: torch.device) -> Moments:
        """Zero sums for inputs of ``width``; ``target_width``: the explicit target's width, or None."""
        z = {"dtype": torch.float64, "device": device}
        if target_width is None:
            return cls(torch.zeros(width, width, **z), torch.zeros(width, **z))
        return cls(
            torch.zeros(width, width, **z),
            torch.zeros(width, **z),
            torch.zeros(width, target_width, **z),
            torch.zeros(target_width, **z),
        )

    def add(self, x: torch.Tensor, weights: torch.Tensor, y: torch.Tensor | None = None) -> None:
        """Add ``x`` [n, D] (real tokens only), their ``weights`` [n] and, with an explicit target, ``y`` [n, d]."""
        dtype = torch.float64 if x.dtype == torch.float64 else torch.float32
        x = x.to(dtype)
        w = weights.to(dtype)
        wx = x * w[:, None]
        self.gram += wx.T @ x  # summed into float64 in place: no float64 copy of the batch's product
        self.sum_x += wx.sum(dim=0, dtype=torch.float64)  # summed in float64 without a float64 copy of the batch
        if self.cross is not None:
            if y is None:
                raise ValueError("these moments take an explicit target: pass y")
            y = y.to(dtype)
            assert self.sum_y is not None
            self.cross += wx.T @ y
            self.sum_y += (w[:, None] * y).sum(dim=0, dtype=torch.float64)
            sq = torch.linalg.vector_norm(y, dim=1, dtype=torch.float64).pow(2)
            self.yy += float((w.to(torch.float64) * sq).sum())
        self.weight += float(w.to(torch.float64).sum())
        self.tokens += int(x.shape[0])
        self.outliers += int((w < 1.0).sum())

    def nbytes(self) -> int:
        """Memory the sums hold (what the streaming keeps bounded)."""
        tensors = [self.gram, self.sum_x, self.cross, self.sum_y]
        return sum(t.numel() * t.element_size() for t in tensors if t is not None)
