"""P-pruning's parameters: how units are clustered and how the removal is spread over the layers."""

from __future__ import annotations

from typing import Literal

from pydantic import Field

from ppruning.methods.contract import MethodParams


class ClusteringParams(MethodParams):
    """How P-pruning clusters units (also what ``random`` uses for ``allocation="ppruning"``)."""

    distance_mode: Literal["condensed", "reference"] = Field(
        default="condensed",
        description="'condensed': linkage on D; 'reference': the reference's Chebyshev over rows of D.",
    )
    head_matching: Literal["greedy", "hungarian"] = Field(
        default="greedy", description="Matching of head dimensions: greedy (reference) or exact (Hungarian)."
    )
    dead_units: Literal["first", "cluster"] = Field(
        default="first",
        description="Units whose sampled outputs are all zero: 'first' removes them before any live unit "
        "(a deviation from the paper); 'cluster' treats them as the paper does (distance 1 to all, always kept).",
    )
    first_token: Literal["include", "exclude"] = Field(
        default="include",
        description="Whether each sequence's first token may be sampled: 'include' (the paper) or 'exclude' "
        "(a decoder's first position is its attention sink, with activations tens of times the others' in "
        "early layers; excluding it did not help on SmolLM2-135M, see the README).",
    )


class PPruningParams(ClusteringParams):
    """P-pruning's parameters (the reference's defaults)."""

    allocation: Literal["global", "uniform"] = Field(
        default="global",
        description="'global': one threshold per unit type over all layers (the paper); "
        "'uniform': every layer cut at the same number of clusters.",
    )
